import path from "node:path";

/**
 * Where each batch input's outputs go: `outputs/<input name without extension>/`. Inputs with the
 * same name in different folders must not share a folder, so each gets the shortest tail of its
 * path that no other input of the batch shares: `data/a/x.csv` and `data/b/x.csv` become `a/x`
 * and `b/x`, while a lone `data/y.csv` stays `y`. Two inputs that differ only by extension
 * (`x.csv`, `x.json`) keep it (`x.csv`, `x.json`).
 *
 * Names come from the inputs' paths relative to the working folder (their paths under /work), and
 * the whole batch is named at once, so `rgrid watch` and `rgrid retry --batch`, which see only
 * those paths, place every input's outputs exactly where `rgrid run --batch` did.
 *
 * @example
 *   outputFolderNames(["data/a/x.csv", "data/b/x.csv", "data/y.csv"])
 *   // → Map { "data/a/x.csv" → "a/x", "data/b/x.csv" → "b/x", "data/y.csv" → "y" }
 */
export function outputFolderNames(inputs: readonly string[]): Map<string, string> {
  const unique = [...new Set(inputs)];
  const stripped = (p: string) => {
    const segments = p.split("/");
    const last = segments.pop() ?? p;
    const name = path.posix.parse(last).name;
    return [...segments, name === "" ? last : name];
  };
  // Inputs whose paths are equal once extensions are dropped keep their extensions.
  const fullKeys = new Map<string, number>();
  for (const p of unique) {
    const key = stripped(p).join("/");
    fullKeys.set(key, (fullKeys.get(key) ?? 0) + 1);
  }
  const segmentsOf = new Map(unique.map((p) => [p, (fullKeys.get(stripped(p).join("/")) ?? 0) > 1 ? p.split("/") : stripped(p)]));
  const depth = new Map(unique.map((p) => [p, 1]));
  const nameOf = (p: string) => {
    const segments = segmentsOf.get(p) ?? [p];
    return segments.slice(-(depth.get(p) ?? 1)).join("/");
  };
  // Lengthen the names of colliding inputs one folder at a time until none collide. Names of
  // different lengths never collide, so each round only lengthens within a group; it ends when
  // every name is unique or a group can grow no further (impossible for distinct paths).
  for (;;) {
    const groups = new Map<string, string[]>();
    for (const p of unique) groups.set(nameOf(p), [...(groups.get(nameOf(p)) ?? []), p]);
    let grew = false;
    for (const group of groups.values()) {
      if (group.length < 2) continue;
      for (const p of group) {
        const current = depth.get(p) ?? 1;
        if (current < (segmentsOf.get(p)?.length ?? 1)) {
          depth.set(p, current + 1);
          grew = true;
        }
      }
    }
    if (!grew) break;
  }
  return new Map(unique.map((p) => [p, nameOf(p)]));
}

/**
 * How a batch's outputs are laid out under the output folder:
 * - `folders` (default): `<root>/<input name>/<path the script wrote>`;
 * - `flat` (`--flat`): `<root>/<file name>`, refused when two files would share a name;
 * - `flat` with `prefix` (`--flat-prefix`): `<root>/<input name>_<file name>`.
 */
export type OutputLayout = { kind: "folders"; root: string } | { kind: "flat"; root: string; prefix: boolean };

/**
 * Where one output file goes, relative to the layout's root.
 *
 * @example
 *   outputTarget({ kind: "folders", root: "outputs" }, "a/x", "res/r.json") // → "a/x/res/r.json"
 *   outputTarget({ kind: "flat", root: "out", prefix: true }, "a/x", "res/r.json") // → "a_x_r.json"
 */
export function outputTarget(layout: OutputLayout, folder: string, outputPath: string): string {
  if (layout.kind === "folders") return `${folder}/${outputPath}`;
  const name = path.posix.basename(outputPath);
  return layout.prefix ? `${folder.replaceAll("/", "_")}_${name}` : name;
}

/** Targets that more than one output file would be written to, each with the inputs that wrote one. */
export function findClashes(files: ReadonlyArray<{ input: string; target: string }>): Map<string, string[]> {
  const writers = new Map<string, string[]>();
  for (const { input, target } of files) writers.set(target, [...(writers.get(target) ?? []), input]);
  return new Map([...writers].filter(([, inputs]) => inputs.length > 1));
}
