import { Hono } from "hono";
import {
  completeManyRequestSchema,
  completeRequestSchema,
  heartbeatRequestSchema,
  leaseRequestSchema,
  logBatchRequestSchema,
  outputUploadRequestSchema,
  registerRequestSchema,
  releaseRequestSchema,
  startedRequestSchema,
  type Task,
} from "../../../shared/src/agent-protocol";
import type { LeasedTask } from "../../../durable/src/task-record";
import { requireWorker, type AgentEnv } from "../auth/require-worker";
import { hashSecret } from "../auth/secret-hash";
import { newWorkerCredential } from "../auth/worker-credentials";
import { ApiError } from "../http-error";
import { newId } from "../ids";
import { schedulerFor } from "../scheduler-stub";
import { signUrl, storageKeys } from "../signed-urls";
import { zValidator } from "../validation";

const staleAttempt = () =>
  new ApiError(
    409,
    "conflict",
    "This attempt is no longer current (its lease lapsed or it was cancelled)",
    "Stop this attempt; it has moved on.",
  );

async function toTask(origin: string, pepper: string, accountId: string, leased: LeasedTask): Promise<Task> {
  const sign = (sha256: string) => signUrl(origin, pepper, { op: "get", key: storageKeys.blob(accountId, sha256), accountId });
  const p = leased.payload;
  return {
    execution_id: leased.executionId,
    attempt: leased.attempt,
    lease_expires_at: leased.leaseExpiresAt,
    script: { ...p.script, download_url: await sign(p.script.sha256) },
    inputs: await Promise.all(p.inputs.map(async (i) => ({ ...i, download_url: await sign(i.sha256) }))),
    requirements: p.requirements_sha256 ? { sha256: p.requirements_sha256, download_url: await sign(p.requirements_sha256) } : null,
    args: p.args,
    image: p.image,
    runtime: p.runtime,
    env: p.env,
    timeout_seconds: p.timeout_seconds,
    memory_mb: p.memory_mb,
    cpus: p.cpus,
    network: p.network,
    batch_id: p.batch_id,
  };
}

/** Registration: a one-time token becomes this worker's own credential. */
export const agentRegistrationRoutes = new Hono<AgentEnv>().post("/register", zValidator("json", registerRequestSchema), async (c) => {
  const body = c.req.valid("json");
  const tokenHash = await hashSecret(c.env.API_KEY_PEPPER, body.registration_token);
  const now = Date.now();
  // Consume the token atomically: a second registration with it finds nothing to update.
  const token = await c.env.DB.prepare(
    "UPDATE registration_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING account_id",
  )
    .bind(now, tokenHash, now)
    .first<{ account_id: string }>();
  if (!token) {
    throw new ApiError(
      401,
      "unauthorized",
      "Registration token is unknown, used or expired",
      "Mint a new one (rgrid dev does this at start).",
    );
  }
  const credential = newWorkerCredential();
  const workerId = newId("wrk");
  await c.env.DB.batch([
    c.env.DB.prepare(
      "INSERT INTO workers (id, account_id, name, credential_hash, slots, backend, registered_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    ).bind(workerId, token.account_id, body.name, await hashSecret(c.env.API_KEY_PEPPER, credential), body.slots, body.backend, now, now),
    c.env.DB.prepare("INSERT INTO events (account_id, type, message, created_at) VALUES (?, 'worker_registered', ?, ?)").bind(
      token.account_id,
      `worker ${workerId} (${body.name}, ${body.slots} slots, ${body.backend})`,
      now,
    ),
  ]);
  return c.json({ worker_id: workerId, account_id: token.account_id, credential }, 201);
});

export const agentRoutes = new Hono<AgentEnv>()
  .use("*", requireWorker)
  .post("/lease", zValidator("json", leaseRequestSchema), async (c) => {
    const { free_slots, wait_ms, holding } = c.req.valid("json");
    const accountId = c.get("accountId");
    const leased = await schedulerFor(c.env, accountId).lease(accountId, c.get("workerId"), free_slots, wait_ms, holding);
    const origin = new URL(c.req.url).origin;
    const tasks = await Promise.all(leased.map((t) => toTask(origin, c.env.API_KEY_PEPPER, accountId, t)));
    return c.json({ tasks });
  })
  .post("/heartbeat", zValidator("json", heartbeatRequestSchema), async (c) => {
    return c.json(await schedulerFor(c.env, c.get("accountId")).heartbeat(c.get("workerId"), c.req.valid("json").leases));
  })
  .post("/executions/:id/started", zValidator("json", startedRequestSchema), async (c) => {
    const ok = await schedulerFor(c.env, c.get("accountId")).started(c.get("workerId"), c.req.param("id"), c.req.valid("json").attempt);
    if (!ok) throw staleAttempt();
    return c.json({ ok: true });
  })
  .post("/executions/:id/logs", zValidator("json", logBatchRequestSchema), async (c) => {
    const { attempt, lines } = c.req.valid("json");
    const ok = await schedulerFor(c.env, c.get("accountId")).appendLogs(c.get("workerId"), c.req.param("id"), attempt, lines);
    if (!ok) throw staleAttempt();
    return c.json({ accepted: lines.length });
  })
  .post("/executions/:id/outputs", zValidator("json", outputUploadRequestSchema), async (c) => {
    const { attempt, files } = c.req.valid("json");
    const accountId = c.get("accountId");
    const executionId = c.req.param("id");
    if (!(await schedulerFor(c.env, accountId).isCurrentAttempt(executionId, attempt))) throw staleAttempt();
    const origin = new URL(c.req.url).origin;
    const uploads = await Promise.all(
      files.map(async (f) => ({
        path: f.path,
        upload_url: await signUrl(origin, c.env.API_KEY_PEPPER, {
          op: "put-output",
          key: storageKeys.output(executionId, attempt, f.path),
          accountId,
          attempt,
        }),
      })),
    );
    return c.json({ uploads });
  })
  .post("/executions/:id/release", zValidator("json", releaseRequestSchema), async (c) => {
    const outcome = await schedulerFor(c.env, c.get("accountId")).release(
      c.get("workerId"),
      c.req.param("id"),
      c.req.valid("json").attempt,
    );
    if (outcome === "stale") throw staleAttempt();
    return c.json({ outcome });
  })
  .post("/complete", zValidator("json", completeManyRequestSchema), async (c) => {
    const outcomes = await schedulerFor(c.env, c.get("accountId")).completeMany(c.get("workerId"), c.req.valid("json").completions);
    return c.json({ outcomes });
  })
  .post("/executions/:id/complete", zValidator("json", completeRequestSchema), async (c) => {
    const outcome = await schedulerFor(c.env, c.get("accountId")).complete(c.get("workerId"), c.req.param("id"), c.req.valid("json"));
    if (outcome === "stale") throw staleAttempt();
    return c.json({ outcome });
  });
