import { randomBytes } from "node:crypto";
import { chmod, chown, mkdir, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type Docker from "dockerode";
import { agentLog, describeError } from "../log";
import type { Sandbox, SandboxShape } from "./types";

/** Scripts run as this uid:gid, which owns `/work` in the runtime images. */
export const SCRIPT_USER = { uid: 1000, gid: 1000 } as const;
/**
 * A warm container's first process (`sleep` under docker-init) runs as `nobody`, not as the
 * script's uid: a script can then neither signal nor ptrace it, so nothing a task starts can hide
 * in it and watch the next task.
 */
const HOLDER_USER = "65534:65534";

/** Labels on every container the agent creates, so a restarted agent finds and removes its leftovers. */
export const MANAGED_LABEL = "dev.rgrid.managed";
export const AGENT_LABEL = "dev.rgrid.agent";
export const ROLE_LABEL = "dev.rgrid.role";
/** On warm containers: the host and process of the agent that owns them, so another agent can tell when it died. */
export const OWNER_HOST_LABEL = "dev.rgrid.owner-host";
export const OWNER_PID_LABEL = "dev.rgrid.owner-pid";

/**
 * Run as the script's uid after every task in a reused container. It kills every process of that
 * uid (`kill -1` reaches all of them in the container's pid namespace, never the holder or this
 * shell) until none is left, then empties the scratch places outside /work: /tmp, /dev/shm, POSIX
 * message queues and System V IPC. It exits non-zero when anything survives, and the container is
 * then discarded instead of reused.
 */
const SETTLE_SCRIPT = `
i=0
while :; do
  kill -9 -1 2>/dev/null
  alive=0
  for d in /proc/[0-9]*; do
    p=\${d#/proc/}
    if [ "$p" != "$$" ] && kill -0 "$p" 2>/dev/null; then alive=1; break; fi
  done
  [ $alive = 0 ] && break
  i=$((i+1))
  [ $i -gt 200 ] && exit 3
done
find /tmp /dev/shm /dev/mqueue -mindepth 1 -delete 2>/dev/null
ipcrm -a 2>/dev/null
for d in /tmp /dev/shm /dev/mqueue; do
  for f in "$d"/* "$d"/.[!.]* "$d"/..?*; do [ -e "$f" ] || [ -L "$f" ] && exit 4; done
done
exit 0
`;

/** How a task's container is treated after it: wiped and reused, or thrown away and replaced. */
export type WarmMode = "reuse" | "discard";

export interface WarmPoolOptions {
  /** Warm containers kept at most (the agent asks for one per slot, plus a spare). */
  capacity: number;
  /** What to warm at start-up: the common runtime with the default limits. */
  shapes: SandboxShape[];
  mode: WarmMode;
  /** Host folder holding each warm container's /work. */
  rootDir: string;
  /** This agent's identity label value. */
  agentId: string;
  /** A reused container is replaced after this many tasks. */
  maxUses?: number;
  /** The hardened HostConfig of a normal run, for this shape and work folder. */
  hostConfig: (shape: SandboxShape, workDir: string) => Docker.HostConfig;
}

type State = "starting" | "idle" | "busy" | "cleaning" | "dead";

/** Key of a shape: a warm container serves only tasks whose image and limits are exactly its own. */
export function shapeKey(s: SandboxShape): string {
  return `${s.image}|${s.memoryMb}|${s.cpus}|${s.network}`;
}

/** One warm container and its /work folder on the host. */
export class WarmContainer implements Sandbox {
  state: State = "starting";
  uses = 0;
  /** When it last became idle: the one idle longest is the first replaced by another shape. */
  idleSince = 0;
  /** Set when the container cannot be trusted clean (timeout, OOM, a failed settle): it is discarded. */
  poisoned = false;
  container: Docker.Container | null = null;
  /** The container's cgroup.procs on the host, when readable, and the pids of its holder processes. */
  procsFile: string | null = null;
  holderPids: Set<string> | null = null;
  private released = false;

  constructor(
    private readonly pool: WarmPool,
    readonly name: string,
    readonly shape: SandboxShape,
    readonly workDir: string,
  ) {}

  get key(): string {
    return shapeKey(this.shape);
  }

  /** Marks the container as not reusable and kills it at once, which ends whatever runs in it. */
  async kill(): Promise<void> {
    this.poisoned = true;
    try {
      await this.container?.kill();
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status !== 409 && status !== 404) agentLog(`warm container kill failed for ${this.name}: ${describeError(err)}`);
    }
  }

  /**
   * After the script exited: no process of the task may live on (a fresh container would have
   * stopped), so outputs are collected from a quiet /work. Reuse mode kills the task's processes
   * and wipes /tmp and friends; discard mode kills the container.
   */
  async settle(): Promise<void> {
    if (this.pool.mode === "discard" || this.poisoned || !this.container) {
      await this.kill();
      return;
    }
    // Nothing but the holder left in the container's cgroup: no process of the task survives, and
    // none can start (only an exec could). /tmp and the rest are wiped at release.
    if (await this.onlyHolderLeft()) return;
    const code = await execQuiet(this.container, ["sh", "-c", SETTLE_SCRIPT]);
    if (code !== 0) {
      agentLog(`warm container ${this.name} did not settle (exit ${code ?? "unknown"}); discarding it`);
      await this.kill();
    }
  }

  /** True when the host shows only the holder's processes in the container; false when unsure. */
  async onlyHolderLeft(): Promise<boolean> {
    if (!this.procsFile || !this.holderPids) return false;
    try {
      const pids = (await readFile(this.procsFile, "utf8")).split("\n").filter(Boolean);
      return pids.every((p) => this.holderPids?.has(p));
    } catch {
      return false;
    }
  }

  release(): Promise<void> {
    if (this.released) return Promise.resolve();
    this.released = true;
    return this.pool.giveBack(this);
  }

  /** Resets per-task bookkeeping when the container goes back to idle. */
  rearm(): void {
    this.released = false;
  }
}

