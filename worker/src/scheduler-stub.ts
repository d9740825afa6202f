import type { Env } from "./env";

/** The account's Durable Object: one per account, so all of an account's scheduling is serialized. */
export function schedulerFor(env: Env, accountId: string) {
  return env.ACCOUNT_SCHEDULER.get(env.ACCOUNT_SCHEDULER.idFromName(accountId));
}
