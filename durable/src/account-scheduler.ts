import { DurableObject } from "cloudflare:workers";
import type { CompleteRequest } from "../../shared/src/agent-protocol";
import type { LogLine } from "../../shared/src/executions";
import { isFinalStatus, type ExecutionStatus } from "../../shared/src/lifecycle";
import type { LogStreamStatus } from "../../shared/src/log-stream";
import type { Env } from "../../worker/src/env";
import { D1Mirror } from "./d1-mirror";
import { D1Outbox } from "./d1-outbox";
import { LeaseWaiters } from "./lease-waiters";
import { LogFanout } from "./log-fanout";
import { chunkRows } from "./sql-chunks";
import { SCHEDULER_COLUMNS, SCHEDULER_SCHEMA } from "./scheduler-schema";
import {
  ACTIVE_STATES,
  leaseMsFrom,
  MAX_LOG_LINES,
  MAX_RETRIES,
  type EnqueueItem,
  type LeasedTask,
  type TaskPayload,
  type TaskRow,
  type TaskState,
} from "./task-record";

export type CompletionOutcome = "accepted" | "duplicate" | "stale" | "retrying";
export type ReleaseOutcome = "released" | "stale";

/** How long a lease response may take to reach its agent before a poll that omits it proves it lost. */
const LEASE_IN_FLIGHT_MS = 5000;
export type AttemptRevocation = "cancelled" | "lease_lost" | "finished";

export interface LogRead {
  lines: LogLine[];
  lastSeq: number;
  state: TaskState | null;
  droppedLines: number;
  /** Automatic retries so far, so a polling client can say "Auto-retry 1/2". */
  retries: number;
}

/**
 * One per account (addressed by `idFromName(accountId)`): the source of truth for that account's
 * queue, leases and attempts, and its live log buffer. Every mutation is a synchronous SQLite
 * transaction on the object's own storage, so concurrent calls see a consistent queue; the D1
 * mirror is written afterwards with idempotent statements.
 */