/**
 * Hardened containers started ahead of tasks, so a task costs a `docker exec` (≈0.1 s) instead of a
 * create-start-wait-remove cycle (≈0.7 s). A container is created with exactly the task path's
 * HostConfig for its shape (see `DockerRuntime.hostConfig`) and serves only tasks of that shape.
 */
export class WarmPool {
  private readonly all = new Set<WarmContainer>();
  private readonly waiters = new Map<string, ((c: WarmContainer | null) => void)[]>();
  private readonly failedShapes = new Set<string>();
  private closed = false;

  constructor(
    private readonly docker: Docker,
    private readonly opts: WarmPoolOptions,
  ) {}

  get mode(): WarmMode {
    return this.opts.mode;
  }

  /** Counts by state, for logs and tests. */
  stats(): Record<State, number> {
    const s: Record<State, number> = { starting: 0, idle: 0, busy: 0, cleaning: 0, dead: 0 };
    for (const c of this.all) s[c.state]++;
    return s;
  }

  /** Fills the pool up to capacity with the configured shapes, round robin. */
  fill(): void {
    const shapes = this.opts.shapes.filter((s) => !this.failedShapes.has(shapeKey(s)));
    if (shapes.length === 0) return;
    let i = 0;
    while (!this.closed && this.live() < this.opts.capacity) {
      this.spawn(shapes[i++ % shapes.length] as SandboxShape);
    }
  }

  /**
   * An idle container of this shape, or one that becomes idle within `waitMs` (being started or
   * wiped); null otherwise.
   */
  async claim(shape: SandboxShape, waitMs = 2000): Promise<WarmContainer | null> {
    if (this.closed) return null;
    const key = shapeKey(shape);
    const idle = [...this.all].find((c) => c.state === "idle" && c.key === key);
    if (idle) return this.take(idle);
    // Worth waiting only for a container about to be ready: one starting, or one being wiped after
    // its task. A busy one may run for hours.
    const coming = [...this.all].filter((c) => c.key === key && (c.state === "starting" || c.state === "cleaning")).length;
    if (coming <= (this.waiters.get(key)?.length ?? 0)) return null;
    return new Promise<WarmContainer | null>((resolve) => {
      const list = this.waiters.get(key) ?? [];
      const timer = setTimeout(() => {
        const l = this.waiters.get(key) ?? [];
        const at = l.indexOf(done);
        if (at >= 0) l.splice(at, 1);
        resolve(null);
      }, waitMs);
      const done = (c: WarmContainer | null) => {
        clearTimeout(timer);
        resolve(c);
      };
      list.push(done);
      this.waiters.set(key, list);
    });
  }

