import type { ExecutionView } from "../../shared/src/index";
import { formatDuration } from "./human-format";

/**
 * Turns a failed execution (its status, exit code, error message and the last lines of stderr)
 * into what happened, why, and how to fix it. Unknown failures get no explanation: the script's
 * own stderr has already been shown and says more than a guess would.
 */

export interface FailureExplanation {
  what: string;
  cause: string;
  fix: string;
}

/** Import names whose pip package is named differently. */
const PIP_NAMES: Record<string, string> = {
  cv2: "opencv-python",
  sklearn: "scikit-learn",
  PIL: "Pillow",
  yaml: "PyYAML",
  bs4: "beautifulsoup4",
  dateutil: "python-dateutil",
  dotenv: "python-dotenv",
  skimage: "scikit-image",
  Crypto: "pycryptodome",
};

/** What `python:3.11-datascience` ships, so the fix can suggest that runtime instead. */
const DATASCIENCE_MODULES = new Set([
  "numpy",
  "pandas",
  "scipy",
  "sklearn",
  "matplotlib",
  "seaborn",
  "statsmodels",
  "pyarrow",
  "openpyxl",
  "requests",
]);

export function parseMissingModule(lines: readonly string[]): string | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const match = /(?:ModuleNotFoundError|ImportError): No module named ['"]?([A-Za-z0-9_.]+)['"]?/.exec(lines[i] ?? "");
    if (match?.[1]) return match[1];
  }
  return undefined;
}

export function parseSyntaxError(lines: readonly string[]): { file: string; line: number; message: string } | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const match = /^(SyntaxError|IndentationError|TabError): (.*)$/.exec((lines[i] ?? "").trim());
    if (!match) continue;
    for (let j = i - 1; j >= 0 && j >= i - 8; j--) {
      const where = /File "([^"]+)", line (\d+)/.exec(lines[j] ?? "");
      if (where?.[1] && where[2])
        return { file: where[1].replace(/^\/work\//, ""), line: Number(where[2]), message: `${match[1]}: ${match[2]}` };
    }
    return undefined;
  }
  return undefined;
}

export function explainFailure(view: ExecutionView, tail: readonly string[]): FailureExplanation | undefined {
  const error = view.error_message ?? "";
  if (view.status === "timed_out") {
    return {
      what: `The script ran longer than its ${formatDuration(view.timeout_seconds * 1000)} timeout and was stopped.`,
      cause: "Timeouts protect you from runaway scripts; this one was still running at the limit.",
      fix: `Allow more time with --timeout (for example --timeout ${view.timeout_seconds >= 3600 ? "6h" : "2h"}), or set timeout in .rgrid/config.`,
    };
  }
  if (/no (agent|worker)s? (is |are )?(available|active)/i.test(error)) {
    return {
      what: "No agent was available to run this execution.",
      cause: error,
      fix: "Start one with `rgrid dev` (local), or check your workers in the console.",
    };
  }
  if (/image.*(not found|does not exist)|pull access denied|manifest unknown|no such image/i.test(error)) {
    return {
      what: `The image ${view.image} could not be found.`,
      cause: error,
      fix: "Check the image name given to --image (it must be pullable by the agent), or use a --runtime instead.",
    };
  }
  if (view.exit_code === 137 || /out of memory|oom/i.test(error)) {
    return {
      what: `The script ran out of memory (limit ${view.memory_mb} MB) and was killed.`,
      cause: error || "Exit code 137: the process was killed, which usually means it reached its memory limit.",
      fix: `Give it more memory with --memory (for example --memory ${Math.max(2, Math.ceil((view.memory_mb * 2) / 1024))}g), or process the data in smaller pieces.`,
    };
  }
  const module = parseMissingModule(tail);
  if (module) {
    const top = module.split(".")[0] ?? module;
    const pip = PIP_NAMES[top] ?? top;
    const datascience = DATASCIENCE_MODULES.has(top) && view.runtime !== "python:3.11-datascience";
    return {
      what: `The script failed: ModuleNotFoundError: No module named '${module}'.`,
      cause: `The Python package "${pip}" is not installed in the ${view.runtime ?? view.image} environment.`,
      fix: `Add "${pip}" to requirements.txt beside the script (rgrid installs it before running)${datascience ? ", or run with --runtime python:3.11-datascience, which includes it" : ""}.`,
    };
  }
  const syntax = parseSyntaxError(tail);
  if (syntax) {
    return {
      what: `The script has a syntax error: ${syntax.file}, line ${syntax.line}.`,
      cause: syntax.message,
      fix: `Fix line ${syntax.line} of ${syntax.file} (try \`python -m py_compile ${syntax.file}\` locally), then run again.`,
    };
  }
  if (view.status === "failed" && view.exit_code === null && error) {
    return {
      what: "The execution failed before the script finished.",
      cause: error,
      fix: "Run it again; if it keeps failing, check `rgrid status <id> --events`.",
    };
  }
  return undefined;
}

/** The explanation as printed on stderr, ending with where to look. */
export function formatExplanation(explanation: FailureExplanation, executionId: string): string {
  return (
    [
      `❌ ${explanation.what}`,
      `   Cause: ${explanation.cause}`,
      `   Fix:   ${explanation.fix}`,
      `   Logs:  rgrid logs ${executionId}`,
    ].join("\n") + "\n"
  );
}

/** The exit code `rgrid run` and `rgrid logs --follow` end with, mirroring the script's. */
export function exitCodeFor(view: Pick<ExecutionView, "status" | "exit_code">): number {
  switch (view.status) {
    case "succeeded":
      return view.exit_code ?? 0;
    case "timed_out":
      return 124;
    case "cancelled":
      return 130;
    case "failed":
      return view.exit_code !== null && view.exit_code !== 0 ? view.exit_code : 1;
    default:
      return 1;
  }
}
