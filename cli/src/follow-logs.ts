import { MAX_AUTO_RETRIES, type ExecutionStatus, type LogLine, type LogPage, type LogStreamStatus } from "../../shared/src/index";
import type { ApiClient } from "./api-client";
import { streamLogs } from "./log-stream-client";
import { abortableSleep } from "../../shared/src/abortable-sleep";

/**
 * Following an execution's logs until it is final, over the WebSocket stream (reconnecting and
 * resuming after the last seq seen), or by polling `GET …/logs?after=SEQ` when the server refuses
 * the upgrade. Commands only see `onLine` callbacks (in sequence order, each line once) and the
 * final result.
 */

export interface FollowOptions {
  api: ApiClient;
  executionId: string;
  /** Sequence number already seen (0: from the start). */
  after?: number;
  onLine: (line: LogLine) => void;
  /** Called with the execution's current status (at least once a second while following). */
  onStatus?: (status: ExecutionStatus) => void;
  /** rgrid's own notices ("Auto-retry 1/2 after worker failure"); default: process.stderr. */
  onNotice?: (text: string) => void;
  /** Aborting stops following (Ctrl-C detaches); the result is then `detached`. */
  signal?: AbortSignal;
  /** Delay between polls while nothing new arrives (default 250 ms). */
  pollMs?: number;
  /** `"poll"` skips the WebSocket (`RGRID_LOG_TRANSPORT=poll` does the same). */
  transport?: "stream" | "poll";
}

export type FollowResult =
  { kind: "complete"; status: ExecutionStatus; lastSeq: number; droppedLines: number } | { kind: "detached"; lastSeq: number };

const PAGE_LIMIT = 1000;

/**
 * Says "Auto-retry n/max after <reason>" once per automatic retry it learns of, whichever
 * transport reported it.
 */
class RetryNotices {
  private seen = 0;
  constructor(private readonly notice: (text: string) => void) {}

  update(retries: number, max: number, reason: string | undefined): void {
    while (this.seen < retries) {
      this.seen += 1;
      this.notice(`Auto-retry ${this.seen}/${max} after ${reason ?? "a worker or setup failure"}\n`);
    }
  }
}

export async function followLogs(options: FollowOptions): Promise<FollowResult> {
  const notice = options.onNotice ?? ((text: string) => void process.stderr.write(text));
  const retries = new RetryNotices(notice);
  const transport = options.transport ?? (process.env.RGRID_LOG_TRANSPORT === "poll" ? "poll" : "stream");
  let lastSeq = options.after ?? 0;
  const deliver = (line: LogLine) => {
    if (line.seq <= lastSeq) return;
    options.onLine(line);
    lastSeq = line.seq;
  };
  if (transport === "stream") {
    let status: ExecutionStatus | null = null;
    // The "no agent yet" notice of `rgrid run` needs to hear the status while nothing happens.
    const ticker = setInterval(() => {
      if (status !== null) options.onStatus?.(status);
    }, 1000);
    try {
      const result = await streamLogs({
        baseUrl: options.api.baseUrl,
        apiKey: options.api.apiKey,
        executionId: options.executionId,
        after: lastSeq,
        onLine: deliver,
        onStatus: (message: LogStreamStatus) => {
          status = message.status;
          retries.update(message.retries, message.max_retries, message.reason);
          options.onStatus?.(message.status);
        },
        onNotice: notice,
        signal: options.signal,
      });
      if (result.kind === "detached") return { kind: "detached", lastSeq };
      if (result.kind === "end" && lastSeq >= result.endSeq) {
        return { kind: "complete", status: result.status, lastSeq, droppedLines: result.droppedLines };
      }
      // Refused (poll instead), or ended with lines not yet seen (read the rest): either way the
      // stored log after `lastSeq` is what is missing.
    } finally {
      clearInterval(ticker);
    }
  }
  return pollLogs(options, () => lastSeq, deliver, retries);
}

async function pollLogs(
  options: FollowOptions,
  lastSeq: () => number,
  deliver: (line: LogLine) => void,
  retries: RetryNotices,
): Promise<FollowResult> {
  const { api, executionId, signal } = options;
  const pollMs = options.pollMs ?? 250;
  for (;;) {
    if (signal?.aborted) return { kind: "detached", lastSeq: lastSeq() };
    const page: LogPage = await api.getLogs(executionId, lastSeq(), PAGE_LIMIT);
    if (signal?.aborted) return { kind: "detached", lastSeq: lastSeq() };
    // The server is gap-free and ordered; `deliver` drops anything already seen.
    for (const line of page.lines) deliver(line);
    if (page.retries !== undefined) retries.update(page.retries, MAX_AUTO_RETRIES, undefined);
    options.onStatus?.(page.status);
    if (page.complete) return { kind: "complete", status: page.status, lastSeq: lastSeq(), droppedLines: page.dropped_lines };
    // A full page means more is waiting: fetch it at once.
    if (page.lines.length < PAGE_LIMIT) await abortableSleep(pollMs, signal);
  }
}

/** The marker printed where a capped log stops: says how many lines are missing, and why. */
export function droppedLinesMarker(droppedLines: number): string {
  return `[rgrid] … ${droppedLines} more log line${droppedLines === 1 ? " was" : "s were"} dropped: this execution reached its log size limit. Write large output to a file instead; files the script writes are downloaded as outputs.\n`;
}

/** Reads every stored line once (no following). */
export async function readAllLogs(api: ApiClient, executionId: string, onLine: (line: LogLine) => void): Promise<LogPage> {
  let after = 0;
  for (;;) {
    const page = await api.getLogs(executionId, after);
    for (const line of page.lines) {
      if (line.seq <= after) continue;
      onLine(line);
      after = line.seq;
    }
    if (page.lines.length === 0 || page.complete) return page;
  }
}
