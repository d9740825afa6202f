import { z } from "zod";
import {
  addBatchExecutionsResponseSchema,
  apiErrorBodySchema,
  batchCreatedSchema,
  batchViewSchema,
  artifactListSchema,
  createExecutionRequestSchema,
  eventListSchema,
  executionListSchema,
  executionViewSchema,
  healthResponseSchema,
  logPageSchema,
  missingBlobsResponseSchema,
  localBootstrapResponseSchema,
  validateKeyResponseSchema,
  type BatchView,
  type CreateExecutionRequest,
  type ExecutionStatus,
  type ExecutionView,
  type HealthResponse,
  type LogPage,
  type LocalBootstrapResponse,
  type ValidateKeyResponse,
} from "../../shared/src/index";
import { ApiError, UserError } from "./errors";

/**
 * The one HTTP client every command uses. Responses are parsed with zod (never cast), API error
 * bodies become `ApiError`s carrying the server's message and hint, and network failures are
 * retried with exponential backoff. Each API call is a small method on top of `request` /
 * `fetchWithRetry`; signed blob and output URLs go through `fetchSigned`.
 *
 * @example
 *   const api = new ApiClient({ baseUrl: profile.apiUrl, apiKey: profile.apiKey });
 *   const account = await api.validateKey();
 */

export interface ApiClientOptions {
  baseUrl: string;
  /** Sent as `Authorization: Bearer <key>`; omit for unauthenticated routes. */
  apiKey?: string | undefined;
  /** Where retry notices go (stderr). */
  log?: { write(text: string): unknown };
  /** Attempts in total for a network failure (default 5). */
  attempts?: number;
  /** First backoff delay; doubles each retry. Default `RGRID_RETRY_BASE_MS` or 500. */
  retryBaseMs?: number;
  /** Per-attempt timeout (default 30 s); a timeout counts as a network failure and is retried. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  /** `false` for calls that must fail fast (a health poll that has its own loop). */
  retry?: boolean;
  timeoutMs?: number;
}

const RETRYABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CLOSED",
]);

/** A failure to talk to the server at all (as opposed to an HTTP error response). */
export class NetworkError extends Error {
  override readonly name = "NetworkError";
  constructor(
    message: string,
    readonly code: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

/** Classifies what `fetch` threw: undici wraps the socket error in `cause`. */
export function toNetworkError(error: unknown): NetworkError | undefined {
  if (!(error instanceof Error)) return undefined;
  if (error.name === "TimeoutError") return new NetworkError("timed out", "ETIMEDOUT", true);
  if (error.name === "AbortError") return undefined;
  let cause: unknown = error;
  for (let depth = 0; depth < 4 && cause instanceof Error; depth++) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (typeof code === "string") {
      if (code === "ENOTFOUND") return new NetworkError("host not found", code, false);
      if (RETRYABLE_CODES.has(code)) return new NetworkError(describeCode(code), code, true);
    }
    if (cause instanceof AggregateError && cause.errors[0] instanceof Error) cause = cause.errors[0];
    else cause = cause.cause;
  }
  if (error instanceof TypeError && error.message === "fetch failed") {
    // Not a socket error: a URL fetch refuses outright (e.g. "bad port" for ports browsers block). Retrying cannot help.
    const detail = error.cause instanceof Error ? error.cause.message : "connection failed";
    return new NetworkError(detail === "bad port" ? "fetch refuses to connect to that port; use another one" : detail, "EFETCH", false);
  }
  return undefined;
}

function describeCode(code: string): string {
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ECONNRESET":
    case "UND_ERR_SOCKET":
    case "UND_ERR_CLOSED":
    case "EPIPE":
      return "connection reset";
    case "ETIMEDOUT":
    case "UND_ERR_CONNECT_TIMEOUT":
    case "UND_ERR_HEADERS_TIMEOUT":
    case "UND_ERR_BODY_TIMEOUT":
      return "timed out";
    default:
      return code;
  }
}

