import { z } from "zod";
import { executionStatusSchema } from "./lifecycle";
import { logLineSchema } from "./executions";

/**
 * Messages on `GET /api/v1/executions/:id/stream?after=SEQ` (WebSocket). The server first sends
 * a `status`, then every stored line after SEQ, then live lines and `status` changes as they
 * happen, then `end` once the execution is final. A client that reconnects passes the last seq it saw and gets exactly what follows.
 */
export const logStreamStatusSchema = z.object({
  type: z.literal("status"),
  status: executionStatusSchema,
  /** The current (or last) attempt number; 0 before the first lease. */
  attempt: z.number().int(),
  /** Automatic retries so far (worker lost, setup failure); the CLI prints "Auto-retry n/max" when it grows. */
  retries: z.number().int(),
  max_retries: z.number().int(),
  /** Why, when this message announces a retry ("worker failure", "setup failure"). */
  reason: z.string().optional(),
});
export type LogStreamStatus = z.infer<typeof logStreamStatusSchema>;

export const logStreamMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("lines"), lines: z.array(logLineSchema) }),
  logStreamStatusSchema,
  z.object({ type: z.literal("end"), status: executionStatusSchema, last_seq: z.number().int(), dropped_lines: z.number().int() }),
]);
export type LogStreamMessage = z.infer<typeof logStreamMessageSchema>;
