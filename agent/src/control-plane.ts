import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import http from "node:http";
import https from "node:https";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import type { z } from "zod";
import {
  completeRequestSchema,
  heartbeatRequestSchema,
  heartbeatResponseSchema,
  leaseRequestSchema,
  leaseResponseSchema,
  logBatchRequestSchema,
  outputUploadRequestSchema,
  outputUploadResponseSchema,
  registerRequestSchema,
  registerResponseSchema,
  releaseRequestSchema,
} from "../../shared/src/agent-protocol";

/** The credential was refused (401): the agent cannot go on and exits with a clear message. */
export class CredentialRejectedError extends Error {
  override readonly name = "CredentialRejectedError";
}
/** 409: this attempt is no longer current (fenced). Stop working on it and drop its results. */
export class StaleAttemptError extends Error {
  override readonly name = "StaleAttemptError";
}
/** The control plane could not be reached, or answered 5xx: worth retrying with backoff. */
export class ApiUnreachableError extends Error {
  override readonly name = "ApiUnreachableError";
}
/** Any other refusal, or a reply that does not match the protocol. Not retried. */
export class ApiResponseError extends Error {
  override readonly name = "ApiResponseError";
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

type RegisterResponse = z.infer<typeof registerResponseSchema>;
type LeaseResponse = z.infer<typeof leaseResponseSchema>;
type HeartbeatResponse = z.infer<typeof heartbeatResponseSchema>;
type OutputUploadResponse = z.infer<typeof outputUploadResponseSchema>;

const CALL_TIMEOUT_MS = 30_000;

/**
 * The agent's side of `shared/src/agent-protocol.ts`. Request bodies are built through the shared
 * schemas and every reply is parsed with `safeParse`, never cast. Errors carry the path and the
 * status only: no bodies, credentials or signed URLs reach a log.
 */
export class ControlPlane {
  private credential: string | null = null;

  constructor(
    private readonly baseUrl: string,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  setCredential(credential: string): void {
    this.credential = credential;
  }

  register(body: z.input<typeof registerRequestSchema>): Promise<RegisterResponse> {
    return this.call("/agent/v1/register", registerRequestSchema.parse(body), registerResponseSchema, { auth: false });
  }

  /** Long-poll: the server holds the call up to `wait_ms` when there is no work. */
  lease(body: z.input<typeof leaseRequestSchema>, signal?: AbortSignal): Promise<LeaseResponse> {
    const parsed = leaseRequestSchema.parse(body);
    return this.call("/agent/v1/lease", parsed, leaseResponseSchema, { timeoutMs: parsed.wait_ms + 15_000, signal });
  }

  heartbeat(body: z.input<typeof heartbeatRequestSchema>): Promise<HeartbeatResponse> {
    return this.call("/agent/v1/heartbeat", heartbeatRequestSchema.parse(body), heartbeatResponseSchema);
  }

  async started(executionId: string, attempt: number): Promise<void> {
    await this.call(`/agent/v1/executions/${encodeURIComponent(executionId)}/started`, { attempt }, null);
  }

  async logs(executionId: string, body: z.input<typeof logBatchRequestSchema>): Promise<void> {
    await this.call(`/agent/v1/executions/${encodeURIComponent(executionId)}/logs`, logBatchRequestSchema.parse(body), null);
  }

  outputs(executionId: string, body: z.input<typeof outputUploadRequestSchema>): Promise<OutputUploadResponse> {
    return this.call(
      `/agent/v1/executions/${encodeURIComponent(executionId)}/outputs`,
      outputUploadRequestSchema.parse(body),
      outputUploadResponseSchema,
    );
  }

  async complete(executionId: string, body: z.input<typeof completeRequestSchema>): Promise<void> {
    await this.call(`/agent/v1/executions/${encodeURIComponent(executionId)}/complete`, completeRequestSchema.parse(body), null);
  }

  /** Hands back an attempt this agent will not finish (shutting down); 409 if it already moved on. */
  async release(executionId: string, attempt: number): Promise<void> {
    await this.call(`/agent/v1/executions/${encodeURIComponent(executionId)}/release`, releaseRequestSchema.parse({ attempt }), null);
  }

  /** Signed URLs arrive absolute, or relative to the API's base URL. */
  resolveUrl(url: string): URL {
    if (/^https?:\/\//i.test(url)) return new URL(url);
    return new URL(`${this.baseUrl}${url.startsWith("/") ? "" : "/"}${url}`);
  }

  /**
   * GETs a signed URL straight to `dest`, hashing on the way, and checks the sha256. The credential
   * is not sent: the URL carries its own signature.
   */
  async download(
    url: string,
    dest: string,
    expectedSha256: string | null,
    signal?: AbortSignal,
    maxBytes = Number.POSITIVE_INFINITY,
  ): Promise<void> {
    let res: Response;
    try {
      res = await this.fetchImpl(this.resolveUrl(url), { signal: signal ?? null });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new ApiUnreachableError(`download failed: ${networkErrorSummary(err)}`);
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      if (res.status >= 500) throw new ApiUnreachableError(`download answered ${res.status}`);
      throw new ApiResponseError(`download answered ${res.status}`, res.status);
    }
    const hash = createHash("sha256");
    let bytes = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        if (bytes > maxBytes) return cb(new ApiResponseError(`download larger than ${maxBytes} bytes`, 413));
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), tap, createWriteStream(dest, { mode: 0o644 }));
    const actual = hash.digest("hex");
    if (expectedSha256 !== null && actual !== expectedSha256) {
      throw new ApiResponseError(`sha256 mismatch: expected ${expectedSha256.slice(0, 12)}…, got ${actual.slice(0, 12)}…`, 422);
    }
  }

