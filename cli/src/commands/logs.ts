import { connect } from "../connect";
import type { CommandContext } from "../context";
import { exitCodeFor } from "../explain-failure";
import { droppedLinesMarker, readAllLogs } from "../follow-logs";
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
    if (page.dropped_lines > 0) ctx.terminal.stderr.write(droppedLinesMarker(page.dropped_lines));
    return 0;
  }
  const view = await followExecution(api, executionId, printer, ctx);
  if (!view) return 130;
  const code = view.exit_code !== null ? ` (exit code ${view.exit_code})` : "";
  ctx.terminal.stderr.write(`[rgrid] ${view.id} ${view.status}${code}\n`);
  reportOutcome(view, printer, ctx);
  return exitCodeFor(view);
}
