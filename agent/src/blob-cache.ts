import { constants } from "node:fs";
import { copyFile, mkdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";

/**
 * Small task files (scripts, inputs) kept by sha256 under the state dir, so the 200 tasks of a
 * batch download their shared script once. Entries are verified on the way in (the download checks
 * the hash) and copied out, never linked, so a script that edits its copy cannot touch the cache.
 * Oldest entries go first once the cache passes its byte budget.
 */
export class BlobCache {
  private readonly entries = new Map<string, number>();
  private bytes = 0;
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(
    private readonly dir: string,
    private readonly maxBytes = 256 * 1024 * 1024,
    private readonly maxEntryBytes = 16 * 1024 * 1024,
  ) {}

  /**
   * Places the blob `sha256` at `dest`: copied from the cache, or fetched by `download(to)` (which
   * must verify the hash) and then cached when small enough.
   */
  async place(sha256: string, dest: string, download: (to: string) => Promise<void>): Promise<void> {
    const pending = this.inFlight.get(sha256);
    if (pending) await pending.catch(() => undefined);
    const cached = path.join(this.dir, sha256);
    if (this.entries.has(sha256)) {
      try {
        await copyFile(cached, dest, constants.COPYFILE_FICLONE);
        // Refresh its place in the eviction order.
        const size = this.entries.get(sha256) ?? 0;
        this.entries.delete(sha256);
        this.entries.set(sha256, size);
        return;
      } catch {
        this.forget(sha256);
      }
    }
    const fetching = (async () => {
      await download(dest);
      const { size } = await stat(dest);
      if (size > this.maxEntryBytes || this.entries.has(sha256)) return;
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      const tmp = `${cached}.${process.pid}.${Math.random().toString(36).slice(2)}`;
      await copyFile(dest, tmp, constants.COPYFILE_FICLONE);
      await rename(tmp, cached);
      this.entries.set(sha256, size);
      this.bytes += size;
      await this.evict();
    })();
    this.inFlight.set(sha256, fetching);
    try {
      await fetching;
    } finally {
      if (this.inFlight.get(sha256) === fetching) this.inFlight.delete(sha256);
    }
  }

  private async evict(): Promise<void> {
    for (const [sha] of this.entries) {
      if (this.bytes <= this.maxBytes) return;
      this.forget(sha);
      await rm(path.join(this.dir, sha), { force: true });
    }
  }

  private forget(sha256: string): void {
    const size = this.entries.get(sha256);
    if (size === undefined) return;
    this.entries.delete(sha256);
    this.bytes -= size;
  }
}
