import { z } from "zod";
import { logLineSchema, networkModeSchema, relativePathSchema, sha256Schema } from "./executions";

/**
 * The contract between an agent and the control plane. Every call after registration carries
 * `Authorization: Bearer <worker credential>`; each is scoped to that worker's account.
 */

export const registerRequestSchema = z.object({
  registration_token: z.string().min(10),
  name: z.string().min(1).max(128),
  slots: z.number().int().min(1).max(512),
  backend: z.enum(["docker", "process"]),
  version: z.string().max(64),
});
export const registerResponseSchema = z.object({
  worker_id: z.string(),
  account_id: z.string(),
  /** `rgrid_wk_…`: shown once, stored only as an HMAC. */
  credential: z.string(),
});

export const leaseRequestSchema = z.object({
  free_slots: z.number().int().min(0).max(512),
  /**
   * The attempts this agent is running. A lease the control plane handed this agent more than a
   * few seconds ago that is not listed never reached it (its response was lost to a restart or an
   * abandoned long-poll), so it is queued again at once instead of waiting for the lease to lapse.
   * A call with `free_slots: 0` and `wait_ms: 0` just reconciles (a stopping agent sends one).
   */
  holding: z
    .array(z.object({ execution_id: z.string(), attempt: z.number().int().min(1) }))
    .max(512)
    .optional(),
  /** How long the server may hold the request open when there is no work (long-poll). */
  wait_ms: z.number().int().min(0).max(30_000).default(20_000),
});

/** What an agent needs to run one attempt. Env values appear only here, never in D1 or logs. */
export const taskSchema = z.object({
  execution_id: z.string(),
  attempt: z.number().int().min(1),
  lease_expires_at: z.number(),
  script: z.object({ path: relativePathSchema, sha256: sha256Schema, download_url: z.string() }),
  inputs: z.array(z.object({ path: relativePathSchema, sha256: sha256Schema, download_url: z.string() })),
  requirements: z.object({ sha256: sha256Schema, download_url: z.string() }).nullable(),
  args: z.array(z.string()),
  image: z.string(),
  runtime: z.string().nullable(),
  env: z.record(z.string(), z.string()),
  timeout_seconds: z.number().int(),
  memory_mb: z.number().int(),
  cpus: z.number(),
  network: networkModeSchema,
  batch_id: z.string().nullable(),
});
export type Task = z.infer<typeof taskSchema>;
export const leaseResponseSchema = z.object({ tasks: z.array(taskSchema) });

export const attemptRefSchema = z.object({ execution_id: z.string(), attempt: z.number().int().min(1) });
export const heartbeatRequestSchema = z.object({ leases: z.array(attemptRefSchema).max(512) });
export const heartbeatResponseSchema = z.object({
  valid: z.array(attemptRefSchema.extend({ lease_expires_at: z.number() })),
  /** Stop these containers now: the attempt was cancelled or its lease moved elsewhere. */
  revoked: z.array(attemptRefSchema.extend({ reason: z.enum(["cancelled", "lease_lost", "finished"]) })),
});

export const startedRequestSchema = z.object({ attempt: z.number().int().min(1) });

/**
 * `POST /agent/v1/executions/:id/release`: a stopping agent hands back an attempt it will not
 * finish. The execution is queued again at once, without counting as an automatic retry; the
 * released attempt is fenced (its later calls get 409).
 */
export const releaseRequestSchema = z.object({ attempt: z.number().int().min(1) });
export const releaseResponseSchema = z.object({ outcome: z.literal("released") });

export const logBatchRequestSchema = z.object({
  attempt: z.number().int().min(1),
  lines: z.array(logLineSchema).max(1000),
});

export const outputFileSchema = z.object({
  path: relativePathSchema,
  size_bytes: z.number().int().min(0),
  sha256: sha256Schema,
  content_type: z.string().max(255),
});
export type OutputFile = z.infer<typeof outputFileSchema>;
export const outputUploadRequestSchema = z.object({
  attempt: z.number().int().min(1),
  files: z.array(outputFileSchema).max(10_000),
});
export const outputUploadResponseSchema = z.object({
  uploads: z.array(z.object({ path: z.string(), upload_url: z.string() })),
});

export const completionStatusSchema = z.enum(["succeeded", "failed", "timed_out"]);
export const completeRequestSchema = z.object({
  attempt: z.number().int().min(1),
  status: completionStatusSchema,
  exit_code: z.number().int().nullable(),
  duration_ms: z.number().int().min(0),
  /** One line the user can act on (e.g. "Out of memory: the 2048 MB limit was reached"). */
  error_message: z.string().max(4096).nullable(),
  /** Failure during setup (image pull, dependency install, worker lost): eligible for automatic retry. */
  transient: z.boolean().default(false),
  outputs: z.array(outputFileSchema).max(10_000),
});
export type CompleteRequest = z.input<typeof completeRequestSchema>;

/** Several completions in one request: an agent finishing many short tasks at once reports them together. */
export const completeManyRequestSchema = z.object({
  completions: z
    .array(completeRequestSchema.and(z.object({ execution_id: z.string() })))
    .min(1)
    .max(500),
});
export const completeManyResponseSchema = z.object({
  outcomes: z.array(z.object({ execution_id: z.string(), outcome: z.enum(["accepted", "duplicate", "stale", "retrying"]) })),
});
