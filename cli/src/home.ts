import os from "node:os";
import path from "node:path";

/** The rgrid home: `~/.rgrid`, or `$RGRID_HOME` (tests always set it so they never touch the real one). */
export function rgridHome(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.RGRID_HOME?.trim();
  return fromEnv ? path.resolve(fromEnv) : path.join(os.homedir(), ".rgrid");
}
