import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  exactlyOnceReport,
  runningContainersOf,
  spawnCli,
  startFaultStack,
  submitScript,
  waitFor,
  type FaultAgent,
  type FaultStack,
} from "../helpers/fault-stack";

// Agents that die or hang mid-run, against the real local stack: `rgrid dev --no-agent`, agents
// started here as child processes, Docker. Leases are 10 s here (30 s in production), so a lost
// worker is noticed in about 11 s.

let fs: FaultStack;
beforeAll(async () => {
  fs = await startFaultStack({ env: { RGRID_LEASE_MS: "10000" } });
});
afterAll(async () => {
  await fs?.stop();
});

interface ExecutionView {
  id: string;
  status: string;
  attempt: number;
  worker_id: string | null;
}
const view = (id: string) => fs.api<ExecutionView>("GET", `/api/v1/executions/${id}`);

/** Prints a token unique to the attempt, works a while, then writes the token as its output. */
const tokenScript = (seconds: number) =>
  [
    "import time, uuid",
    "token = uuid.uuid4().hex",
    "print('token', token, flush=True)",
    `time.sleep(${seconds})`,
    "open('result.txt', 'w').write(token)",
    "print('done', flush=True)",
  ].join("\n") + "\n";

async function outputText(id: string, file: string): Promise<string> {
  const { artifacts } = await fs.api<{ artifacts: { path: string; download_url: string }[] }>("GET", `/api/v1/executions/${id}/artifacts`);
  const artifact = artifacts.find((a) => a.path === file);
  if (!artifact) throw new Error(`no ${file} among ${JSON.stringify(artifacts.map((a) => a.path))}`);
  return (await fetch(artifact.download_url)).text();
}

const owner = (agents: FaultAgent[], workerId: string | null) => agents.find((a) => a.workerId() === workerId);

