import { z } from "zod";
import { createExecutionRequestSchema, executionViewSchema } from "./executions";

export const createBatchRequestSchema = z.object({
  /** How many of the batch may run at once; enforced by the account's scheduler. */
  parallel: z.number().int().min(1).max(1000).default(10),
  total: z.number().int().min(0).max(1_000_000).default(0),
});
export const batchCreatedSchema = z.object({ batch_id: z.string() });

/** Executions are created in chunks, one request per chunk, never one request per file. */
export const MAX_EXECUTIONS_PER_REQUEST = 100;
export const addBatchExecutionsRequestSchema = z.object({
  executions: z.array(createExecutionRequestSchema).min(1).max(MAX_EXECUTIONS_PER_REQUEST),
});
export const addBatchExecutionsResponseSchema = z.object({ executions: z.array(executionViewSchema) });

export const batchCountsSchema = z.object({
  queued: z.number().int(),
  leased: z.number().int(),
  running: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  timed_out: z.number().int(),
  cancelled: z.number().int(),
});
export type BatchCounts = z.infer<typeof batchCountsSchema>;

/** Counts cover the latest execution of each input: a retried failure counts as its retry. */
export const batchViewSchema = z.object({
  id: z.string(),
  parallel: z.number().int(),
  total: z.number().int(),
  created_at: z.number(),
  counts: batchCountsSchema,
});
export type BatchView = z.infer<typeof batchViewSchema>;

export const retryRequestSchema = z.object({ idempotency_key: z.string().min(8).max(128) });
