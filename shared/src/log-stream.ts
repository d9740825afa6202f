import { z } from "zod";
import { executionStatusSchema } from "./lifecycle";
import { logLineSchema } from "./executions";

/**
 * Messages on `GET /api/v1/executions/:id/stream?after=SEQ` (WebSocket). The server first sends
 * every stored line after SEQ, then live lines as they arrive, then `end` once the execution is
 * final. A client that reconnects passes the last seq it saw and gets exactly what follows.
 */
export const logStreamMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("lines"), lines: z.array(logLineSchema) }),
  z.object({ type: z.literal("end"), status: executionStatusSchema, last_seq: z.number().int(), dropped_lines: z.number().int() }),
]);
export type LogStreamMessage = z.infer<typeof logStreamMessageSchema>;
