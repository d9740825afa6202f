import type { LogLine } from "../../shared/src/executions";
import type { ExecutionStatus } from "../../shared/src/lifecycle";
import type { LogStreamMessage, LogStreamStatus } from "../../shared/src/log-stream";

/** Lines per WebSocket message when replaying a backlog: small enough for any client, few enough to be fast. */
const BACKLOG_CHUNK = 1000;

function send(socket: WebSocket, message: LogStreamMessage): void {
  try {
    socket.send(JSON.stringify(message));
  } catch {
    // The client went away between our lookup and the send; it will reconnect with its last seq.
  }
}

/**
 * Live log fan-out over hibernatable WebSockets, tagged by execution id so the object can sleep
 * between lines without dropping subscribers.
 */
export class LogFanout {
  constructor(private readonly ctx: DurableObjectState) {}

  /**
   * Accepts a subscriber and replays what it missed. Runs without awaiting between the backlog
   * read and the accept, so no line can slip between "replayed" and "live".
   */
  subscribe(
    executionId: string,
    readAfter: (afterSeq: number, limit: number) => LogLine[],
    afterSeq: number,
    status: LogStreamStatus | null,
    end: { status: ExecutionStatus; droppedLines: number } | null,
  ): Response {
    const pair = new WebSocketPair();
    const client = pair[0];
    const server = pair[1];
    this.ctx.acceptWebSocket(server, [executionId]);
    if (status) send(server, status);
    let last = afterSeq;
    for (;;) {
      const lines = readAfter(last, BACKLOG_CHUNK);
      if (lines.length === 0) break;
      send(server, { type: "lines", lines });
      last = lines.at(-1)?.seq ?? last;
      if (lines.length < BACKLOG_CHUNK) break;
    }
    if (end) {
      send(server, { type: "end", status: end.status, last_seq: last, dropped_lines: end.droppedLines });
      server.close(1000, "execution finished");
    }
    return new Response(null, { status: 101, webSocket: client });
  }

  publish(executionId: string, lines: LogLine[]): void {
    if (lines.length === 0) return;
    for (const socket of this.ctx.getWebSockets(executionId)) send(socket, { type: "lines", lines });
  }

  status(executionId: string, message: LogStreamStatus): void {
    for (const socket of this.ctx.getWebSockets(executionId)) send(socket, message);
  }

  end(executionId: string, status: ExecutionStatus, lastSeq: number, droppedLines: number): void {
    for (const socket of this.ctx.getWebSockets(executionId)) {
      send(socket, { type: "end", status, last_seq: lastSeq, dropped_lines: droppedLines });
      try {
        socket.close(1000, "execution finished");
      } catch {
        // Already closed.
      }
    }
  }
}
