import type { DrizzleD1Database } from "drizzle-orm/d1";
import { randomBase62 } from "../../../shared/src/api-key";
import { registrationTokens } from "../db/schema";
import { hashSecret } from "./secret-hash";

/** A registration token is good for one agent registration within a day. */
const REGISTRATION_TOKEN_TTL_MS = 24 * 60 * 60 * 1000;

export async function mintRegistrationToken(db: DrizzleD1Database, pepper: string, accountId: string): Promise<string> {
  const token = `rgrid_rt_${randomBase62(40)}`;
  const now = Date.now();
  await db.insert(registrationTokens).values({
    tokenHash: await hashSecret(pepper, token),
    accountId,
    createdAt: now,
    expiresAt: now + REGISTRATION_TOKEN_TTL_MS,
  });
  return token;
}

export function newWorkerCredential(): string {
  return `rgrid_wk_${randomBase62(40)}`;
}
