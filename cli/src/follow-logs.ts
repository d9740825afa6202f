import type { ExecutionStatus, LogLine, LogPage } from "../../shared/src/index";
import type { ApiClient } from "./api-client";

/**
 * Following an execution's logs until it is final. Today this polls `GET …/logs?after=SEQ`; a
 * WebSocket stream can replace the transport here without touching the commands, which only see
 * `onLine` callbacks (in sequence order, each line once) and the final result.
 */

export interface FollowOptions {
  api: ApiClient;
  executionId: string;
  /** Sequence number already seen (0: from the start). */
  after?: number;
  onLine: (line: LogLine) => void;
  /** Called after every poll with the execution's current status (for "waiting for an agent" notices). */
  onStatus?: (status: ExecutionStatus) => void;
  /** Aborting stops following (Ctrl-C detaches); the result is then `detached`. */
  signal?: AbortSignal;
  /** Delay between polls while nothing new arrives (default 250 ms). */
  pollMs?: number;
}

export type FollowResult =
  | { kind: "complete"; status: ExecutionStatus; lastSeq: number; droppedLines: number }
  | { kind: "detached"; lastSeq: number };

const PAGE_LIMIT = 1000;

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

export async function followLogs(options: FollowOptions): Promise<FollowResult> {
  const { api, executionId, signal } = options;
  const pollMs = options.pollMs ?? 250;
  let lastSeq = options.after ?? 0;
  for (;;) {
    if (signal?.aborted) return { kind: "detached", lastSeq };
    const page: LogPage = await api.getLogs(executionId, lastSeq, PAGE_LIMIT);
    if (signal?.aborted) return { kind: "detached", lastSeq };
    for (const line of page.lines) {
      // The server is gap-free and ordered; guard anyway so a replayed page never prints twice.
      if (line.seq <= lastSeq) continue;
      options.onLine(line);
      lastSeq = line.seq;
    }
    options.onStatus?.(page.status);
    if (page.complete) return { kind: "complete", status: page.status, lastSeq, droppedLines: page.dropped_lines };
    // A full page means more is waiting: fetch it at once.
    if (page.lines.length < PAGE_LIMIT) await sleep(pollMs, signal);
  }
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
