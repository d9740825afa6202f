import fs from "node:fs";
import path from "node:path";
import fg from "fast-glob";
import { UserError } from "../errors";

/**
 * `--batch VALUE` (repeatable): each value is a plain file or a pattern, expanded here rather than
 * by the shell so that `--batch 'data/*.csv'` works the same everywhere and on any number of files.
 * Patterns: `*`, `**`, `?`, `[a-z]`, `{a,b}` and numeric ranges `{1..100}` (fast-glob with
 * micromatch). Hidden files match only when the pattern names the dot. All values add up; the
 * result has no duplicates and is sorted by path, numbers in names compared as numbers
 * (`2.csv` before `10.csv`).
 *
 * @example
 *   expandBatchInputs("/proj", ["data/*.csv", "extra.csv"])
 *   // → ["/proj/data/1.csv", "/proj/data/2.csv", "/proj/data/10.csv", "/proj/extra.csv"]
 */

const byPath = new Intl.Collator("en", { numeric: true }).compare;

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The files one value names: itself when it is an existing file (even if its name has `[` or `*`), else its pattern's matches. */
function filesOf(cwd: string, value: string): string[] {
  const literal = path.resolve(cwd, value);
  if (isFile(literal)) return [literal];
  if (!fg.isDynamicPattern(value)) return [];
  // Patterns use forward slashes; a Windows user may type backslashes.
  const pattern = path.sep === "\\" ? value.replace(/\\/g, "/") : value;
  return fg.sync(pattern, { cwd, absolute: true, onlyFiles: true, followSymbolicLinks: true }).map((f) => path.resolve(f));
}

/** Absolute paths of every file the `--batch` values name; throws a `UserError` naming each value that matched nothing. */
export function expandBatchInputs(cwd: string, values: readonly string[]): string[] {
  const root = path.resolve(cwd);
  const found = new Set<string>();
  const unmatched: string[] = [];
  for (const value of values) {
    const files = value.trim() === "" ? [] : filesOf(root, value);
    if (files.length === 0) unmatched.push(value);
    for (const file of files) found.add(file);
  }
  if (unmatched.length > 0) {
    const names = unmatched.map((v) => `"${v}"`).join(", ");
    throw new UserError(
      "bad_argument",
      `--batch ${names} ${unmatched.length === 1 ? "matches" : "match"} no files (looked in ${root}).`,
      "Check the pattern: * matches within a folder, ** across folders, {1..10} a range, for example --batch 'data/*.csv' or --batch 'logs/**/*.txt'.",
    );
  }
  const relative = (f: string) => path.relative(root, f);
  return [...found].sort(
    (a, b) => byPath(relative(a), relative(b)) || (relative(a) < relative(b) ? -1 : relative(a) > relative(b) ? 1 : 0),
  );
}

/** The placeholder for the batch input in the script's arguments: `rgrid run x.py --batch 'a/*' --in {} --out o`. */
export const INPUT_PLACEHOLDER = "{}";

/**
 * The script's arguments for one batch input: the input replaces every `{}` argument; without one
 * it goes first, before the other arguments. Returns the index of the input among the arguments.
 *
 * @example
 *   argsForInput(["--fast"], "data/a.csv")        // → { args: ["data/a.csv", "--fast"], index: 0 }
 *   argsForInput(["-i", "{}", "-v"], "data/a.csv") // → { args: ["-i", "data/a.csv", "-v"], index: 1 }
 */
export function argsForInput(args: readonly string[], input: string): { args: string[]; index: number } {
  const index = args.indexOf(INPUT_PLACEHOLDER);
  if (index < 0) return { args: [input, ...args], index: 0 };
  return { args: args.map((a) => (a === INPUT_PLACEHOLDER ? input : a)), index };
}