  /**
   * A task of a shape no warm container has (a dependency layer, other limits) ran fresh: warm one
   * for the next such task, replacing the container idle the longest when the pool is full.
   */
  learn(shape: SandboxShape): void {
    const key = shapeKey(shape);
    if (this.closed || this.failedShapes.has(key)) return;
    if ([...this.all].some((c) => c.key === key && c.state !== "dead")) return;
    if (this.live() >= this.opts.capacity) {
      const victim = [...this.all].filter((c) => c.state === "idle").sort((a, b) => a.idleSince - b.idleSince)[0];
      if (!victim) return;
      void this.discard(victim);
    }
    this.spawn(shape);
  }

  /** Called by `WarmContainer.release`: wipe and keep, or discard and replace. */
  async giveBack(c: WarmContainer): Promise<void> {
    c.uses++;
    if (c.state === "busy") c.state = "cleaning";
    const reusable = this.opts.mode === "reuse" && !c.poisoned && !this.closed && c.uses < (this.opts.maxUses ?? 200);
    const settled = reusable && c.container !== null && (await execQuiet(c.container, ["sh", "-c", SETTLE_SCRIPT])) === 0;
    if (settled && (await this.wipeWork(c))) {
      c.rearm();
      this.ready(c);
      return;
    }
    await this.discard(c);
    // The replacement has the same shape: what the last task needed is likely what the next needs.
    if (this.opts.mode === "reuse") this.spawn(c.shape);
  }

