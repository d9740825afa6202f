import { connect } from "../connect";
import type { CommandContext } from "../context";
import { artifactsOrExplain } from "../download-outputs";
import { formatBytes, formatTable } from "../human-format";

/** `rgrid outputs ID`: the files an execution wrote, with their sizes. */
export async function outputs(executionId: string, ctx: CommandContext): Promise<void> {
  const api = connect(ctx);
  const artifacts = await artifactsOrExplain(api, executionId, ctx.terminal.stderr);
  if (!artifacts) return;
  const out = ctx.terminal.stdout;
  out.write(
    formatTable(
      ["PATH", "SIZE"],
      artifacts.map((a) => [a.path, formatBytes(a.size_bytes)]),
    ),
  );
  const total = artifacts.reduce((sum, a) => sum + a.size_bytes, 0);
  ctx.terminal.stderr.write(
    `${artifacts.length} file${artifacts.length === 1 ? "" : "s"}, ${formatBytes(total)}. Download with: rgrid download ${executionId}\n`,
  );
}
