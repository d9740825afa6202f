/**
 * `rgrid run script.py --verbose -n 3` must hand `--verbose -n 3` to the script, as
 * `python script.py --verbose -n 3` would. Commander would parse those as rgrid's own options, and
 * its pass-through mode needs positional options program-wide (which would break `rgrid whoami
 * --profile x`). So before parsing, a `--` is inserted right after the script: everything after it
 * reaches the script untouched.
 */

/** Options of `rgrid run` (and global ones) that take a separate value. */
const RUN_VALUE_OPTIONS = new Set(["--runtime", "--image", "--env", "-e", "--requirements", "--timeout", "--memory", "--cpus", "--network", "--metadata", "--profile"]);
const GLOBAL_VALUE_OPTIONS = new Set(["--profile"]);

/**
 * Returns argv with `--` after the script of a `run` command; other commands are untouched.
 *
 * @example
 *   separateScriptArgs(["node", "rgrid", "run", "--timeout", "60", "x.py", "--timeout", "5"])
 *   // → ["node", "rgrid", "run", "--timeout", "60", "x.py", "--", "--timeout", "5"]
 */
export function separateScriptArgs(argv: readonly string[]): string[] {
  const out = [...argv];
  let i = 2;
  // Global options before the command name.
  while (i < out.length && out[i]?.startsWith("-")) {
    if (out[i] === "--") return out;
    i += GLOBAL_VALUE_OPTIONS.has(out[i] ?? "") ? 2 : 1;
  }
  if (out[i] !== "run") return out;
  for (i++; i < out.length; i++) {
    const arg = out[i] ?? "";
    if (arg === "--") return out;
    if (arg.startsWith("-") && arg !== "-") {
      if (RUN_VALUE_OPTIONS.has(arg)) i++;
      continue;
    }
    // The script: everything after it belongs to the script.
    if (i + 1 < out.length) out.splice(i + 1, 0, "--");
    return out;
  }
  return out;
}
