import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { apiKeyChecksum, apiKeyFormatProblem, generateApiKey } from "../../shared/src/api-key";
import { validateKeyResponseSchema } from "../../shared/src/auth";
import { api, bootstrapAccount } from "./fixtures";

async function expectUnauthorized(response: Response, message: RegExp) {
  expect(response.status).toBe(401);
  const body = await response.json<{ error: { code: string; message: string; hint: string } }>();
  expect(body.error.code).toBe("unauthorized");
  expect(body.error.message).toMatch(message);
  // Every 401 tells the user where to get a key.
  expect(body.error.hint).toMatch(/rgrid init/);
}

describe("API key format", () => {
  it("generates rgrid_sk_ keys with 36 random base62 characters and a valid checksum", () => {
    const key = generateApiKey();
    expect(key).toMatch(/^rgrid_sk_[0-9A-Za-z]{42}$/);
    expect(apiKeyFormatProblem(key)).toBeNull();
    expect(generateApiKey()).not.toBe(key);
  });

  it("detects a single-character typo through the checksum without a database lookup", () => {
    const key = generateApiKey();
    const body = key.slice(9, 45);
    const typo = `rgrid_sk_${body.slice(0, 5)}${body[5] === "a" ? "b" : "a"}${body.slice(6)}${key.slice(45)}`;
    expect(apiKeyFormatProblem(typo)).toBe("bad_checksum");
    expect(apiKeyChecksum(body)).toBe(key.slice(45));
  });

  it.each([
    ["sk_live_abc", "missing_prefix"],
    ["rgrid_sk_short", "wrong_length"],
    [`rgrid_sk_${"-".repeat(42)}`, "bad_characters"],
    [`rgrid_sk_${"a".repeat(42)}`, "bad_checksum"],
  ])("rejects %s as %s", (key, problem) => {
    expect(apiKeyFormatProblem(key)).toBe(problem);
  });
});

describe("authentication on /api/v1", () => {
  it("validates a good key and returns the account", async () => {
    const account = await bootstrapAccount();
    const response = await api("/auth/validate", account.api_key, { method: "POST" });
    expect(response.status).toBe(200);
    const body = validateKeyResponseSchema.parse(await response.json());
    expect(body).toEqual({ account_id: account.account_id, email: "local@rgrid.dev", credits_balance_micros: 0 });
  });

  it("refuses a request without a key", async () => {
    await expectUnauthorized(await api("/auth/validate", null, { method: "POST" }), /Missing API key/);
  });

  it("refuses a header that is not a bearer token", async () => {
    const response = await api("/auth/validate", null, { method: "POST", headers: { Authorization: "Basic abc" } });
    await expectUnauthorized(response, /Malformed Authorization header/);
  });

  it("refuses a key with a broken checksum before touching the database", async () => {
    await expectUnauthorized(await api("/auth/validate", `rgrid_sk_${"a".repeat(42)}`, { method: "POST" }), /Malformed API key/);
  });

  it("refuses a well-formed key that was never issued", async () => {
    await expectUnauthorized(await api("/auth/validate", generateApiKey(), { method: "POST" }), /Unknown API key/);
  });

  it("refuses a revoked key on the very next request and records the revocation as an event", async () => {
    const account = await bootstrapAccount();
    const other = await (
      await api("/api-keys", account.api_key, {
        method: "POST",
        body: JSON.stringify({ name: "ci" }),
        headers: { "content-type": "application/json" },
      })
    ).json<{ id: string; api_key: string }>();
    expect((await api("/auth/validate", other.api_key, { method: "POST" })).status).toBe(200);

    const revoke = await api(`/api-keys/${other.id}`, account.api_key, { method: "DELETE" });
    expect(revoke.status).toBe(200);
    await expectUnauthorized(await api("/auth/validate", other.api_key, { method: "POST" }), /revoked/);

    const events = await env.DB.prepare("SELECT type, message FROM events WHERE account_id = ? AND type = 'api_key_revoked'")
      .bind(account.account_id)
      .all<{ type: string; message: string }>();
    expect(events.results).toHaveLength(1);
    expect(events.results[0]?.message).toContain(other.api_key.slice(0, 15));
    expect(events.results[0]?.message).not.toContain(other.api_key);
  });

  it("cannot revoke another account's key", async () => {
    const account = await bootstrapAccount();
    await env.DB.prepare("INSERT INTO accounts (id, email, created_at) VALUES ('acct_other', 'other@example.com', 0)").run();
    await env.DB.prepare(
      "INSERT INTO api_keys (id, account_id, key_hash, prefix, created_at) VALUES ('key_other', 'acct_other', 'x', 'rgrid_sk_abc', 0)",
    ).run();
    const response = await api("/api-keys/key_other", account.api_key, { method: "DELETE" });
    expect(response.status).toBe(404);
    const row = await env.DB.prepare("SELECT revoked_at FROM api_keys WHERE id = 'key_other'").first<{ revoked_at: number | null }>();
    expect(row?.revoked_at).toBeNull();
  });

  it("stores no plaintext key anywhere in D1, only its HMAC and display prefix", async () => {
    const account = await bootstrapAccount();
    const tables = await env.DB.prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'd1_%'",
    ).all<{ name: string }>();
    expect(tables.results.length).toBeGreaterThan(5);
    const secretBody = account.api_key.slice(15);
    for (const { name } of tables.results) {
      const rows = await env.DB.prepare(`SELECT * FROM "${name}"`).all();
      const dump = JSON.stringify(rows.results);
      expect(dump, `table ${name}`).not.toContain(secretBody);
      expect(dump, `table ${name}`).not.toContain(account.registration_token);
    }
    const stored = await env.DB.prepare("SELECT key_hash, prefix FROM api_keys WHERE account_id = ?")
      .bind(account.account_id)
      .all<{ key_hash: string; prefix: string }>();
    for (const row of stored.results) expect(row.key_hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("keeps the local bootstrap route hidden without the bootstrap token", async () => {
    const { SELF } = await import("cloudflare:test");
    const response = await SELF.fetch("http://rgrid.test/local/bootstrap", { method: "POST", headers: { "X-Rgrid-Bootstrap": "wrong" } });
    expect(response.status).toBe(404);
  });
});
