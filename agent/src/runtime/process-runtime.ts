import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { access, constants, mkdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { agentLog, describeError } from "../log";
import { LineSplitter } from "./line-splitter";
import type { ContainerRuntime, OutputStream, PrepareResult, PrepareSpec, RunResult, RunSpec } from "./types";

export const NOT_ISOLATED_WARNING = "⚠ No Docker engine answered: scripts run as plain local processes, NOT isolated.";
const PIP_TAIL_LINES = 15;

/**
 * Runs scripts as plain child processes in their scratch folder. Only for a local agent started by
 * `rgrid dev` without a Docker engine: there is no isolation, no memory or network limit, and the
 * image is ignored. The timeout, logs and outputs behave as with Docker.
 */
export class ProcessRuntime implements ContainerRuntime {
  readonly backend = "process" as const;
  private readonly depsBuilds = new Map<string, Promise<PrepareResult>>();
  private warned = false;

  /**
   * @param hostPath PATH for scripts (the agent's own), so `python`/`node` resolve as they do for the user.
   * @param depsRoot Where installed requirements are cached, one folder per requirements hash.
   */
  constructor(
    private readonly hostPath: string,
    private readonly depsRoot: string,
  ) {}

  /** Prints the not-isolated warning, once per runtime. */
  warnOnce(): void {
    if (this.warned) return;
    this.warned = true;
    agentLog(NOT_ISOLATED_WARNING);
  }

  async prepare(spec: PrepareSpec): Promise<PrepareResult> {
    if (spec.requirements === null) return { ok: true, image: spec.image, env: {} };
    const key = createHash("sha256").update(`process\n${spec.requirements}`).digest("hex").slice(0, 32);
    const dir = path.join(this.depsRoot, key);
    const env = { PYTHONPATH: dir };
    if (await exists(dir)) return { ok: true, image: spec.image, env };
    let build = this.depsBuilds.get(key);
    if (build) spec.log("Waiting for the requirements another task is installing");
    else {
      build = this.installDeps(dir, spec).finally(() => this.depsBuilds.delete(key));
      this.depsBuilds.set(key, build);
    }
    const r = await build;
    return r.ok ? { ok: true, image: spec.image, env } : r;
  }

  private async installDeps(dir: string, spec: PrepareSpec): Promise<PrepareResult> {
    if (await exists(dir)) return { ok: true, image: spec.image, env: {} };
    const python = await this.resolveInterpreter("python");
    const reqFile = path.join(spec.scratchDir, "requirements.txt");
    await writeFile(reqFile, spec.requirements ?? "");
    const building = `${dir}.building-${process.pid}-${Date.now()}`;
    await mkdir(path.dirname(dir), { recursive: true });
    const args = ["-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check", "--target", building, "-r", reqFile];
    if (spec.pipIndexUrl) args.push("--index-url", spec.pipIndexUrl, "--trusted-host", new URL(spec.pipIndexUrl).hostname);
    spec.log("Installing requirements with the host's python (no Docker)");
    const tail: string[] = [];
    const result = await this.spawnAndWait(python, args, spec.scratchDir, { PIP_BREAK_SYSTEM_PACKAGES: "1" }, 15 * 60, 16_384, (_s, t) => {
      spec.log(t);
      tail.push(t);
      if (tail.length > PIP_TAIL_LINES) tail.shift();
    });
    if (result.exitCode !== 0) {
      await rm(building, { recursive: true, force: true });
      return {
        ok: false,
        transient: false,
        message: `Installing requirements failed (pip exit ${result.exitCode ?? "timeout"}): ${tail.join(" | ")}`.slice(0, 4000),
      };
    }
    await rename(building, dir);
    return { ok: true, image: spec.image, env: {} };
  }

  async run(spec: RunSpec): Promise<RunResult> {
    this.warnOnce();
    const [interpreter, ...rest] = spec.command;
    if (!interpreter) return { outcome: { kind: "start_failed", message: "No command to run" }, durationMs: 0 };
    const program = await this.resolveInterpreter(interpreter);
    // Arguments name files as /work/…; here /work is the scratch folder.
    const args = rest.map((a) => (a === "/work" ? spec.workDir : a.startsWith("/work/") ? path.join(spec.workDir, a.slice(6)) : a));
    const r = await this.spawnAndWait(
      program,
      args,
      spec.workDir,
      spec.env,
      spec.timeoutSeconds,
      spec.maxLineBytes,
      spec.onLine,
      spec.signal,
    );
    if (r.spawnError) return { outcome: { kind: "start_failed", message: r.spawnError }, durationMs: 0 };
    if (r.killedBy === "abort") return { outcome: { kind: "aborted" }, durationMs: r.durationMs };
    if (r.killedBy === "timeout") return { outcome: { kind: "timed_out" }, durationMs: r.durationMs };
    return { outcome: { kind: "exited", exitCode: r.exitCode ?? -1 }, durationMs: r.durationMs };
  }

  private async spawnAndWait(
    program: string,
    args: string[],
    cwd: string,
    env: Record<string, string>,
    timeoutSeconds: number,
    maxLineBytes: number,
    onLine: (stream: OutputStream, text: string) => void,
    signal?: AbortSignal,
  ): Promise<{ exitCode: number | null; durationMs: number; killedBy: "timeout" | "abort" | null; spawnError?: string }> {
    const tmp = path.join(path.dirname(cwd), "tmp");
    await mkdir(tmp, { recursive: true });
    const started = Date.now();
    // Only what a script needs from the host; the agent's own environment (tokens included) stays out.
    const childEnv = { PATH: this.hostPath, HOME: tmp, TMPDIR: tmp, LANG: "C.UTF-8", PYTHONUNBUFFERED: "1", ...env };
    return new Promise((resolve) => {
      const child = spawn(program, args, { cwd, env: childEnv, stdio: ["ignore", "pipe", "pipe"], detached: true });
      const out = new LineSplitter(maxLineBytes, (t) => onLine("stdout", t));
      const err = new LineSplitter(maxLineBytes, (t) => onLine("stderr", t));
      child.stdout.on("data", (c: Buffer) => out.push(c));
      child.stderr.on("data", (c: Buffer) => err.push(c));
      let killedBy: "timeout" | "abort" | null = null;
      const kill = (why: "timeout" | "abort") => {
        if (killedBy || child.pid === undefined) return;
        killedBy = why;
        try {
          // The whole process group: a script's own children die with it.
          process.kill(-child.pid, "SIGKILL");
        } catch (e) {
          agentLog(`process kill failed: ${describeError(e)}`);
        }
      };
      const timer = setTimeout(() => kill("timeout"), timeoutSeconds * 1000);
      const onAbort = () => kill("abort");
      if (signal?.aborted) onAbort();
      signal?.addEventListener("abort", onAbort);
      let spawnError: string | undefined;
      child.on("error", (e) => {
        spawnError = `Could not start ${path.basename(program)}: ${describeError(e)}`;
      });
      child.on("close", (code, sig) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        out.end();
        err.end();
        const exitCode = code ?? (sig ? 128 + (signalNumbers[sig] ?? 0) : null);
        resolve({ exitCode, durationMs: Date.now() - started, killedBy, ...(spawnError ? { spawnError } : {}) });
      });
    });
  }

  /** `python` may be `python3` on the host; anything else is used as given. */
  private async resolveInterpreter(name: string): Promise<string> {
    const candidates = name === "python" ? ["python", "python3"] : [name];
    for (const candidate of candidates) {
      for (const dir of this.hostPath.split(path.delimiter)) {
        if (!dir) continue;
        const full = path.join(dir, candidate);
        try {
          await access(full, constants.X_OK);
          return full;
        } catch {
          // Not in this folder.
        }
      }
    }
    return name;
  }

  async adoptWorkDir(): Promise<void> {
    // The script runs as the agent's own user: nothing to hand over.
  }

  async claim(): Promise<null> {
    // No containers: every run is a fresh process.
    return null;
  }

  async start(): Promise<void> {}

  async close(): Promise<void> {}

  async removeScratch(dir: string): Promise<void> {
    try {
      await rm(dir, { recursive: true, force: true });
    } catch (err) {
      agentLog(`scratch removal failed: ${describeError(err)}`);
    }
  }
}

const signalNumbers: Partial<Record<NodeJS.Signals, number>> = { SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGSEGV: 11, SIGABRT: 6 };

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}
