import { and, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { Hono } from "hono";
import {
  addBatchExecutionsRequestSchema,
  createBatchRequestSchema,
  retryRequestSchema,
  type BatchCounts,
  type BatchView,
} from "../../../shared/src/batches";
import { batches } from "../db/schema";
import type { AppEnv } from "../env";
import { ApiError, notFound } from "../http-error";
import { newId } from "../ids";
import { schedulerFor } from "../scheduler-stub";
import { submitExecutions } from "../submit-executions";
import { zValidator } from "../validation";
import { ownedExecution } from "./executions";

async function ownedBatch(db: ReturnType<typeof drizzle>, accountId: string, id: string) {
  const row = (
    await db
      .select()
      .from(batches)
      .where(and(eq(batches.id, id), eq(batches.accountId, accountId)))
      .limit(1)
  )[0];
  if (!row) throw notFound(`Batch ${id}`);
  return row;
}

/** The current execution of each input: those no retry in the same batch has superseded. */
const CURRENT_IN_BATCH = `FROM executions e WHERE e.batch_id = ?1 AND e.account_id = ?2
  AND NOT EXISTS (SELECT 1 FROM executions r WHERE r.retry_of = e.id AND r.batch_id = ?1)`;

export const batchRoutes = new Hono<AppEnv>()
  .post("/batches", zValidator("json", createBatchRequestSchema), async (c) => {
    const { parallel, total } = c.req.valid("json");
    const id = newId("batch");
    await drizzle(c.env.DB)
      .insert(batches)
      .values({ id, accountId: c.get("accountId"), parallel, total, createdAt: Date.now() });
    return c.json({ batch_id: id }, 201);
  })
  .post("/batches/:id/executions", zValidator("json", addBatchExecutionsRequestSchema), async (c) => {
    const batch = await ownedBatch(drizzle(c.env.DB), c.get("accountId"), c.req.param("id"));
    const { views } = await submitExecutions(c.env, c.get("accountId"), c.req.valid("json").executions, {
      id: batch.id,
      parallel: batch.parallel,
    });
    return c.json({ executions: views }, 201);
  })
  .get("/batches/:id", async (c) => {
    const accountId = c.get("accountId");
    const batch = await ownedBatch(drizzle(c.env.DB), accountId, c.req.param("id"));
    await schedulerFor(c.env, accountId).flushMirror();
    const rows = await c.env.DB.prepare(`SELECT e.status AS status, COUNT(*) AS n ${CURRENT_IN_BATCH} GROUP BY e.status`)
      .bind(batch.id, accountId)
      .all<{ status: keyof BatchCounts; n: number }>();
    const counts: BatchCounts = { queued: 0, leased: 0, running: 0, succeeded: 0, failed: 0, timed_out: 0, cancelled: 0 };
    for (const row of rows.results) counts[row.status] = row.n;
    const body: BatchView = { id: batch.id, parallel: batch.parallel, total: batch.total, created_at: batch.createdAt, counts };
    return c.json(body);
  })
  .post("/batches/:id/cancel", async (c) => {
    const accountId = c.get("accountId");
    const batch = await ownedBatch(drizzle(c.env.DB), accountId, c.req.param("id"));
    const ids = await c.env.DB.prepare(`SELECT e.id AS id ${CURRENT_IN_BATCH} AND e.status IN ('queued', 'leased', 'running')`)
      .bind(batch.id, accountId)
      .all<{ id: string }>();
    const cancelled = await schedulerFor(c.env, accountId).cancel(ids.results.map((r) => r.id));
    return c.json({ cancelled });
  })
  .post("/executions/:id/retry", zValidator("json", retryRequestSchema), async (c) => {
    const accountId = c.get("accountId");
    const db = drizzle(c.env.DB);
    const original = await ownedExecution(db, accountId, c.req.param("id"));
    // Env values live only with the scheduler's task, so the retry is rebuilt from there.
    const payload = await schedulerFor(c.env, accountId).payloadOf(original.id);
    if (!payload)
      throw new ApiError(409, "conflict", `Execution ${original.id} can no longer be retried`, "Run it again with `rgrid run`.");
    const batch = original.batchId ? await ownedBatch(db, accountId, original.batchId) : null;
    const { views, created } = await submitExecutions(
      c.env,
      accountId,
      [
        {
          idempotency_key: c.req.valid("json").idempotency_key,
          script: payload.script,
          inputs: payload.inputs,
          args: payload.args,
          ...(original.runtime ? { runtime: original.runtime } : { image: original.image }),
          ...(payload.requirements_sha256 ? { requirements_sha256: payload.requirements_sha256 } : {}),
          env: payload.env,
          timeout_seconds: payload.timeout_seconds,
          memory_mb: payload.memory_mb,
          cpus: payload.cpus,
          network: payload.network,
          metadata: JSON.parse(original.metadataJson) as Record<string, string>,
          retry_of: original.id,
        },
      ],
      batch ? { id: batch.id, parallel: batch.parallel } : undefined,
    );
    return c.json(views[0], created[0] ? 201 : 200);
  });
