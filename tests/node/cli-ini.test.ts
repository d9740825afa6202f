import { describe, expect, it } from "vitest";
import { IniParseError, parseIni, serializeIni } from "../../cli/src/ini";

describe("parseIni", () => {
  it("reads sections, keys and values with surrounding whitespace trimmed", () => {
    const doc = parseIni("[default]\n  api_key =  rgrid_sk_x  \napi_url=http://a\n\n[work]\napi_key = y\n");
    expect(doc.get("default")?.get("api_key")).toBe("rgrid_sk_x");
    expect(doc.get("default")?.get("api_url")).toBe("http://a");
    expect(doc.get("work")?.get("api_key")).toBe("y");
  });

  it("skips # and ; comments, blank lines, a BOM and CRLF line endings (files edited on Windows)", () => {
    const doc = parseIni("\uFEFF# top\r\n; also\r\n\r\n[a]\r\nk = v\r\n");
    expect([...doc.keys()]).toEqual(["a"]);
    expect(doc.get("a")?.get("k")).toBe("v");
  });

  it("treats # after whitespace as a comment in unquoted values, but keeps # inside a value", () => {
    const doc = parseIni('parallel = 8   # per batch\nurl = http://x/#frag\nquoted = "a # b"\n');
    const top = doc.get("");
    expect(top?.get("parallel")).toBe("8");
    expect(top?.get("url")).toBe("http://x/#frag");
    expect(top?.get("quoted")).toBe("a # b");
  });

  it("unquotes single- and double-quoted values and keeps = inside values", () => {
    const doc = parseIni("a = 'x y'\nb = \"p=q\"\nc = k=v\n");
    expect(doc.get("")?.get("a")).toBe("x y");
    expect(doc.get("")?.get("b")).toBe("p=q");
    expect(doc.get("")?.get("c")).toBe("k=v");
  });

  it("lets a later duplicate key win and merges a repeated section", () => {
    const doc = parseIni("[a]\nk = 1\n[b]\nk = 2\n[a]\nk = 3\nz = 4\n");
    expect(doc.get("a")?.get("k")).toBe("3");
    expect(doc.get("a")?.get("z")).toBe("4");
  });

  it("stores __proto__ as plain data rather than touching prototypes", () => {
    const doc = parseIni("[__proto__]\npolluted = yes\n");
    expect(doc.get("__proto__")?.get("polluted")).toBe("yes");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it.each([
    ["a line without =", "[a]\njust text\n", 2],
    ["an empty key", "= value\n", 1],
    ["a key with spaces", "my key = v\n", 1],
    ["an empty section name", "[]\n", 1],
    ["a section name with spaces", "[my profile]\n", 1],
  ])("reports %s with its line number instead of ignoring it", (_name, text, line) => {
    expect(() => parseIni(text)).toThrow(IniParseError);
    try {
      parseIni(text);
    } catch (error) {
      expect((error as IniParseError).line).toBe(line);
    }
  });
});

describe("serializeIni", () => {
  it("round-trips through parseIni, top-level keys first", () => {
    const doc = new Map([
      ["work", new Map([["api_key", "k2"]])],
      ["", new Map([["runtime", "python:3.11"]])],
      [
        "default",
        new Map([
          ["api_key", "k1"],
          ["api_url", "https://api.rgrid.dev"],
        ]),
      ],
    ]);
    const text = serializeIni(doc, "# header");
    expect(text.startsWith("# header\n\nruntime = python:3.11\n")).toBe(true);
    const again = parseIni(text);
    expect(again.get("default")?.get("api_url")).toBe("https://api.rgrid.dev");
    expect(again.get("work")?.get("api_key")).toBe("k2");
  });

  it("refuses values with line breaks, which would inject keys or sections", () => {
    expect(() => serializeIni(new Map([["a", new Map([["k", "v\n[evil]"]])]]))).toThrow(/line break/);
  });
});
