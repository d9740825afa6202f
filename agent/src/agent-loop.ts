import { abortableSleep } from "../../shared/src/abortable-sleep";
import type { Task } from "../../shared/src/agent-protocol";
import { ApiUnreachableError, CredentialRejectedError, type ControlPlane, StaleAttemptError } from "./control-plane";
import { agentLog, describeError } from "./log";
import { runTask, type TaskSettings } from "./run-task";
import type { ContainerRuntime } from "./runtime/types";

const HEARTBEAT_MS = 5000;
const LEASE_WAIT_MS = 20_000;

interface Running {
  task: Task;
  abort: AbortController;
  done: Promise<void>;
  /** True while the script is being prepared or runs; false once it only collects, uploads and reports. */
  holdsSlot: boolean;
}

/** What ends the loop: a drained shutdown (exit 0) or a fatal refusal (exit 1). */
export type LoopEnd = { kind: "drained" } | { kind: "fatal"; message: string };

/**
 * Leases work up to the free slots, runs tasks concurrently, heartbeats their leases, and kills a
 * task at once when its lease is revoked. An unreachable control plane is retried with backoff and
 * logged once per outage.
 */
export class AgentLoop {
  private readonly running = new Map<string, Running>();
  private readonly stopLeasing = new AbortController();
  private stopping = false;
  private fatal: string | null = null;
  private outageSince: number | null = null;
  private wake: (() => void) | null = null;
  private draining: Promise<void> | null = null;

  constructor(
    private readonly api: ControlPlane,
    private readonly runtime: ContainerRuntime,
    private readonly slots: number,
    private readonly settings: TaskSettings,
  ) {}

  /** Runs until `shutdown()` drains it or a 401 makes going on pointless. */
  async run(): Promise<LoopEnd> {
    const heartbeat = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
    try {
      await this.leaseLoop();
      // Keep heartbeating while a shutdown drains: the grace period (60 s by default) outlasts a
      // lease (30 s), and a lapsed lease would fence the very tasks the drain waits for.
      if (this.draining) await this.draining;
    } finally {
      clearInterval(heartbeat);
    }
    if (this.fatal !== null) {
      await this.abortAll();
      return { kind: "fatal", message: this.fatal };
    }
    return { kind: "drained" };
  }

  /**
   * Stops leasing; running tasks get `graceMs` to finish, then are killed and handed back, so the
   * control plane queues them again at once (without counting an automatic retry).
   */
  shutdown(graceMs: number): Promise<void> {
    this.draining ??= this.drain(graceMs);
    return this.draining;
  }

  private async drain(graceMs: number): Promise<void> {
    this.stopping = true;
    this.stopLeasing.abort();
    this.wake?.();
    // The aborted long-poll may still be parked on the server: retire it, so it cannot take work
    // that would never arrive here (it would sit leased until the lease lapsed).
    await this.api.lease({ free_slots: 0, wait_ms: 0, holding: this.holding() }).catch((err: unknown) => {
      agentLog(`could not retire the pending lease request: ${describeError(err)}`);
    });
    if (this.running.size > 0) {
      agentLog(`shutting down: waiting up to ${Math.round(graceMs / 1000)}s for ${this.running.size} running task(s)`);
      const all = Promise.all([...this.running.values()].map((r) => r.done));
      const timedOut = await Promise.race([all.then(() => false), abortableSleep(graceMs).then(() => true)]);
      if (timedOut) {
        agentLog(`grace period over: stopping ${this.running.size} task(s) and handing them back`);
        const unfinished = [...this.running.values()].map((r) => r.task);
        await this.abortAll();
        await Promise.all(unfinished.map((task) => this.handBack(task)));
      }
    }
  }

  /**
   * Gives an attempt back to the control plane after its container was stopped. Best effort: if
   * the call fails the lease simply lapses and the task is retried then; a 409 means it had
   * already moved on.
   */
  private async handBack(task: Task): Promise<void> {
    const label = `${task.execution_id}-${task.attempt}`;
    try {
      await this.api.release(task.execution_id, task.attempt);
      agentLog(`attempt ${label} handed back`);
    } catch (err) {
      if (err instanceof StaleAttemptError) return;
      agentLog(`could not hand back attempt ${label} (${describeError(err)}); its lease will lapse and it will be retried`);
    }
  }

