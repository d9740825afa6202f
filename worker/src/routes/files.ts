import { Hono } from "hono";
import type { AppEnv } from "../env";
import { ApiError } from "../http-error";
import { schedulerFor } from "../scheduler-stub";
import { verifySignedUrl } from "../signed-urls";

const expired = () =>
  new ApiError(403, "forbidden", "This link is invalid or has expired", "Signed links last 15 minutes; request a new one.");

function requireLength(header: string | undefined): number {
  const length = Number(header);
  if (header === undefined || !Number.isInteger(length) || length < 0) {
    throw new ApiError(411 as 400, "bad_request", "Content-Length is required for uploads");
  }
  return length;
}

/** Byte transfers through signed URLs: streamed between the client and R2, never buffered whole. */
export const fileRoutes = new Hono<AppEnv>()
  .get("/files/get", async (c) => {
    const target = await verifySignedUrl(new URL(c.req.url), "get", c.env.API_KEY_PEPPER);
    if (!target) throw expired();
    const object = await c.env.ARTIFACTS.get(target.key);
    if (!object) throw new ApiError(404, "not_found", "This file no longer exists", "Outputs are kept for 30 days.");
    const headers = new Headers();
    object.writeHttpMetadata(headers);
    headers.set("content-length", String(object.size));
    headers.set("etag", object.httpEtag);
    return new Response(object.body, { headers });
  })
  .put("/files/put-blob", async (c) => {
    const target = await verifySignedUrl(new URL(c.req.url), "put-blob", c.env.API_KEY_PEPPER);
    if (!target?.sha256) throw expired();
    requireLength(c.req.header("content-length"));
    const body = c.req.raw.body ?? new Uint8Array(0);
    try {
      // R2 checks the sha256 itself: content-addressed blobs cannot be poisoned with other bytes.
      await c.env.ARTIFACTS.put(target.key, body, { sha256: target.sha256 });
    } catch (error) {
      throw new ApiError(
        400,
        "bad_request",
        `Upload rejected: ${String(error)}`,
        "The file changed while uploading; run the command again.",
      );
    }
    return c.json({ stored: target.key });
  })
  .put("/files/put-output", async (c) => {
    const target = await verifySignedUrl(new URL(c.req.url), "put-output", c.env.API_KEY_PEPPER);
    if (!target || target.attempt === undefined) throw expired();
    requireLength(c.req.header("content-length"));
    const executionId = target.key.split("/")[1] ?? "";
    // Fencing: only the current attempt of a running execution may write its outputs.
    const current = await schedulerFor(c.env, target.accountId).isCurrentAttempt(executionId, target.attempt);
    if (!current) throw new ApiError(409, "conflict", "This attempt is no longer current; its outputs are refused");
    await c.env.ARTIFACTS.put(target.key, c.req.raw.body ?? new Uint8Array(0), {
      httpMetadata: { contentType: c.req.header("content-type") ?? "application/octet-stream" },
    });
    return c.json({ stored: target.key });
  });
