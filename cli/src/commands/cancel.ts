import { isFinalStatus } from "../../../shared/src/index";
import { connect } from "../connect";
import type { CommandContext } from "../context";

/** `rgrid cancel ID`: stops a queued or running execution (its agent stops the container on its next heartbeat). */
export async function cancel(executionId: string, ctx: CommandContext): Promise<void> {
  const api = connect(ctx);
  const { cancelled } = await api.cancelExecution(executionId);
  if (cancelled.includes(executionId)) {
    ctx.terminal.stderr.write(`Cancelled ${executionId}.\n`);
    return;
  }
  const view = await api.getExecution(executionId);
  if (isFinalStatus(view.status)) ctx.terminal.stderr.write(`${executionId} had already finished (${view.status}); nothing to cancel.\n`);
  else ctx.terminal.stderr.write(`${executionId} is ${view.status}; the cancel request was sent.\n`);
}
