import type { BatchView, ExecutionView } from "../../../shared/src/index";
import { figuresOf } from "../batch/progress";
import { connect } from "../connect";
import type { CommandContext } from "../context";
import { formatCost, formatDuration, formatTime } from "../human-format";

export interface StatusOptions {
  events?: boolean | undefined;
  json?: boolean | undefined;
}

function durationOf(view: ExecutionView): string {
  if (view.duration_ms !== null) return formatDuration(view.duration_ms);
  if (view.started_at !== null) return `${formatDuration(Date.now() - view.started_at)} so far`;
  return "-";
}

/** `rgrid status batch_…`: the batch's size, cap and counts (of the latest execution of each input). */
function printBatch(batch: BatchView, out: NodeJS.WritableStream): void {
  const figures = figuresOf(batch.counts, batch.total);
  const rows: Array<[string, string]> = [
    ["progress", `${figures.complete}/${figures.total} complete`],
    ["parallel", String(batch.parallel)],
    ["created", formatTime(batch.created_at)],
    ...Object.entries(batch.counts).map(([status, n]): [string, string] => [status.replace("_", " "), String(n)]),
  ];
  out.write(`${batch.id}\n`);
  for (const [key, value] of rows) out.write(`  ${key.padEnd(10)} ${value}\n`);
}

/** `rgrid status ID`: where an execution (or, for `batch_…`, a batch) is, on stdout (`--json` for scripts). */
export async function status(executionId: string, options: StatusOptions, ctx: CommandContext): Promise<void> {
  const api = connect(ctx);
  if (executionId.startsWith("batch_")) {
    const batch = await api.getBatch(executionId);
    if (options.json) ctx.terminal.stdout.write(`${JSON.stringify(batch, null, 2)}\n`);
    else printBatch(batch, ctx.terminal.stdout);
    if (!options.json)
      ctx.terminal.stdout.write(`  (list them with: rgrid list --batch ${batch.id}; follow with: rgrid watch ${batch.id})\n`);
    return;
  }
  const view = await api.getExecution(executionId);
  const events = options.events ? (await api.listEvents(executionId)).events : undefined;
  const out = ctx.terminal.stdout;
  if (options.json) {
    out.write(`${JSON.stringify(events ? { ...view, events } : view, null, 2)}\n`);
    return;
  }
  const rows: Array<[string, string]> = [
    ["status", view.status],
    ["script", [view.script_name, ...view.args].join(" ")],
    ["runtime", view.runtime ?? view.image],
    ["created", formatTime(view.created_at)],
    ["started", view.started_at !== null ? formatTime(view.started_at) : "-"],
    ["duration", durationOf(view)],
    ["worker", view.worker_id ?? "-"],
    ["exit code", view.exit_code !== null ? String(view.exit_code) : "-"],
    ["cost", formatCost(view.cost_micros)],
    ["attempt", String(view.attempt)],
  ];
  if (view.error_message) rows.push(["error", view.error_message]);
  if (view.batch_id) rows.push(["batch", view.batch_id]);
  if (view.retry_of) rows.push(["retry of", view.retry_of]);
  const metadata = Object.entries(view.metadata);
  if (metadata.length > 0) rows.push(["metadata", metadata.map(([k, v]) => `${k}=${v}`).join(", ")]);
  out.write(`${view.id}\n`);
  for (const [key, value] of rows) out.write(`  ${key.padEnd(10)} ${value}\n`);
  if (events) {
    out.write("events:\n");
    for (const event of events) {
      const attempt = event.attempt !== null ? ` (attempt ${event.attempt})` : "";
      out.write(`  ${formatTime(event.created_at)}  ${event.type.padEnd(14)} ${event.message}${attempt}\n`);
    }
  }
}
