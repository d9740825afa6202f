import { zValidator } from "../validation";
import { and, desc, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { Hono } from "hono";
import { z } from "zod";
import type { ValidateKeyResponse } from "../../../shared/src/auth";
import { createApiKey, revokeApiKey } from "../auth/api-keys";
import { accounts, apiKeys } from "../db/schema";
import type { AppEnv } from "../env";
import { ApiError } from "../http-error";

export const apiKeyRoutes = new Hono<AppEnv>()
  .post("/auth/validate", async (c) => {
    const db = drizzle(c.env.DB);
    const account = (
      await db
        .select()
        .from(accounts)
        .where(eq(accounts.id, c.get("accountId")))
        .limit(1)
    )[0];
    if (!account) throw new ApiError(401, "unauthorized", "The account of this key no longer exists.");
    const body: ValidateKeyResponse = {
      account_id: account.id,
      email: account.email,
      credits_balance_micros: account.creditsBalanceMicros,
    };
    return c.json(body);
  })
  .get("/api-keys", async (c) => {
    const rows = await drizzle(c.env.DB)
      .select({
        id: apiKeys.id,
        prefix: apiKeys.prefix,
        name: apiKeys.name,
        created_at: apiKeys.createdAt,
        last_used_at: apiKeys.lastUsedAt,
        revoked_at: apiKeys.revokedAt,
      })
      .from(apiKeys)
      .where(eq(apiKeys.accountId, c.get("accountId")))
      .orderBy(desc(apiKeys.createdAt));
    return c.json({ api_keys: rows });
  })
  .post("/api-keys", zValidator("json", z.object({ name: z.string().max(100).default("") })), async (c) => {
    const created = await createApiKey(drizzle(c.env.DB), c.env.API_KEY_PEPPER, c.get("accountId"), c.req.valid("json").name);
    // The plaintext key leaves the server exactly once, here.
    return c.json({ id: created.id, api_key: created.key, prefix: created.prefix }, 201);
  })
  .delete("/api-keys/:id", async (c) => {
    const db = drizzle(c.env.DB);
    const revoked = await revokeApiKey(db, c.get("accountId"), c.req.param("id"));
    if (!revoked) {
      const exists = await db
        .select({ id: apiKeys.id })
        .from(apiKeys)
        .where(and(eq(apiKeys.id, c.req.param("id")), eq(apiKeys.accountId, c.get("accountId"))));
      if (exists.length === 0) throw new ApiError(404, "not_found", "API key not found", "`GET /api/v1/api-keys` lists yours.");
    }
    return c.json({ id: c.req.param("id"), revoked: true });
  });
