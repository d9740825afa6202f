// The esbuild options of rgrid's two bundles, shared by `npm run build` and the test helpers that
// rebuild a bundle before running it (so tests never run a stale or differently built file).
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The CLI: one CommonJS file, no runtime dependencies (ws is bundled in), runs on Node 20+. */
export const cliBundle = {
  entryPoints: [path.join(root, "cli", "src", "main.ts")],
  outfile: path.join(root, "cli", "dist", "rgrid.cjs"),
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  // ws loads these native speed-ups when present and falls back to plain JS without them.
  external: ["bufferutil", "utf-8-validate"],
  logLevel: "warning",
};

/** The agent: dockerode and its transport stay in node_modules (it runs from the repo or an npm install). */
export const agentBundle = {
  entryPoints: [path.join(root, "agent", "src", "main.ts")],
  outfile: path.join(root, "agent", "dist", "agent.mjs"),
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  packages: "external",
  logLevel: "warning",
};
