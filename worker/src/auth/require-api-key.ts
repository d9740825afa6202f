import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { createMiddleware } from "hono/factory";
import { apiKeyFormatProblem } from "../../../shared/src/api-key";
import { apiKeys } from "../db/schema";
import type { AppEnv } from "../env";
import { ApiError } from "../http-error";
import { digestsEqual, hashSecret } from "./secret-hash";

const GET_A_KEY = "Get an API key from the rgrid console (or run `rgrid dev` for a local one), then run `rgrid init` to save it.";
/** Touching last_used_at on every call would make each request a D1 write; a minute's precision is plenty. */
const LAST_USED_PRECISION_MS = 60_000;

function unauthorized(message: string): ApiError {
  return new ApiError(401, "unauthorized", message, GET_A_KEY);
}

/** Authenticates `Authorization: Bearer rgrid_sk_…` and puts the account on the context. */
export const requireApiKey = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header("Authorization");
  if (!header) throw unauthorized("Missing API key: send it as `Authorization: Bearer <key>`.");
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  const key = match?.[1];
  if (!key) throw unauthorized("Malformed Authorization header: expected `Bearer <key>`.");
  if (apiKeyFormatProblem(key)) throw unauthorized("Malformed API key: rgrid keys look like `rgrid_sk_…`.");

  const keyHash = await hashSecret(c.env.API_KEY_PEPPER, key);
  const db = drizzle(c.env.DB);
  const row = (await db.select().from(apiKeys).where(eq(apiKeys.keyHash, keyHash)).limit(1))[0];
  if (!row || !digestsEqual(row.keyHash, keyHash)) throw unauthorized("Unknown API key.");
  if (row.revokedAt !== null) throw unauthorized(`API key ${row.prefix}… has been revoked.`);

  const now = Date.now();
  if (row.lastUsedAt === null || now - row.lastUsedAt > LAST_USED_PRECISION_MS) {
    c.executionCtx.waitUntil(db.update(apiKeys).set({ lastUsedAt: now }).where(eq(apiKeys.id, row.id)).run());
  }
  c.set("accountId", row.accountId);
  c.set("apiKeyId", row.id);
  await next();
});
