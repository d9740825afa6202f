import type { LogLine } from "../../shared/src/index";
import type { Terminal } from "./prompt";
import { formatTime } from "./human-format";

/**
 * Prints an execution's log lines the way the script wrote them: stdout lines to our stdout,
 * stderr lines to our stderr, and the agent's own ("system") lines to stderr, prefixed and dimmed
 * on a colour terminal, so `rgrid run x.py > out.txt` captures exactly what `python x.py > out.txt` would.
 * Keeps the last lines of stderr and system output, for explaining a failure afterwards.
 */
export class LogPrinter {
  /** The last stderr/system lines (at most 200), oldest first. */
  readonly tail: string[] = [];
  private readonly dim: boolean;

  constructor(
    private readonly terminal: Pick<Terminal, "stdout" | "stderr">,
    env: NodeJS.ProcessEnv,
    private readonly timestamps = false,
  ) {
    const stderr = terminal.stderr as NodeJS.WritableStream & { isTTY?: boolean };
    this.dim = stderr.isTTY === true && !env.NO_COLOR && env.TERM !== "dumb";
    // `rgrid run x.py | head -1`: once the reader is gone, drop stdout lines rather than crash, so
    // the run still finishes, downloads its outputs and exits with the script's code.
    terminal.stdout.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EPIPE") this.stdoutClosed = true;
      else throw error;
    });
  }

  private stdoutClosed = false;

  print = (line: LogLine): void => {
    const stamp = this.timestamps ? `${formatTime(line.ts)}.${String(line.ts % 1000).padStart(3, "0")} ` : "";
    if (line.stream === "stdout") {
      if (!this.stdoutClosed) this.terminal.stdout.write(`${stamp}${line.text}\n`);
      return;
    }
    this.remember(line.text);
    if (line.stream === "stderr") this.terminal.stderr.write(`${stamp}${line.text}\n`);
    else this.terminal.stderr.write(this.dim ? `\x1b[2m${stamp}[rgrid] ${line.text}\x1b[22m\n` : `${stamp}[rgrid] ${line.text}\n`);
  };

  private remember(text: string): void {
    this.tail.push(text);
    if (this.tail.length > 200) this.tail.shift();
  }
}
