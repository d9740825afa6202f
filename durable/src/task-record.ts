import type { CreateExecutionInput } from "../../shared/src/executions";
import { MAX_AUTO_RETRIES } from "../../shared/src/lifecycle";

/** What the scheduler keeps per execution to hand to an agent (env values included: D1 never sees them). */
export interface TaskPayload {
  script: CreateExecutionInput["script"];
  inputs: CreateExecutionInput["inputs"];
  requirements_sha256: string | null;
  args: string[];
  image: string;
  runtime: string | null;
  env: Record<string, string>;
  timeout_seconds: number;
  memory_mb: number;
  cpus: number;
  network: "bridge" | "none";
  batch_id: string | null;
}

export interface EnqueueItem {
  executionId: string;
  payload: TaskPayload;
}

/** A lease handed to an agent; the worker route turns blob references into signed URLs. */
export interface LeasedTask {
  executionId: string;
  attempt: number;
  leaseExpiresAt: number;
  payload: TaskPayload;
}

/** Scheduler-side state of one execution: an explicit union, so every transition is checked. */
export type TaskState = "queued" | "leased" | "running" | "succeeded" | "failed" | "timed_out" | "cancelled";
export const ACTIVE_STATES: readonly TaskState[] = ["leased", "running"];

export interface TaskRow {
  execution_id: string;
  batch_id: string | null;
  state: TaskState;
  attempt: number;
  worker_id: string | null;
  lease_expires_at: number | null;
  started_at: number | null;
  /** Automatic retries spent so far (worker lost, setup failure); at most MAX_RETRIES. */
  retries: number;
  payload: string;
  [key: string]: SqlStorageValue;
}

/** A lease lives this long unless the agent's heartbeat (every ~5 s) extends it. */
export const LEASE_MS = 30_000;
/** Automatic retries per execution (shared with the CLI, which shows "Auto-retry 1/2"). */
export const MAX_RETRIES = MAX_AUTO_RETRIES;
/** The first attempt plus the automatic retries. */
export const MAX_ATTEMPTS = MAX_RETRIES + 1;

/**
 * The lease length: `RGRID_LEASE_MS` (a Worker var, so fault tests can shorten it) or 30 s. Agents
 * heartbeat every 5 s; a lease must outlast two heartbeats so one lost heartbeat does not lapse a
 * healthy attempt, so values under 10 s are refused.
 */
const MIN_LEASE_MS = 10_000;

export function leaseMsFrom(value: string | undefined): number {
  if (value === undefined || value === "") return LEASE_MS;
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < MIN_LEASE_MS) {
    throw new Error(
      `RGRID_LEASE_MS must be a whole number of milliseconds, at least ${MIN_LEASE_MS} (got "${value}"); unset it for the 30 s default.`,
    );
  }
  return ms;
}
/** Stored log lines per execution; past this a marker counts what was dropped. */
export const MAX_LOG_LINES = 200_000;
/** What one CPU-second costs, in micro-dollars (a Hetzner CX22 core is ~$0.004/hour; we bill $0.0108/cpu-hour). */
export const MICROS_PER_CPU_SECOND = 3;
