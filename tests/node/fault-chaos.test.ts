import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exactlyOnceReport, sleep, startFaultStack, waitFor, type FaultAgent, type FaultStack } from "../helpers/fault-stack";

// 100 executions while agents are killed (kill -9) and restarted at random: each completes
// exactly once. Bounded for a shared two-core machine: trivial scripts, 3 agents with 3 slots,
// four kills. Leases are 10 s here, so each kill costs about 11 s before its work moves.

let fs: FaultStack;
beforeAll(async () => {
  fs = await startFaultStack({ env: { RGRID_LEASE_MS: "10000" } });
});
afterAll(async () => {
  await fs?.stop();
});

const script =
  "import sys, time, random\ntime.sleep(random.uniform(0.2, 1.5))\nopen('out.txt', 'w').write(sys.argv[1])\nprint('ran', sys.argv[1], flush=True)\n";

describe("fault injection: agents killed at random", () => {
  it("completes each of 100 executions exactly once while agents are killed and restarted", async () => {
    const live = new Map<string, FaultAgent>();
    for (const name of ["chaos-0", "chaos-1", "chaos-2"]) live.set(name, await fs.startAgent(name, 3));
    const sha = await fs.uploadBlob(script);
    const { batch_id: batch } = await fs.api<{ batch_id: string }>("POST", "/api/v1/batches", { parallel: 100, total: 100 });
    const { executions } = await fs.api<{ executions: { id: string }[] }>("POST", `/api/v1/batches/${batch}/executions`, {
      executions: Array.from({ length: 100 }, (_, i) => ({
        idempotency_key: `chaos-${batch}-${i}`,
        script: { path: "work.py", sha256: sha },
        args: [String(i)],
      })),
    });
    const ids = executions.map((e) => e.id);
    const counts = async () => (await fs.api<{ counts: Record<string, number> }>("GET", `/api/v1/batches/${batch}`)).counts;
    const finished = async () => {
      const c = await counts();
      return (c.succeeded ?? 0) + (c.failed ?? 0) + (c.timed_out ?? 0) + (c.cancelled ?? 0);
    };

    const started = Date.now();
    let kills = 0;
    for (let round = 0; round < 4; round++) {
      await sleep(3000 + Math.random() * 3000);
      const names = [...live.keys()];
      const name = names[Math.floor(Math.random() * names.length)] ?? "chaos-0";
      const victim = live.get(name);
      victim?.signal("SIGKILL");
      await victim?.exited;
      kills += 1;
      live.set(name, await fs.startAgent(name, 3)); // same state dir: same worker, cleans up its leftovers
    }
    await waitFor(
      "all 100 to finish",
      async () => (await finished()) === 100,
      300_000,
      async () => JSON.stringify(await counts()),
    );

    const report = await exactlyOnceReport(fs, ids);
    expect(report.size).toBe(100);
    let retried = 0;
    for (const [i, id] of ids.entries()) {
      const r = report.get(id);
      expect(r?.terminalEvents, id).toBe(1);
      // Attempts are numbered 1..n; only the last is final; earlier ones failed (worker lost) or were handed back.
      expect(
        r?.attempts.map((a) => Number(a.split(":")[0])),
        id,
      ).toEqual(Array.from({ length: r?.attempt ?? 0 }, (_, k) => k + 1));
      expect(r?.attempts.at(-1), id).toBe(`${r?.attempt}:${r?.status}`);
      for (const earlier of r?.attempts.slice(0, -1) ?? []) expect(earlier, id).toMatch(/:(failed|released)$/);
      if ((r?.attempt ?? 1) > 1) retried += 1;
      if (r?.status === "succeeded") {
        expect(r.artifacts, id).toEqual(["out.txt"]);
        const { artifacts } = await fs.api<{ artifacts: { download_url: string }[] }>("GET", `/api/v1/executions/${id}/artifacts`);
        expect(await (await fetch(artifacts[0]?.download_url ?? "")).text(), id).toBe(String(i));
      } else {
        // Only an execution whose worker was lost on all three attempts may fail, and it says so.
        expect(r, id).toMatchObject({ status: "failed", attempt: 3 });
      }
    }
    const succeeded = [...report.values()].filter((r) => r.status === "succeeded").length;
    console.log(
      `100 executions, ${kills} kills: ${succeeded} succeeded, ${retried} needed more than one attempt, ${Date.now() - started} ms`,
    );
    expect(succeeded).toBeGreaterThanOrEqual(97);
  });
});
