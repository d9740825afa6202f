/**
 * `rgrid run script.py --verbose -n 3` must hand `--verbose -n 3` to the script, as
 * `python script.py --verbose -n 3` would. Commander would parse those as rgrid's own options, and
 * its pass-through mode needs positional options program-wide (which would break `rgrid whoami
 * --profile x`). So before parsing, a `--` is inserted right after the script: everything after it
 * reaches the script untouched.
 */

/** Options of `rgrid run` (and global ones) that take a separate value. */
const RUN_VALUE_OPTIONS = new Set([
  "--runtime",
  "--image",
  "--env",
  "-e",
  "--requirements",
  "--timeout",
  "--memory",
  "--cpus",
  "--network",
  "--metadata",
  "--profile",
  "--batch",
  "--parallel",
  "--output-dir",
]);
/**
 * In a batch run, rgrid's own options may also follow the script (`rgrid run process.py --batch
 * 'data/*.csv' --parallel 20` reads naturally), up to a `--`: other arguments still go to the
 * script, and everything after `--` does, so a script's own `--timeout` can still be passed.
 */
const RUN_FLAGS = new Set(["--remote-only", "--flat", "--flat-prefix", "--strict"]);

const optionName = (arg: string) => (arg.startsWith("--") && arg.includes("=") ? arg.slice(0, arg.indexOf("=")) : arg);

/**
 * In a batch run, moves rgrid's options found after the script to before it (they belong to rgrid), drops the first
 * `--` after the script (it only marked where rgrid's options end), and leaves the rest in order.
 */
function hoistBatchOptions(beforeScript: readonly string[], afterScript: readonly string[]): { hoisted: string[]; rest: string[] } {
  const isBatch =
    beforeScript.some((arg) => optionName(arg) === "--batch") ||
    afterScript.some((arg, i) => {
      const name = optionName(arg);
      return name === "--batch" && afterScript.slice(0, i).every((a) => a !== "--");
    });
  if (!isBatch) return { hoisted: [], rest: [...afterScript] };
  const hoisted: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < afterScript.length; i++) {
    const arg = afterScript[i] ?? "";
    if (arg === "--") {
      rest.push(...afterScript.slice(i + 1));
      break;
    }
    const name = optionName(arg);
    if (RUN_VALUE_OPTIONS.has(name)) {
      hoisted.push(arg);
      if (name === arg && i + 1 < afterScript.length) hoisted.push(afterScript[++i] ?? "");
    } else if (RUN_FLAGS.has(arg)) hoisted.push(arg);
    else rest.push(arg);
  }
  return { hoisted, rest };
}
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
  const runIndex = i;
  for (i++; i < out.length; i++) {
    const arg = out[i] ?? "";
    if (arg === "--") return out;
    if (arg.startsWith("-") && arg !== "-") {
      if (RUN_VALUE_OPTIONS.has(arg)) i++;
      continue;
    }
    // The script: everything after it belongs to the script (batch options apart).
    const { hoisted, rest } = hoistBatchOptions(out.slice(runIndex + 1, i), out.slice(i + 1));
    return [...out.slice(0, i), ...hoisted, out[i] ?? "", ...(rest.length > 0 ? ["--", ...rest] : [])];
  }
  return out;
}