  /**
   * PUTs a file to a signed URL, streamed from disk with its Content-Length (never read whole into
   * memory). 409 means the attempt is stale.
   */
  upload(url: string, file: string, size: number, contentType: string, signal?: AbortSignal): Promise<void> {
    const target = this.resolveUrl(url);
    const request = target.protocol === "https:" ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = request(target, {
        method: "PUT",
        headers: { "content-length": String(size), "content-type": contentType },
        timeout: 120_000,
        ...(signal ? { signal } : {}),
      });
      req.on("timeout", () => req.destroy(new ApiUnreachableError("upload timed out")));
      req.on("error", (err) =>
        reject(
          err instanceof ApiUnreachableError || signal?.aborted
            ? err
            : new ApiUnreachableError(`upload failed: ${networkErrorSummary(err)}`),
        ),
      );
      req.on("response", (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve();
        else if (status === 409) reject(new StaleAttemptError("upload refused: attempt is stale"));
        else if (status === 401) reject(new CredentialRejectedError("upload refused with 401"));
        else if (status >= 500) reject(new ApiUnreachableError(`upload answered ${status}`));
        else reject(new ApiResponseError(`upload answered ${status}`, status));
      });
      const source = createReadStream(file);
      source.on("error", (err) => req.destroy(err));
      source.pipe(req);
    });
  }

  private async call<T>(
    path: string,
    body: unknown,
    schema: z.ZodType<T> | null,
    opts: { auth?: boolean; timeoutMs?: number; signal?: AbortSignal | undefined } = {},
  ): Promise<T> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (opts.auth !== false) {
      if (!this.credential) throw new CredentialRejectedError("no credential: register first");
      headers.authorization = `Bearer ${this.credential}`;
    }
    const timeout = AbortSignal.timeout(opts.timeoutMs ?? CALL_TIMEOUT_MS);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.baseUrl}${path}`, { method: "POST", headers, body: JSON.stringify(body), signal });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw new ApiUnreachableError(`POST ${path}: ${networkErrorSummary(err)}`);
    }
    if (res.status === 401) {
      await res.body?.cancel();
      throw new CredentialRejectedError(`POST ${path} answered 401`);
    }
    if (res.status === 409) {
      await res.body?.cancel();
      throw new StaleAttemptError(`POST ${path} answered 409`);
    }
    if (res.status >= 500 || res.status === 429) {
      await res.body?.cancel();
      throw new ApiUnreachableError(`POST ${path} answered ${res.status}`);
    }
    let json: unknown = null;
    try {
      json = await res.json();
    } catch (err) {
      // A body cut off mid-way (the control plane restarting) is a network failure, worth retrying;
      // a body that is not JSON is checked below (one is required only when there is a schema).
      if (!(err instanceof SyntaxError)) throw new ApiUnreachableError(`POST ${path}: the reply was cut off (${networkErrorSummary(err)})`);
    }
    if (!res.ok) {
      const message = (json as { error?: { message?: unknown } } | null)?.error?.message;
      throw new ApiResponseError(
        `POST ${path} answered ${res.status}${typeof message === "string" ? `: ${message.slice(0, 300)}` : ""}`,
        res.status,
      );
    }
    if (schema === null) return undefined as T;
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      throw new ApiResponseError(
        `POST ${path}: unexpected reply (${first ? `${first.path.join(".")}: ${first.message}` : "invalid"})`,
        res.status,
      );
    }
    return parsed.data;
  }
}

/**
 * A network failure as its error code (ECONNREFUSED, ENOTFOUND, …): messages often embed the host,
 * port or signed URL, which stay out of logs.
 */
function networkErrorSummary(err: unknown): string {
  type Shape = { code?: unknown; name?: unknown; message?: unknown; cause?: Shape; errors?: Shape[] };
  const e = err as Shape | null;
  const code = e?.cause?.code ?? e?.cause?.errors?.[0]?.code ?? e?.code;
  if (typeof code === "string") return code;
  const message = e?.cause?.message ?? e?.message;
  // Fall back to the message only when it names no address.
  if (typeof message === "string" && !/:\/\/|\d+\.\d+\.\d+\.\d+|:\d{2,5}\b/.test(message)) return message.slice(0, 120);
  return typeof e?.name === "string" ? e.name : "network error";
}
