import { createHash, randomBytes } from "node:crypto";
import { chown, chmod, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import Docker from "dockerode";
import { agentLog, describeError } from "../log";
import { KillSwitch, pipeScriptOutput } from "./container-output";
import type {
  ContainerRuntime,
  OutputStream,
  PrepareResult,
  PrepareSpec,
  RunResult,
  RunSpec,
  Sandbox,
  SandboxShape,
  SystemLog,
} from "./types";
import {
  AGENT_LABEL,
  execExitCode,
  MANAGED_LABEL,
  OWNER_HOST_LABEL,
  OWNER_PID_LABEL,
  ROLE_LABEL,
  SCRIPT_USER,
  WarmContainer,
  type WarmMode,
  WarmPool,
} from "./warm-pool";

export { SCRIPT_USER } from "./warm-pool";
/** Where a dependency layer's packages live inside its image (on PYTHONPATH). */
export const DEPS_DIR = "/opt/rgrid/deps";
const LAYER_BUILD_TIMEOUT_MS = 15 * 60_000;
const PIP_TAIL_LINES = 15;

/** The tag of the dependency layer for this base image and requirements text. */
export function dependencyLayerTag(image: string, requirements: string): string {
  return `rgrid-deps:${createHash("sha256").update(`${image}\n${requirements}`).digest("hex").slice(0, 32)}`;
}

/** True when the Docker engine answers within `timeoutMs`. */
export async function dockerAnswers(docker: Docker, timeoutMs = 3000): Promise<boolean> {
  try {
    await Promise.race([
      docker.ping(),
      new Promise((_, reject) => setTimeout(() => reject(new Error("ping timed out")), timeoutMs).unref()),
    ]);
    return true;
  } catch {
    return false;
  }
}

function statusCodeOf(err: unknown): number | undefined {
  const code = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === "number" ? code : undefined;
}

/**
 * Runs scripts in hardened containers through dockerode (after trigger.dev's `workloadManager/docker.ts`):
 * every engine call is checked, and failures are logged with the step and the container, never the
 * task's env values.
 */
export interface DockerRuntimeOptions {
  /**
   * Identifies this agent across restarts (same host and state dir): every container it creates is
   * labelled with it, and `start()` removes the ones a previous run left behind.
   */
  agentId?: string;
  /** Keep hardened containers started ahead of tasks. Absent: every task gets a fresh container. */
  warm?: { capacity: number; shapes: SandboxShape[]; mode: WarmMode; rootDir: string; maxUses?: number };
}

export class DockerRuntime implements ContainerRuntime {
  readonly backend = "docker" as const;
  /** Dependency layers being built, by tag: concurrent tasks with the same requirements share one build. */
  private readonly layerBuilds = new Map<string, Promise<PrepareResult>>();
  readonly agentId: string;
  readonly pool: WarmPool | null;

  constructor(
    readonly docker: Docker = new Docker(),
    opts: DockerRuntimeOptions = {},
  ) {
    this.agentId = opts.agentId ?? `pid-${process.pid}`;
    this.pool = opts.warm
      ? new WarmPool(docker, {
          ...opts.warm,
          shapes: opts.warm.shapes.map((s) => ({ ...s, cpus: this.effectiveCpus(s.cpus) })),
          agentId: this.agentId,
          hostConfig: (shape, workDir) => this.hostConfig(shape, workDir),
        })
      : null;
  }

  /** Removes containers an earlier run of this agent left behind (it died mid-task), then warms the pool. */
  async start(): Promise<void> {
    try {
      const stale = await this.docker.listContainers({ all: true, filters: { label: [`${AGENT_LABEL}=${this.agentId}`] } });
      await Promise.all(
        stale.map(async (info) => {
          await this.removeContainer(this.docker.getContainer(info.Id), "a container left by an earlier run");
        }),
      );
      if (stale.length > 0) agentLog(`removed ${stale.length} container(s) left behind by an earlier run of this agent`);
      // Warm containers hold no task state; those of an agent on this host whose process is gone
      // (killed, with a state dir that will not come back) are removed by whichever agent starts next.
      const warm = await this.docker.listContainers({
        all: true,
        filters: { label: [`${ROLE_LABEL}=warm`, `${OWNER_HOST_LABEL}=${os.hostname()}`] },
      });
      const orphans = warm.filter((info) => {
        const pid = Number(info.Labels[OWNER_PID_LABEL]);
        return Number.isInteger(pid) && pid > 0 && pid !== process.pid && !processAlive(pid);
      });
      await Promise.all(orphans.map((info) => this.removeContainer(this.docker.getContainer(info.Id), "an orphaned warm container")));
      if (orphans.length > 0) agentLog(`removed ${orphans.length} warm container(s) of agents that are no longer running`);
    } catch (err) {
      agentLog(`could not list containers left behind: ${describeError(err)}`);
    }
    this.pool?.fill();
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }

  async claim(shape: SandboxShape): Promise<Sandbox | null> {
    if (!this.pool) return null;
    const wanted = { ...shape, cpus: this.effectiveCpus(shape.cpus) };
    const claimed = await this.pool.claim(wanted);
    if (!claimed) this.pool.learn(wanted);
    return claimed;
  }

  private effectiveCpus(cpus: number): number {
    return Math.min(cpus, os.availableParallelism());
  }

  /**
   * The hardening of every script container, fresh or warm: non-root (the exec or the container
   * user), all capabilities dropped, no new privileges, read-only root with /work bound and a /tmp
   * tmpfs, pids, memory (no swap) and CPU limits, the task's network mode, capped engine logs.
   */
  hostConfig(shape: SandboxShape, workDir: string): Docker.HostConfig {
    return {
      Binds: [`${workDir}:/work:rw`],
      Tmpfs: { "/tmp": "rw,nosuid,nodev,size=512m" },
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      ReadonlyRootfs: true,
      PidsLimit: 512,
      Memory: shape.memoryMb * 1024 * 1024,
      // Equal to Memory: no swap, so the limit is a real limit.
      MemorySwap: shape.memoryMb * 1024 * 1024,
      NanoCpus: Math.round(this.effectiveCpus(shape.cpus) * 1e9),
      NetworkMode: shape.network,
      LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "1" } },
    };
  }

  async prepare(spec: PrepareSpec): Promise<PrepareResult> {
    const base = await this.ensureImage(spec.image, spec.log);
    if (!base.ok || spec.requirements === null) return base;
    const tag = dependencyLayerTag(spec.image, spec.requirements);
    // The committed layer carries PYTHONPATH in its own env; nothing to add per run.
    const layerEnv = {};
    if (await this.imageExists(tag)) {
      spec.log(`Using dependency layer ${tag}`);
      return { ok: true, image: tag, env: layerEnv };
    }
    let build = this.layerBuilds.get(tag);
    if (build) {
      spec.log(`Waiting for dependency layer ${tag}, which another task is building`);
    } else {
      build = this.buildLayer(spec.image, spec.requirements, tag, spec).finally(() => this.layerBuilds.delete(tag));
      this.layerBuilds.set(tag, build);
    }
    const built = await build;
    return built.ok ? { ok: true, image: tag, env: layerEnv } : built;
  }

  /** Image present → use it; absent → try a pull; still absent → a transient failure the user can act on. */
  async ensureImage(image: string, log: SystemLog): Promise<PrepareResult> {
    if (await this.imageExists(image)) return { ok: true, image, env: {} };
    log(`Image "${image}" is not present; pulling it`);
    let pullError = "the pull finished but the image is still missing";
    try {
      const stream = await this.docker.pull(image);
      await new Promise<void>((resolve, reject) => {
        this.docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve()));
      });
    } catch (err) {
      pullError = describeError(err);
      agentLog(`image pull failed for "${image}": ${pullError}`);
    }
    if (await this.imageExists(image)) return { ok: true, image, env: {} };
    return {
      ok: false,
      transient: true,
      message: `Image "${image}" not found locally and could not be pulled: ${pullError}; build it with infra/build-runtimes.sh or pass an image that exists`,
    };
  }

  async imageExists(image: string): Promise<boolean> {
    try {
      await this.docker.getImage(image).inspect();
      return true;
    } catch (err) {
      if (statusCodeOf(err) === 404) return false;
      agentLog(`image inspect failed for "${image}": ${describeError(err)}`);
      return false;
    }
  }

  /** The image id of `image`, or null. Tests use it to prove a layer was reused, not rebuilt. */
  async imageId(image: string): Promise<string | null> {
    try {
      return (await this.docker.getImage(image).inspect()).Id;
    } catch {
      return null;
    }
  }

  /**
   * Installs the requirements into `/opt/rgrid/deps` in a container of the base image (root, host
   * network so a pip index on the host's loopback works), then commits it with PYTHONPATH set.
   */
  private async buildLayer(base: string, requirements: string, tag: string, spec: PrepareSpec): Promise<PrepareResult> {
    // Another agent (or a build that finished a moment ago) may have produced it meanwhile.
    if (await this.imageExists(tag)) return { ok: true, image: tag, env: {} };
    spec.log(`Building dependency layer ${tag} from ${base}`);
    const reqFile = path.join(spec.scratchDir, "requirements.txt");
    await writeFile(reqFile, requirements, { mode: 0o644 });
    const pipArgs = ["install", "--no-cache-dir", "--disable-pip-version-check", "--target", DEPS_DIR, "-r", "/tmp/requirements.txt"];
    if (spec.pipIndexUrl) pipArgs.push("--index-url", spec.pipIndexUrl, "--trusted-host", new URL(spec.pipIndexUrl).hostname);
    const tail: string[] = [];
    const onLine = (_stream: OutputStream, text: string) => {
      spec.log(text);
      tail.push(text);
      if (tail.length > PIP_TAIL_LINES) tail.shift();
    };
    const started = Date.now();
    let container: Docker.Container | undefined;
    try {
      const baseConfig = (await this.docker.getImage(base).inspect()).Config;
      container = await this.docker.createContainer({
        Image: base,
        name: `rgrid-deps-build-${tag.slice("rgrid-deps:".length, "rgrid-deps:".length + 12)}-${randomBytes(3).toString("hex")}`,
        User: "0:0",
        Cmd: ["python", "-m", "pip", ...pipArgs],
        Env: ["PIP_BREAK_SYSTEM_PACKAGES=1", "PYTHONUNBUFFERED=1"],
        Labels: { [MANAGED_LABEL]: "true", [AGENT_LABEL]: this.agentId, "dev.rgrid.role": "deps-build" },
        AttachStdout: true,
        AttachStderr: true,
        HostConfig: { NetworkMode: "host", Binds: [`${reqFile}:/tmp/requirements.txt:ro`] },
      });
      const { exitCode } = await this.attachStartWait(container, LAYER_BUILD_TIMEOUT_MS, 16_384, onLine, undefined);
      if (exitCode !== 0) {
        return {
          ok: false,
          transient: false,
          message: `Installing requirements failed (pip exit ${exitCode ?? "timeout"}): ${tail.join(" | ")}`.slice(0, 4000),
        };
      }
      const changes = [`ENV PYTHONPATH=${DEPS_DIR}`, `USER ${baseConfig.User || "root"}`];
      if (baseConfig.Cmd) changes.push(`CMD ${JSON.stringify(baseConfig.Cmd)}`);
      const [repo, tagName] = tag.split(":") as [string, string];
      await container.commit({ repo, tag: tagName, changes });
      spec.log(`Dependency layer ${tag} built in ${((Date.now() - started) / 1000).toFixed(1)}s`);
      return { ok: true, image: tag, env: {} };
    } catch (err) {
      agentLog(`dependency layer build failed for ${tag}: ${describeError(err)}`);
      return { ok: false, transient: true, message: `Building the dependency layer failed: ${describeError(err)}` };
    } finally {
      if (container) await this.removeContainer(container, "dependency layer build");
    }
  }

  async run(spec: RunSpec): Promise<RunResult> {
    if (spec.sandbox instanceof WarmContainer && spec.sandbox.container && spec.sandbox.workDir === spec.workDir) {
      const warm = await this.runInWarm(spec, spec.sandbox);
      if (warm) return warm;
      // The warm container failed before the script started: run it in a fresh one instead.
    }
    const name = `rgrid-${spec.label.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 60)}-${randomBytes(3).toString("hex")}`;
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer({
        name,
        Image: spec.image,
        Cmd: spec.command,
        User: `${SCRIPT_USER.uid}:${SCRIPT_USER.gid}`,
        WorkingDir: "/work",
        Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
        Labels: { [MANAGED_LABEL]: "true", [AGENT_LABEL]: this.agentId, "dev.rgrid.attempt": spec.label },
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        OpenStdin: false,
        HostConfig: this.hostConfig(spec, spec.workDir),
      });
    } catch (err) {
      agentLog(`container create failed for ${spec.label} (image "${spec.image}"): ${describeError(err)}`);
      return { outcome: { kind: "start_failed", message: `Could not create the container: ${describeError(err)}` }, durationMs: 0 };
    }
    try {
      const r = await this.attachStartWait(container, spec.timeoutSeconds * 1000, spec.maxLineBytes, spec.onLine, spec.signal);
      if (r.startError !== undefined) return { outcome: { kind: "start_failed", message: r.startError }, durationMs: 0 };
      if (r.killedBy === "abort") return { outcome: { kind: "aborted" }, durationMs: r.durationMs };
      if (r.killedBy === "timeout") return { outcome: { kind: "timed_out" }, durationMs: r.durationMs };
      const exitCode = r.exitCode ?? -1;
      let oomKilled = false;
      try {
        oomKilled = (await container.inspect()).State.OOMKilled === true;
      } catch (err) {
        agentLog(`container inspect failed for ${spec.label}: ${describeError(err)}`);
      }
      // 137 is SIGKILL; the agent did not send it, so the kernel's OOM killer did (cgroup v2 does not
      // always set OOMKilled when a child process, not the main one, was killed).
      if (oomKilled || exitCode === 137) return { outcome: { kind: "oom", exitCode }, durationMs: r.durationMs };
      return { outcome: { kind: "exited", exitCode }, durationMs: r.durationMs };
    } finally {
      await this.removeContainer(container, spec.label);
    }
  }

  /**
   * Runs the script by `docker exec` in a warm container, as the script's uid with the task's env,
   * in /work. Returns null when the exec could not even start (the caller falls back to a fresh
   * container). A timeout, an abort or an OOM kill ends the whole container, as on the fresh path,
   * and it is discarded; after a normal exit every process the task left is killed before outputs
   * are collected.
   */
  private async runInWarm(spec: RunSpec, warm: WarmContainer): Promise<RunResult | null> {
    const container = warm.container;
    if (!container) return null;
    let exec: Docker.Exec;
    let stream: NodeJS.ReadWriteStream;
    let started = 0;
    try {
      exec = await container.exec({
        Cmd: spec.command,
        User: `${SCRIPT_USER.uid}:${SCRIPT_USER.gid}`,
        WorkingDir: "/work",
        Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
      });
      if (spec.signal?.aborted) return { outcome: { kind: "aborted" }, durationMs: 0 };
      started = Date.now();
      stream = await exec.start({ hijack: true, stdin: false });
    } catch (err) {
      agentLog(`exec in warm container ${warm.name} failed for ${spec.label}: ${describeError(err)}; using a fresh container`);
      await warm.kill();
      return null;
    }
    const output = pipeScriptOutput(this.docker.modem, stream, spec.maxLineBytes, spec.onLine);
    const killSwitch = new KillSwitch(() => void warm.kill(), spec.signal);
    killSwitch.armTimeout(spec.timeoutSeconds * 1000);
    let exitCode: number | null = null;
    let durationMs = 0;
    try {
      // The stream ends when the script exits, unless a process it left behind still holds its
      // stdout: polling the exec catches that case, as a fresh container would have stopped.
      let poll: NodeJS.Timeout | undefined;
      const exited = new Promise<void>((resolve) => {
        const check = () => {
          exec.inspect().then(
            (info) => (info.Running ? (poll = setTimeout(check, 200)) : resolve()),
            () => (poll = setTimeout(check, 500)),
          );
        };
        poll = setTimeout(check, 200);
      });
      await Promise.race([output.ended, exited]);
      clearTimeout(poll);
      durationMs = Date.now() - started;
      killSwitch.stopClock();
      if (!killSwitch.killedBy) exitCode = await execExitCode(exec).catch(() => null);
      // No process of the task may outlive its script: outputs are then read from a quiet /work.
      await warm.settle();
      await output.drain();
    } finally {
      killSwitch.dispose();
    }
    const killedBy = killSwitch.killedBy;
    if (killedBy === "abort") return { outcome: { kind: "aborted" }, durationMs };
    if (killedBy === "timeout") return { outcome: { kind: "timed_out" }, durationMs };
    const code = exitCode ?? -1;
    // 137 is SIGKILL, which the agent did not send: the kernel's OOM killer did. The container's
    // memory accounting is suspect after that, so it is not reused.
    if (code === 137) {
      await warm.kill();
      return { outcome: { kind: "oom", exitCode: code }, durationMs };
    }
    return { outcome: { kind: "exited", exitCode: code }, durationMs };
  }

  /**
   * Attaches (before start, so no output is missed), starts, and waits with a wall-clock limit.
   * Output is demultiplexed into stdout/stderr and split into lines.
   */
  private async attachStartWait(
    container: Docker.Container,
    timeoutMs: number,
    maxLineBytes: number,
    onLine: (stream: OutputStream, text: string) => void,
    signal: AbortSignal | undefined,
  ): Promise<{ exitCode: number | null; durationMs: number; killedBy: "timeout" | "abort" | null; startError?: string }> {
    let attached: NodeJS.ReadWriteStream;
    try {
      attached = await container.attach({ stream: true, stdout: true, stderr: true });
    } catch (err) {
      agentLog(`container attach failed for ${container.id.slice(0, 12)}: ${describeError(err)}`);
      return { exitCode: null, durationMs: 0, killedBy: null, startError: `Could not attach to the container: ${describeError(err)}` };
    }
    const output = pipeScriptOutput(this.docker.modem, attached, maxLineBytes, onLine);
    const killSwitch = new KillSwitch(() => {
      container.kill().catch((err: unknown) => {
        // 409: already stopped, which is what we wanted.
        if (statusCodeOf(err) !== 409) agentLog(`container kill failed for ${container.id.slice(0, 12)}: ${describeError(err)}`);
      });
    }, signal);
    const started = Date.now();
    try {
      if (!killSwitch.killedBy) {
        try {
          await container.start();
        } catch (err) {
          agentLog(`container start failed for ${container.id.slice(0, 12)}: ${describeError(err)}`);
          return { exitCode: null, durationMs: 0, killedBy: null, startError: `Could not start the container: ${describeError(err)}` };
        }
      }
      killSwitch.armTimeout(timeoutMs);
      let exitCode: number | null = null;
      try {
        const waited = (await container.wait()) as { StatusCode?: number };
        exitCode = typeof waited.StatusCode === "number" ? waited.StatusCode : null;
      } catch (err) {
        agentLog(`container wait failed for ${container.id.slice(0, 12)}: ${describeError(err)}`);
      }
      const durationMs = Date.now() - started;
      // The attach stream ends just after the exit; give it a moment so the last lines are not lost.
      await output.drain();
      return { exitCode, durationMs, killedBy: killSwitch.killedBy };
    } finally {
      killSwitch.dispose();
    }
  }

  private async removeContainer(container: Docker.Container, context: string): Promise<void> {
    try {
      await container.remove({ force: true, v: true });
    } catch (err) {
      if (statusCodeOf(err) !== 404) agentLog(`container remove failed for ${context}: ${describeError(err)}`);
    }
  }

  /**
   * Makes the work folder writable by the script's uid. As root the agent hands it over with chown;
   * otherwise it opens the permissions, since it cannot chown.
   */
  async adoptWorkDir(dir: string): Promise<void> {
    const isRoot = process.getuid?.() === 0;
    const walk = async (p: string): Promise<void> => {
      if (isRoot) await chown(p, SCRIPT_USER.uid, SCRIPT_USER.gid);
      else await chmod(p, 0o777);
      for (const entry of await readdir(p, { withFileTypes: true })) {
        const child = path.join(p, entry.name);
        if (entry.isDirectory()) await walk(child);
        else if (entry.isFile()) {
          if (isRoot) await chown(child, SCRIPT_USER.uid, SCRIPT_USER.gid);
          else await chmod(child, 0o666);
        }
      }
    };
    await walk(dir);
  }

  /**
   * Removes a scratch folder. When the agent is not root, files the script created (owned by uid
   * 1000) may not be removable by it; a short container as that uid empties the work folder first.
   */
  async removeScratch(dir: string, image?: string): Promise<void> {
    try {
      await rm(dir, { recursive: true, force: true });
      return;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if ((code !== "EACCES" && code !== "EPERM") || !image) {
        agentLog(`scratch removal failed: ${describeError(err)}`);
        return;
      }
    }
    let container: Docker.Container | undefined;
    try {
      container = await this.docker.createContainer({
        Image: image,
        User: `${SCRIPT_USER.uid}:${SCRIPT_USER.gid}`,
        Cmd: ["find", "/scratch", "-mindepth", "1", "-delete"],
        Labels: { [MANAGED_LABEL]: "true", [AGENT_LABEL]: this.agentId, "dev.rgrid.role": "cleanup" },
        HostConfig: { Binds: [`${path.join(dir, "work")}:/scratch:rw`], NetworkMode: "none", CapDrop: ["ALL"] },
      });
      await container.start();
      await container.wait();
      await rm(dir, { recursive: true, force: true });
    } catch (err) {
      agentLog(`scratch removal through a cleanup container failed: ${describeError(err)}`);
    } finally {
      if (container) await this.removeContainer(container, "scratch cleanup");
    }
  }
}

/** A writable that feeds demultiplexed bytes into a line splitter. */

/** True when a process with this pid exists on this host (EPERM: it exists but is not ours). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === "EPERM";
  }
}
