import { and, eq, isNull } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { apiKeyDisplayPrefix, generateApiKey } from "../../../shared/src/api-key";
import { apiKeys } from "../db/schema";
import { newId } from "../ids";
import { recordEvent } from "../events";
import { hashSecret } from "./secret-hash";

export interface CreatedApiKey {
  id: string;
  key: string;
  prefix: string;
}

/** Mints a key; the plaintext is returned once and never stored. */
export async function createApiKey(db: DrizzleD1Database, pepper: string, accountId: string, name = ""): Promise<CreatedApiKey> {
  const key = generateApiKey();
  const id = newId("key");
  const prefix = apiKeyDisplayPrefix(key);
  await db.insert(apiKeys).values({
    id,
    accountId,
    keyHash: await hashSecret(pepper, key),
    prefix,
    name,
    createdAt: Date.now(),
  });
  await recordEvent(db, { accountId, type: "api_key_created", message: `key ${prefix}… created` });
  return { id, key, prefix };
}

/** Revokes one of the caller's keys; takes effect on the next request that uses it. */
export async function revokeApiKey(db: DrizzleD1Database, accountId: string, keyId: string): Promise<boolean> {
  const revoked = await db
    .update(apiKeys)
    .set({ revokedAt: Date.now() })
    .where(and(eq(apiKeys.id, keyId), eq(apiKeys.accountId, accountId), isNull(apiKeys.revokedAt)))
    .returning({ prefix: apiKeys.prefix });
  const row = revoked[0];
  if (!row) return false;
  await recordEvent(db, { accountId, type: "api_key_revoked", message: `key ${row.prefix}… revoked` });
  return true;
}
