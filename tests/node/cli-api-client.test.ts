import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { ApiClient } from "../../cli/src/api-client";
import { ApiError, UserError } from "../../cli/src/errors";
import { freePort } from "../helpers/local-stack";

// The API client against a scripted HTTP server: parsing, error shapes and retries.

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
let handler: Handler = (_req, res) => res.end();
let server: http.Server;
let baseUrl: string;

beforeAll(async () => {
  server = http.createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function json(status: number, body: unknown): Handler {
  return (_req, res) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
}

function client(log: string[] = [], apiKey?: string) {
  return new ApiClient({ baseUrl: `${baseUrl}/`, apiKey, retryBaseMs: 5, log: { write: (text: string) => log.push(text) } });
}

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

describe("ApiClient", () => {
  it("sends the bearer key and parses a valid reply", async () => {
    let auth: string | undefined;
    handler = (req, res) => {
      auth = req.headers.authorization;
      json(200, { account_id: "acct_1", email: "a@b.c", credits_balance_micros: 5 })(req, res);
    };
    await expect(client([], "rgrid_sk_x").validateKey()).resolves.toEqual({
      account_id: "acct_1",
      email: "a@b.c",
      credits_balance_micros: 5,
    });
    expect(auth).toBe("Bearer rgrid_sk_x");
  });

  it("turns the API's error shape into an ApiError with the server's message and hint", async () => {
    handler = json(401, { error: { code: "unauthorized", message: "API key not recognised", hint: "Run rgrid init" } });
    const error = await caught(client().validateKey());
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 401, apiCode: "unauthorized", message: "API key not recognised", hint: "Run rgrid init" });
  });

  it("reports an error page that is not the API's shape with the status, not a parse crash", async () => {
    handler = (_req, res) => {
      res.writeHead(502, { "content-type": "text/html" });
      res.end("<html>Bad gateway</html>");
    };
    const error = await caught(client().validateKey());
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).message).toContain("HTTP 502");
  });

  it("refuses a 200 whose body does not match the schema, instead of trusting it", async () => {
    handler = json(200, { account_id: 42 });
    const error = await caught(client().validateKey());
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).code).toBe("unexpected_response");
  });

  it("refuses a 200 that is not JSON", async () => {
    handler = (_req, res) => res.end("hello");
    const error = await caught(client().request("GET", "/x", z.object({})));
    expect((error as UserError).code).toBe("unexpected_response");
  });

  it("returns the health body for 503 too, since it says which part is down", async () => {
    handler = json(503, { status: "unhealthy", database: "unavailable", storage: "connected", version: "0.1.0" });
    await expect(client().health()).resolves.toMatchObject({ status: "unhealthy", database: "unavailable" });
  });

  it("retries a reset connection and succeeds when the server recovers, printing one notice per retry", async () => {
    let calls = 0;
    handler = (req, res) => {
      calls += 1;
      if (calls < 3) {
        req.socket.destroy();
        return;
      }
      json(200, { status: "healthy", database: "connected", storage: "connected", version: "0.1.0" })(req, res);
    };
    const log: string[] = [];
    await expect(client(log).health()).resolves.toMatchObject({ status: "healthy" });
    expect(log).toEqual(["Connection lost. Retrying... (attempt 2/5)\n", "Connection lost. Retrying... (attempt 3/5)\n"]);
  });

  it("gives up after 5 attempts on a closed port with a UserError naming the URL", async () => {
    const port = await freePort();
    const log: string[] = [];
    const api = new ApiClient({ baseUrl: `http://127.0.0.1:${port}`, retryBaseMs: 1, log: { write: (text: string) => log.push(text) } });
    const error = await caught(api.validateKey());
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).code).toBe("api_unreachable");
    expect((error as UserError).message).toContain(`http://127.0.0.1:${port}`);
    expect((error as UserError).hint).toContain("rgrid dev");
    expect(log).toHaveLength(4);
  });

  it("treats a request timeout as a network failure and retries it", async () => {
    handler = () => {}; // never answers
    const log: string[] = [];
    const api = new ApiClient({ baseUrl, retryBaseMs: 1, attempts: 2, timeoutMs: 100, log: { write: (text: string) => log.push(text) } });
    const error = await caught(api.validateKey());
    expect((error as UserError).code).toBe("api_unreachable");
    expect((error as UserError).message).toContain("timed out");
    expect(log).toEqual(["Connection lost. Retrying... (attempt 2/2)\n"]);
  });

  it("takes the backoff base from RGRID_RETRY_BASE_MS", async () => {
    const port = await freePort();
    const api = new ApiClient({
      baseUrl: `http://127.0.0.1:${port}`,
      attempts: 3,
      env: { RGRID_RETRY_BASE_MS: "200" },
      log: { write: () => true },
    });
    const started = Date.now();
    await caught(api.validateKey());
    expect(Date.now() - started).toBeGreaterThanOrEqual(200 + 400 - 20);
  });
});
