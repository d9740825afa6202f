import { z } from "zod";
import { executionStatusSchema } from "./lifecycle";
import { runtimeNames } from "./runtimes";

/** A lowercase hex sha256: how scripts, inputs and requirements are addressed. */
export const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, "must be a lowercase hex sha256");

/**
 * A path relative to /work: forward slashes, no `..`, not absolute, no empty or `.` segments.
 * Checked on both sides because the agent writes files at these paths.
 */
export const relativePathSchema = z
  .string()
  .min(1)
  .max(1024)
  .refine(
    (p) => !p.startsWith("/") && !p.includes("\\") && p.split("/").every((s) => s !== "" && s !== "." && s !== ".."),
    "must be a relative path inside the working folder (no `..`, no leading `/`)",
  );

export const envNameSchema = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be a valid environment variable name");
export const metadataSchema = z
  .record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "metadata keys are letters, digits, _ . -"), z.string().max(1024))
  .refine((m) => Object.keys(m).length <= 50, "at most 50 metadata entries");

export const networkModeSchema = z.enum(["bridge", "none"]);

export const LIMIT_DEFAULTS = { timeoutSeconds: 3600, memoryMb: 2048, cpus: 1 } as const;

export const createExecutionRequestSchema = z
  .object({
    /** Client-generated; a retried request with the same key returns the first execution. */
    idempotency_key: z.string().min(8).max(128),
    script: z.object({ path: relativePathSchema, sha256: sha256Schema }),
    inputs: z
      .array(z.object({ path: relativePathSchema, sha256: sha256Schema }))
      .max(1000)
      .default([]),
    /** Arguments as the script sees them; file arguments already rewritten to their /work paths. */
    args: z.array(z.string().max(65_536)).max(1000).default([]),
    runtime: z.enum(runtimeNames as [string, ...string[]]).optional(),
    image: z.string().min(1).max(256).optional(),
    requirements_sha256: sha256Schema.optional(),
    env: z.record(envNameSchema, z.string().max(65_536)).default({}),
    timeout_seconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 24 * 3600)
      .default(LIMIT_DEFAULTS.timeoutSeconds),
    memory_mb: z
      .number()
      .int()
      .min(64)
      .max(256 * 1024)
      .default(LIMIT_DEFAULTS.memoryMb),
    cpus: z.number().min(0.1).max(64).default(LIMIT_DEFAULTS.cpus),
    network: networkModeSchema.default("bridge"),
    metadata: metadataSchema.default({}),
    batch_id: z.string().max(64).optional(),
    retry_of: z.string().max(64).optional(),
  })
  .refine((r) => !(r.runtime && r.image), { message: "give either a runtime or an image, not both", path: ["image"] });
export type CreateExecutionRequest = z.input<typeof createExecutionRequestSchema>;
export type CreateExecutionInput = z.output<typeof createExecutionRequestSchema>;

export const executionViewSchema = z.object({
  id: z.string(),
  status: executionStatusSchema,
  script_name: z.string(),
  runtime: z.string().nullable(),
  image: z.string(),
  args: z.array(z.string()),
  inputs: z.array(z.object({ path: z.string(), sha256: z.string() })),
  env_names: z.array(z.string()),
  batch_id: z.string().nullable(),
  retry_of: z.string().nullable(),
  attempt: z.number().int(),
  worker_id: z.string().nullable(),
  exit_code: z.number().int().nullable(),
  error_message: z.string().nullable(),
  metadata: z.record(z.string(), z.string()),
  timeout_seconds: z.number(),
  memory_mb: z.number(),
  cpus: z.number(),
  network: networkModeSchema,
  created_at: z.number(),
  started_at: z.number().nullable(),
  finished_at: z.number().nullable(),
  duration_ms: z.number().nullable(),
  cost_micros: z.number(),
});
export type ExecutionView = z.infer<typeof executionViewSchema>;

export const executionListSchema = z.object({
  executions: z.array(executionViewSchema),
  next_cursor: z.string().nullable(),
});

/** `POST /api/v1/blobs/missing`: which of these does the server lack, with a short-lived upload URL for each. */
export const missingBlobsRequestSchema = z.object({ sha256: z.array(sha256Schema).min(1).max(1000) });
export const missingBlobsResponseSchema = z.object({
  missing: z.array(z.object({ sha256: sha256Schema, upload_url: z.string() })),
});

export const logStreamSchema = z.enum(["stdout", "stderr", "system"]);
export const logLineSchema = z.object({
  /** 1-based and gap-free. From an agent: per attempt (the scheduler dedupes on attempt + seq). To a reader: one per-execution sequence across attempts, assigned by the scheduler. */
  seq: z.number().int().min(1),
  stream: logStreamSchema,
  /** Epoch milliseconds when the agent read the line. */
  ts: z.number(),
  text: z.string().max(16_384),
});
export type LogLine = z.infer<typeof logLineSchema>;

export const logPageSchema = z.object({
  lines: z.array(logLineSchema),
  /** Pass as `after` to get what follows. */
  last_seq: z.number().int(),
  /** True once the execution is final and every stored line has been returned. */
  complete: z.boolean(),
  status: executionStatusSchema,
  /** Lines dropped past the per-execution cap. */
  dropped_lines: z.number().int(),
  /** Automatic retries so far (worker lost, setup failure), for "Auto-retry n/2" notices while polling. */
  retries: z.number().int().optional(),
});
export type LogPage = z.infer<typeof logPageSchema>;

export const artifactViewSchema = z.object({
  path: z.string(),
  size_bytes: z.number().int(),
  sha256: z.string(),
  content_type: z.string(),
  /** Short-lived signed URL (15 minutes). */
  download_url: z.string(),
});
export type ArtifactView = z.infer<typeof artifactViewSchema>;
export const artifactListSchema = z.object({ artifacts: z.array(artifactViewSchema) });

export const eventViewSchema = z.object({
  type: z.string(),
  message: z.string(),
  attempt: z.number().nullable(),
  created_at: z.number(),
});
export const eventListSchema = z.object({ events: z.array(eventViewSchema) });
