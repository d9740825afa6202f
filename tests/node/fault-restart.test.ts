import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exactlyOnceReport, startFaultStack, waitFor, type FaultStack } from "../helpers/fault-stack";

// Restarting the local control plane (stop and start `rgrid dev` on the same rgrid home, so D1,
// R2 and the Durable Object's storage persist) in the middle of a 50-execution batch. The agents
// keep running through the outage and reconnect. Leases are the production 30 s, longer than the
// restart, so no lease should lapse.

let fs: FaultStack;
beforeAll(async () => {
  fs = await startFaultStack();
});
afterAll(async () => {
  await fs?.stop();
});

const script = "import sys, time\ntime.sleep(0.5)\nopen('out.txt', 'w').write(sys.argv[1])\nprint('ran', sys.argv[1], flush=True)\n";

interface BatchView {
  counts: Record<string, number>;
}

describe("fault injection: control plane restart", () => {
  it("loses nothing and runs nothing twice when the control plane restarts mid-batch; the batch completes", async () => {
    await fs.startAgent("restart-a", 3);
    await fs.startAgent("restart-b", 3);
    const sha = await fs.uploadBlob(script);
    const { batch_id: batch } = await fs.api<{ batch_id: string }>("POST", "/api/v1/batches", { parallel: 6, total: 50 });
    const { executions } = await fs.api<{ executions: { id: string }[] }>("POST", `/api/v1/batches/${batch}/executions`, {
      executions: Array.from({ length: 50 }, (_, i) => ({
        idempotency_key: `restart-${batch}-${i}`,
        script: { path: "work.py", sha256: sha },
        args: [String(i)],
      })),
    });
    const ids = executions.map((e) => e.id);
    expect(new Set(ids).size).toBe(50);
    const counts = async () => (await fs.api<BatchView>("GET", `/api/v1/batches/${batch}`)).counts;
    await waitFor("a few to finish", async () => ((await counts()).succeeded ?? 0) >= 8, 120_000);

    const restartStarted = Date.now();
    await fs.restart();
    const restartMs = Date.now() - restartStarted;
    const atRestart = await counts();
    expect(atRestart.succeeded ?? 0).toBeLessThan(50); // the restart really happened mid-batch

    await waitFor(
      "the batch to complete",
      async () => ((await counts()).succeeded ?? 0) === 50,
      240_000,
      async () => JSON.stringify(await counts()),
    );
    const report = await exactlyOnceReport(fs, ids);
    expect(report.size).toBe(50);
    for (const [id, r] of report) {
      // One final status, one terminal event, the script started once, one output.
      expect({ id, ...r, attempts: undefined }).toEqual({
        id,
        status: "succeeded",
        attempt: r.attempt,
        terminalEvents: 1,
        startedEvents: 1,
        attempts: undefined,
        artifacts: ["out.txt"],
      });
      expect(r.attempts.at(-1)).toBe(`${r.attempt}:succeeded`);
    }
    for (const [i, id] of ids.entries()) {
      const logs = await fs.api<{ lines: { text: string }[] }>("GET", `/api/v1/executions/${id}/logs?after=0`);
      expect(logs.lines.filter((l) => l.text.startsWith("ran ")).map((l) => l.text)).toEqual([`ran ${i}`]);
    }
    const retried = [...report.values()].filter((r) => r.attempt > 1).length;
    console.log(`restart took ${restartMs} ms with ${atRestart.succeeded} of 50 done; ${retried} execution(s) needed a second lease`);
  });
});
