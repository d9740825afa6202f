import type { ExecutionView } from "../../shared/src/executions";
import type { ExecutionStatus } from "../../shared/src/lifecycle";
import type { executions } from "./db/schema";

type ExecutionRow = typeof executions.$inferSelect;

/** D1 row → API shape (the shared `executionViewSchema`). */
export function toExecutionView(row: ExecutionRow): ExecutionView {
  return {
    id: row.id,
    status: row.status as ExecutionStatus,
    script_name: row.scriptName,
    runtime: row.runtime,
    image: row.image,
    args: JSON.parse(row.argsJson) as string[],
    inputs: JSON.parse(row.inputsJson) as { path: string; sha256: string }[],
    env_names: JSON.parse(row.envNamesJson) as string[],
    batch_id: row.batchId,
    retry_of: row.retryOf,
    attempt: row.attempt,
    worker_id: row.workerId,
    exit_code: row.exitCode,
    error_message: row.errorMessage,
    metadata: JSON.parse(row.metadataJson) as Record<string, string>,
    timeout_seconds: row.timeoutSeconds,
    memory_mb: row.memoryMb,
    cpus: row.cpus,
    network: row.network as "bridge" | "none",
    created_at: row.createdAt,
    started_at: row.startedAt,
    finished_at: row.finishedAt,
    duration_ms: row.durationMs,
    cost_micros: row.costMicros,
  };
}
