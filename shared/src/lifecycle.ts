import { z } from "zod";

/** queued → leased → running → succeeded | failed | timed_out | cancelled */
export const executionStatuses = ["queued", "leased", "running", "succeeded", "failed", "timed_out", "cancelled"] as const;
export const executionStatusSchema = z.enum(executionStatuses);
export type ExecutionStatus = z.infer<typeof executionStatusSchema>;

export const finalStatuses: readonly ExecutionStatus[] = ["succeeded", "failed", "timed_out", "cancelled"];
export function isFinalStatus(status: ExecutionStatus): boolean {
  return finalStatuses.includes(status);
}

export const eventTypes = [
  "queued",
  "leased",
  "started",
  "heartbeat_lost",
  "retried",
  "released",
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "api_key_created",
  "api_key_revoked",
  "worker_registered",
] as const;
export type EventType = (typeof eventTypes)[number];

/**
 * Automatic retries per execution (worker lost, image pull, setup failure): the first attempt plus
 * at most this many. A script's own failure is never retried; an attempt handed back on shutdown is not one.
 */
export const MAX_AUTO_RETRIES = 2;
