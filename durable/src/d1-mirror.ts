import type { CompleteRequest } from "../../shared/src/agent-protocol";
import type { EventType } from "../../shared/src/lifecycle";
import { storageKeys } from "../../worker/src/signed-urls";
import { chunkRows } from "./sql-chunks";
import { MAX_RETRIES, MICROS_PER_CPU_SECOND } from "./task-record";

/** One D1 statement, stored in the scheduler's outbox until it has been applied. */
export interface MirrorStatement {
  sql: string;
  params: (string | number | null)[];
}

/** Builds statements as data, with the same `prepare(...).bind(...)` reading as D1's API. */
function prepare(sql: string) {
  return { bind: (...params: (string | number | null | undefined)[]): MirrorStatement => ({ sql, params: params.map((p) => p ?? null) }) };
}

/**
 * The D1 statements that mirror scheduler transitions, where they are queried. Every statement is
 * an idempotent upsert or a guarded update keyed by execution and attempt (events carry a dedupe
 * key), so replaying one after a crash changes nothing.
 */
export class D1Mirror {
  private readonly db = { prepare };

  constructor(private readonly accountId: string) {}

  private event(executionId: string, attempt: number | null, type: EventType, message: string, at: number) {
    return this.db
      .prepare(
        "INSERT OR IGNORE INTO events (account_id, execution_id, attempt, type, message, created_at, dedupe_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
      )
      .bind(this.accountId, executionId, attempt, type, message, at, `${executionId}:${attempt ?? 0}:${type}`);
  }

  /**
   * One lease request's worth of transitions in a handful of multi-row statements instead of three
   * per task: the D1 mirror, not the scheduler, is what bounds dispatch rate on a small machine.
   */
  leasedMany(tasks: { executionId: string; attempt: number }[], workerId: string, at: number): MirrorStatement[] {
    const statements: MirrorStatement[] = [];
    const byAttempt = new Map<number, string[]>();
    for (const t of tasks) byAttempt.set(t.attempt, [...(byAttempt.get(t.attempt) ?? []), t.executionId]);
    for (const [attempt, ids] of byAttempt) {
      for (const chunk of chunkRows(ids, 1, 3)) {
        statements.push({
          sql: `UPDATE executions SET status = 'leased', attempt = ?, worker_id = ? WHERE account_id = ? AND id IN (${chunk.map(() => "?").join(", ")})`,
          params: [attempt, workerId, this.accountId, ...chunk],
        });
      }
    }
    for (const chunk of chunkRows(tasks, 5)) {
      statements.push({
        sql: `INSERT INTO attempts (execution_id, attempt, account_id, worker_id, status, leased_at) VALUES ${chunk.map(() => "(?, ?, ?, ?, 'leased', ?)").join(", ")} ON CONFLICT DO NOTHING`,
        params: chunk.flatMap((t) => [t.executionId, t.attempt, this.accountId, workerId, at]),
      });
    }
    for (const chunk of chunkRows(tasks, 7)) {
      statements.push({
        sql: `INSERT OR IGNORE INTO events (account_id, execution_id, attempt, type, message, created_at, dedupe_key) VALUES ${chunk.map(() => "(?, ?, ?, 'leased', ?, ?, ?)").join(", ")}`,
        params: chunk.flatMap((t) => [
          this.accountId,
          t.executionId,
          t.attempt,
          `attempt ${t.attempt} leased to ${workerId}`,
          at,
          `${t.executionId}:${t.attempt}:leased`,
        ]),
      });
    }
    return statements;
  }

  started(executionId: string, attempt: number, at: number): MirrorStatement[] {
    return [
      this.db
        .prepare("UPDATE executions SET status = 'running', started_at = ? WHERE id = ? AND attempt = ? AND account_id = ?")
        .bind(at, executionId, attempt, this.accountId),
      this.db
        .prepare("UPDATE attempts SET status = 'running', started_at = ? WHERE execution_id = ? AND attempt = ?")
        .bind(at, executionId, attempt),
      this.event(executionId, attempt, "started", `attempt ${attempt} started`, at),
    ];
  }

