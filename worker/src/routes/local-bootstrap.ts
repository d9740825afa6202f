import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { Hono } from "hono";
import type { LocalBootstrapResponse } from "../../../shared/src/auth";
import { createApiKey } from "../auth/api-keys";
import { mintRegistrationToken } from "../auth/worker-credentials";
import { digestsEqual } from "../auth/secret-hash";
import { accounts } from "../db/schema";
import type { AppEnv } from "../env";
import { ApiError } from "../http-error";
import { newId } from "../ids";

export const LOCAL_ACCOUNT_EMAIL = "local@rgrid.dev";

/**
 * Local mode only: `rgrid dev` calls this to get the local account, a fresh API key and an agent
 * registration token. Disabled unless RGRID_LOCAL_MODE is "true", and gated by a token only
 * `rgrid dev` knows, so a deployed Worker can never mint accounts through it.
 */
export const localBootstrapRoutes = new Hono<AppEnv>().post("/local/bootstrap", async (c) => {
  const expected = c.env.LOCAL_BOOTSTRAP_TOKEN ?? "";
  const given = c.req.header("X-Rgrid-Bootstrap") ?? "";
  if (c.env.RGRID_LOCAL_MODE !== "true" || expected === "" || !digestsEqual(given, expected)) {
    throw new ApiError(404, "not_found", "Not found");
  }
  const db = drizzle(c.env.DB);
  let account = (await db.select().from(accounts).where(eq(accounts.email, LOCAL_ACCOUNT_EMAIL)).limit(1))[0];
  if (!account) {
    account = { id: newId("acct"), email: LOCAL_ACCOUNT_EMAIL, creditsBalanceMicros: 0, createdAt: Date.now() };
    await db.insert(accounts).values(account).onConflictDoNothing();
    account = (await db.select().from(accounts).where(eq(accounts.email, LOCAL_ACCOUNT_EMAIL)).limit(1))[0] ?? account;
  }
  const key = await createApiKey(db, c.env.API_KEY_PEPPER, account.id, "rgrid dev");
  const registrationToken = await mintRegistrationToken(db, c.env.API_KEY_PEPPER, account.id);
  const body: LocalBootstrapResponse = {
    account_id: account.id,
    email: account.email,
    api_key: key.key,
    registration_token: registrationToken,
  };
  return c.json(body, 201);
});
