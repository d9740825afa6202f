import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { healthResponseSchema } from "../../shared/src/auth";
import { createApp } from "../../worker/src/app";

function ctx(): ExecutionContext {
  return { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;
}

describe("GET /health", () => {
  it("reports healthy when a real D1 query and R2 head both succeed", async () => {
    const response = await SELF.fetch("http://rgrid.test/health");
    expect(response.status).toBe(200);
    const body = healthResponseSchema.parse(await response.json());
    expect(body).toMatchObject({ status: "healthy", database: "connected", storage: "connected" });
    expect(body.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("answers 503 and names the database when D1 fails, so operators know which part is down", async () => {
    const brokenDb = {
      prepare() {
        throw new Error("D1_ERROR: database unavailable");
      },
    } as unknown as D1Database;
    const response = await createApp().fetch(new Request("http://rgrid.test/health"), { ...env, DB: brokenDb }, ctx());
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ status: "unhealthy", database: "unavailable", storage: "connected" });
  });

  it("answers 503 and names storage when R2 fails", async () => {
    const brokenBucket = { head: () => Promise.reject(new Error("R2 unavailable")) } as unknown as R2Bucket;
    const response = await createApp().fetch(new Request("http://rgrid.test/health"), { ...env, ARTIFACTS: brokenBucket }, ctx());
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ status: "unhealthy", database: "connected", storage: "unavailable" });
  });

  it("returns the shared error shape for unknown routes, without a stack", async () => {
    const response = await SELF.fetch("http://rgrid.test/nope");
    expect(response.status).toBe(404);
    const body = await response.json<{ error: { code: string; message: string; hint?: string } }>();
    expect(body.error.code).toBe("not_found");
    expect(JSON.stringify(body)).not.toMatch(/at .*\.ts/);
  });
});