  /**
   * An attempt that failed for a reason that is not the script's (worker lost, setup failure) and
   * is retried: the attempt is recorded as failed with its reason, and the retry as its own event.
   */
  requeued(
    executionId: string,
    attempt: number,
    retry: number,
    reason: string,
    detail: string | null,
    lost: boolean,
    at: number,
  ): MirrorStatement[] {
    const why = detail ? `${reason}: ${detail.split("\n")[0]}` : reason;
    const statements = [
      this.db
        .prepare("UPDATE executions SET status = 'queued', worker_id = NULL WHERE id = ? AND account_id = ?")
        .bind(executionId, this.accountId),
      this.db
        .prepare("UPDATE attempts SET status = 'failed', finished_at = ?, error_message = ? WHERE execution_id = ? AND attempt = ?")
        .bind(at, why, executionId, attempt),
    ];
    if (lost) statements.push(this.event(executionId, attempt, "heartbeat_lost", `attempt ${attempt}: ${why}`, at));
    statements.push(this.event(executionId, attempt, "retried", `Auto-retry ${retry}/${MAX_RETRIES} after ${why}`, at));
    return statements;
  }

  /** An attempt handed back (a stopping agent) or never received: queued again, not counted as a retry. */
  released(executionId: string, attempt: number, workerId: string, why: string, at: number): MirrorStatement[] {
    return [
      this.db
        .prepare("UPDATE executions SET status = 'queued', worker_id = NULL WHERE id = ? AND account_id = ?")
        .bind(executionId, this.accountId),
      this.db
        .prepare("UPDATE attempts SET status = 'released', finished_at = ?, error_message = ? WHERE execution_id = ? AND attempt = ?")
        .bind(at, `${why} (${workerId})`, executionId, attempt),
      this.event(executionId, attempt, "released", `attempt ${attempt} queued again: ${why} (${workerId})`, at),
    ];
  }

  finished(
    executionId: string,
    attempt: number,
    result: Pick<CompleteRequest, "status" | "exit_code" | "duration_ms" | "error_message" | "outputs">,
    cpus: number,
    at: number,
  ): MirrorStatement[] {
    const cost = Math.ceil(((result.duration_ms ?? 0) / 1000) * cpus * MICROS_PER_CPU_SECOND);
    const statements = [
      this.db
        .prepare(
          `UPDATE executions SET status = ?, exit_code = ?, error_message = ?, finished_at = ?, duration_ms = ?, cost_micros = ?
           WHERE id = ? AND account_id = ? AND attempt = ?`,
        )
        .bind(result.status, result.exit_code, result.error_message, at, result.duration_ms, cost, executionId, this.accountId, attempt),
      this.db
        .prepare("UPDATE attempts SET status = ?, finished_at = ?, exit_code = ?, error_message = ? WHERE execution_id = ? AND attempt = ?")
        .bind(result.status, at, result.exit_code, result.error_message, executionId, attempt),
      this.event(executionId, attempt, result.status, finishedMessage(result), at),
    ];
    for (const file of result.outputs ?? []) {
      statements.push(
        this.db
          .prepare(
            `INSERT INTO artifacts (id, account_id, execution_id, path, size_bytes, sha256, content_type, r2_key, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (execution_id, path) DO UPDATE SET size_bytes = excluded.size_bytes, sha256 = excluded.sha256,
               content_type = excluded.content_type, created_at = excluded.created_at`,
          )
          .bind(
            `art_${executionId}_${file.sha256.slice(0, 8)}_${file.path.length}`,
            this.accountId,
            executionId,
            file.path,
            file.size_bytes,
            file.sha256,
            file.content_type,
            storageKeys.output(executionId, attempt, file.path),
            at,
          ),
      );
    }
    return statements;
  }

  cancelled(executionId: string, attempt: number, at: number): MirrorStatement[] {
    return [
      this.db
        .prepare("UPDATE executions SET status = 'cancelled', finished_at = ? WHERE id = ? AND account_id = ?")
        .bind(at, executionId, this.accountId),
      this.db
        .prepare("UPDATE attempts SET status = 'cancelled', finished_at = ? WHERE execution_id = ? AND attempt = ?")
        .bind(at, executionId, attempt),
      this.event(executionId, attempt || null, "cancelled", "cancelled by the user", at),
    ];
  }
}

function finishedMessage(result: Pick<CompleteRequest, "status" | "exit_code" | "error_message">): string {
  const code = result.exit_code === null || result.exit_code === undefined ? "" : ` (exit code ${result.exit_code})`;
  return `${result.status}${code}${result.error_message ? `: ${result.error_message.split("\n")[0]}` : ""}`;
}
