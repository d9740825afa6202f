import { Hono } from "hono";
import type { HealthResponse } from "../../../shared/src/auth";
import type { AppEnv } from "../env";

async function probe(check: () => Promise<boolean>): Promise<"connected" | "unavailable"> {
  try {
    return (await check()) ? "connected" : "unavailable";
  } catch {
    return "unavailable";
  }
}

/** Each dependency is really probed: a D1 query and an R2 head, so "healthy" means usable. */
export const healthRoutes = new Hono<AppEnv>().get("/health", async (c) => {
  const [database, storage] = await Promise.all([
    probe(async () => (await c.env.DB.prepare("SELECT 1 AS ok").first<{ ok: number }>())?.ok === 1),
    probe(async () => (await c.env.ARTIFACTS.head("health/probe"), true)),
  ]);
  const body: HealthResponse = {
    status: database === "connected" && storage === "connected" ? "healthy" : "unhealthy",
    database,
    storage,
    version: c.env.RGRID_VERSION,
  };
  return c.json(body, body.status === "healthy" ? 200 : 503);
});
