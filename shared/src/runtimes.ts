/**
 * Runtime names users pass to `--runtime`, and the image each maps to.
 * Images are built from `infra/runtimes/` (or locally from Debian packages by `infra/build-runtimes.sh`).
 */
export const runtimeImages = {
  "python:3.11": "rgrid/python:3.11",
  "python:3.10": "rgrid/python:3.10",
  "python:3.11-datascience": "rgrid/python:3.11-datascience",
  "python:3.11-llm": "rgrid/python:3.11-llm",
  ffmpeg: "rgrid/ffmpeg",
  "node:20": "rgrid/node:20",
} as const;
export type RuntimeName = keyof typeof runtimeImages;
export const DEFAULT_RUNTIME: RuntimeName = "python:3.11";
export const runtimeNames = Object.keys(runtimeImages) as RuntimeName[];

export function isRuntimeName(name: string): name is RuntimeName {
  return Object.hasOwn(runtimeImages, name);
}

/** The interpreter that runs a script of this runtime (node scripts run with node, everything else with python). */
export function interpreterFor(runtime: RuntimeName | undefined, scriptName: string): string[] {
  if (runtime === "node:20" || /\.(m?js|cjs)$/.test(scriptName)) return ["node"];
  return ["python"];
}
