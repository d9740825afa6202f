import { DurableObject } from "cloudflare:workers";
import type { Env } from "../../worker/src/env";

/**
 * One per account (named by account id): serializes scheduling for that account — the queue,
 * leases and attempts — and fans out live logs. State is loaded inside `blockConcurrencyWhile`
 * so no request sees a half-initialised object.
 */
export class AccountScheduler extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      this.ctx.storage.sql.exec(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
      );
    });
  }

  /** The account this object serves; set on first use so misrouted calls are caught. */
  async bindAccount(accountId: string): Promise<string> {
    const existing = this.ctx.storage.sql
      .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'account_id'")
      .toArray()[0];
    if (existing && existing.value !== accountId) {
      throw new Error(`AccountScheduler for ${existing.value} was called for ${accountId}: route by idFromName(accountId)`);
    }
    if (!existing) this.ctx.storage.sql.exec("INSERT INTO meta (key, value) VALUES ('account_id', ?)", accountId);
    return accountId;
  }
}
