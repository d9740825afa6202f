import { and, asc, desc, eq, lt, or, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { Hono } from "hono";
import { z } from "zod";
import { createExecutionRequestSchema, missingBlobsRequestSchema, type ArtifactView, type LogPage } from "../../../shared/src/executions";
import { executionStatusSchema, isFinalStatus, type ExecutionStatus } from "../../../shared/src/lifecycle";
import { artifacts, events, executions } from "../db/schema";
import type { AppEnv } from "../env";
import { ApiError, notFound } from "../http-error";
import { toExecutionView } from "../execution-view";
import { schedulerFor } from "../scheduler-stub";
import { signUrl, storageKeys } from "../signed-urls";
import { submitExecutions } from "../submit-executions";
import { zValidator } from "../validation";

/** Every lookup is by account first: another tenant's execution is simply "not found". */
export async function ownedExecution(db: ReturnType<typeof drizzle>, accountId: string, id: string) {
  const row = (
    await db
      .select()
      .from(executions)
      .where(and(eq(executions.id, id), eq(executions.accountId, accountId)))
      .limit(1)
  )[0];
  if (!row) throw notFound(`Execution ${id}`);
  return row;
}

const listQuerySchema = z.object({
  status: executionStatusSchema.optional(),
  batch: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  /** Opaque: `<created_at>_<id>` of the last row of the previous page (keyset paging, stable within a millisecond). */
  cursor: z
    .string()
    .regex(/^\d+_[A-Za-z0-9_]+$/, "is not a cursor this API returned")
    .optional(),
  metadata: z.string().max(2048).optional(),
});

export const executionRoutes = new Hono<AppEnv>()
  .post("/blobs/missing", zValidator("json", missingBlobsRequestSchema), async (c) => {
    const accountId = c.get("accountId");
    const origin = new URL(c.req.url).origin;
    const unique = [...new Set(c.req.valid("json").sha256)];
    const missing = await Promise.all(
      unique.map(async (sha256) => {
        const key = storageKeys.blob(accountId, sha256);
        if (await c.env.ARTIFACTS.head(key)) return null;
        return { sha256, upload_url: await signUrl(origin, c.env.API_KEY_PEPPER, { op: "put-blob", key, accountId, sha256 }) };
      }),
    );
    return c.json({ missing: missing.filter((m) => m !== null) });
  })
  .post("/executions", zValidator("json", createExecutionRequestSchema), async (c) => {
    const { views, created } = await submitExecutions(c.env, c.get("accountId"), [c.req.valid("json")]);
    return c.json(views[0], created[0] ? 201 : 200);
  })
  .get("/executions", zValidator("query", listQuerySchema), async (c) => {
    const query = c.req.valid("query");
    await schedulerFor(c.env, c.get("accountId")).flushMirror();
    const conditions = [eq(executions.accountId, c.get("accountId"))];
    if (query.status) conditions.push(eq(executions.status, query.status));
    if (query.batch) conditions.push(eq(executions.batchId, query.batch));
    if (query.cursor !== undefined) {
      const [createdAt, ...idParts] = query.cursor.split("_");
      const at = Number(createdAt);
      const id = idParts.join("_");
      // A batch chunk shares one creation time, so the id breaks ties: no row is skipped or repeated.
      conditions.push(or(lt(executions.createdAt, at), and(eq(executions.createdAt, at), lt(executions.id, id)))!);
    }
    if (query.metadata) {
      for (const pair of query.metadata.split(",")) {
        const [key, ...rest] = pair.split("=");
        if (!key || rest.length === 0) throw new ApiError(400, "validation_failed", `Invalid metadata filter "${pair}"`, "Use key=value.");
        conditions.push(sql`json_extract(${executions.metadataJson}, ${`$."${key.replace(/"/g, "")}"`}) = ${rest.join("=")}`);
      }
    }
    const rows = await drizzle(c.env.DB)
      .select()
      .from(executions)
      .where(and(...conditions))
      .orderBy(desc(executions.createdAt), desc(executions.id))
      .limit(query.limit + 1);
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    const next = rows.length > query.limit && last ? `${last.createdAt}_${last.id}` : null;
    return c.json({ executions: page.map(toExecutionView), next_cursor: next });
  })
  .get("/executions/:id", async (c) => {
    const db = drizzle(c.env.DB);
    let row = await ownedExecution(db, c.get("accountId"), c.req.param("id"));
    if (!isFinalStatus(row.status as ExecutionStatus)) {
      // The scheduler may hold transitions not yet mirrored to D1: apply them, then read again.
      await schedulerFor(c.env, c.get("accountId")).flushMirror();
      row = await ownedExecution(db, c.get("accountId"), row.id);
    }
    return c.json(toExecutionView(row));
  })
  .get(
    "/executions/:id/logs",
    zValidator(
      "query",
      z.object({ after: z.coerce.number().int().min(0).default(0), limit: z.coerce.number().int().min(1).max(5000).default(1000) }),
    ),
    async (c) => {
      const row = await ownedExecution(drizzle(c.env.DB), c.get("accountId"), c.req.param("id"));
      const { after, limit } = c.req.valid("query");
      const read = await schedulerFor(c.env, c.get("accountId")).readLogs(row.id, after, limit);
      const status = (read.state ?? row.status) as ExecutionStatus;
      const final = isFinalStatus(status);
      const body: LogPage = {
        lines: read.lines,
        last_seq: read.lastSeq,
        complete: final && read.lines.length < limit,
        status,
        dropped_lines: read.droppedLines,
        retries: read.retries,
      };
      return c.json(body);
    },
  )
  .get("/executions/:id/stream", async (c) => {
    if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
      throw new ApiError(
        426 as 400,
        "bad_request",
        "This endpoint speaks WebSocket",
        "Connect with a WebSocket client, or poll /logs instead.",
      );
    }
    const row = await ownedExecution(drizzle(c.env.DB), c.get("accountId"), c.req.param("id"));
    const after = Number(c.req.query("after") ?? 0);
    const target = new URL("https://scheduler/stream");
    target.searchParams.set("execution", row.id);
    target.searchParams.set("after", String(Number.isInteger(after) && after >= 0 ? after : 0));
    return schedulerFor(c.env, c.get("accountId")).fetch(new Request(target, c.req.raw));
  })
  .get("/executions/:id/artifacts", async (c) => {
    const accountId = c.get("accountId");
    const db = drizzle(c.env.DB);
    const row = await ownedExecution(db, accountId, c.req.param("id"));
    const origin = new URL(c.req.url).origin;
    const rows = await db
      .select()
      .from(artifacts)
      .where(and(eq(artifacts.executionId, row.id), eq(artifacts.accountId, accountId)))
      .orderBy(asc(artifacts.path));
    const list: ArtifactView[] = await Promise.all(
      rows.map(async (a) => ({
        path: a.path,
        size_bytes: a.sizeBytes,
        sha256: a.sha256,
        content_type: a.contentType,
        download_url: await signUrl(origin, c.env.API_KEY_PEPPER, { op: "get", key: a.r2Key, accountId }),
      })),
    );
    return c.json({ artifacts: list });
  })
  .get("/executions/:id/events", async (c) => {
    const db = drizzle(c.env.DB);
    await schedulerFor(c.env, c.get("accountId")).flushMirror();
    const row = await ownedExecution(db, c.get("accountId"), c.req.param("id"));
    const rows = await db
      .select({ type: events.type, message: events.message, attempt: events.attempt, created_at: events.createdAt })
      .from(events)
      .where(and(eq(events.executionId, row.id), eq(events.accountId, c.get("accountId"))))
      .orderBy(asc(events.id));
    return c.json({ events: rows });
  })
  .post("/executions/:id/cancel", async (c) => {
    const row = await ownedExecution(drizzle(c.env.DB), c.get("accountId"), c.req.param("id"));
    const cancelled = await schedulerFor(c.env, c.get("accountId")).cancel([row.id]);
    return c.json({ cancelled });
  })
  .get("/workers/active", async (c) => {
    const active = await schedulerFor(c.env, c.get("accountId")).activeWorkers(60_000);
    return c.json({ active });
  });