export class AccountScheduler extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly waiters = new LeaseWaiters();
  private readonly fanout: LogFanout;
  private readonly outbox: D1Outbox;
  private accountId: string | null = null;
  /** How long a lease lives without a heartbeat (`RGRID_LEASE_MS`, default 30 s). */
  private readonly leaseMs: number;
  /** Stored log lines per execution; a field so tests can lower it on one instance. */
  maxLogLines = MAX_LOG_LINES;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.fanout = new LogFanout(ctx);
    this.outbox = new D1Outbox(this.sql, env.DB);
    this.leaseMs = leaseMsFrom(env.RGRID_LEASE_MS);
    ctx.blockConcurrencyWhile(async () => {
      for (const statement of SCHEDULER_SCHEMA) this.sql.exec(statement);
      for (const statement of SCHEDULER_COLUMNS) {
        try {
          this.sql.exec(statement);
        } catch (error) {
          if (!String(error).includes("duplicate column")) throw error;
        }
      }
      this.accountId = this.meta("account_id");
    });
  }

  private meta(key: string): string | null {
    return this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value ?? null;
  }

  private mirror(): D1Mirror {
    if (!this.accountId) throw new Error("AccountScheduler used before enqueue bound it to an account");
    return new D1Mirror(this.accountId);
  }

  private bindAccount(accountId: string): void {
    if (this.accountId && this.accountId !== accountId) {
      throw new Error(`AccountScheduler of ${this.accountId} was called for ${accountId}: address it with idFromName(accountId)`);
    }
    if (!this.accountId) {
      this.sql.exec("INSERT OR IGNORE INTO meta (key, value) VALUES ('account_id', ?)", accountId);
      this.accountId = accountId;
    }
  }

  private task(executionId: string): TaskRow | null {
    return this.sql.exec<TaskRow>("SELECT * FROM tasks WHERE execution_id = ?", executionId).toArray()[0] ?? null;
  }

  /** Adds executions to the queue; enqueuing one twice is a no-op (the D1 insert decides identity). */
  async enqueue(accountId: string, items: EnqueueItem[], batch?: { id: string; parallel: number }): Promise<void> {
    this.bindAccount(accountId);
    this.ctx.storage.transactionSync(() => {
      if (batch) {
        this.sql.exec(
          "INSERT INTO batches (batch_id, parallel) VALUES (?, ?) ON CONFLICT (batch_id) DO UPDATE SET parallel = excluded.parallel",
          batch.id,
          batch.parallel,
        );
      }
      for (const item of items) {
        this.sql.exec(
          `INSERT OR IGNORE INTO tasks (execution_id, batch_id, state, attempt, payload, enqueued_at)
           VALUES (?, ?, 'queued', 0, ?, ?)`,
          item.executionId,
          item.payload.batch_id,
          JSON.stringify(item.payload),
          Date.now(),
        );
      }
    });
    this.waiters.wakeAll();
  }

  /**
   * Long-poll for work: returns up to `freeSlots` leases at once (so one request can fill an
   * agent), or an empty list after `waitMs` without work. Batch parallelism caps are enforced here,
   * so they hold whether or not the CLI that submitted the batch is still connected.
   */
  async lease(
    accountId: string,
    workerId: string,
    freeSlots: number,
    waitMs: number,
    holding?: { execution_id: string; attempt: number }[],
  ): Promise<LeasedTask[]> {
    this.bindAccount(accountId);
    this.sql.exec(
      "INSERT INTO workers_seen (worker_id, last_seen) VALUES (?, ?) ON CONFLICT (worker_id) DO UPDATE SET last_seen = excluded.last_seen",
      workerId,
      Date.now(),
    );
    const ticket = this.waiters.enter(workerId);
    try {
      if (holding) this.reconcile(workerId, holding);
      if (freeSlots <= 0) return [];
      const deadline = Date.now() + waitMs;
      for (;;) {
        if (ticket.retired) return [];
        const leased = this.takeQueued(workerId, freeSlots);
        if (leased.length > 0) {
          await this.ensureAlarm();
          this.flushSoon();
          return leased;
        }
        const remaining = deadline - Date.now();
        if (remaining <= 0) return [];
        await this.waiters.wait(remaining);
      }
    } finally {
      this.waiters.leave(workerId, ticket);
    }
  }

  /**
   * Queues again, at once and without counting a retry, the leases this worker holds by our
   * records but does not list as running: their lease response never reached it. Leases younger
   * than a few seconds are left alone, since their response may still be on its way.
   */
  private reconcile(workerId: string, holding: { execution_id: string; attempt: number }[]): void {
    const held = new Set(holding.map((h) => `${h.execution_id}#${h.attempt}`));
    const grantedBefore = Date.now() - LEASE_IN_FLIGHT_MS;
    const lost = this.sql
      .exec<TaskRow>(
        "SELECT * FROM tasks WHERE worker_id = ? AND state = 'leased' AND lease_expires_at < ?",
        workerId,
        grantedBefore + this.leaseMs,
      )
      .toArray()
      .filter((row) => !held.has(`${row.execution_id}#${row.attempt}`));
    for (const row of lost) this.requeueReleased(workerId, row.execution_id, row.attempt, "its lease never reached the agent");
  }

  private takeQueued(workerId: string, freeSlots: number): LeasedTask[] {
    const tasks = this.ctx.storage.transactionSync(() => {
      const running = new Map<string, number>();
      for (const row of this.sql.exec<{ batch_id: string; n: number }>(
        "SELECT batch_id, COUNT(*) AS n FROM tasks WHERE state IN ('leased', 'running') AND batch_id IS NOT NULL GROUP BY batch_id",
      )) {
        running.set(row.batch_id, row.n);
      }
      // Caps are looked up only for batches met in the queue: the batches table grows with the
      // account's history, and this runs on every lease.
      const caps = new Map<string, number | undefined>();
      const capOf = (batchId: string): number | undefined => {
        if (!caps.has(batchId)) {
          const row = this.sql.exec<{ parallel: number }>("SELECT parallel FROM batches WHERE batch_id = ?", batchId).toArray()[0];
          caps.set(batchId, row?.parallel);
        }
        return caps.get(batchId);
      };
      const now = Date.now();
      const leased: LeasedTask[] = [];
      // Scan in queue order, a page at a time (never the whole queue); a batch at its cap is
      // skipped so other work can still flow.
      const page = Math.max(64, freeSlots * 2);
      for (let offset = 0; leased.length < freeSlots; offset += page) {
        const rows = this.sql
          .exec<TaskRow>("SELECT * FROM tasks WHERE state = 'queued' ORDER BY enqueued_at, rowid LIMIT ? OFFSET ?", page, offset)
          .toArray();
        for (const row of rows) {
          if (leased.length >= freeSlots) break;
          if (row.batch_id) {
            const cap = capOf(row.batch_id);
            const active = running.get(row.batch_id) ?? 0;
            if (cap !== undefined && active >= cap) continue;
            running.set(row.batch_id, active + 1);
          }
          leased.push({
            executionId: row.execution_id,
            attempt: row.attempt + 1,
            leaseExpiresAt: now + this.leaseMs,
            payload: JSON.parse(row.payload) as TaskPayload,
          });
        }
        if (rows.length < page) break;
      }
      for (const task of leased) {
        this.sql.exec(
          "UPDATE tasks SET state = 'leased', attempt = ?, worker_id = ?, lease_expires_at = ?, started_at = NULL WHERE execution_id = ?",
          task.attempt,
          workerId,
          task.leaseExpiresAt,
          task.executionId,
        );
      }
      this.outbox.add(this.mirror().leasedMany(leased, workerId, now));
      return leased;
    });
    for (const task of tasks) this.publishStatus(task.executionId);
    return tasks;
  }

  private isCurrent(row: TaskRow | null, attempt: number, workerId?: string): boolean {
    return (
      row !== null && ACTIVE_STATES.includes(row.state) && row.attempt === attempt && (workerId === undefined || row.worker_id === workerId)
    );
  }

  /** Fencing check for uploads: only the live attempt of an active execution may write outputs. */
  async isCurrentAttempt(executionId: string, attempt: number): Promise<boolean> {
    return this.isCurrent(this.task(executionId), attempt);
  }

  /** Extends live leases; tells the agent which containers to stop. */
  async heartbeat(
    workerId: string,
    leases: { execution_id: string; attempt: number }[],
  ): Promise<{
    valid: { execution_id: string; attempt: number; lease_expires_at: number }[];
    revoked: { execution_id: string; attempt: number; reason: AttemptRevocation }[];
  }> {
    const now = Date.now();
    const valid: { execution_id: string; attempt: number; lease_expires_at: number }[] = [];
    const revoked: { execution_id: string; attempt: number; reason: AttemptRevocation }[] = [];
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("UPDATE workers_seen SET last_seen = ? WHERE worker_id = ?", now, workerId);
      for (const ref of leases) {
        const row = this.task(ref.execution_id);
        if (this.isCurrent(row, ref.attempt, workerId)) {
          const leaseExpiresAt = now + this.leaseMs;
          this.sql.exec("UPDATE tasks SET lease_expires_at = ? WHERE execution_id = ?", leaseExpiresAt, ref.execution_id);
          valid.push({ ...ref, lease_expires_at: leaseExpiresAt });
        } else {
          const reason: AttemptRevocation =
            row?.state === "cancelled" ? "cancelled" : row && row.attempt === ref.attempt ? "finished" : "lease_lost";
          revoked.push({ ...ref, reason });
        }
      }
    });
    return { valid, revoked };
  }

  async started(workerId: string, executionId: string, attempt: number): Promise<boolean> {
    const row = this.task(executionId);
    if (!row || !this.isCurrent(row, attempt, workerId)) return false;
    if (row.state === "running") return true; // a replayed "started" changes nothing
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("UPDATE tasks SET state = 'running', started_at = ? WHERE execution_id = ?", now, executionId);
      this.outbox.add(this.mirror().started(executionId, attempt, now));
    });
    this.flushSoon();
    this.publishStatus(executionId);
    return true;
  }

  /**
   * Stores a batch of log lines. Lines are deduplicated by (attempt, agent sequence), so a
   * replayed batch adds nothing, and renumbered into one gap-free per-execution sequence that
   * readers resume from.
   */
  async appendLogs(workerId: string, executionId: string, attempt: number, lines: LogLine[]): Promise<boolean> {
    const row = this.task(executionId);
    if (!this.isCurrent(row, attempt, workerId)) return false;
    if (lines.length === 0) return true;
    const stored: LogLine[] = [];
    this.ctx.storage.transactionSync(() => {
      const state = this.sql
        .exec<{ next_seq: number; dropped: number }>("SELECT next_seq, dropped FROM log_state WHERE execution_id = ?", executionId)
        .toArray()[0] ?? { next_seq: 1, dropped: 0 };
      let { next_seq: nextSeq, dropped } = state;
      // A few statements per batch rather than three per line: lines are deduplicated against the
      // (attempt, agent seq) pairs already stored in one range query, then written with multi-row inserts.
      const seqs = lines.map((l) => l.seq);
      const seen = new Set(
        this.sql
          .exec<{ source_seq: number }>(
            "SELECT source_seq FROM log_sources WHERE execution_id = ? AND attempt = ? AND source_seq BETWEEN ? AND ?",
            executionId,
            attempt,
            Math.min(...seqs),
            Math.max(...seqs),
          )
          .toArray()
          .map((r) => r.source_seq),
      );
      const fresh: LogLine[] = [];
      for (const line of lines) {
        if (seen.has(line.seq)) continue;
        seen.add(line.seq);
        fresh.push(line);
      }
      for (const chunk of chunkRows(fresh, 3)) {
        this.sql.exec(
          `INSERT INTO log_sources (execution_id, attempt, source_seq) VALUES ${chunk.map(() => "(?, ?, ?)").join(", ")}`,
          ...chunk.flatMap((l) => [executionId, attempt, l.seq]),
        );
      }
      for (const line of fresh) {
        if (nextSeq > this.maxLogLines) {
          dropped += 1;
          continue;
        }
        stored.push({ seq: nextSeq, stream: line.stream, ts: line.ts, text: line.text });
        nextSeq += 1;
      }
      for (const chunk of chunkRows(stored, 5)) {
        this.sql.exec(
          `INSERT INTO logs (execution_id, seq, stream, ts, text) VALUES ${chunk.map(() => "(?, ?, ?, ?, ?)").join(", ")}`,
          ...chunk.flatMap((l) => [executionId, l.seq, l.stream, l.ts, l.text]),
        );
      }
      this.sql.exec(
        "INSERT INTO log_state (execution_id, next_seq, dropped) VALUES (?, ?, ?) ON CONFLICT (execution_id) DO UPDATE SET next_seq = excluded.next_seq, dropped = excluded.dropped",
        executionId,
        nextSeq,
        dropped,
      );
    });
    this.fanout.publish(executionId, stored);
    return true;
  }

  private logsAfter(executionId: string, afterSeq: number, limit: number): LogLine[] {
    return this.sql
      .exec<{ seq: number; stream: LogLine["stream"]; ts: number; text: string }>(
        "SELECT seq, stream, ts, text FROM logs WHERE execution_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        executionId,
        afterSeq,
        limit,
      )
      .toArray()
      .map((l) => ({ seq: l.seq, stream: l.stream, ts: l.ts, text: l.text }));
  }

  private droppedLines(executionId: string): number {
    return (
      this.sql.exec<{ dropped: number }>("SELECT dropped FROM log_state WHERE execution_id = ?", executionId).toArray()[0]?.dropped ?? 0
    );
  }

  async readLogs(executionId: string, afterSeq: number, limit: number): Promise<LogRead> {
    const lines = this.logsAfter(executionId, afterSeq, limit);
    const row = this.task(executionId);
    return {
      lines,
      lastSeq: lines.at(-1)?.seq ?? afterSeq,
      state: row?.state ?? null,
      droppedLines: this.droppedLines(executionId),
      retries: row?.retries ?? 0,
    };
  }

  /** WebSocket subscriptions to an execution's log (`/stream?execution=…&after=…`), routed here by the worker. */
  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const executionId = url.searchParams.get("execution") ?? "";
    const after = Math.max(0, Number(url.searchParams.get("after") ?? 0) || 0);
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade", { status: 426 });
    }
    const row = this.task(executionId);
    const final = row && isFinalStatus(row.state) ? row.state : null;
    return this.fanout.subscribe(
      executionId,
      (afterSeq, limit) => this.logsAfter(executionId, afterSeq, limit),
      after,
      row ? this.statusMessage(row) : null,
      final ? { status: final, droppedLines: this.droppedLines(executionId) } : null,
    );
  }

  /** Subscribers only listen; hibernation needs the handler to exist. */
  override async webSocketMessage(): Promise<void> {}

  override async webSocketClose(socket: WebSocket, code: number): Promise<void> {
    try {
      socket.close(code === 1005 ? 1000 : code, "closing");
    } catch {
      // Already closed.
    }
  }

  private statusMessage(row: TaskRow): LogStreamStatus {
    return { type: "status", status: row.state, attempt: row.attempt, retries: row.retries, max_retries: MAX_RETRIES };
  }

  /**
   * Tells subscribers where the execution is (queued, leased, running) and how many automatic
   * retries it took; `reason` says why when this transition is a retry.
   */
  private publishStatus(executionId: string, reason?: string): void {
    const row = this.task(executionId);
    if (row) this.fanout.status(executionId, { ...this.statusMessage(row), ...(reason ? { reason } : {}) });
  }

  private endStream(executionId: string, status: ExecutionStatus): void {
    const last =
      this.sql.exec<{ next_seq: number }>("SELECT next_seq FROM log_state WHERE execution_id = ?", executionId).toArray()[0]?.next_seq ?? 1;
    this.fanout.end(executionId, status, last - 1, this.droppedLines(executionId));
  }

  /**
   * Finishes an attempt exactly once. A completion from an attempt that is no longer current is
   * refused ("stale"); the same completion replayed is recognised ("duplicate") and changes nothing.
   * Transient setup failures are requeued as the next attempt while attempts remain.
   */
  async complete(workerId: string, executionId: string, result: CompleteRequest): Promise<CompletionOutcome> {
    const outcome = this.completeOne(workerId, executionId, result);
    this.afterCompletions([outcome]);
    return outcome;
  }

  /** Several completions in one call; each is fenced and deduplicated exactly as `complete`. */
  async completeMany(
    workerId: string,
    completions: (CompleteRequest & { execution_id: string })[],
  ): Promise<{ execution_id: string; outcome: CompletionOutcome }[]> {
    const outcomes = completions.map((c) => ({ execution_id: c.execution_id, outcome: this.completeOne(workerId, c.execution_id, c) }));
    this.afterCompletions(outcomes.map((o) => o.outcome));
    return outcomes;
  }

  private afterCompletions(outcomes: CompletionOutcome[]): void {
    if (!outcomes.some((o) => o === "accepted" || o === "retrying")) return;
    this.flushSoon();
    this.waiters.wakeAll(); // a finished batch member frees capacity under its cap; a retry is queued work
  }

  private completeOne(workerId: string, executionId: string, result: CompleteRequest): CompletionOutcome {
    const row = this.task(executionId);
    if (!row || !this.isCurrent(row, result.attempt, workerId)) {
      const replay = row !== null && row.attempt === result.attempt && row.worker_id === workerId && row.state === result.status;
      return replay ? "duplicate" : "stale";
    }
    const now = Date.now();
    if (result.transient && row.retries < MAX_RETRIES) {
      this.retryLater(row, "setup failure", result.error_message, false, now);
      return "retrying";
    }
    this.finish(row, { ...result, outputs: result.outputs ?? [] }, now);
    return "accepted";
  }

  /** Queues the execution again as its next automatic retry, after a setup failure or a lost worker. */
  private retryLater(row: TaskRow, reason: string, detail: string | null, workerLost: boolean, now: number): void {
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        "UPDATE tasks SET state = 'queued', worker_id = NULL, lease_expires_at = NULL, retries = retries + 1 WHERE execution_id = ?",
        row.execution_id,
      );
      this.outbox.add(this.mirror().requeued(row.execution_id, row.attempt, row.retries + 1, reason, detail, workerLost, now));
    });
    this.publishStatus(row.execution_id, reason);
  }

  /** Records the attempt's result as the execution's final state and ends its log stream. */
  private finish(row: TaskRow, result: Parameters<D1Mirror["finished"]>[2], now: number): void {
    const payload = JSON.parse(row.payload) as TaskPayload;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("UPDATE tasks SET state = ?, lease_expires_at = NULL WHERE execution_id = ?", result.status, row.execution_id);
      this.outbox.add(this.mirror().finished(row.execution_id, row.attempt, result, payload.cpus, now));
    });
    this.endStream(row.execution_id, result.status);
  }

  /**
   * An agent that is shutting down hands back an attempt it will not finish: the execution is
   * queued again at once (rather than after its lease lapses) and the hand-back is not counted as
   * an automatic retry. The released attempt is fenced like a lapsed one.
   */
  async release(workerId: string, executionId: string, attempt: number): Promise<ReleaseOutcome> {
    const row = this.task(executionId);
    if (!row || !this.isCurrent(row, attempt, workerId)) return "stale";
    this.requeueReleased(workerId, executionId, attempt, "handed back by a stopping agent");
    return "released";
  }

  private requeueReleased(workerId: string, executionId: string, attempt: number, why: string): void {
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("UPDATE tasks SET state = 'queued', worker_id = NULL, lease_expires_at = NULL WHERE execution_id = ?", executionId);
      this.outbox.add(this.mirror().released(executionId, attempt, workerId, why, now));
    });
    this.flushSoon();
    this.publishStatus(executionId);
    this.waiters.wakeAll();
  }

  /** Cancels queued and running executions; agents learn of it on their next heartbeat. */
  async cancel(executionIds: string[]): Promise<string[]> {
    const now = Date.now();
    const cancelled: { id: string; attempt: number }[] = [];
    this.ctx.storage.transactionSync(() => {
      for (const id of executionIds) {
        const row = this.task(id);
        if (!row || isFinalStatus(row.state)) continue;
        this.sql.exec("UPDATE tasks SET state = 'cancelled', lease_expires_at = NULL WHERE execution_id = ?", id);
        this.outbox.add(this.mirror().cancelled(id, row.attempt, now));
        cancelled.push({ id, attempt: row.attempt });
      }
    });
    // Cancellation is rare and the user waits for it: apply it to D1 before answering.
    await this.outbox.flush();
    for (const c of cancelled) this.endStream(c.id, "cancelled");
    this.waiters.wakeAll();
    return cancelled.map((c) => c.id);
  }

  /** Whether any agent has polled recently: the CLI says "no agent" instead of waiting silently. */
  async activeWorkers(withinMs: number): Promise<number> {
    const row = this.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM workers_seen WHERE last_seen > ?", Date.now() - withinMs)
      .toArray()[0];
    return row?.n ?? 0;
  }

  /** The task as submitted (env included), for `rgrid retry`. */
  async payloadOf(executionId: string): Promise<TaskPayload | null> {
    const row = this.task(executionId);
    return row ? (JSON.parse(row.payload) as TaskPayload) : null;
  }

  async queueCounts(): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (const row of this.sql.exec<{ state: string; n: number }>("SELECT state, COUNT(*) AS n FROM tasks GROUP BY state")) {
      counts[row.state] = row.n;
    }
    return counts;
  }

  /**
   * Applies pending D1 mirror statements now, so readers of D1 read the scheduler's writes. A
   * failure is logged, not thrown: the reader then sees slightly older state, and the alarm retries.
   */
  async flushMirror(): Promise<void> {
    await this.outbox
      .flush()
      .catch((error: unknown) => console.error(JSON.stringify({ msg: "D1 mirror flush failed", error: String(error) })));
  }

  /** Flushes in the background; the alarm (armed here) retries if D1 is unreachable. */
  private flushSoon(): void {
    this.outbox.flushSoon();
    void this.ensureAlarm();
  }

  private async ensureAlarm(): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null) await this.ctx.storage.setAlarm(Date.now() + this.leaseMs);
  }

  /**
   * Requeues attempts whose lease lapsed (the agent died or hung). Alarms are at-least-once, so
   * this only acts on leases that are still lapsed when it runs, and re-arms while any are live.
   */
  override async alarm(): Promise<void> {
    await this.outbox
      .flush()
      .catch((error: unknown) => console.error(JSON.stringify({ msg: "D1 mirror flush failed in alarm", error: String(error) })));
    const now = Date.now();
    const lapsed = this.sql
      .exec<TaskRow>("SELECT * FROM tasks WHERE state IN ('leased', 'running') AND lease_expires_at < ?", now)
      .toArray();
    for (const row of lapsed) {
      if (row.retries < MAX_RETRIES) {
        this.retryLater(row, "worker failure", "heartbeat lost: the lease lapsed", true, now);
      } else {
        this.finish(
          row,
          {
            status: "failed",
            exit_code: null,
            duration_ms: 0,
            error_message: `Worker lost after ${MAX_RETRIES} automatic retries; giving up. Check your agents (\`rgrid dev\` locally).`,
            outputs: [],
          },
          now,
        );
      }
    }
    if (lapsed.length > 0) {
      this.flushSoon();
      this.waiters.wakeAll();
    }
    const next = this.sql
      .exec<{ next: number | null }>("SELECT MIN(lease_expires_at) AS next FROM tasks WHERE state IN ('leased', 'running')")
      .toArray()[0]?.next;
    // While statements wait in the outbox (D1 was unreachable), come back soon to retry them.
    const retryFlushAt = this.outbox.pending() > 0 ? Date.now() + 5000 : null;
    const candidates = [next === null || next === undefined ? null : Math.max(next + 1000, Date.now() + 1000), retryFlushAt].filter(
      (t): t is number => t !== null,
    );
    if (candidates.length > 0) await this.ctx.storage.setAlarm(Math.min(...candidates));
  }
}
