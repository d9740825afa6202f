import { connect } from "../connect";
import type { CommandContext } from "../context";
import { exitCodeFor } from "../explain-failure";
import { readAllLogs } from "../follow-logs";
import { LogPrinter } from "../log-printer";
import { followExecution, reportOutcome } from "./run";

export interface LogsOptions {
  follow?: boolean | undefined;
  timestamps?: boolean | undefined;
}

/**
 * `rgrid logs ID`: the script's stdout (to stdout) and stderr (to stderr), in order. With
 * `--follow`, follows until the execution is final and resolves with the script's exit code.
 */
export async function logs(executionId: string, options: LogsOptions, ctx: CommandContext): Promise<number> {
  const api = connect(ctx);
  const printer = new LogPrinter(ctx.terminal, ctx.env, options.timestamps === true);
  if (!options.follow) {
    const page = await readAllLogs(api, executionId, printer.print);
    if (page.dropped_lines > 0) ctx.terminal.stderr.write(`(${page.dropped_lines} log lines were dropped past the log size limit)\n`);
    return 0;
  }
  const view = await followExecution(api, executionId, printer, ctx);
  if (!view) return 130;
  reportOutcome(view, printer, ctx);
  return exitCodeFor(view);
}
