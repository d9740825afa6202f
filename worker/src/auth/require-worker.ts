import { createMiddleware } from "hono/factory";
import type { Env } from "../env";
import { ApiError } from "../http-error";
import { hashSecret } from "./secret-hash";

export type AgentEnv = { Bindings: Env; Variables: { accountId: string; workerId: string } };

/**
 * Agents poll and report constantly; caching a credential's identity for a minute in the isolate
 * keeps that from being a D1 read per call. Revoking a worker therefore takes up to a minute.
 */
const identityCache = new Map<string, { accountId: string; workerId: string; until: number }>();
const CACHE_MS = 60_000;

export const requireWorker = createMiddleware<AgentEnv>(async (c, next) => {
  const credential = /^Bearer\s+(rgrid_wk_[0-9A-Za-z]+)$/.exec(c.req.header("Authorization") ?? "")?.[1];
  if (!credential) {
    throw new ApiError(
      401,
      "unauthorized",
      "Missing or malformed worker credential",
      "Register the agent with a registration token first.",
    );
  }
  const hash = await hashSecret(c.env.API_KEY_PEPPER, credential);
  let identity = identityCache.get(hash);
  if (!identity || identity.until < Date.now()) {
    const row = await c.env.DB.prepare("SELECT id, account_id, status FROM workers WHERE credential_hash = ?")
      .bind(hash)
      .first<{ id: string; account_id: string; status: string }>();
    if (!row || row.status !== "active") {
      identityCache.delete(hash);
      throw new ApiError(
        401,
        "unauthorized",
        "Unknown or retired worker credential",
        "Re-register the agent with a new registration token.",
      );
    }
    identity = { accountId: row.account_id, workerId: row.id, until: Date.now() + CACHE_MS };
    identityCache.set(hash, identity);
  }
  c.set("accountId", identity.accountId);
  c.set("workerId", identity.workerId);
  await next();
});
