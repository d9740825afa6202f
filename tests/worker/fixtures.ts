import { SELF } from "cloudflare:test";
import { expect } from "vitest";
import { registerResponseSchema } from "../../shared/src/agent-protocol";
import { localBootstrapResponseSchema, type LocalBootstrapResponse } from "../../shared/src/auth";
import { executionViewSchema, missingBlobsResponseSchema } from "../../shared/src/executions";

/** Creates (or reuses) the local account through the real bootstrap route and mints a fresh key. */
export async function bootstrapAccount(): Promise<LocalBootstrapResponse> {
  const response = await SELF.fetch("http://rgrid.test/local/bootstrap", {
    method: "POST",
    headers: { "X-Rgrid-Bootstrap": "test-bootstrap-token" },
  });
  if (response.status !== 201) throw new Error(`bootstrap failed: ${response.status} ${await response.text()}`);
  return localBootstrapResponseSchema.parse(await response.json());
}

export function api(path: string, key: string | null, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (key !== null) headers.set("Authorization", `Bearer ${key}`);
  return SELF.fetch(`http://rgrid.test/api/v1${path}`, { ...init, headers });
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export const json = (body: unknown) => ({ method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });

export async function setup() {
  const account = await bootstrapAccount();
  const register = await SELF.fetch(
    "http://rgrid.test/agent/v1/register",
    json({ registration_token: account.registration_token, name: "test", slots: 4, backend: "process", version: "test" }),
  );
  expect(register.status).toBe(201);
  const worker = registerResponseSchema.parse(await register.json());
  const agent = (path: string, body: unknown) =>
    SELF.fetch(`http://rgrid.test/agent/v1${path}`, {
      ...json(body),
      headers: { "content-type": "application/json", Authorization: `Bearer ${worker.credential}` },
    });
  return { account, worker, agent };
}

export async function uploadScript(key: string, text: string): Promise<string> {
  const sha = await sha256Hex(text);
  const missing = missingBlobsResponseSchema.parse(await (await api("/blobs/missing", key, json({ sha256: [sha] }))).json());
  for (const m of missing.missing) {
    const put = await SELF.fetch(m.upload_url, {
      method: "PUT",
      body: text,
      headers: { "content-length": String(new TextEncoder().encode(text).byteLength) },
    });
    expect(put.status).toBe(200);
  }
  return sha;
}

export async function submit(key: string, sha: string, idempotencyKey = crypto.randomUUID()) {
  const response = await api(
    "/executions",
    key,
    json({ idempotency_key: idempotencyKey, script: { path: "hello.py", sha256: sha }, env: { SECRET_TOKEN: "s3cr3t-value" } }),
  );
  return { status: response.status, view: executionViewSchema.parse(await response.json()) };
}

/** A key of a second, unrelated account, for tenant-isolation checks. */
export async function strangerKey(): Promise<string> {
  const { env } = await import("cloudflare:test");
  const { createApiKey } = await import("../../worker/src/auth/api-keys");
  const { drizzle } = await import("drizzle-orm/d1");
  const id = `acct_stranger_${crypto.randomUUID().slice(0, 8)}`;
  await env.DB.prepare("INSERT INTO accounts (id, email, created_at) VALUES (?, ?, 0)").bind(id, `${id}@example.com`).run();
  return (await createApiKey(drizzle(env.DB), env.API_KEY_PEPPER, id)).key;
}
