import type { MirrorStatement } from "./d1-mirror";

/** D1 statements per batch: one round trip applies a whole burst of transitions. */
const FLUSH_BATCH = 500;
/** How long transitions gather before a background flush; readers that need D1 current flush at once. */
const FLUSH_DELAY_MS = 100;
/** A D1 call that hangs must not hold the (ordered, single) flush loop forever; the alarm retries. */
const D1_CALL_TIMEOUT_MS = 10_000;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`D1 did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => {
    if (timer !== undefined) clearTimeout(timer);
  });
}

/**
 * A transactional outbox between the scheduler's own storage and D1. A transition and the D1
 * statements that mirror it are written in the same storage transaction; a background flush then
 * applies them to D1 in order, in batches. The hot path (lease, complete) never waits on D1, and a
 * crash between the two writes loses nothing: the statements are still in the outbox, and they are
 * idempotent, so applying one twice changes nothing.
 */
export class D1Outbox {
  private running: Promise<void> | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private again = false;

  constructor(
    private readonly sql: SqlStorage,
    private readonly db: D1Database,
  ) {}

  add(statements: MirrorStatement[]): void {
    for (const s of statements) this.sql.exec("INSERT INTO d1_outbox (sql, params) VALUES (?, ?)", s.sql, JSON.stringify(s.params));
  }

  pending(): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM d1_outbox").toArray()[0]?.n ?? 0;
  }

  /** Schedules a flush shortly, unless one is scheduled. Errors are logged; the alarm retries. */
  flushSoon(): void {
    // Debounced: a burst of transitions (a lease of 50, a batch of completions) becomes one D1 batch.
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush().catch((error: unknown) => {
        console.error(JSON.stringify({ msg: "D1 mirror flush failed; will retry", error: String(error) }));
      });
    }, FLUSH_DELAY_MS);
  }

  /** Applies everything pending, in order. Concurrent callers share one flush loop. */
  flush(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      // Yield first: with nothing pending this body would otherwise finish (and clear `running`)
      // synchronously, before `running` is even assigned, leaving a settled promise that blocks every later flush.
      await Promise.resolve();
      try {
        do {
          this.again = false;
          for (;;) {
            const rows = this.sql
              .exec<{ id: number; sql: string; params: string }>("SELECT id, sql, params FROM d1_outbox ORDER BY id LIMIT ?", FLUSH_BATCH)
              .toArray();
            if (rows.length === 0) break;
            await withTimeout(
              this.db.batch(rows.map((r) => this.db.prepare(r.sql).bind(...(JSON.parse(r.params) as unknown[])))),
              D1_CALL_TIMEOUT_MS,
            );
            this.sql.exec("DELETE FROM d1_outbox WHERE id <= ?", rows.at(-1)?.id ?? 0);
          }
        } while (this.again);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }
}
