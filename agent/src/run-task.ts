import { readdir, readFile, rename } from "node:fs/promises";
import path from "node:path";
import type { z } from "zod";
import { abortableSleep } from "../../shared/src/abortable-sleep";
import type { completionStatusSchema, Task } from "../../shared/src/agent-protocol";
import { interpreterFor, isRuntimeName } from "../../shared/src/runtimes";
import { ApiUnreachableError, CredentialRejectedError, type ControlPlane, StaleAttemptError } from "./control-plane";
import type { BlobCache } from "./blob-cache";
import { agentLog, describeError } from "./log";
import { LogShipper } from "./log-shipper";
import { type ContainerRuntime, oomMessage, type Sandbox, timeoutMessage } from "./runtime/types";
import { type CollectedOutput, collectOutputs, createScratch, placeFile } from "./workspace";

type CompletionStatus = z.infer<typeof completionStatusSchema>;

export interface TaskSettings {
  stateDir: string;
  /** Scripts and inputs by sha256, shared by the tasks of a batch. */
  blobs?: BlobCache;
  pipIndexUrl: string | undefined;
  outputMaxFiles: number;
  outputMaxBytes: number;
  logMaxLineBytes: number;
}

const MAX_REQUIREMENTS_BYTES = 1024 * 1024;

export interface TaskHooks {
  /**
   * Called once the script's container is done (or the attempt ended before one ran): the slot can
   * take new work while this attempt collects, uploads and reports.
   */
  onScriptDone?: () => void;
}

interface Completion {
  status: CompletionStatus;
  exitCode: number | null;
  durationMs: number;
  errorMessage: string | null;
  transient: boolean;
  outputs: CollectedOutput[];
}

/**
 * One attempt, start to finish: workspace, image and dependency layer, the hardened run, outputs,
 * completion. `signal` aborts it (lease revoked, shutdown past its grace): the script is killed and
 * nothing more is reported, because the attempt now belongs to someone else.
 */
export async function runTask(
  task: Task,
  api: ControlPlane,
  runtime: ContainerRuntime,
  settings: TaskSettings,
  signal: AbortSignal,
  hooks: TaskHooks = {},
): Promise<void> {
  const id = task.execution_id;
  const label = attemptLabel(task);
  const stale = new AbortController();
  const abort = AbortSignal.any([signal, stale.signal]);
  const logs = new LogShipper({
    send: (lines) => api.logs(id, { attempt: task.attempt, lines }),
    onStale: () => {
      agentLog(`attempt ${label} is no longer current (log batch refused with 409); stopping it`);
      stale.abort();
    },
  });
  const scratch = await createScratch(settings.stateDir, label);
  let ranOn: string | undefined;
  const held: { sandbox: Sandbox | null } = { sandbox: null };
  try {
    // Reported while the files download: a 409 stops the attempt as soon as it arrives.
    let credentialRefused: unknown = null;
    // Retried through an outage, so the record never lacks the start of an attempt that ran.
    const started = whileUnreachable(() => api.started(id, task.attempt), abort).catch((err: unknown) => {
      if (err instanceof StaleAttemptError) {
        agentLog(`attempt ${label} is no longer current (started refused with 409); dropping it`);
        stale.abort();
      } else if (err instanceof CredentialRejectedError) {
        credentialRefused = err;
        stale.abort();
      } else agentLog(`could not report attempt ${label} as started: ${describeError(err)}`);
    });
    const completion = await execute(task, api, runtime, settings, scratch, logs, abort, held, hooks, (image) => {
      ranOn = image;
    });
    await started;
    if (credentialRefused !== null) throw credentialRefused;
    if (completion === null || abort.aborted) {
      logs.discard();
      return;
    }
    await logs.close();
    if (abort.aborted) return;
    await deliverCompletion(api, task, completion, abort);
  } finally {
    hooks.onScriptDone?.();
    logs.flush();
    logs.discard();
    await Promise.all([held.sandbox?.release(), runtime.removeScratch(scratch.root, ranOn)]);
  }
}

