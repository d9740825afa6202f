import { executionStatusSchema, executionStatuses } from "../../../shared/src/index";
import { connect } from "../connect";
import type { CommandContext } from "../context";
import { UserError } from "../errors";
import { formatAgo, formatDuration, formatTable } from "../human-format";
import { parseMetadata } from "../run/options";

export interface ListOptions {
  status?: string | undefined;
  batch?: string | undefined;
  metadata?: string[] | undefined;
  limit?: string | undefined;
}

/** `rgrid list`: recent executions, newest first, as a table on stdout. */
export async function list(options: ListOptions, ctx: CommandContext): Promise<void> {
  const status = options.status === undefined ? undefined : executionStatusSchema.safeParse(options.status.trim());
  if (status && !status.success) {
    throw new UserError("bad_argument", `--status "${options.status}" is not a status.`, `Use one of: ${executionStatuses.join(", ")}.`);
  }
  const limit = options.limit === undefined ? 20 : /^\d+$/.test(options.limit) ? Number(options.limit) : NaN;
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
    throw new UserError("bad_argument", `--limit "${options.limit}" must be a whole number from 1 to 500.`);
  }
  const metadata = parseMetadata(options.metadata ?? []);
  const api = connect(ctx);
  const page = await api.listExecutions({ status: status?.data, batch: options.batch, metadata, limit });
  if (page.executions.length === 0) {
    ctx.terminal.stderr.write("No executions match. Start one with `rgrid run script.py`.\n");
    return;
  }
  const now = Date.now();
  const rows = page.executions.map((e) => [
    e.id,
    e.status,
    e.script_name,
    formatAgo(e.created_at, now),
    e.duration_ms !== null ? formatDuration(e.duration_ms) : e.started_at !== null ? formatDuration(now - e.started_at) : "-",
  ]);
  ctx.terminal.stdout.write(formatTable(["ID", "STATUS", "SCRIPT", "CREATED", "DURATION"], rows));
  if (page.next_cursor) ctx.terminal.stderr.write(`Showing the newest ${page.executions.length}; use --limit for more.\n`);
}