  /** Removes every warm container (shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    for (const list of this.waiters.values()) for (const w of list.splice(0)) w(null);
    await Promise.all([...this.all].map((c) => this.discard(c)));
  }

  private live(): number {
    return [...this.all].filter((c) => c.state !== "dead").length;
  }

  private take(c: WarmContainer): WarmContainer {
    c.state = "busy";
    // Discard mode: the replacement starts now, while this task runs.
    if (this.opts.mode === "discard") this.spawn(c.shape, true);
    return c;
  }

  private ready(c: WarmContainer): void {
    if (c.state === "dead") return;
    if (this.closed) {
      void this.discard(c);
      return;
    }
    c.state = "idle";
    c.idleSince = Date.now();
    const waiter = this.waiters.get(c.key)?.shift();
    if (waiter) waiter(this.take(c));
  }

  private spawn(shape: SandboxShape, extra = false): void {
    if (this.closed || (!extra && this.live() >= this.opts.capacity)) return;
    const name = `rgrid-warm-${randomBytes(5).toString("hex")}`;
    const c = new WarmContainer(this, name, shape, path.join(this.opts.rootDir, name, "work"));
    this.all.add(c);
    void this.create(c).then((ok) => {
      if (ok) this.ready(c);
      else {
        void this.discard(c);
        // Wake waiters for this shape so they fall back to a fresh container at once.
        for (const w of this.waiters.get(c.key)?.splice(0) ?? []) w(null);
      }
    });
  }

  private async create(c: WarmContainer): Promise<boolean> {
    try {
      await mkdir(c.workDir, { recursive: true, mode: 0o755 });
      if (process.getuid?.() === 0) await chown(c.workDir, SCRIPT_USER.uid, SCRIPT_USER.gid);
      else await chmod(c.workDir, 0o777);
      c.container = await this.docker.createContainer({
        name: c.name,
        Image: c.shape.image,
        Cmd: ["sleep", "infinity"],
        User: HOLDER_USER,
        WorkingDir: "/work",
        Labels: {
          [MANAGED_LABEL]: "true",
          [AGENT_LABEL]: this.opts.agentId,
          [ROLE_LABEL]: "warm",
          [OWNER_HOST_LABEL]: os.hostname(),
          [OWNER_PID_LABEL]: String(process.pid),
        },
        Tty: false,
        OpenStdin: false,
        HostConfig: { ...this.opts.hostConfig(c.shape, c.workDir), Init: true },
      });
      await c.container.start();
      await this.findHolder(c);
      return !this.closed;
    } catch (err) {
      const key = c.key;
      if (!this.failedShapes.has(key)) {
        agentLog(`could not start a warm container of ${c.shape.image}: ${describeError(err)}; tasks use fresh containers`);
      }
      // An image that is absent stops the warming of its shape until a task pulls it.
      if ((err as { statusCode?: number }).statusCode === 404) this.failedShapes.add(key);
      return false;
    }
  }

  /**
   * Records the container's cgroup.procs and the holder's pids (docker-init and sleep), so that
   * `onlyHolderLeft` can tell from the host, without an exec, that a task left no process behind.
   * Cgroup v1 or v2, cgroupfs or systemd driver; when none is readable, every task is settled by exec.
   */
  private async findHolder(c: WarmContainer): Promise<void> {
    const id = c.container?.id;
    if (!id) return;
    const candidates = [
      `/sys/fs/cgroup/pids/docker/${id}/cgroup.procs`,
      `/sys/fs/cgroup/docker/${id}/cgroup.procs`,
      `/sys/fs/cgroup/pids/system.slice/docker-${id}.scope/cgroup.procs`,
      `/sys/fs/cgroup/system.slice/docker-${id}.scope/cgroup.procs`,
    ];
    for (const file of candidates) {
      for (let i = 0; i < 20; i++) {
        let pids: string[];
        try {
          pids = (await readFile(file, "utf8")).split("\n").filter(Boolean);
        } catch {
          break;
        }
        if (pids.length === 2) {
          c.procsFile = file;
          c.holderPids = new Set(pids);
          return;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }

  /** Empties the host side of /work; false when something could not be removed. */
  private async wipeWork(c: WarmContainer): Promise<boolean> {
    try {
      for (const entry of await readdir(c.workDir)) await rm(path.join(c.workDir, entry), { recursive: true, force: true });
      if ((await readdir(c.workDir)).length === 0) return true;
    } catch (err) {
      agentLog(`could not empty /work of ${c.name}: ${describeError(err)}`);
    }
    if (!c.container) return false;
    // Not root: files the script made may be removable only by its uid.
    const code = await execQuiet(c.container, ["find", "/work", "-mindepth", "1", "-delete"]);
    return code === 0 && (await readdir(c.workDir).catch(() => ["?"])).length === 0;
  }

  private async discard(c: WarmContainer): Promise<void> {
    if (c.state === "dead") return;
    c.state = "dead";
    this.all.delete(c);
    try {
      await c.container?.remove({ force: true, v: true });
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404)
        agentLog(`warm container remove failed for ${c.name}: ${describeError(err)}`);
    }
    await rm(path.dirname(c.workDir), { recursive: true, force: true }).catch(() => undefined);
  }

  /** Lets a task's shape be warmed again once its image exists (a task just pulled it). */
  forgetFailure(shape: SandboxShape): void {
    this.failedShapes.delete(shapeKey(shape));
  }
}

/** Runs `cmd` as the script's uid in `container`, output discarded; its exit code, or null. */
export async function execQuiet(container: Docker.Container, cmd: string[]): Promise<number | null> {
  try {
    const exec = await container.exec({
      Cmd: cmd,
      User: `${SCRIPT_USER.uid}:${SCRIPT_USER.gid}`,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
    });
    const stream = await exec.start({ hijack: true, stdin: false });
    await new Promise<void>((resolve) => {
      stream.on("end", resolve);
      stream.on("close", resolve);
      stream.on("error", resolve);
      stream.resume();
    });
    return await execExitCode(exec);
  } catch (err) {
    agentLog(`exec in ${container.id.slice(0, 12)} failed: ${describeError(err)}`);
    return null;
  }
}

/** The exit code of a finished exec; its stream can end a moment before the engine records the exit. */
export async function execExitCode(exec: Docker.Exec): Promise<number | null> {
  for (let i = 0; i < 50; i++) {
    const info = await exec.inspect();
    if (!info.Running) return typeof info.ExitCode === "number" ? info.ExitCode : null;
    await new Promise((r) => setTimeout(r, 10));
  }
  return null;
}