async function execute(
  task: Task,
  api: ControlPlane,
  runtime: ContainerRuntime,
  settings: TaskSettings,
  scratch: { root: string; workDir: string },
  logs: LogShipper,
  signal: AbortSignal,
  held: { sandbox: Sandbox | null },
  hooks: TaskHooks,
  noteImage: (image: string) => void,
): Promise<Completion | null> {
  const setupFailure = (message: string, transient: boolean): Completion => ({
    status: "failed",
    exitCode: null,
    durationMs: 0,
    errorMessage: message.slice(0, 4096),
    transient,
    outputs: [],
  });

  // The script and inputs (each at its relative path, checked against its sha256) download while
  // the image and the dependency layer are made ready.
  const baseline = new Map<string, string>();
  const downloads = (async (): Promise<Completion | null | "ok"> => {
    try {
      await Promise.all(
        [task.script, ...task.inputs].map(async (file) => {
          const dest = await placeFile(scratch.workDir, file.path);
          const fetch = (to: string) => api.download(file.download_url, to, file.sha256, signal);
          await (settings.blobs ? settings.blobs.place(file.sha256, dest, fetch) : fetch(dest));
          baseline.set(file.path, file.sha256);
        }),
      );
      return "ok";
    } catch (err) {
      if (signal.aborted) return null;
      if (err instanceof CredentialRejectedError) throw err;
      return setupFailure(`Could not download the script or an input: ${describeError(err)}`, true);
    }
  })();
  const preparation = (async () => {
    let requirements: string | null = null;
    if (task.requirements) {
      const reqPath = path.join(scratch.root, "requirements.download");
      try {
        await api.download(task.requirements.download_url, reqPath, task.requirements.sha256, signal, MAX_REQUIREMENTS_BYTES);
        requirements = await readFile(reqPath, "utf8");
      } catch (err) {
        if (signal.aborted) return null;
        return setupFailure(`Could not download requirements.txt: ${describeError(err)}`, true);
      }
    }
    const prepared = await runtime.prepare({
      image: task.image,
      requirements,
      pipIndexUrl: settings.pipIndexUrl,
      log: (text) => logs.system(text),
      scratchDir: scratch.root,
    });
    if (signal.aborted) return null;
    if (!prepared.ok) return setupFailure(prepared.message, prepared.transient);
    return prepared;
  })();
  const [downloaded, prepared] = await Promise.all([downloads, preparation]);
  if (downloaded !== "ok") return downloaded;
  if (prepared === null || !("ok" in prepared)) return prepared;
  noteImage(prepared.image);

  // A warm container of the task's image and limits, when one is ready: the files move into its /work.
  const shape = { image: prepared.image, memoryMb: task.memory_mb, cpus: task.cpus, network: task.network };
  held.sandbox = await runtime.claim(shape);
  let workDir = scratch.workDir;
  if (held.sandbox) {
    const target = held.sandbox.workDir;
    try {
      for (const entry of await readdir(scratch.workDir)) await rename(path.join(scratch.workDir, entry), path.join(target, entry));
      workDir = target;
    } catch (err) {
      agentLog(`could not move the files of ${attemptLabel(task)} into a warm container: ${describeError(err)}`);
      return setupFailure(`Could not prepare the work folder: ${describeError(err)}`, true);
    }
  }
  await runtime.adoptWorkDir(workDir);

  const runtimeName = task.runtime !== null && isRuntimeName(task.runtime) ? task.runtime : undefined;
  const result = await runtime.run({
    image: prepared.image,
    command: [...interpreterFor(runtimeName, task.script.path), task.script.path, ...task.args],
    workDir,
    env: { ...prepared.env, ...task.env },
    timeoutSeconds: task.timeout_seconds,
    memoryMb: task.memory_mb,
    cpus: task.cpus,
    network: task.network,
    label: attemptLabel(task),
    maxLineBytes: settings.logMaxLineBytes,
    onLine: (stream, text) => logs.push(stream, text),
    signal,
    ...(held.sandbox ? { sandbox: held.sandbox } : {}),
  });
  hooks.onScriptDone?.();
  const o = result.outcome;
  if (o.kind === "aborted" || signal.aborted) return null;
  if (o.kind === "start_failed") return setupFailure(o.message, true);

  let completion: Completion;
  if (o.kind === "timed_out") {
    completion = {
      status: "timed_out",
      exitCode: null,
      durationMs: result.durationMs,
      errorMessage: timeoutMessage(task.timeout_seconds),
      transient: false,
      outputs: [],
    };
  } else if (o.kind === "oom") {
    completion = {
      status: "failed",
      exitCode: o.exitCode,
      durationMs: result.durationMs,
      errorMessage: oomMessage(task.memory_mb),
      transient: false,
      outputs: [],
    };
  } else {
    completion = {
      status: o.exitCode === 0 ? "succeeded" : "failed",
      exitCode: o.exitCode,
      durationMs: result.durationMs,
      errorMessage: o.exitCode === 0 ? null : `The script exited with code ${o.exitCode}`,
      transient: false,
      outputs: [],
    };
  }

  // Outputs are collected whatever the exit: a failed or timed-out script's partial results help.
  const collected = await collectOutputs(
    workDir,
    baseline,
    { maxFiles: settings.outputMaxFiles, maxBytes: settings.outputMaxBytes },
    (text) => logs.system(text),
  );
  if (!collected.ok) {
    logs.system(collected.message);
    return {
      ...completion,
      status: completion.status === "timed_out" ? "timed_out" : "failed",
      errorMessage: completion.status === "succeeded" ? collected.message : `${completion.errorMessage}; ${collected.message}`,
    };
  }
  if (collected.files.length === 0) return completion;

  try {
    // The script has run: an unreachable control plane (a restart, a blip) is waited out rather
    // than reported as a setup failure, which would run the script again as an automatic retry.
    const { uploads } = await whileUnreachable(
      () =>
        api.outputs(task.execution_id, {
          attempt: task.attempt,
          files: collected.files.map(({ absolutePath: _, ...f }) => f),
        }),
      signal,
    );
    const byPath = new Map(collected.files.map((f) => [f.path, f]));
    for (const u of uploads) {
      const file = byPath.get(u.path);
      if (!file) continue;
      await whileUnreachable(() => api.upload(u.upload_url, file.absolutePath, file.size_bytes, file.content_type, signal), signal);
    }
  } catch (err) {
    if (signal.aborted) return null;
    if (err instanceof StaleAttemptError) {
      agentLog(`attempt ${attemptLabel(task)} is no longer current (output upload refused with 409); dropping it`);
      return null;
    }
    if (err instanceof CredentialRejectedError) throw err;
    return { ...completion, status: "failed", errorMessage: `Uploading outputs failed: ${describeError(err)}`, transient: true };
  }
  return { ...completion, outputs: collected.files };
}

