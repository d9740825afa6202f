import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { requireApiKey } from "./auth/require-api-key";
import type { AppEnv } from "./env";
import { ApiError } from "./http-error";
import { agentRegistrationRoutes, agentRoutes } from "./routes/agent";
import { apiKeyRoutes } from "./routes/api-keys";
import { batchRoutes } from "./routes/batches";
import { executionRoutes } from "./routes/executions";
import { fileRoutes } from "./routes/files";
import { healthRoutes } from "./routes/health";
import { localBootstrapRoutes } from "./routes/local-bootstrap";

export function createApp() {
  const app = new Hono<AppEnv>();

  app.route("/", healthRoutes);
  app.route("/", localBootstrapRoutes);
  app.route("/", fileRoutes);
  app.route("/agent/v1", agentRegistrationRoutes as unknown as Hono<AppEnv>);
  app.route("/agent/v1", agentRoutes as unknown as Hono<AppEnv>);

  const api = new Hono<AppEnv>();
  api.use("*", requireApiKey);
  api.route("/", apiKeyRoutes);
  api.route("/", executionRoutes);
  api.route("/", batchRoutes);
  app.route("/api/v1", api);

  app.notFound(() => {
    throw new ApiError(404, "not_found", "No such endpoint", "See the API reference in the README.");
  });

  // One place turns every failure into `{ error: { code, message, hint } }`; stacks stay in the logs.
  app.onError((err, c) => {
    if (err instanceof ApiError) return c.json(err.toBody(), err.status);
    if (err instanceof HTTPException) {
      const status = err.status;
      return c.json({ error: { code: status === 401 ? "unauthorized" : "bad_request", message: err.message } }, status);
    }
    console.error(JSON.stringify({ msg: "unhandled error", method: c.req.method, path: c.req.path, error: String(err), stack: err.stack }));
    return c.json(
      new ApiError(500, "internal_error", "Internal error", "Try again; if it persists, report it with the time of the request.").toBody(),
      500,
    );
  });
  return app;
}
