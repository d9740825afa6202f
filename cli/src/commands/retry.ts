import { randomUUID } from "node:crypto";
import { batchMembers, currentExecutions } from "../batch/batch-members";
import { layoutFrom, watchBatchWithFlags, type BatchOptions } from "../batch/run-batch";
import { connect } from "../connect";
import type { CommandContext } from "../context";
import { deliverOutputs } from "../download-outputs";
import { UserError } from "../errors";
import { exitCodeFor } from "../explain-failure";
import { LogPrinter } from "../log-printer";
import { mapConcurrent } from "../map-concurrent";
import { followExecution, reportOutcome } from "./run";

export interface RetryOptions extends Pick<BatchOptions, "outputDir" | "flat" | "flatPrefix" | "strict"> {
  batch?: string | undefined;
  failedOnly?: boolean | undefined;
  remoteOnly?: boolean | undefined;
}

/** Retry requests in flight at once. */
const RETRY_CONCURRENCY = 8;

/**
 * `rgrid retry ID`: runs an execution again (same script, inputs, arguments, env and limits) as a
 * new execution linked to it, follows it like `rgrid run`, and downloads its outputs: into the
 * current folder, or for a batch member into its batch folder under ./outputs.
 *
 * `rgrid retry --batch BATCH --failed-only`: the same for every failed or timed-out execution of
 * the batch (the latest of each input), then follows the batch like `rgrid watch` and downloads
 * the retries' outputs where `rgrid run --batch` put the originals'.
 */
export async function retry(id: string | undefined, options: RetryOptions, ctx: CommandContext): Promise<number> {
  if (options.batch !== undefined) {
    if (id !== undefined) throw new UserError("bad_argument", "Give an execution id or --batch, not both.");
    if (!options.failedOnly) {
      throw new UserError(
        "bad_argument",
        "rgrid retry --batch needs --failed-only.",
        `To re-run the failed executions of the batch: rgrid retry --batch ${options.batch} --failed-only`,
      );
    }
    return retryFailed(options.batch, options, ctx);
  }
  if (id === undefined)
    throw new UserError(
      "bad_argument",
      "Which execution? Give its id, or --batch BATCH --failed-only.",
      "For example: rgrid retry exec_123",
    );
  return retryOne(id, options, ctx);
}

async function retryOne(id: string, options: RetryOptions, ctx: CommandContext): Promise<number> {
  const api = connect(ctx);
  const stderr = ctx.terminal.stderr;
  const created = await api.retryExecution(id, randomUUID());
  stderr.write(`Retry started: ${created.id}\n`);
  const printer = new LogPrinter(ctx.terminal, ctx.env);
  const view = await followExecution(api, created.id, printer, ctx);
  if (!view) return 130;

  let dir = ctx.cwd;
  if (view.batch_id) {
    // A batch member's outputs go to its folder of the batch, as `rgrid run --batch` placed them.
    const member = batchMembers(await api.listAllExecutions({ batch: view.batch_id })).get(view.id);
    const layout = layoutFrom(options, ctx.cwd);
    if (member && layout.kind === "folders") dir = `${layout.root}/${member.folder}`;
  }
  await deliverOutputs(api, view.id, dir, { remoteOnly: options.remoteOnly === true, cwd: ctx.cwd, stderr });
  reportOutcome(view, printer, ctx);
  return exitCodeFor(view);
}

async function retryFailed(batchId: string, options: RetryOptions, ctx: CommandContext): Promise<number> {
  const api = connect(ctx);
  const stderr = ctx.terminal.stderr;
  await api.getBatch(batchId); // a clear "not found" for a wrong id
  const failed = currentExecutions(await api.listAllExecutions({ batch: batchId })).filter(
    (v) => v.status === "failed" || v.status === "timed_out",
  );
  if (failed.length === 0) {
    stderr.write(`No failed executions in ${batchId}: nothing to retry.\n`);
    return 0;
  }
  stderr.write(`Retrying ${failed.length} failed execution${failed.length === 1 ? "" : "s"} of ${batchId}\n`);
  const retries = await mapConcurrent(failed, RETRY_CONCURRENCY, (v) => api.retryExecution(v.id, randomUUID()));
  return watchBatchWithFlags(api, ctx, batchId, options, new Set(retries.map((r) => r.id)));
}
