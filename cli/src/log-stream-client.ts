import WebSocket from "ws";
import { logStreamMessageSchema, type ExecutionStatus, type LogLine, type LogStreamStatus } from "../../shared/src/index";
import { UserError } from "./errors";
import { abortableSleep } from "../../shared/src/abortable-sleep";

/**
 * The live log stream of one execution (`GET /api/v1/executions/:id/stream?after=SEQ`, a
 * WebSocket), with reconnects: a dropped connection is reopened with backoff (first retry after
 * 100 ms, never more than 2 s apart) and resumes after the last sequence number delivered, so every
 * line is delivered once, in order. Lines at or below the last seq seen are dropped; a gap (a seq
 * that is not last + 1) closes the connection and resumes from the last seq, so nothing is skipped.
 *
 * Uses the `ws` package (bundled into the CLI): Node 20 has no global WebSocket, and the browser
 * API cannot send the Authorization header.
 */

export interface StreamOptions {
  /** The API's base URL (http or https); the stream uses ws or wss on the same host. */
  baseUrl: string;
  apiKey: string | undefined;
  executionId: string;
  after: number;
  onLine: (line: LogLine) => void;
  onStatus: (message: LogStreamStatus) => void;
  /** Said once per outage that lasts longer than a few seconds, and when it ends. */
  onNotice: (text: string) => void;
  signal?: AbortSignal | undefined;
  /** How long to keep reconnecting through an outage before giving up (default 10 minutes). */
  giveUpAfterMs?: number;
}

export type StreamResult =
  | { kind: "end"; status: ExecutionStatus; lastSeq: number; endSeq: number; droppedLines: number }
  | { kind: "detached"; lastSeq: number }
  /** The server would not upgrade (an older server, or a proxy that strips WebSockets): poll instead. */
  | { kind: "refused"; lastSeq: number; httpStatus: number };

/** One connection's fate: it ended the stream, or dropped (reconnect), or was refused. */
type Attempt =
  | { kind: "end"; status: ExecutionStatus; endSeq: number; droppedLines: number }
  | { kind: "dropped"; opened: boolean; reason: string }
  | { kind: "refused"; httpStatus: number }
  | { kind: "detached" };

const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2000;
/** A connection that neither opens nor says anything for this long is presumed dead. */
const CONNECT_TIMEOUT_MS = 10_000;
/** Pings keep proxies from idling the socket out and reveal a half-open connection. */
const PING_EVERY_MS = 15_000;
/** An outage shorter than this is invisible to the user. */
const QUIET_OUTAGE_MS = 5000;

export function streamUrl(baseUrl: string, executionId: string, after: number): string {
  const url = new URL(`${baseUrl.replace(/\/+$/, "")}/api/v1/executions/${encodeURIComponent(executionId)}/stream`);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("after", String(after));
  return url.toString();
}

