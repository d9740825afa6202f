import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { heartbeatResponseSchema, leaseResponseSchema } from "../../shared/src/agent-protocol";
import { executionViewSchema, logPageSchema, missingBlobsResponseSchema } from "../../shared/src/executions";
import { sha256Hex } from "./fixtures";
import { api, json, setup, strangerKey, submit, uploadScript } from "./fixtures";

describe("scheduling through the account's Durable Object", () => {
  it("uploads only missing blobs, and refuses bytes that do not match their hash", async () => {
    const { account } = await setup();
    const sha = await uploadScript(account.api_key, "print('hi')\n");
    const again = missingBlobsResponseSchema.parse(await (await api("/blobs/missing", account.api_key, json({ sha256: [sha] }))).json());
    expect(again.missing).toEqual([]);

    const other = await sha256Hex("something else");
    const { missing } = missingBlobsResponseSchema.parse(
      await (await api("/blobs/missing", account.api_key, json({ sha256: [other] }))).json(),
    );
    const put = await SELF.fetch(missing[0]!.upload_url, { method: "PUT", body: "tampered", headers: { "content-length": "8" } });
    expect(put.status).toBe(400);
  });

  it("returns the same execution for a retried request with the same idempotency key", async () => {
    const { account } = await setup();
    const sha = await uploadScript(account.api_key, "print(1)\n");
    const first = await submit(account.api_key, sha, "idem-key-123");
    const second = await submit(account.api_key, sha, "idem-key-123");
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    expect(second.view.id).toBe(first.view.id);
  });

  it("leases, runs and completes an execution once; refuses a stale attempt's completion (fencing)", async () => {
    const { account, agent } = await setup();
    const sha = await uploadScript(account.api_key, "print('hello')\n");
    const { view } = await submit(account.api_key, sha);
    expect(view.status).toBe("queued");
    expect(view.env_names).toEqual(["SECRET_TOKEN"]);

    const lease = leaseResponseSchema.parse(await (await agent("/lease", { free_slots: 2, wait_ms: 0 })).json());
    const task = lease.tasks.find((t) => t.execution_id === view.id);
    expect(task?.attempt).toBe(1);
    expect(task?.env).toEqual({ SECRET_TOKEN: "s3cr3t-value" });
    const script = await SELF.fetch(task!.script.download_url);
    expect(await script.text()).toBe("print('hello')\n");

    expect((await agent(`/executions/${view.id}/started`, { attempt: 1 })).status).toBe(200);
    const lines = [
      { seq: 1, stream: "stdout", ts: Date.now(), text: "hello" },
      { seq: 2, stream: "stderr", ts: Date.now(), text: "warn" },
    ];
    expect((await agent(`/executions/${view.id}/logs`, { attempt: 1, lines })).status).toBe(200);
    // A replayed batch adds nothing.
    expect((await agent(`/executions/${view.id}/logs`, { attempt: 1, lines })).status).toBe(200);

    expect(
      (
        await agent(`/executions/${view.id}/complete`, {
          attempt: 2,
          status: "succeeded",
          exit_code: 0,
          duration_ms: 5,
          error_message: null,
          outputs: [],
        })
      ).status,
    ).toBe(409);
    const done = await agent(`/executions/${view.id}/complete`, {
      attempt: 1,
      status: "succeeded",
      exit_code: 0,
      duration_ms: 1500,
      error_message: null,
      outputs: [],
    });
    expect(await done.json()).toEqual({ outcome: "accepted" });
    const replay = await agent(`/executions/${view.id}/complete`, {
      attempt: 1,
      status: "succeeded",
      exit_code: 0,
      duration_ms: 1500,
      error_message: null,
      outputs: [],
    });
    expect(await replay.json()).toEqual({ outcome: "duplicate" });

    const logs = logPageSchema.parse(await (await api(`/executions/${view.id}/logs?after=0`, account.api_key)).json());
    expect(logs.lines.map((l) => [l.seq, l.stream, l.text])).toEqual([
      [1, "stdout", "hello"],
      [2, "stderr", "warn"],
    ]);
    expect(logs.complete).toBe(true);

    const final = executionViewSchema.parse(await (await api(`/executions/${view.id}`, account.api_key)).json());
    expect(final).toMatchObject({ status: "succeeded", exit_code: 0, attempt: 1, duration_ms: 1500 });
    expect(final.cost_micros).toBeGreaterThan(0);
    const events = await env.DB.prepare("SELECT type, message FROM events WHERE execution_id = ? ORDER BY id")
      .bind(view.id)
      .all<{ type: string; message: string }>();
    expect(events.results.map((e) => e.type)).toEqual(["queued", "leased", "started", "succeeded"]);
    expect(JSON.stringify(events.results)).not.toContain("s3cr3t-value");
    const row = await env.DB.prepare("SELECT * FROM executions WHERE id = ?").bind(view.id).first();
    expect(JSON.stringify(row)).not.toContain("s3cr3t-value");
  });

  it("tells an agent to stop a cancelled attempt on its next heartbeat", async () => {
    const { account, agent } = await setup();
    const sha = await uploadScript(account.api_key, "import time\n");
    const { view } = await submit(account.api_key, sha);
    const lease = leaseResponseSchema.parse(await (await agent("/lease", { free_slots: 4, wait_ms: 0 })).json());
    const task = lease.tasks.find((t) => t.execution_id === view.id)!;
    expect((await api(`/executions/${view.id}/cancel`, account.api_key, { method: "POST" })).status).toBe(200);
    const beat = heartbeatResponseSchema.parse(
      await (await agent("/heartbeat", { leases: [{ execution_id: view.id, attempt: task.attempt }] })).json(),
    );
    expect(beat.revoked).toEqual([{ execution_id: view.id, attempt: task.attempt, reason: "cancelled" }]);
  });

  it("hides one account's execution from another account", async () => {
    const { account } = await setup();
    const sha = await uploadScript(account.api_key, "print(2)\n");
    const { view } = await submit(account.api_key, sha);
    const intruderKey = await strangerKey();
    for (const path of [
      `/executions/${view.id}`,
      `/executions/${view.id}/logs`,
      `/executions/${view.id}/artifacts`,
      `/executions/${view.id}/events`,
    ]) {
      expect((await api(path, intruderKey)).status, path).toBe(404);
    }
    const list = await (await api("/executions", intruderKey)).json<{ executions: unknown[] }>();
    expect(list.executions).toEqual([]);
  });
});