describe("fault injection: agents", () => {
  it("kill -9 of the agent mid-run: the execution completes exactly once on the other agent, as attempt 2, and the follower is told", async () => {
    const a = await fs.startAgent("kill-a", 1);
    const b = await fs.startAgent("kill-b", 1);
    const id = await submitScript(fs, await fs.uploadBlob(tokenScript(6)));
    const follow = spawnCli(fs.stack.home, ["logs", id, "--follow"]);
    await waitFor("the script to print its token", () => follow.stdout().includes("token"), 60_000);
    const running = await view(id);
    const victim = owner([a, b], running.worker_id);
    expect(victim, `worker ${running.worker_id}`).toBeDefined();
    victim?.signal("SIGKILL");

    const code = await follow.exited;
    expect(code, follow.stderr()).toBe(0);
    const tokens = [...follow.stdout().matchAll(/^token (\w+)$/gm)].map((m) => m[1]);
    expect(tokens).toHaveLength(2); // attempt 1's line, then attempt 2's: each once
    expect(follow.stdout().match(/^done$/gm)).toHaveLength(1);
    expect(follow.stderr()).toContain("Auto-retry 1/2 after worker failure");

    const report = (await exactlyOnceReport(fs, [id])).get(id);
    expect(report).toEqual({
      status: "succeeded",
      attempt: 2,
      terminalEvents: 1,
      startedEvents: 2,
      attempts: ["1:failed", "2:succeeded"],
      artifacts: ["result.txt"],
    });
    expect(await outputText(id, "result.txt")).toBe(tokens[1]);
    const events = await fs.api<{ events: { type: string }[] }>("GET", `/api/v1/executions/${id}/events`);
    expect(events.events.map((e) => e.type)).toEqual([
      "queued",
      "leased",
      "started",
      "heartbeat_lost",
      "retried",
      "leased",
      "started",
      "succeeded",
    ]);
    // The survivor would take the next test's work: stop it (a graceful stop, with nothing running).
    for (const agent of [a, b]) agent.signal("SIGTERM");
    await Promise.all([a.exited, b.exited]);
  });

  it("SIGSTOP past the lease, then SIGCONT: the stale attempt's results are refused, its containers stop, and cancel stops the new attempt", async () => {
    // Fresh containers per attempt (no warm pool), so each attempt's container is identifiable by its label.
    const stopped = await fs.startAgent("stop-c", 2, { RGRID_AGENT_WARM: "off" });
    const quick = await submitScript(fs, await fs.uploadBlob(tokenScript(12)));
    const forever = await submitScript(fs, await fs.uploadBlob("import time\nprint('up', flush=True)\ntime.sleep(600)\n"));
    await waitFor(
      "both to run on the first agent",
      async () => (await view(quick)).status === "running" && (await view(forever)).status === "running",
      90_000,
    );
    expect([(await view(quick)).worker_id, (await view(forever)).worker_id]).toEqual([stopped.workerId(), stopped.workerId()]);
    await waitFor("the first attempts' containers", async () => (await runningContainersOf(`${forever}-1`)).length === 1, 30_000);

    const rescuer = await fs.startAgent("stop-d", 2, { RGRID_AGENT_WARM: "off" });
    stopped.signal("SIGSTOP");
    await waitFor(
      "both to move to the second agent as attempt 2",
      async () => {
        const [q, f] = [await view(quick), await view(forever)];
        return q.attempt === 2 && f.attempt === 2 && f.status === "running" && f.worker_id === rescuer.workerId();
      },
      60_000,
      async () =>
        `${JSON.stringify([await view(quick), await view(forever)])}\nrescuer ${rescuer.workerId()}:\n${rescuer.log()}\nstopped:\n${stopped.log()}`,
    );
    await waitFor("the quick one to finish on the second agent", async () => (await view(quick)).status === "succeeded", 90_000);
    // Attempt 1 of the quick one has finished in Docker meanwhile; its agent is about to report it.
    stopped.signal("SIGCONT");
    await waitFor(
      "the stale attempts' containers to be stopped",
      async () => (await runningContainersOf(`${forever}-1`)).length === 0 && (await runningContainersOf(`${quick}-1`)).length === 0,
      20_000,
    );
    await waitFor(
      "the stale agent to drop both attempts",
      () => stopped.log().includes(`${quick}-1`) && /revoked|no longer current/.test(stopped.log()),
      20_000,
    );
    expect(stopped.log()).not.toMatch(new RegExp(`attempt ${quick}-1 succeeded`));

    const logs = await fs.api<{ lines: { text: string }[] }>("GET", `/api/v1/executions/${quick}/logs?after=0`);
    const tokens = logs.lines.map((l) => /^token (\w+)$/.exec(l.text)?.[1]).filter(Boolean);
    expect(tokens).toHaveLength(2);
    expect(await outputText(quick, "result.txt")).toBe(tokens[1]); // attempt 2's, never the stale one's
    expect((await exactlyOnceReport(fs, [quick])).get(quick)).toMatchObject({
      status: "succeeded",
      attempt: 2,
      terminalEvents: 1,
      attempts: ["1:failed", "2:succeeded"],
      artifacts: ["result.txt"],
    });

    // Cancelling stops the live attempt's container within a heartbeat or two.
    const cancel = await fs.stack.runCli(["cancel", forever]);
    expect(cancel.stderr).toContain(`Cancelled ${forever}`);
    const cancelledAt = Date.now();
    await waitFor("the cancelled container to stop", async () => (await runningContainersOf(`${forever}-2`)).length === 0, 15_000);
    expect(Date.now() - cancelledAt).toBeLessThan(12_000);
    expect((await exactlyOnceReport(fs, [forever])).get(forever)).toMatchObject({ status: "cancelled", terminalEvents: 1 });
    const status = await fs.stack.runCli(["status", forever, "--events"]);
    for (const type of ["queued", "leased", "started", "heartbeat_lost", "retried", "cancelled"]) expect(status.stdout).toContain(type);
  });
});
