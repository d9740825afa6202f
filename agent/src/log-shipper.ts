import type { LogLine } from "../../shared/src/executions";
import { ApiUnreachableError, StaleAttemptError } from "./control-plane";
import { agentLog, describeError } from "./log";

type Stream = LogLine["stream"];

export interface LogShipperOptions {
  /** Sends one batch; throws StaleAttemptError on 409, ApiUnreachableError when worth retrying. */
  send: (lines: LogLine[]) => Promise<void>;
  /** Called once if the control plane says the attempt is stale. */
  onStale?: () => void;
  intervalMs?: number;
  batchLines?: number;
  /**
   * Lines held while the control plane is unreachable or slower than the script; past this, new
   * lines are counted and dropped. Default 200,000, what the control plane keeps per execution.
   */
  maxQueued?: number;
  /** The same cap in bytes of text (default 32 MiB), so long lines cannot hold unbounded memory. */
  maxQueuedBytes?: number;
}

/**
 * Numbers an attempt's log lines (1-based, gap-free) and sends them in order, in batches every
 * ~100 ms or 100 lines. Lines are numbered only when kept, so dropping under back-pressure leaves
 * no gap; a system line says how many were dropped.
 */
export class LogShipper {
  private seq = 0;
  private queue: LogLine[] = [];
  private dropped = 0;
  private timer: NodeJS.Timeout | null = null;
  private sending: Promise<void> | null = null;
  private stale = false;
  private closed = false;
  private giveUpAt = Number.POSITIVE_INFINITY;
  private readonly intervalMs: number;
  private readonly batchLines: number;
  private readonly maxQueued: number;
  private readonly maxQueuedBytes: number;
  private queuedBytes = 0;

  constructor(private readonly opts: LogShipperOptions) {
    this.intervalMs = opts.intervalMs ?? 100;
    this.batchLines = opts.batchLines ?? 100;
    this.maxQueued = opts.maxQueued ?? 200_000;
    this.maxQueuedBytes = opts.maxQueuedBytes ?? 32 * 1024 * 1024;
  }

  /** How many lines have been numbered so far. */
  get lastSeq(): number {
    return this.seq;
  }

  push(stream: Stream, text: string): void {
    if (this.stale || this.closed) return;
    if (this.queue.length >= this.maxQueued || this.queuedBytes >= this.maxQueuedBytes) {
      this.dropped++;
      return;
    }
    if (this.dropped > 0) {
      this.enqueue("system", `${this.dropped} log lines dropped: the control plane was not accepting logs fast enough`);
      this.dropped = 0;
    }
    this.enqueue(stream, text);
    if (this.queue.length >= this.batchLines) this.kick();
    else if (!this.timer) this.timer = setTimeout(() => this.kick(), this.intervalMs);
  }

  system(text: string): void {
    this.push("system", text);
  }

  /** Sends what is queued now instead of waiting for the timer (the script is done). */
  flush(): void {
    this.kick();
  }

  /**
   * Sends everything still queued; resolves when done, when the attempt turned out stale, or after
   * `timeoutMs` of an unreachable control plane (the rest is dropped).
   */
  async close(timeoutMs = 60_000): Promise<void> {
    this.giveUpAt = Date.now() + timeoutMs;
    if (this.dropped > 0) {
      this.enqueue("system", `${this.dropped} log lines dropped: the control plane was not accepting logs fast enough`);
      this.dropped = 0;
    }
    this.closed = true;
    while (!this.stale && (this.queue.length > 0 || this.sending)) {
      this.kick();
      await this.sending;
    }
  }

  /** Stops sending and forgets queued lines (the attempt was revoked). */
  discard(): void {
    this.closed = true;
    this.queue = [];
    this.queuedBytes = 0;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Removes a batch that was sent (or given up on) from the head of the queue. */
  private take(batch: LogLine[]): void {
    this.queue.splice(0, batch.length);
    for (const line of batch) this.queuedBytes -= line.text.length;
  }

  private enqueue(stream: Stream, text: string): void {
    this.queue.push({ seq: ++this.seq, stream, ts: Date.now(), text });
    this.queuedBytes += text.length;
  }

  private kick(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.sending || this.stale || this.queue.length === 0) return;
    this.sending = this.drain().finally(() => {
      this.sending = null;
    });
  }

  private async drain(): Promise<void> {
    let backoff = 250;
    while (this.queue.length > 0 && !this.stale) {
      const batch = this.queue.slice(0, Math.min(1000, Math.max(this.batchLines, this.queue.length)));
      try {
        await this.opts.send(batch);
        this.take(batch);
        backoff = 250;
      } catch (err) {
        if (err instanceof StaleAttemptError) {
          this.stale = true;
          this.queue = [];
          this.queuedBytes = 0;
          this.opts.onStale?.();
          return;
        }
        if (!(err instanceof ApiUnreachableError) || Date.now() > this.giveUpAt) {
          // A refusal that will not change on retry (or a close that ran out of time): drop this
          // batch rather than loop on it.
          agentLog(`log batch not delivered, dropping ${batch.length} lines: ${describeError(err)}`);
          this.take(batch);
          continue;
        }
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }
}
