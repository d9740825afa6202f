import type { z } from "zod";
import {
  apiErrorBodySchema,
  healthResponseSchema,
  localBootstrapResponseSchema,
  validateKeyResponseSchema,
  type HealthResponse,
  type LocalBootstrapResponse,
  type ValidateKeyResponse,
} from "../../shared/src/index";
import { ApiError, UserError } from "./errors";

/**
 * The one HTTP client every command uses. Responses are parsed with zod (never cast), API error
 * bodies become `ApiError`s carrying the server's message and hint, and network failures are
 * retried with exponential backoff. Later steps add methods (executions, uploads, downloads) on
 * top of `request` / `fetchWithRetry`.
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

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class ApiClient {
  readonly baseUrl: string;
  private readonly apiKey: string | undefined;
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
    const attempts = options.retry === false ? 1 : this.attempts;
    let last: NetworkError | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) {
        this.log.write(`Connection lost. Retrying... (attempt ${attempt}/${attempts})\n`);
        await sleep(this.retryBaseMs * 2 ** (attempt - 2));
      }
      try {
        return await fetch(url, {
          method,
          headers,
          body: body ?? null,
          signal: AbortSignal.timeout(options.timeoutMs ?? this.timeoutMs),
        });
      } catch (error) {
        const network = toNetworkError(error);
        if (!network) throw error;
        last = network;
        if (!network.retryable) break;
      }
    }
    throw this.unreachable(last);
  }

  private url(path: string): string {
    return `${this.baseUrl}/${path.replace(/^\/+/, "")}`;
  }

  private unreachable(error: NetworkError | undefined): UserError {
    const local = /^https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:|\/|$)/.test(this.baseUrl);
    const hint = local
      ? "Check that `rgrid dev` is running (it serves the local control plane), then try again."
      : "Check your network connection and the API URL (--api-url, RGRID_API_URL, or api_url in your credentials). For a local control plane, check that `rgrid dev` is running.";
    return new UserError("api_unreachable", `Could not reach the rgrid API at ${this.baseUrl} (${error?.message ?? "connection failed"}).`, hint);
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
