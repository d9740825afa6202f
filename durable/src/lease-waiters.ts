/**
 * Parked long-poll requests. Waking is a hint, not a handoff: each woken poller re-checks the
 * queue inside a transaction, so a spurious wake costs one query and never double-leases.
 */
export class LeaseWaiters {
  private readonly pending = new Set<() => void>();
  /** The parked long-poll of each worker, so a newer call from the same worker can retire it. */
  private readonly parked = new Map<string, { retired: boolean }>();

  /**
   * Registers a worker's long-poll, retiring (and waking) the one it parked before: an agent polls
   * one call at a time, so an older parked call was abandoned (the agent gave up on it, stopped, or
   * lost it to a restart) and must not take work that nobody would receive.
   */
  enter(workerId: string): { retired: boolean } {
    const previous = this.parked.get(workerId);
    if (previous) {
      previous.retired = true;
      this.wakeAll();
    }
    const ticket = { retired: false };
    this.parked.set(workerId, ticket);
    return ticket;
  }

  leave(workerId: string, ticket: { retired: boolean }): void {
    if (this.parked.get(workerId) === ticket) this.parked.delete(workerId);
  }

  wait(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.pending.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.pending.add(done);
    });
  }

  wakeAll(): void {
    for (const wake of [...this.pending]) wake();
  }
}
