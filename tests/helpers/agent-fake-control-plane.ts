import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Task } from "../../shared/src/agent-protocol";
import type { LogLine } from "../../shared/src/executions";

/**
 * A stand-in for the worker's `/agent/v1/*` routes, enough to drive the real agent process: it
 * hands out queued tasks, serves blobs at relative URLs, takes uploads at absolute ones, and
 * records everything the agent sends.
 */
export class FakeControlPlane {
  readonly credential = "rgrid_wk_fake_credential_0001";
  registrations = 0;
  queue: Task[] = [];
  readonly blobs = new Map<string, Buffer>();
  readonly logs = new Map<string, LogLine[]>();
  readonly started: string[] = [];
  readonly completions = new Map<string, Record<string, unknown>>();
  readonly uploads = new Map<string, { bytes: Buffer; contentLength: string | undefined }>();
  heartbeats = 0;
  /** Attempts (`exec#attempt`) the next heartbeat revokes. */
  readonly revoke = new Set<string>();
  /** Executions whose completion is refused with 409 (fenced). */
  readonly fenced = new Set<string>();
  /** When true every authenticated call answers 401. */
  rejectCredential = false;
  private server: http.Server | null = null;
  url = "";
  /** Set by a test to include the agent's output when a wait times out. */
  debugOutput: (() => string) | null = null;

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server?.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()));
  }

  /** Stores a blob and returns its sha256 and a relative download URL. */
  blob(data: string | Buffer): { sha256: string; download_url: string } {
    const buf = Buffer.from(data);
    const sha256 = createHash("sha256").update(buf).digest("hex");
    this.blobs.set(sha256, buf);
    return { sha256, download_url: `/blobs/${sha256}?sig=test` };
  }

  /** Queues a task running `script` (main.py) with the given inputs. */
  enqueue(id: string, script: string, inputs: Record<string, string> = {}, over: Partial<Task> = {}): Task {
    const task: Task = {
      execution_id: id,
      attempt: 1,
      lease_expires_at: Date.now() + 60_000,
      script: { path: "main.py", ...this.blob(script) },
      inputs: Object.entries(inputs).map(([p, d]) => ({ path: p, ...this.blob(d) })),
      requirements: null,
      args: [],
      image: "rgrid/python:3.11",
      runtime: "python:3.11",
      env: {},
      timeout_seconds: 60,
      memory_mb: 256,
      cpus: 1,
      network: "none",
      batch_id: null,
      ...over,
    };
    this.queue.push(task);
    return task;
  }

  async waitFor<T>(what: () => T | undefined | false, timeoutMs = 60_000): Promise<T> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const v = what();
      if (v) return v;
      if (Date.now() > until)
        throw new Error(`timed out waiting for the agent${this.debugOutput ? `; its output:\n${this.debugOutput()}` : ""}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.url);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const json = (status: number, body: unknown): void =>
      void res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));

    if (req.method === "GET" && url.pathname.startsWith("/blobs/")) {
      const blob = this.blobs.get(url.pathname.slice("/blobs/".length));
      return void (blob ? res.writeHead(200).end(blob) : res.writeHead(404).end());
    }
    if (req.method === "PUT" && url.pathname.startsWith("/upload/")) {
      this.uploads.set(decodeURIComponent(url.pathname.slice("/upload/".length)), {
        bytes: raw,
        contentLength: req.headers["content-length"],
      });
      return void res.writeHead(200).end();
    }
    const body = raw.length ? (JSON.parse(raw.toString()) as Record<string, unknown>) : {};
    if (url.pathname === "/agent/v1/register") {
      this.registrations++;
      return json(200, { worker_id: "wk_1", account_id: "acc_1", credential: this.credential });
    }
    if (this.rejectCredential || req.headers.authorization !== `Bearer ${this.credential}`)
      return json(401, { error: { code: "unauthorized", message: "bad credential" } });
    if (url.pathname === "/agent/v1/lease") {
      const free = Number(body.free_slots);
      if (this.queue.length === 0) await new Promise((r) => setTimeout(r, 200));
      // An agent killed mid-poll must not take tasks with it.
      if (req.socket.destroyed) return;
      return json(200, { tasks: this.queue.splice(0, free) });
    }
    if (url.pathname === "/agent/v1/heartbeat") {
      this.heartbeats++;
      const leases = body.leases as { execution_id: string; attempt: number }[];
      const revoked = leases.filter((l) => this.revoke.has(`${l.execution_id}#${l.attempt}`)).map((l) => ({ ...l, reason: "cancelled" }));
      const valid = leases
        .filter((l) => !this.revoke.has(`${l.execution_id}#${l.attempt}`))
        .map((l) => ({ ...l, lease_expires_at: Date.now() + 60_000 }));
      return json(200, { valid, revoked });
    }
    const m = /^\/agent\/v1\/executions\/([^/]+)\/(started|logs|outputs|complete)$/.exec(url.pathname);
    if (!m) return json(404, { error: { code: "not_found", message: "no route" } });
    const id = decodeURIComponent(m[1] ?? "");
    switch (m[2]) {
      case "started":
        this.started.push(id);
        return json(200, { ok: true });
      case "logs":
        this.logs.set(id, [...(this.logs.get(id) ?? []), ...(body.lines as LogLine[])]);
        return json(200, { ok: true });
      case "outputs": {
        const files = body.files as { path: string }[];
        return json(200, {
          uploads: files.map((f) => ({ path: f.path, upload_url: `${this.url}/upload/${encodeURIComponent(`${id}/${f.path}`)}` })),
        });
      }
      default:
        if (this.fenced.has(id)) return json(409, { error: { code: "stale_attempt", message: "fenced" } });
        this.completions.set(id, body);
        return json(200, { ok: true });
    }
  }
}
