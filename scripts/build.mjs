// Bundles the CLI (no runtime dependencies: ws is bundled in; runs on Node 20+) and the agent.
import { build } from "esbuild";

await build({
  entryPoints: ["cli/src/main.ts"],
  outfile: "cli/dist/rgrid.cjs",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  sourcemap: false,
  // ws loads these native speed-ups when present and falls back to plain JS without them.
  external: ["bufferutil", "utf-8-validate"],
  logLevel: "warning",
});

await build({
  entryPoints: ["agent/src/main.ts"],
  outfile: "agent/dist/agent.mjs",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  // dockerode and its transport stay in node_modules: the agent runs from the repo or an npm install.
  packages: "external",
  logLevel: "warning",
});