export async function streamLogs(options: StreamOptions): Promise<StreamResult> {
  const giveUpAfterMs = options.giveUpAfterMs ?? 10 * 60_000;
  let lastSeq = options.after;
  let backoff = FIRST_BACKOFF_MS;
  let outageSince: number | null = null;
  let announced = false;
  for (;;) {
    if (options.signal?.aborted) return { kind: "detached", lastSeq };
    const result = await connectOnce(
      options,
      lastSeq,
      (line) => {
        lastSeq = line.seq;
        options.onLine(line);
      },
      () => {
        if (announced) options.onNotice("Log stream reconnected; resuming where it left off.\n");
        outageSince = null;
        announced = false;
        backoff = FIRST_BACKOFF_MS;
      },
    );
    switch (result.kind) {
      case "end":
        return { kind: "end", status: result.status, lastSeq, endSeq: result.endSeq, droppedLines: result.droppedLines };
      case "detached":
        return { kind: "detached", lastSeq };
      case "refused":
        return { kind: "refused", lastSeq, httpStatus: result.httpStatus };
      case "dropped": {
        outageSince ??= Date.now();
        const down = Date.now() - outageSince;
        if (!announced && down >= QUIET_OUTAGE_MS) {
          announced = true;
          options.onNotice(`Log stream interrupted (${result.reason}); reconnecting…\n`);
        }
        if (down > giveUpAfterMs) {
          throw new UserError(
            "api_unreachable",
            `Lost the log stream of ${options.executionId} for ${Math.round(down / 1000)} s (${result.reason}).`,
            `The execution keeps running. Reattach with: rgrid logs ${options.executionId} --follow`,
          );
        }
        await abortableSleep(backoff, options.signal);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }
}

function connectOnce(options: StreamOptions, after: number, deliver: (line: LogLine) => void, onOpen: () => void): Promise<Attempt> {
  return new Promise<Attempt>((resolve) => {
    const headers: Record<string, string> = {};
    if (options.apiKey) headers.Authorization = `Bearer ${options.apiKey}`;
    const socket = new WebSocket(streamUrl(options.baseUrl, options.executionId, after), { headers, handshakeTimeout: CONNECT_TIMEOUT_MS });
    let lastSeq = after;
    let opened = false;
    let settled = false;
    let awaitingPong = false;
    const pinger = setInterval(() => {
      if (!opened) return;
      if (awaitingPong) {
        finish({ kind: "dropped", opened, reason: "no answer to ping" });
        return;
      }
      awaitingPong = true;
      try {
        socket.ping();
      } catch {
        // The close handler reports it.
      }
    }, PING_EVERY_MS);
    const onAbort = () => finish({ kind: "detached" });
    options.signal?.addEventListener("abort", onAbort, { once: true });

    function finish(attempt: Attempt): void {
      if (settled) return;
      settled = true;
      clearInterval(pinger);
      options.signal?.removeEventListener("abort", onAbort);
      socket.removeAllListeners("message");
      socket.on("error", () => {});
      // terminate(), not close(): a closing handshake the server never answers would hold the
      // process open for ws's 30 s close timeout. The server sees the socket close either way.
      socket.terminate();
      resolve(attempt);
    }

    socket.on("open", () => {
      opened = true;
      onOpen();
    });
    socket.on("pong", () => {
      awaitingPong = false;
    });
    socket.on("unexpected-response", (_request, response) => {
      const status = response.statusCode ?? 0;
      response.resume();
      // 5xx and 429 while the control plane restarts are worth retrying; any other refusal means
      // this server (or a proxy before it) will not stream: poll instead, which also reports
      // 401/404 with the API's own message.
      if (status >= 500 || status === 429) finish({ kind: "dropped", opened, reason: `HTTP ${status}` });
      else finish({ kind: "refused", httpStatus: status });
    });
    socket.on("message", (data: WebSocket.RawData) => {
      awaitingPong = false;
      let parsed;
      try {
        parsed = logStreamMessageSchema.safeParse(JSON.parse(data.toString()));
      } catch {
        parsed = null;
      }
      if (!parsed?.success) return; // a message type from a newer server: skip it
      const message = parsed.data;
      if (message.type === "lines") {
        for (const line of message.lines) {
          if (line.seq <= lastSeq) continue; // already delivered (a replay after reconnect)
          if (line.seq !== lastSeq + 1) {
            finish({ kind: "dropped", opened, reason: `gap after line ${lastSeq}` });
            return;
          }
          lastSeq = line.seq;
          deliver(line);
        }
      } else if (message.type === "status") {
        options.onStatus(message);
      } else {
        finish({ kind: "end", status: message.status, endSeq: message.last_seq, droppedLines: message.dropped_lines });
      }
    });
    socket.on("close", (code) => finish({ kind: "dropped", opened, reason: `closed with code ${code}` }));
    socket.on("error", (error: NodeJS.ErrnoException) => finish({ kind: "dropped", opened, reason: error.code ?? error.message }));
  });
}
