import { rgridHome } from "./home";
import { processTerminal, type Terminal } from "./prompt";

/** What every command action receives, so tests can call actions with their own home, env and streams. */
export interface CommandContext {
  terminal: Terminal;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** The rgrid home (`$RGRID_HOME` or `~/.rgrid`). */
  home: string;
  /** The global `--profile NAME`, if given (`RGRID_PROFILE` is read from `env`). */
  profileFlag: string | undefined;
}

export function processContext(profileFlag: string | undefined): CommandContext {
  return { terminal: processTerminal(), env: process.env, cwd: process.cwd(), home: rgridHome(process.env), profileFlag };
}
