import { describe, expect, it } from "vitest";
import { leaseResponseSchema } from "../../shared/src/agent-protocol";
import { addBatchExecutionsResponseSchema, batchCreatedSchema, batchViewSchema } from "../../shared/src/batches";
import { executionListSchema, executionViewSchema } from "../../shared/src/executions";
import { api, json, setup, uploadScript } from "./fixtures";

async function createBatch(key: string, sha: string, count: number, parallel: number) {
  const { batch_id } = batchCreatedSchema.parse(await (await api("/batches", key, json({ parallel, total: count }))).json());
  const executions = Array.from({ length: count }, (_, i) => ({
    idempotency_key: `${batch_id}-item-${i}`,
    script: { path: "job.py", sha256: sha },
    args: [`input-${i}.csv`],
    env: { TOKEN: "batch-secret" },
    metadata: { item: String(i) },
  }));
  const response = await api(`/batches/${batch_id}/executions`, key, json({ executions }));
  expect(response.status).toBe(201);
  return { batchId: batch_id, views: addBatchExecutionsResponseSchema.parse(await response.json()).executions };
}

const finish = (status: "succeeded" | "failed", attempt: number) => ({
  attempt,
  status,
  exit_code: status === "succeeded" ? 0 : 1,
  duration_ms: 10,
  error_message: null,
  outputs: [],
});

describe("batches", () => {
  it("never leases more of a batch than its parallel cap, even to an agent with free slots", async () => {
    const { account, agent } = await setup();
    const sha = await uploadScript(account.api_key, "print('batch')\n");
    const { batchId, views } = await createBatch(account.api_key, sha, 6, 2);
    expect(views).toHaveLength(6);

    const first = leaseResponseSchema.parse(await (await agent("/lease", { free_slots: 10, wait_ms: 0 })).json());
    expect(first.tasks.filter((t) => t.batch_id === batchId)).toHaveLength(2);
    const more = leaseResponseSchema.parse(await (await agent("/lease", { free_slots: 10, wait_ms: 0 })).json());
    expect(more.tasks.filter((t) => t.batch_id === batchId)).toHaveLength(0);

    // Finishing one frees exactly one slot under the cap.
    const done = first.tasks[0]!;
    await agent(`/executions/${done.execution_id}/complete`, finish("succeeded", done.attempt));
    const next = leaseResponseSchema.parse(await (await agent("/lease", { free_slots: 10, wait_ms: 0 })).json());
    expect(next.tasks.filter((t) => t.batch_id === batchId)).toHaveLength(1);

    const status = batchViewSchema.parse(await (await api(`/batches/${batchId}`, account.api_key)).json());
    expect(status.counts).toMatchObject({ succeeded: 1, leased: 2, queued: 3 });
    expect(status.total).toBe(6);
  });

  it("wakes a waiting long-poll as soon as work is queued", async () => {
    const { account, agent } = await setup();
    const sha = await uploadScript(account.api_key, "print('wake')\n");
    const started = Date.now();
    const poll = agent("/lease", { free_slots: 1, wait_ms: 10_000 });
    await new Promise((r) => setTimeout(r, 200));
    const { batchId } = await createBatch(account.api_key, sha, 1, 1);
    const leased = leaseResponseSchema.parse(await (await poll).json());
    expect(leased.tasks).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(5_000);
    // Reading the batch waits for the scheduler's D1 mirror, so no write is in flight when this test's storage is reset.
    expect(batchViewSchema.parse(await (await api(`/batches/${batchId}`, account.api_key)).json()).counts.leased).toBe(1);
  });

  it("retries a failed execution as a new linked execution with the same env, counted in its place", async () => {
    const { account, agent } = await setup();
    const sha = await uploadScript(account.api_key, "import sys; sys.exit(1)\n");
    const { batchId } = await createBatch(account.api_key, sha, 2, 2);
    // Leftovers of earlier tests may share this account's queue: look only at this batch.
    const leased = leaseResponseSchema
      .parse(await (await agent("/lease", { free_slots: 20, wait_ms: 0 })).json())
      .tasks.filter((t) => t.batch_id === batchId);
    expect(leased).toHaveLength(2);
    await agent(`/executions/${leased[0]!.execution_id}/complete`, finish("failed", 1));
    await agent(`/executions/${leased[1]!.execution_id}/complete`, finish("succeeded", 1));
    const before = batchViewSchema.parse(await (await api(`/batches/${batchId}`, account.api_key)).json());
    expect(before.counts).toMatchObject({ failed: 1, succeeded: 1 });

    const retry = await api(`/executions/${leased[0]!.execution_id}/retry`, account.api_key, json({ idempotency_key: "retry-key-0001" }));
    expect(retry.status).toBe(201);
    const view = executionViewSchema.parse(await retry.json());
    expect(view).toMatchObject({ retry_of: leased[0]!.execution_id, batch_id: batchId, status: "queued" });
    expect(view.env_names).toEqual(["TOKEN"]);

    const after = batchViewSchema.parse(await (await api(`/batches/${batchId}`, account.api_key)).json());
    expect(after.counts).toMatchObject({ failed: 0, succeeded: 1, queued: 1 });
    const task = leaseResponseSchema.parse(await (await agent("/lease", { free_slots: 2, wait_ms: 0 })).json()).tasks[0];
    expect(task?.execution_id).toBe(view.id);
    expect(task?.env).toEqual({ TOKEN: "batch-secret" });
  });

  it("filters executions by metadata, status and batch", async () => {
    const { account } = await setup();
    const sha = await uploadScript(account.api_key, "print('meta')\n");
    const { batchId } = await createBatch(account.api_key, sha, 3, 3);
    const list = await (
      await api(`/executions?batch=${batchId}&metadata=item=1&status=queued`, account.api_key)
    ).json<{ executions: { metadata: Record<string, string> }[] }>();
    expect(list.executions).toHaveLength(1);
    expect(list.executions[0]?.metadata).toEqual({ item: "1" });
  });
});

describe("listing", () => {
  it("pages through executions created in the same millisecond without skipping or repeating any", async () => {
    const { account } = await setup();
    const sha = await uploadScript(account.api_key, "print('page')\n");
    const { batchId, views } = await createBatch(account.api_key, sha, 25, 5);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `/executions?batch=${batchId}&limit=7${cursor ? `&cursor=${cursor}` : ""}`;
      const page = executionListSchema.parse(await (await api(query, account.api_key)).json());
      seen.push(...page.executions.map((e) => e.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toHaveLength(25);
    expect(new Set(seen)).toEqual(new Set(views.map((v) => v.id)));
  });
});