  /**
   * The attempts running here: heartbeats extend their leases, and lease requests list them so the
   * control plane can requeue a lease whose response never arrived.
   */
  private holding(): { execution_id: string; attempt: number }[] {
    return [...this.running.values()].map((r) => ({ execution_id: r.task.execution_id, attempt: r.task.attempt }));
  }

  /** Attempts whose script is being prepared or runs; those only reporting do not take a slot. */
  private busySlots(): number {
    return [...this.running.values()].filter((r) => r.holdsSlot).length;
  }

  private async leaseLoop(): Promise<void> {
    let backoff = 1000;
    while (!this.stopping && this.fatal === null) {
      // A slot frees when its script is done: the next task downloads and starts while the last one
      // uploads and reports. Attempts still reporting are capped at another `slots`.
      const free = Math.min(this.slots - this.busySlots(), 2 * this.slots - this.running.size);
      if (free <= 0) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = null;
        continue;
      }
      try {
        const { tasks } = await this.api.lease(
          { free_slots: free, wait_ms: LEASE_WAIT_MS, holding: this.holding() },
          this.stopLeasing.signal,
        );
        this.reachable();
        backoff = 1000;
        for (const task of tasks) this.start(task);
      } catch (err) {
        if (this.stopping) break;
        if (err instanceof CredentialRejectedError) {
          this.fail();
          break;
        }
        if (err instanceof ApiUnreachableError) this.unreachable(err);
        else agentLog(`lease failed: ${describeError(err)}`);
        await abortableSleep(backoff, this.stopLeasing.signal);
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }

  private start(task: Task): void {
    const key = `${task.execution_id}#${task.attempt}`;
    if (this.running.has(key)) return;
    const abort = new AbortController();
    const busy = this.busySlots() + 1;
    const finishing = this.running.size + 1 - busy;
    agentLog(
      `attempt ${task.execution_id}-${task.attempt} leased (${busy}/${this.slots} slots busy${finishing > 0 ? `, ${finishing} finishing` : ""})`,
    );
    const entry: Running = { task, abort, done: Promise.resolve(), holdsSlot: true };
    const onScriptDone = () => {
      if (!entry.holdsSlot) return;
      entry.holdsSlot = false;
      this.wake?.();
    };
    entry.done = runTask(task, this.api, this.runtime, this.settings, abort.signal, { onScriptDone })
      .catch((err: unknown) => {
        if (err instanceof CredentialRejectedError) this.fail();
        else agentLog(`attempt ${task.execution_id}-${task.attempt} crashed in the agent: ${describeError(err)}`);
      })
      .finally(() => {
        this.running.delete(key);
        this.wake?.();
      });
    this.running.set(key, entry);
  }

  private async heartbeat(): Promise<void> {
    if (this.running.size === 0 || this.fatal !== null) return;
    try {
      const { revoked } = await this.api.heartbeat({ leases: this.holding() });
      this.reachable();
      for (const r of revoked) {
        const entry = this.running.get(`${r.execution_id}#${r.attempt}`);
        if (!entry || entry.abort.signal.aborted) continue;
        agentLog(`attempt ${r.execution_id}-${r.attempt} revoked (${r.reason}): killing it and dropping its results`);
        entry.abort.abort();
      }
    } catch (err) {
      if (err instanceof CredentialRejectedError) this.fail();
      else if (err instanceof ApiUnreachableError) this.unreachable(err);
      else agentLog(`heartbeat failed: ${describeError(err)}`);
    }
  }

  private async abortAll(): Promise<void> {
    for (const r of this.running.values()) r.abort.abort();
    await Promise.race([Promise.all([...this.running.values()].map((r) => r.done)), abortableSleep(15_000)]);
  }

  private fail(): void {
    if (this.fatal !== null) return;
    this.fatal =
      "The control plane refused this worker's credential (401): it may have been revoked. Delete credential.json in the agent state dir and start the agent with a fresh RGRID_REGISTRATION_TOKEN.";
    this.stopLeasing.abort();
    this.wake?.();
  }

  private unreachable(err: unknown): void {
    if (this.outageSince !== null) return;
    this.outageSince = Date.now();
    agentLog(`control plane unreachable (${describeError(err)}); retrying with backoff`);
  }

  private reachable(): void {
    if (this.outageSince === null) return;
    agentLog(`control plane reachable again after ${Math.round((Date.now() - this.outageSince) / 1000)}s`);
    this.outageSince = null;
  }
}
