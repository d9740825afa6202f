import { env, runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { heartbeatResponseSchema, leaseResponseSchema, outputUploadResponseSchema, type Task } from "../../shared/src/agent-protocol";
import { logPageSchema } from "../../shared/src/executions";
import { logStreamMessageSchema, type LogStreamMessage } from "../../shared/src/log-stream";
import type { AccountScheduler } from "../../durable/src/account-scheduler";
import { api, setup, submit, uploadScript } from "./fixtures";

// Delivery guarantees of the account scheduler: fencing by attempt, idempotent replays, lapsed
// leases retried as counted attempts, hand-backs that are not counted, and the log cap.

type Agent = Awaited<ReturnType<typeof setup>>["agent"];

function scheduler(accountId: string) {
  return env.ACCOUNT_SCHEDULER.get(env.ACCOUNT_SCHEDULER.idFromName(accountId));
}

/** Makes every live lease look lapsed, then runs the alarm as the runtime would. */
async function lapseLeases(accountId: string): Promise<void> {
  const stub = scheduler(accountId);
  await runInDurableObject(stub, (_instance: AccountScheduler, state) => {
    state.storage.sql.exec("UPDATE tasks SET lease_expires_at = ? WHERE state IN ('leased', 'running')", Date.now() - 1);
  });
  await runDurableObjectAlarm(stub);
}

async function leaseOne(agent: Agent, executionId: string): Promise<Task> {
  const lease = leaseResponseSchema.parse(await (await agent("/lease", { free_slots: 8, wait_ms: 0 })).json());
  const task = lease.tasks.find((t) => t.execution_id === executionId);
  if (!task) throw new Error(`lease did not return ${executionId}: ${JSON.stringify(lease.tasks.map((t) => t.execution_id))}`);
  return task;
}

const done = (attempt: number, extra: Record<string, unknown> = {}) => ({
  attempt,
  status: "succeeded",
  exit_code: 0,
  duration_ms: 10,
  error_message: null,
  outputs: [],
  ...extra,
});

async function events(executionId: string) {
  await scheduler(
    (await env.DB.prepare("SELECT account_id FROM executions WHERE id = ?").bind(executionId).first<{ account_id: string }>())!.account_id,
  ).flushMirror();
  return (
    await env.DB.prepare("SELECT type, attempt, message FROM events WHERE execution_id = ? ORDER BY id")
      .bind(executionId)
      .all<{ type: string; attempt: number | null; message: string }>()
  ).results;
}

async function attempts(executionId: string) {
  return (
    await env.DB.prepare("SELECT attempt, status FROM attempts WHERE execution_id = ? ORDER BY attempt")
      .bind(executionId)
      .all<{ attempt: number; status: string }>()
  ).results;
}

describe("delivery: leases, fencing and replays", () => {
  it("changes state once when a completion, a heartbeat and a log batch are each replayed several times", async () => {
    const { account, agent } = await setup();
    const { view } = await submit(account.api_key, await uploadScript(account.api_key, "print('replay')\n"));
    const task = await leaseOne(agent, view.id);
    const lines = [1, 2, 3].map((seq) => ({ seq, stream: "stdout", ts: Date.now(), text: `line ${seq}` }));
    for (let i = 0; i < 4; i++) {
      expect((await agent(`/executions/${view.id}/started`, { attempt: task.attempt })).status).toBe(200);
      expect((await agent(`/executions/${view.id}/logs`, { attempt: task.attempt, lines })).status).toBe(200);
      const beat = heartbeatResponseSchema.parse(
        await (await agent("/heartbeat", { leases: [{ execution_id: view.id, attempt: task.attempt }] })).json(),
      );
      expect(beat.valid.map((v) => v.execution_id)).toEqual([view.id]);
    }
    const outcomes: unknown[] = [];
    for (let i = 0; i < 4; i++) outcomes.push(await (await agent(`/executions/${view.id}/complete`, done(task.attempt))).json());
    expect(outcomes).toEqual([{ outcome: "accepted" }, { outcome: "duplicate" }, { outcome: "duplicate" }, { outcome: "duplicate" }]);
    // A heartbeat after completion tells the agent to stop, and extends nothing.
    const late = heartbeatResponseSchema.parse(
      await (await agent("/heartbeat", { leases: [{ execution_id: view.id, attempt: task.attempt }] })).json(),
    );
    expect(late.revoked).toEqual([{ execution_id: view.id, attempt: task.attempt, reason: "finished" }]);

    const page = logPageSchema.parse(await (await api(`/executions/${view.id}/logs?after=0`, account.api_key)).json());
    expect(page.lines.map((l) => [l.seq, l.text])).toEqual([
      [1, "line 1"],
      [2, "line 2"],
      [3, "line 3"],
    ]);
    expect((await events(view.id)).map((e) => e.type)).toEqual(["queued", "leased", "started", "succeeded"]);
    expect(await attempts(view.id)).toEqual([{ attempt: 1, status: "succeeded" }]);
  });

  it("requeues a lapsed lease as attempt 2, fences attempt 1's heartbeat, logs, uploads and completion (409), and records the retry", async () => {
    const { account, agent } = await setup();
    const { view } = await submit(account.api_key, await uploadScript(account.api_key, "print('lapse')\n"));
    const first = await leaseOne(agent, view.id);
    await agent(`/executions/${view.id}/started`, { attempt: 1 });
    await agent(`/executions/${view.id}/logs`, { attempt: 1, lines: [{ seq: 1, stream: "stdout", ts: 1, text: "from attempt 1" }] });
    // Attempt 1 asks for an upload URL while it is still current, then stalls past its lease.
    const early = outputUploadResponseSchema.parse(
      await (
        await agent(`/executions/${view.id}/outputs`, {
          attempt: 1,
          files: [{ path: "out.txt", size_bytes: 5, sha256: "a".repeat(64), content_type: "text/plain" }],
        })
      ).json(),
    );
    await lapseLeases(account.account_id);

    const second = await leaseOne(agent, view.id);
    expect([first.attempt, second.attempt]).toEqual([1, 2]);
    const beat = heartbeatResponseSchema.parse(
      await (
        await agent("/heartbeat", {
          leases: [
            { execution_id: view.id, attempt: 1 },
            { execution_id: view.id, attempt: 2 },
          ],
        })
      ).json(),
    );
    expect(beat.revoked).toEqual([{ execution_id: view.id, attempt: 1, reason: "lease_lost" }]);
    expect(beat.valid.map((v) => v.attempt)).toEqual([2]);
    expect((await agent(`/executions/${view.id}/started`, { attempt: 1 })).status).toBe(409);
    expect(
      (await agent(`/executions/${view.id}/logs`, { attempt: 1, lines: [{ seq: 2, stream: "stdout", ts: 2, text: "late" }] })).status,
    ).toBe(409);
    expect((await agent(`/executions/${view.id}/outputs`, { attempt: 1, files: [] })).status).toBe(409);
    const stalePut = await SELF.fetch(early.uploads[0]!.upload_url, { method: "PUT", body: "stale", headers: { "content-length": "5" } });
    expect(stalePut.status).toBe(409);
    expect((await agent(`/executions/${view.id}/complete`, done(1))).status).toBe(409);

    await agent(`/executions/${view.id}/logs`, { attempt: 2, lines: [{ seq: 1, stream: "stdout", ts: 3, text: "from attempt 2" }] });
    expect(await (await agent(`/executions/${view.id}/complete`, done(2))).json()).toEqual({ outcome: "accepted" });

    const page = logPageSchema.parse(await (await api(`/executions/${view.id}/logs?after=0`, account.api_key)).json());
    expect(page.lines.map((l) => l.text)).toEqual(["from attempt 1", "from attempt 2"]);
    expect(page.retries).toBe(1);
    const types = (await events(view.id)).map((e) => `${e.type}:${e.attempt}`);
    expect(types).toEqual(["queued:null", "leased:1", "started:1", "heartbeat_lost:1", "retried:1", "leased:2", "succeeded:2"]);
    expect((await events(view.id)).find((e) => e.type === "retried")?.message).toBe(
      "Auto-retry 1/2 after worker failure: heartbeat lost: the lease lapsed",
    );
    expect(await attempts(view.id)).toEqual([
      { attempt: 1, status: "failed" },
      { attempt: 2, status: "succeeded" },
    ]);
  });

  it("gives up after two automatic retries, so a task that kills its worker cannot loop forever", async () => {
    const { account, agent } = await setup();
    const { view } = await submit(account.api_key, await uploadScript(account.api_key, "print('doomed')\n"));
    for (let attempt = 1; attempt <= 3; attempt++) {
      expect((await leaseOne(agent, view.id)).attempt).toBe(attempt);
      await lapseLeases(account.account_id);
    }
    await scheduler(account.account_id).flushMirror();
    const final = await env.DB.prepare("SELECT status, attempt, error_message FROM executions WHERE id = ?")
      .bind(view.id)
      .first<{ status: string; attempt: number; error_message: string }>();
    expect(final).toMatchObject({ status: "failed", attempt: 3 });
    expect(final?.error_message).toContain("2 automatic retries");
    const types = (await events(view.id)).map((e) => e.type);
    expect(types.filter((t) => t === "retried")).toHaveLength(2);
    expect(types.filter((t) => t === "failed")).toHaveLength(1);
  });

  it("never retries a script's own failure, but retries a transient setup failure", async () => {
    const { account, agent } = await setup();
    const sha = await uploadScript(account.api_key, "import sys\nsys.exit(3)\n");
    const { view: own } = await submit(account.api_key, sha);
    const { view: setupFail } = await submit(account.api_key, sha);
    await leaseOne(agent, own.id);
    expect(
      await (
        await agent(
          `/executions/${own.id}/complete`,
          done(1, { status: "failed", exit_code: 3, error_message: "The script exited with code 3" }),
        )
      ).json(),
    ).toEqual({ outcome: "accepted" });
    await leaseOne(agent, setupFail.id).catch(() => undefined); // leased in the same call as `own`, or now
    expect(
      await (
        await agent(
          `/executions/${setupFail.id}/complete`,
          done(1, { status: "failed", exit_code: null, transient: true, error_message: "image pull failed" }),
        )
      ).json(),
    ).toEqual({ outcome: "retrying" });
    expect((await leaseOne(agent, setupFail.id)).attempt).toBe(2);
    const ownTypes = (await events(own.id)).map((e) => e.type);
    expect(ownTypes).not.toContain("retried");
    expect((await events(setupFail.id)).find((e) => e.type === "retried")?.message).toBe(
      "Auto-retry 1/2 after setup failure: image pull failed",
    );
  });

  it("requeues an attempt handed back by a stopping agent at once, without counting it as a retry, and fences the old attempt", async () => {
    const { account, agent } = await setup();
    const { view } = await submit(account.api_key, await uploadScript(account.api_key, "print('handback')\n"));
    await leaseOne(agent, view.id);
    expect(await (await agent(`/executions/${view.id}/release`, { attempt: 1 })).json()).toEqual({ outcome: "released" });
    expect((await agent(`/executions/${view.id}/release`, { attempt: 1 })).status).toBe(409);
    expect((await agent(`/executions/${view.id}/complete`, done(1))).status).toBe(409);
    expect((await leaseOne(agent, view.id)).attempt).toBe(2);
    expect(await (await agent(`/executions/${view.id}/complete`, done(2))).json()).toEqual({ outcome: "accepted" });
    const types = (await events(view.id)).map((e) => e.type);
    expect(types).toEqual(["queued", "leased", "released", "leased", "succeeded"]);
    const page = logPageSchema.parse(await (await api(`/executions/${view.id}/logs?after=0`, account.api_key)).json());
    expect(page.retries).toBe(0);
  });

  it("retires an agent's abandoned long-poll when it polls again, so the abandoned call cannot take work nobody receives", async () => {
    const { account, agent } = await setup();
    const abandoned = agent("/lease", { free_slots: 1, wait_ms: 3000 });
    await new Promise((r) => setTimeout(r, 100));
    expect(await (await agent("/lease", { free_slots: 0, wait_ms: 0, holding: [] })).json()).toEqual({ tasks: [] });
    const { view } = await submit(account.api_key, await uploadScript(account.api_key, "print('steal')\n"));
    expect(await (await abandoned).json()).toEqual({ tasks: [] });
    expect((await leaseOne(agent, view.id)).attempt).toBe(1);
  });

  it("requeues at once, without counting a retry, a lease whose response never reached the agent", async () => {
    const { account, agent } = await setup();
    const { view } = await submit(account.api_key, await uploadScript(account.api_key, "print('lost')\n"));
    await leaseOne(agent, view.id); // the response "is lost": the agent never lists it
    // Still in flight for a few seconds: left alone.
    await agent("/lease", { free_slots: 0, wait_ms: 0, holding: [] });
    expect((await events(view.id)).map((e) => e.type)).toEqual(["queued", "leased"]);
    await runInDurableObject(scheduler(account.account_id), (_instance: AccountScheduler, state) => {
      state.storage.sql.exec("UPDATE tasks SET lease_expires_at = lease_expires_at - 6000 WHERE execution_id = ?", view.id);
    });
    await agent("/lease", { free_slots: 0, wait_ms: 0, holding: [] });
    expect((await leaseOne(agent, view.id)).attempt).toBe(2);
    expect((await events(view.id)).map((e) => e.type)).toEqual(["queued", "leased", "released", "leased"]);
    const page = logPageSchema.parse(await (await api(`/executions/${view.id}/logs?after=0`, account.api_key)).json());
    expect(page.retries).toBe(0);
  });

  it("keeps an execution's stored log to the cap and counts the lines dropped past it", async () => {
    const { account, agent } = await setup();
    const { view } = await submit(account.api_key, await uploadScript(account.api_key, "print('chatty')\n"));
    await runInDurableObject(scheduler(account.account_id), (instance: AccountScheduler) => {
      instance.maxLogLines = 5;
    });
    await leaseOne(agent, view.id);
    const lines = Array.from({ length: 8 }, (_, i) => ({ seq: i + 1, stream: "stdout", ts: i, text: `n${i + 1}` }));
    await agent(`/executions/${view.id}/logs`, { attempt: 1, lines });
    await agent(`/executions/${view.id}/logs`, { attempt: 1, lines }); // a replay drops nothing more
    await agent(`/executions/${view.id}/complete`, done(1));
    const page = logPageSchema.parse(await (await api(`/executions/${view.id}/logs?after=0`, account.api_key)).json());
    expect(page.lines.map((l) => l.text)).toEqual(["n1", "n2", "n3", "n4", "n5"]);
    expect(page).toMatchObject({ dropped_lines: 3, complete: true });
  });

  it("tells a stream subscriber the attempt and retry count, and announces a retry live", async () => {
    const { account, agent } = await setup();
    const { view } = await submit(account.api_key, await uploadScript(account.api_key, "print('live')\n"));
    await leaseOne(agent, view.id);
    const response = await SELF.fetch(`http://rgrid.test/api/v1/executions/${view.id}/stream?after=0`, {
      headers: { Upgrade: "websocket", Authorization: `Bearer ${account.api_key}` },
    });
    const socket = response.webSocket!;
    const messages: LogStreamMessage[] = [];
    socket.addEventListener("message", (event) => {
      messages.push(logStreamMessageSchema.parse(JSON.parse(String(event.data))));
    });
    socket.accept();
    await lapseLeases(account.account_id);
    await leaseOne(agent, view.id);
    await agent(`/executions/${view.id}/complete`, done(2));
    for (let i = 0; i < 100 && messages.at(-1)?.type !== "end"; i++) await new Promise((r) => setTimeout(r, 20));
    const statuses = messages.filter((m) => m.type === "status");
    expect(statuses[0]).toMatchObject({ status: "leased", attempt: 1, retries: 0, max_retries: 2 });
    expect(statuses).toContainEqual(expect.objectContaining({ status: "queued", retries: 1, reason: "worker failure" }));
    expect(statuses.at(-1)).toMatchObject({ status: "leased", attempt: 2, retries: 1 });
    expect(messages.at(-1)).toMatchObject({ type: "end", status: "succeeded" });
  });
});
