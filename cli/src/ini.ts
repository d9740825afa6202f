/**
 * A deliberately small INI dialect, shared by `$RGRID_HOME/credentials` and `.rgrid/config`:
 *
 *   # comment            (also `;`)
 *   top_level = value    (keys before any section belong to the "" section)
 *   [section]
 *   key = value          (whitespace around key and value is trimmed; "quoted" values are unquoted)
 *   key = value  # note  (a `#` or `;` after whitespace starts a comment in an unquoted value)
 *
 * Anything else is a parse error with its line number, rather than a silently ignored line.
 * Sections and keys live in Maps, so names like `__proto__` are plain data.
 */

export type IniDocument = Map<string, Map<string, string>>;

export class IniParseError extends Error {
  override readonly name = "IniParseError";
  constructor(
    readonly line: number,
    readonly reason: string,
  ) {
    super(`line ${line}: ${reason}`);
  }
}

const SECTION = /^\[\s*([^\]]*?)\s*\]$/;
const NAME = /^[A-Za-z0-9_.-]+$/;

export function parseIni(text: string): IniDocument {
  const doc: IniDocument = new Map();
  let current = "";
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  lines.forEach((raw, index) => {
    const lineNumber = index + 1;
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) return;
    const section = SECTION.exec(line);
    if (section) {
      const name = section[1] ?? "";
      if (!NAME.test(name)) throw new IniParseError(lineNumber, `invalid section name "[${name}]"`);
      current = name;
      if (!doc.has(current)) doc.set(current, new Map());
      return;
    }
    const eq = line.indexOf("=");
    if (eq <= 0) throw new IniParseError(lineNumber, "expected `key = value` or `[section]`");
    const key = line.slice(0, eq).trim();
    if (!NAME.test(key)) throw new IniParseError(lineNumber, `invalid key "${key}"`);
    let value = line.slice(eq + 1).trim();
    if (!value.startsWith('"') && !value.startsWith("'")) value = value.replace(/\s[#;].*$/, "").trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) {
      value = value.slice(1, -1);
    }
    let entries = doc.get(current);
    if (!entries) {
      entries = new Map();
      doc.set(current, entries);
    }
    entries.set(key, value);
  });
  return doc;
}

/** Serializes sections in insertion order; the "" section (top-level keys), if any, comes first. */
export function serializeIni(doc: IniDocument, header?: string): string {
  const blocks: string[] = [];
  if (header) blocks.push(header.replace(/\n*$/, "") + "\n");
  const ordered = [...doc.entries()].sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : 0));
  for (const [section, entries] of ordered) {
    if (section !== "" && !NAME.test(section)) throw new Error(`invalid INI section name: ${section}`);
    let block = section === "" ? "" : `[${section}]\n`;
    for (const [key, value] of entries) {
      if (!NAME.test(key)) throw new Error(`invalid INI key: ${key}`);
      if (/[\r\n]/.test(value)) throw new Error(`INI value for ${key} contains a line break`);
      block += `${key} = ${value}\n`;
    }
    if (block !== "") blocks.push(block);
  }
  return blocks.join("\n");
}

/** Profile and section names: letters, digits, `_`, `.`, `-`. */
export function isValidIniName(name: string): boolean {
  return NAME.test(name);
}
