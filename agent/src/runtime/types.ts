import type { z } from "zod";
import type { networkModeSchema } from "../../../shared/src/executions";

type NetworkMode = z.infer<typeof networkModeSchema>;

/**
 * The seam between the agent and whatever runs scripts (after trigger.dev's
 * `workloadManager/types.ts`): one implementation per backend. The docker backend isolates; the
 * process backend (local `rgrid dev` without Docker only) does not.
 */

export type OutputStream = "stdout" | "stderr";

/** One finished line of agent-side output (image pulls, dependency installs, skipped symlinks). */
export type SystemLog = (text: string) => void;

export interface RunSpec {
  /** Image to run (docker); ignored by the process backend. */
  image: string;
  /** Interpreter, script path relative to /work, then the user's arguments. */
  command: string[];
  /** Host folder mounted (docker) or used as the working directory (process) as `/work`. */
  workDir: string;
  /** The task's environment. Never logged. */
  env: Record<string, string>;
  timeoutSeconds: number;
  memoryMb: number;
  cpus: number;
  network: NetworkMode;
  /** Used to name the container, e.g. `exec_123-1`. */
  label: string;
  /** Longer lines are cut to this many bytes. */
  maxLineBytes: number;
  onLine: (stream: OutputStream, text: string) => void;
  /** Aborting kills the script at once (lease revoked, agent shutting down). */
  signal?: AbortSignal;
  /**
   * A warm container claimed for this task (`workDir` must be its `workDir`). Without one the
   * runtime creates a fresh container; either way the script sees the same hardening and limits.
   */
  sandbox?: Sandbox;
}

/** What a warm container must match to serve a task: the image and every limit fixed at creation. */
export interface SandboxShape {
  image: string;
  memoryMb: number;
  cpus: number;
  network: NetworkMode;
}

/**
 * A hardened container already started and reserved for one task, with the host folder mounted as
 * its /work. The task fills `workDir`, runs, collects its outputs from it, then calls `release`.
 */
export interface Sandbox {
  readonly workDir: string;
  /** Gives the container back, wiped clean for the next task, or discards it. Call exactly once. */
  release(): Promise<void>;
}

export type RunOutcome =
  | { kind: "exited"; exitCode: number }
  | { kind: "timed_out" }
  | { kind: "oom"; exitCode: number }
  /** Killed because `signal` aborted: the caller drops the results. */
  | { kind: "aborted" }
  /** Could not start (bad image, engine error): a setup failure, eligible for retry. */
  | { kind: "start_failed"; message: string };

export interface RunResult {
  outcome: RunOutcome;
  /** From start to exit. */
  durationMs: number;
}

/** What a dependency-layer or image step produced: an image to run on, or why there is none. */
export type PrepareResult = { ok: true; image: string; env: Record<string, string> } | { ok: false; message: string; transient: boolean };

export interface PrepareSpec {
  image: string;
  /** Text of requirements.txt, or null for none. */
  requirements: string | null;
  /** pip index URL (e.g. a mirror), if any. */
  pipIndexUrl: string | undefined;
  /** Progress lines for the execution's log (stream "system"). */
  log: SystemLog;
  /** The attempt's scratch folder (outside /work), for files the build needs. */
  scratchDir: string;
}

export interface ContainerRuntime {
  readonly backend: "docker" | "process";
  /** Makes sure the image (and the dependency layer for `requirements`) exists; returns what to run on. */
  prepare(spec: PrepareSpec): Promise<PrepareResult>;
  /** Runs one script to completion, timeout or abort. Never throws for the script's own failures. */
  run(spec: RunSpec): Promise<RunResult>;
  /** Makes the prepared work folder usable by the script's user. */
  adoptWorkDir(dir: string): Promise<void>;
  /** Removes a scratch folder, including files the script created under another uid (`image` runs the cleanup). */
  removeScratch(dir: string, image?: string): Promise<void>;
  /** A warm container for `shape`, or null when none is ready soon (the task then runs in a fresh one). */
  claim(shape: SandboxShape): Promise<Sandbox | null>;
  /** Start-up: removes what an earlier run of this agent left behind, then warms containers up. */
  start(): Promise<void>;
  /** Shutdown: removes the warm containers. */
  close(): Promise<void>;
}

/** The user-facing message for a timeout. */
export function timeoutMessage(seconds: number): string {
  return `Timed out after ${seconds}s (--timeout ${seconds})`;
}

/** The user-facing message for a memory kill. */
export function oomMessage(memoryMb: number): string {
  return `Out of memory: the script exceeded its ${memoryMb} MB memory limit; raise it with --memory`;
}
