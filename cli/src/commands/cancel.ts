import { isFinalStatus } from "../../../shared/src/index";
import { connect } from "../connect";
import type { CommandContext } from "../context";
import { UserError } from "../errors";

export interface CancelOptions {
  batch?: string | undefined;
}

/**
 * `rgrid cancel ID` stops a queued or running execution; `rgrid cancel --batch BATCH` stops every
 * queued and running execution of a batch. Queued work never starts; a running container is
 * stopped by its agent within one heartbeat (about 5 s).
 */
export async function cancel(executionId: string | undefined, options: CancelOptions, ctx: CommandContext): Promise<void> {
  if ((executionId === undefined) === (options.batch === undefined)) {
    throw new UserError(
      "bad_argument",
      "Give either an execution id or --batch BATCH_ID.",
      "For example: rgrid cancel exec_… or rgrid cancel --batch batch_…",
    );
  }
  const api = connect(ctx);
  const stderr = ctx.terminal.stderr;
  if (options.batch !== undefined) {
    const { cancelled } = await api.cancelBatch(options.batch);
    stderr.write(
      cancelled.length > 0
        ? `Cancelled ${cancelled.length} execution${cancelled.length === 1 ? "" : "s"} of batch ${options.batch}; running containers stop within seconds.\n`
        : `Nothing to cancel in batch ${options.batch}: its executions had all finished.\n`,
    );
    return;
  }
  const id = executionId ?? "";
  const { cancelled } = await api.cancelExecution(id);
  if (cancelled.includes(id)) {
    stderr.write(`Cancelled ${id}.\n`);
    return;
  }
  const view = await api.getExecution(id);
  if (isFinalStatus(view.status)) stderr.write(`${id} had already finished (${view.status}); nothing to cancel.\n`);
  else stderr.write(`${id} is ${view.status}; the cancel request was sent.\n`);
}
