/**
 * Parked long-poll requests. Waking is a hint, not a handoff: each woken poller re-checks the
 * queue inside a transaction, so a spurious wake costs one query and never double-leases.
 */
export class LeaseWaiters {
  private readonly pending = new Set<() => void>();

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
