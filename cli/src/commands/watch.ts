import { watchBatchWithFlags, type BatchOptions } from "../batch/run-batch";
import { connect } from "../connect";
import type { CommandContext } from "../context";
import { UserError } from "../errors";

export interface WatchOptions extends Pick<BatchOptions, "outputDir" | "flat" | "flatPrefix" | "strict"> {
  remoteOnly?: boolean | undefined;
}

/**
 * `rgrid watch BATCH`: reattaches to a batch (after `q`, Ctrl-C, or from another terminal) with
 * the progress display of `rgrid run --batch`, downloads the outputs not yet here into the same
 * folders, prints the summary and exits as `run --batch` would have.
 */
export async function watch(batchId: string, options: WatchOptions, ctx: CommandContext): Promise<number> {
  if (!batchId.startsWith("batch_")) {
    throw new UserError(
      "bad_argument",
      `"${batchId}" is not a batch id.`,
      "Batch ids start with batch_ (printed by `rgrid run --batch`). To follow one execution use `rgrid logs ID --follow`.",
    );
  }
  const api = connect(ctx);
  return watchBatchWithFlags(api, ctx, batchId, options);
}
