import { connect } from "../connect";
import type { CommandContext } from "../context";
import { formatBytes, formatTable } from "../human-format";

/** `rgrid outputs ID`: the files an execution wrote, with their sizes. */
export async function outputs(executionId: string, ctx: CommandContext): Promise<void> {
  const api = connect(ctx);
  const { artifacts } = await api.listArtifacts(executionId);
  const out = ctx.terminal.stdout;
  if (artifacts.length === 0) {
    const view = await api.getExecution(executionId);
    ctx.terminal.stderr.write(
      view.finished_at === null
        ? `${executionId} is ${view.status}; outputs appear when it finishes.\n`
        : `${executionId} wrote no output files.\n`,
    );
    return;
  }
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
