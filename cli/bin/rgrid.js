#!/usr/bin/env node
// Thin launcher: the CLI ships as one bundled file with no runtime dependencies.
const path = require("node:path");
const fs = require("node:fs");
const bundle = path.join(__dirname, "..", "dist", "rgrid.cjs");
if (!fs.existsSync(bundle)) {
  console.error("rgrid is not built yet.\nRun `npm run build` at the repository root, then try again.");
  process.exit(1);
}
require(bundle);