export interface ExecutionListFilter {
  status?: ExecutionStatus | undefined;
  batch?: string | undefined;
  limit?: number | undefined;
  cursor?: string | undefined;
  metadata?: Record<string, string> | undefined;
}

export interface SignedRequestInit {
  method?: string;
  headers?: Record<string, string>;
  /** Called once per attempt, so a retried upload reopens its file. */
  body?: () => string | Uint8Array | NodeJS.ReadableStream;
  timeoutMs?: number;
}

const cancelResponseSchema = z.object({ cancelled: z.array(z.string()) });
const activeWorkersSchema = z.object({ active: z.number().int().min(0) });

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class ApiClient {
  readonly baseUrl: string;
  /** The key sent as `Authorization: Bearer …`; the log stream's WebSocket sends it too. */
  readonly apiKey: string | undefined;
  private readonly log: { write(text: string): unknown };
  private readonly attempts: number;
  private readonly retryBaseMs: number;
  private readonly timeoutMs: number;

  constructor(options: ApiClientOptions) {
    const env = options.env ?? process.env;
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.log = options.log ?? process.stderr;
    this.attempts = Math.max(1, options.attempts ?? 5);
    const envBase = Number(env.RGRID_RETRY_BASE_MS);
    this.retryBaseMs = options.retryBaseMs ?? (env.RGRID_RETRY_BASE_MS && Number.isFinite(envBase) && envBase >= 0 ? envBase : 500);
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** `POST /api/v1/auth/validate`: who this key belongs to. A wrong key is an `ApiError` with status 401. */
  validateKey(): Promise<ValidateKeyResponse> {
    return this.request("POST", "/api/v1/auth/validate", validateKeyResponseSchema);
  }

  /** `GET /health`. Resolves for 200 and 503 alike: both carry the health body. */
  async health(options: RequestOptions = {}): Promise<HealthResponse> {
    const response = await this.fetchWithRetry("GET", "/health", options);
    if (response.status !== 200 && response.status !== 503) throw await this.errorFrom(response);
    return this.parse(response, healthResponseSchema);
  }

  /** `POST /local/bootstrap` (local mode only): the local account, a fresh API key and agent registration token. */
  localBootstrap(bootstrapToken: string): Promise<LocalBootstrapResponse> {
    return this.request("POST", "/local/bootstrap", localBootstrapResponseSchema, {
      headers: { "X-Rgrid-Bootstrap": bootstrapToken },
    });
  }

  // --- Executions ------------------------------------------------------------------------------

  /** `POST /api/v1/blobs/missing`: which of these blobs the server lacks, each with a signed upload URL. */
  missingBlobs(sha256: string[]): Promise<z.infer<typeof missingBlobsResponseSchema>> {
    return this.request("POST", "/api/v1/blobs/missing", missingBlobsResponseSchema, { body: { sha256 } });
  }

  /**
   * `POST /api/v1/executions`. The body carries a client-generated idempotency key, and network
   * retries resend the same body, so a retried submission never creates a second execution.
   */
  createExecution(body: CreateExecutionRequest): Promise<ExecutionView> {
    return this.request("POST", "/api/v1/executions", executionViewSchema, { body: createExecutionRequestSchema.parse(body) });
  }

  getExecution(id: string): Promise<ExecutionView> {
    return this.request("GET", `/api/v1/executions/${encodeURIComponent(id)}`, executionViewSchema);
  }

  listExecutions(filter: ExecutionListFilter = {}): Promise<z.infer<typeof executionListSchema>> {
    const query = new URLSearchParams();
    if (filter.status) query.set("status", filter.status);
    if (filter.batch) query.set("batch", filter.batch);
    if (filter.limit !== undefined) query.set("limit", String(filter.limit));
    if (filter.cursor) query.set("cursor", filter.cursor);
    const metadata = Object.entries(filter.metadata ?? {});
    if (metadata.length > 0) query.set("metadata", metadata.map(([k, v]) => `${k}=${v}`).join(","));
    const qs = query.toString();
    return this.request("GET", `/api/v1/executions${qs ? `?${qs}` : ""}`, executionListSchema);
  }

  /** One page of log lines after sequence number `after` (0 for the start). */
  getLogs(id: string, after: number, limit = 1000): Promise<LogPage> {
    return this.request("GET", `/api/v1/executions/${encodeURIComponent(id)}/logs?after=${after}&limit=${limit}`, logPageSchema);
  }

  listArtifacts(id: string): Promise<z.infer<typeof artifactListSchema>> {
    return this.request("GET", `/api/v1/executions/${encodeURIComponent(id)}/artifacts`, artifactListSchema);
  }

  listEvents(id: string): Promise<z.infer<typeof eventListSchema>> {
    return this.request("GET", `/api/v1/executions/${encodeURIComponent(id)}/events`, eventListSchema);
  }

  cancelExecution(id: string): Promise<{ cancelled: string[] }> {
    return this.request("POST", `/api/v1/executions/${encodeURIComponent(id)}/cancel`, cancelResponseSchema);
  }

  /** How many agents polled for work in the last 60 s. */
  async activeWorkers(): Promise<number> {
    return (await this.request("GET", "/api/v1/workers/active", activeWorkersSchema)).active;
  }

  // --- Batches ---------------------------------------------------------------------------------

  /** `POST /api/v1/batches`: a batch whose `parallel` cap the account's scheduler enforces, even after the CLI detaches. */
  async createBatch(body: { parallel: number; total: number }): Promise<string> {
    return (await this.request("POST", "/api/v1/batches", batchCreatedSchema, { body })).batch_id;
  }

  /**
   * `POST /api/v1/batches/:id/executions`: up to 100 executions in one request. Each carries its
   * own idempotency key, so a chunk resent after a lost reply creates nothing twice.
   */
  async addBatchExecutions(batchId: string, executions: CreateExecutionRequest[]): Promise<ExecutionView[]> {
    const body = { executions: executions.map((e) => createExecutionRequestSchema.parse(e)) };
    return (
      await this.request("POST", `/api/v1/batches/${encodeURIComponent(batchId)}/executions`, addBatchExecutionsResponseSchema, { body })
    ).executions;
  }

  /** `GET /api/v1/batches/:id`: its cap, size and counts (of the latest execution of each input). */
  getBatch(batchId: string): Promise<BatchView> {
    return this.request("GET", `/api/v1/batches/${encodeURIComponent(batchId)}`, batchViewSchema);
  }

  cancelBatch(batchId: string): Promise<{ cancelled: string[] }> {
    return this.request("POST", `/api/v1/batches/${encodeURIComponent(batchId)}/cancel`, cancelResponseSchema);
  }

  /** `POST /api/v1/executions/:id/retry`: a new execution linked to this one (`retry_of`), in the same batch. */
  retryExecution(id: string, idempotencyKey: string): Promise<ExecutionView> {
    return this.request("POST", `/api/v1/executions/${encodeURIComponent(id)}/retry`, executionViewSchema, {
      body: { idempotency_key: idempotencyKey },
    });
  }

  /** Every execution matching the filter, following the server's keyset cursors page by page. */
  async listAllExecutions(filter: Omit<ExecutionListFilter, "cursor" | "limit">): Promise<ExecutionView[]> {
    const all: ExecutionView[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.listExecutions({ ...filter, limit: 500, ...(cursor ? { cursor } : {}) });
      all.push(...page.executions);
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    return all;
  }

  /**
   * A request to an absolute, pre-signed URL (uploads and downloads): no API key is sent, network
   * failures are retried with backoff. `body` is a factory so each retry gets a fresh stream.
   */
  async fetchSigned(url: string, init: SignedRequestInit = {}): Promise<Response> {
    return this.withNetworkRetries(this.attempts, () => {
      const body = init.body?.();
      return fetch(url, {
        method: init.method ?? "GET",
        headers: init.headers ?? {},
        body: body ?? null,
        // Streams need half-duplex; harmless for other bodies.
        ...(body ? { duplex: "half" } : {}),
        signal: AbortSignal.timeout(init.timeoutMs ?? 15 * 60_000),
      } as RequestInit);
    });
  }

  /**
   * Runs `send` until it gets any HTTP response, retrying network failures with exponential
   * backoff and a visible notice; a failure that retrying cannot fix ends it at once.
   */
  private async withNetworkRetries(attempts: number, send: () => Promise<Response>): Promise<Response> {
    let last: NetworkError | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) {
        this.log.write(`Connection lost. Retrying... (attempt ${attempt}/${attempts})\n`);
        await sleep(this.retryBaseMs * 2 ** (attempt - 2));
      }
      try {
        return await send();
      } catch (error) {
        const network = toNetworkError(error);
        if (!network) throw error;
        last = network;
        if (!network.retryable) break;
      }
    }
    throw this.unreachable(last);
  }

  /** Turns a non-2xx reply from a signed URL into an `ApiError` (for callers of `fetchSigned`). */
  errorFromResponse(response: Response): Promise<ApiError> {
    return this.errorFrom(response);
  }

  /** Sends a request and parses a 2xx JSON reply with `schema`; anything else throws a `UserError`. */
  async request<S extends z.ZodType>(method: string, path: string, schema: S, options: RequestOptions = {}): Promise<z.infer<S>> {
    const response = await this.fetchWithRetry(method, path, options);
    if (!response.ok) throw await this.errorFrom(response);
    return this.parse(response, schema);
  }

  /** `fetch` with auth, a timeout, and retries on network failures. Returns any HTTP response as is. */
  async fetchWithRetry(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const url = this.url(path);
    const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
    if (this.apiKey) headers.Authorization = `Bearer ${this.apiKey}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    return this.withNetworkRetries(options.retry === false ? 1 : this.attempts, () =>
      fetch(url, {
        method,
        headers,
        body: body ?? null,
        signal: AbortSignal.timeout(options.timeoutMs ?? this.timeoutMs),
      }),
    );
  }

  private url(path: string): string {
    return `${this.baseUrl}/${path.replace(/^\/+/, "")}`;
  }

  private unreachable(error: NetworkError | undefined): UserError {
    const local = /^https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:|\/|$)/.test(this.baseUrl);
    const hint = local
      ? "Check that `rgrid dev` is running (it serves the local control plane), then try again."
      : "Check your network connection and the API URL (--api-url, RGRID_API_URL, or api_url in your credentials). For a local control plane, check that `rgrid dev` is running.";
    return new UserError(
      "api_unreachable",
      `Could not reach the rgrid API at ${this.baseUrl} (${error?.message ?? "connection failed"}).`,
      hint,
    );
  }

  private async parse<S extends z.ZodType>(response: Response, schema: S): Promise<z.infer<S>> {
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw this.unexpected(response, "not JSON");
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw this.unexpected(response, parsed.error.issues[0]?.message ?? "unexpected shape");
    return parsed.data;
  }

  private unexpected(response: Response, detail: string): UserError {
    return new UserError(
      "unexpected_response",
      `The server at ${this.baseUrl} sent a reply rgrid does not understand (HTTP ${response.status} from ${new URL(response.url || this.baseUrl).pathname}: ${detail}).`,
      "Check that the API URL points to an rgrid control plane, and that this CLI is up to date (npm install -g rgrid).",
    );
  }

  /** Turns an error response into an `ApiError` with the server's message and hint when it sent one. */
  private async errorFrom(response: Response): Promise<ApiError> {
    const text = await response.text().catch(() => "");
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const parsed = apiErrorBodySchema.safeParse(json);
    if (parsed.success) {
      const { code, message, hint } = parsed.data.error;
      return new ApiError(response.status, code, message, hint);
    }
    return new ApiError(
      response.status,
      `http_${response.status}`,
      `The rgrid API at ${this.baseUrl} answered HTTP ${response.status} ${response.statusText}.`.replace(/ \.$/, "."),
      "Check that the API URL points to an rgrid control plane.",
    );
  }
}
