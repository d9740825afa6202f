// `npm run build`: bundles the CLI and the agent (options in bundles.mjs).
import { build } from "esbuild";
import { agentBundle, cliBundle } from "./bundles.mjs";

await build(cliBundle);
await build(agentBundle);
