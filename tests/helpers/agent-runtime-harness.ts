import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { ContainerRuntime, OutputStream, RunResult, RunSpec } from "../../agent/src/runtime/types";
import { type CollectResult, collectOutputs, createScratch, placeFile, type Scratch } from "../../agent/src/workspace";

/** A captured line, in the order the runtime reported it. */
export interface CapturedLine {
  stream: OutputStream | "system";
  text: string;
}

export interface ScriptRun {
  result: RunResult;
  lines: CapturedLine[];
  stdout: string[];
  stderr: string[];
  scratch: Scratch;
  baseline: Map<string, string>;
  /** Collects outputs the way the agent does after the script exits. */
  collect(limits?: { maxFiles: number; maxBytes: number }): Promise<CollectResult>;
  system: string[];
  /** True when the script ran in a warm container (the runtime had one of its shape ready). */
  warm: boolean;
}

/** Warm containers still held by a finished run, given back before the runtime's next run. */
const pendingRelease = new Map<ContainerRuntime, () => Promise<void>>();

/** Gives back the warm container of the runtime's last run, if it still holds one. */
export async function releasePending(runtime: ContainerRuntime): Promise<void> {
  const release = pendingRelease.get(runtime);
  pendingRelease.delete(runtime);
  await release?.();
}

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

/** A state dir under the OS temp folder, removed by `cleanup`. */
export async function tempStateDir(prefix = "rgrid-agent-test-"): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Runs `script` (written as `main.py`, or the name given) through `runtime` directly, with `files`
 * placed in /work as inputs, the way the agent prepares an attempt, and captures every line.
 */
export async function runScript(
  runtime: ContainerRuntime,
  stateDir: string,
  opts: {
    script: string;
    scriptName?: string;
    files?: Record<string, string | Buffer>;
    args?: string[];
    image?: string;
    env?: Record<string, string>;
    timeoutSeconds?: number;
    memoryMb?: number;
    cpus?: number;
    network?: RunSpec["network"];
    maxLineBytes?: number;
    signal?: AbortSignal;
    interpreter?: string;
  },
): Promise<ScriptRun> {
  await releasePending(runtime);
  const scratch = await createScratch(stateDir, `test-${Math.random().toString(36).slice(2, 8)}`);
  const image = opts.image ?? "rgrid/python:3.11";
  const memoryMb = opts.memoryMb ?? 512;
  const cpus = opts.cpus ?? 1;
  const network = opts.network ?? "none";
  // As the agent does: a warm container of the task's shape when the runtime has one ready.
  const sandbox = await runtime.claim({ image, memoryMb, cpus, network });
  const workDir = sandbox?.workDir ?? scratch.workDir;
  if (sandbox) pendingRelease.set(runtime, () => sandbox.release());
  const scriptName = opts.scriptName ?? "main.py";
  const baseline = new Map<string, string>();
  for (const [rel, data] of Object.entries({ [scriptName]: opts.script, ...(opts.files ?? {}) })) {
    const full = await placeFile(workDir, rel);
    await writeFile(full, data);
    baseline.set(rel, sha256(data));
  }
  await mkdir(workDir, { recursive: true });
  await runtime.adoptWorkDir(workDir);
  const lines: CapturedLine[] = [];
  const result = await runtime.run({
    image,
    command: [opts.interpreter ?? "python", scriptName, ...(opts.args ?? [])],
    workDir,
    env: opts.env ?? {},
    timeoutSeconds: opts.timeoutSeconds ?? 60,
    memoryMb,
    cpus,
    network,
    label: "test",
    maxLineBytes: opts.maxLineBytes ?? 16_384,
    onLine: (stream, text) => lines.push({ stream, text }),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(sandbox ? { sandbox } : {}),
  });
  const system: string[] = [];
  return {
    result,
    lines,
    stdout: lines.filter((l) => l.stream === "stdout").map((l) => l.text),
    stderr: lines.filter((l) => l.stream === "stderr").map((l) => l.text),
    scratch,
    baseline,
    system,
    warm: sandbox !== null,
    // Until the next run on this runtime gives the warm container back, /work still holds the outputs.
    collect: (limits = { maxFiles: 1000, maxBytes: 1024 ** 3 }) => collectOutputs(workDir, baseline, limits, (t) => system.push(t)),
  };
}