const attemptLabel = (task: Task) => `${task.execution_id}-${task.attempt}`;

/** How long a finished attempt waits for an unreachable control plane before giving up on it. */
const UNREACHABLE_GIVE_UP_MS = 10 * 60_000;

/**
 * Runs `call`, retrying with backoff (1 s doubling to 30 s) while the control plane is unreachable,
 * for at most 10 minutes. Any other error, or an abort, ends it at once. If the outage outlasts
 * the lease, the attempt is fenced and the next try answers 409.
 */
async function whileUnreachable<T>(call: () => Promise<T>, signal: AbortSignal): Promise<T> {
  let backoff = 1000;
  const giveUpAt = Date.now() + UNREACHABLE_GIVE_UP_MS;
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof ApiUnreachableError) || Date.now() > giveUpAt || signal.aborted) throw err;
      await abortableSleep(backoff, signal);
      if (signal.aborted) throw err;
      backoff = Math.min(backoff * 2, 30_000);
    }
  }
}

/** Reports the result, retrying while the control plane is unreachable; a 409 means fenced: drop. */
async function deliverCompletion(api: ControlPlane, task: Task, c: Completion, signal: AbortSignal): Promise<void> {
  try {
    await whileUnreachable(
      () =>
        api.complete(task.execution_id, {
          attempt: task.attempt,
          status: c.status,
          exit_code: c.exitCode,
          duration_ms: Math.max(0, Math.round(c.durationMs)),
          error_message: c.errorMessage,
          transient: c.transient,
          outputs: c.outputs.map(({ absolutePath: _, ...f }) => f),
        }),
      signal,
    );
    agentLog(
      `attempt ${attemptLabel(task)} ${c.status}${c.exitCode !== null ? ` (exit ${c.exitCode})` : ""} in ${(c.durationMs / 1000).toFixed(1)}s`,
    );
  } catch (err) {
    if (err instanceof StaleAttemptError) {
      agentLog(`completion of attempt ${attemptLabel(task)} refused with 409: it is no longer current; result dropped`);
      return;
    }
    if (err instanceof CredentialRejectedError) throw err;
    agentLog(`could not report completion of attempt ${attemptLabel(task)}: ${describeError(err)}`);
  }
}
