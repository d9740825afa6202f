import { and, eq, inArray } from "drizzle-orm";
import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import type { CreateExecutionInput, ExecutionView } from "../../shared/src/executions";
import { DEFAULT_RUNTIME, runtimeImages, type RuntimeName } from "../../shared/src/runtimes";
import type { TaskPayload } from "../../durable/src/task-record";
import { executions } from "./db/schema";
import type { Env } from "./env";
import { ApiError } from "./http-error";
import { newId } from "./ids";
import { schedulerFor } from "./scheduler-stub";
import { storageKeys } from "./signed-urls";
import { toExecutionView } from "./execution-view";
import { chunkRows } from "../../durable/src/sql-chunks";

async function assertBlobsPresent(env: Env, accountId: string, requests: CreateExecutionInput[]): Promise<void> {
  const hashes = new Set<string>();
  for (const r of requests) {
    hashes.add(r.script.sha256);
    for (const input of r.inputs) hashes.add(input.sha256);
    if (r.requirements_sha256) hashes.add(r.requirements_sha256);
  }
  const missing: string[] = [];
  await Promise.all(
    [...hashes].map(async (hash) => {
      if (!(await env.ARTIFACTS.head(storageKeys.blob(accountId, hash)))) missing.push(hash);
    }),
  );
  if (missing.length > 0) {
    throw new ApiError(
      400,
      "validation_failed",
      `${missing.length} referenced file(s) were never uploaded (e.g. sha256 ${missing[0]})`,
      "Upload them first through POST /api/v1/blobs/missing; the rgrid CLI does this for you.",
    );
  }
}

type ExecutionRow = typeof executions.$inferSelect;

/** The account's executions with these idempotency keys, in chunks under D1's bound-parameter cap. */
async function executionsByIdempotencyKey(db: DrizzleD1Database, accountId: string, keys: string[]): Promise<Map<string, ExecutionRow>> {
  const found = new Map<string, ExecutionRow>();
  // One parameter per key plus the account id.
  for (const chunk of chunkRows(keys, 1, 1)) {
    const rows = await db
      .select()
      .from(executions)
      .where(and(eq(executions.accountId, accountId), inArray(executions.idempotencyKey, chunk)));
    for (const row of rows) found.set(row.idempotencyKey, row);
  }
  return found;
}

/**
 * Creates executions (one, or a chunk of a batch) idempotently: a request whose idempotency key
 * was seen before returns the execution it created, and nothing is queued twice.
 */
export async function submitExecutions(
  env: Env,
  accountId: string,
  requests: CreateExecutionInput[],
  batch?: { id: string; parallel: number },
): Promise<{ views: ExecutionView[]; created: boolean[] }> {
  const db = drizzle(env.DB);
  const keys = requests.map((r) => r.idempotency_key);
  const existing = await executionsByIdempotencyKey(db, accountId, keys);
  const fresh = requests.filter((r) => !existing.has(r.idempotency_key));
  if (fresh.length > 0) await assertBlobsPresent(env, accountId, fresh);

  const now = Date.now();
  const rows = fresh.map((r) => {
    const runtime = r.image ? null : ((r.runtime ?? DEFAULT_RUNTIME) as RuntimeName);
    return {
      id: newId("exec"),
      accountId,
      batchId: batch?.id ?? r.batch_id ?? null,
      idempotencyKey: r.idempotency_key,
      status: "queued",
      scriptName: r.script.path,
      scriptHash: r.script.sha256,
      runtime,
      image: r.image ?? runtimeImages[runtime ?? DEFAULT_RUNTIME],
      argsJson: JSON.stringify(r.args),
      inputsJson: JSON.stringify(r.inputs),
      envNamesJson: JSON.stringify(Object.keys(r.env)),
      requirementsHash: r.requirements_sha256 ?? null,
      timeoutSeconds: r.timeout_seconds,
      memoryMb: r.memory_mb,
      cpus: r.cpus,
      network: r.network,
      metadataJson: JSON.stringify(r.metadata),
      retryOf: r.retry_of ?? null,
      attempt: 0,
      createdAt: now,
      costMicros: 0,
    };
  });
  // One statement per row (D1 caps bound parameters per statement) sent as one batch: one round trip.
  // A concurrent retry with the same key loses the race quietly; it is re-read below.
  const [firstInsert, ...restInserts] = rows.map((row) => db.insert(executions).values(row).onConflictDoNothing());
  if (firstInsert) await db.batch([firstInsert, ...restInserts]);
  const byKey = rows.length > 0 ? await executionsByIdempotencyKey(db, accountId, keys) : existing;
  // Only rows that won their idempotency key are queued: a lost race must not run twice.
  const winners = rows.filter((row) => byKey.get(row.idempotencyKey)?.id === row.id);
  if (winners.length > 0) {
    await env.DB.batch(
      winners.map((row) =>
        env.DB.prepare(
          "INSERT OR IGNORE INTO events (account_id, execution_id, attempt, type, message, created_at, dedupe_key) VALUES (?, ?, NULL, 'queued', ?, ?, ?)",
        ).bind(accountId, row.id, `queued ${row.scriptName}`, now, `${row.id}:0:queued`),
      ),
    );
    const requestByKey = new Map(fresh.map((r) => [r.idempotency_key, r]));
    await schedulerFor(env, accountId).enqueue(
      accountId,
      winners.map((row) => {
        const request = requestByKey.get(row.idempotencyKey);
        const payload: TaskPayload = {
          script: { path: row.scriptName, sha256: row.scriptHash },
          inputs: request?.inputs ?? [],
          requirements_sha256: row.requirementsHash,
          args: request?.args ?? [],
          image: row.image,
          runtime: row.runtime,
          env: request?.env ?? {},
          timeout_seconds: row.timeoutSeconds,
          memory_mb: row.memoryMb,
          cpus: row.cpus,
          network: row.network as "bridge" | "none",
          batch_id: row.batchId,
        };
        return { executionId: row.id, payload };
      }),
      batch,
    );
  }

  const views = requests.map((r) => {
    const row = byKey.get(r.idempotency_key);
    if (!row) throw new Error(`execution for idempotency key ${r.idempotency_key} vanished`);
    return toExecutionView(row);
  });
  return { views, created: requests.map((r) => !existing.has(r.idempotency_key)) };
}
