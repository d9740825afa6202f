import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { build } from "esbuild";
import { agentBundle as agentBundleOptions } from "../../scripts/bundles.mjs";
import { cliBin, cliEnv, nodeForStack, repoRoot } from "./cli";
import { startLocalStack, type LocalStack, type StartLocalStackOptions } from "./local-stack";

/**
 * Fault-injection harness: a real `rgrid dev --no-agent` plus agents started here as child
 * processes (so a test can kill -9, SIGSTOP or restart them), an API client with the local key,
 * and read access to the control plane's D1 database for "exactly once" checks.
 */

const agentBundle = path.join(repoRoot, "agent", "dist", "agent.mjs");
let agentBuilt: Promise<void> | undefined;

/** Bundles the agent once per test process (same options as scripts/build.mjs). */
export function ensureAgentBuilt(): Promise<void> {
  agentBuilt ??= (async () => {
    const temp = `${agentBundle}.${process.pid}.tmp.mjs`;
    await build({ ...agentBundleOptions, outfile: temp });
    fs.renameSync(temp, agentBundle);
  })();
  return agentBuilt;
}

export interface FaultAgent {
  name: string;
  child: ChildProcess;
  stateDir: string;
  workerId(): string | null;
  log(): string;
  signal(sig: NodeJS.Signals): void;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
}

export interface FaultStack {
  stack: LocalStack;
  apiKey: string;
  /** JSON request to the API with the local key; throws on a non-2xx answer. */
  api<T = unknown>(method: string, route: string, body?: unknown): Promise<T>;
  /** Starts an agent (`extraEnv` e.g. `{ RGRID_AGENT_WARM: "off" }`); resolves once it is ready. */
  startAgent(name: string, slots: number, extraEnv?: Record<string, string>): Promise<FaultAgent>;
  agents: FaultAgent[];
  /** Read-only query of the control plane's D1 database. */
  d1<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  /** Uploads a script (content-addressed) and returns its sha256. */
  uploadBlob(text: string): Promise<string>;
  /** Restarts `rgrid dev` with the same home and port; agents keep running and reconnect. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startFaultStack(options: StartLocalStackOptions = {}): Promise<FaultStack> {
  await ensureAgentBuilt();
  let stack = await startLocalStack({ ...options, args: ["--no-agent"] });
  const home = stack.home;
  const url = stack.url;
  const creds = fs.readFileSync(path.join(home, "credentials"), "utf8");
  const apiKey = /api_key = (\S+)/.exec(creds)?.[1] ?? "";
  const agents: FaultAgent[] = [];

  const api = async <T>(method: string, route: string, body?: unknown): Promise<T> => {
    const response = await fetch(`${url}${route}`, {
      method,
      headers: { Authorization: `Bearer ${apiKey}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${route} → ${response.status}: ${text}`);
    return JSON.parse(text) as T;
  };

  const registrationToken = async (): Promise<string> => {
    const secrets = JSON.parse(fs.readFileSync(path.join(home, "dev", "secrets.json"), "utf8")) as { LOCAL_BOOTSTRAP_TOKEN: string };
    const response = await fetch(`${url}/local/bootstrap`, {
      method: "POST",
      headers: { "X-Rgrid-Bootstrap": secrets.LOCAL_BOOTSTRAP_TOKEN },
    });
    if (!response.ok) throw new Error(`bootstrap → ${response.status}`);
    return ((await response.json()) as { registration_token: string }).registration_token;
  };

  const startAgent = async (name: string, slots: number, extraEnv: Record<string, string> = {}): Promise<FaultAgent> => {
    const stateDir = path.join(home, "agents", name);
    fs.mkdirSync(stateDir, { recursive: true });
    const logFile = path.join(home, "agents", `${name}.log`);
    const before = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0;
    const fd = fs.openSync(logFile, "a");
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const key of Object.keys(env)) if (key.startsWith("RGRID_")) delete env[key];
    const child = spawn(nodeForStack(), [agentBundle], {
      cwd: repoRoot,
      env: {
        ...env,
        RGRID_API_URL: url,
        RGRID_REGISTRATION_TOKEN: await registrationToken(),
        RGRID_AGENT_STATE_DIR: stateDir,
        RGRID_AGENT_LOCAL: "true",
        RGRID_AGENT_NAME: name,
        RGRID_AGENT_SLOTS: String(slots),
        RGRID_AGENT_GRACE_SECONDS: "5",
        ...extraEnv,
      },
      stdio: ["ignore", fd, fd],
    });
    fs.closeSync(fd);
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const agent: FaultAgent = {
      name,
      child,
      stateDir,
      workerId: () => {
        try {
          return (JSON.parse(fs.readFileSync(path.join(stateDir, "credential.json"), "utf8")) as { worker_id: string }).worker_id;
        } catch {
          return null;
        }
      },
      log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : ""),
      signal: (sig) => {
        if (child.exitCode === null && child.signalCode === null) child.kill(sig);
      },
      exited,
    };
    agents.push(agent);
    await waitFor(`agent ${name} ready`, () => agent.log().slice(before).includes("ready:"), 60_000);
    return agent;
  };

  const d1 = async <T>(sql: string): Promise<T[]> => {
    const dir = path.join(home, "dev", "state", "v3", "d1", "miniflare-D1DatabaseObject");
    const file = fs.readdirSync(dir).find((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite");
    if (!file) throw new Error(`no D1 database under ${dir}`);
    // node:sqlite needs Node 22; the stack's Node is at least that.
    const script = `const { DatabaseSync } = require("node:sqlite"); const db = new DatabaseSync(process.argv[1], { readOnly: true }); process.stdout.write(JSON.stringify(db.prepare(process.argv[2]).all()));`;
    const { stdout } = await promisify(execFile)(nodeForStack(), ["--no-warnings", "-e", script, path.join(dir, file), sql], {
      maxBuffer: 64 * 1024 * 1024,
    });
    return JSON.parse(stdout) as T[];
  };

  const uploadBlob = async (text: string): Promise<string> => {
    const sha = createHash("sha256").update(text).digest("hex");
    const { missing } = await api<{ missing: { sha256: string; upload_url: string }[] }>("POST", "/api/v1/blobs/missing", {
      sha256: [sha],
    });
    for (const m of missing) {
      const put = await fetch(m.upload_url, { method: "PUT", body: text, headers: { "content-length": String(Buffer.byteLength(text)) } });
      if (!put.ok) throw new Error(`blob upload → ${put.status}`);
    }
    return sha;
  };

  const result: FaultStack = {
    get stack() {
      return stack;
    },
    apiKey,
    api,
    startAgent,
    agents,
    d1,
    uploadBlob,
    restart: async () => {
      await stack.stop();
      stack = await startLocalStack({ ...options, home, port: stack.port, args: ["--no-agent"] });
    },
    stop: async () => {
      for (const agent of agents) agent.signal("SIGKILL");
      await Promise.all(agents.map((a) => Promise.race([a.exited, sleep(5000)])));
      await removeContainersOf(agents);
      await stack.stop();
    },
  };
  return result;
}

/** Removes containers the test's agents left behind (a kill -9 leaves its containers running). */
async function removeContainersOf(agents: FaultAgent[]): Promise<void> {
  const ids = agents.map((a) => a.workerId()).filter((id): id is string => id !== null);
  const run = promisify(execFile);
  for (const agent of new Set(ids)) {
    try {
      const { stdout } = await run("docker", ["ps", "-aq", "--filter", `label=dev.rgrid.agent=${agent}`]);
      const containers = stdout.split("\n").filter(Boolean);
      if (containers.length > 0) await run("docker", ["rm", "-f", ...containers]);
    } catch {
      // No Docker, or already gone.
    }
  }
}

/** Containers (running) that carry this attempt label (`<execution>-<attempt>`). */
export async function runningContainersOf(attemptLabel: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)("docker", ["ps", "-q", "--filter", `label=dev.rgrid.attempt=${attemptLabel}`]);
  return stdout.split("\n").filter(Boolean);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  detail: () => string | Promise<string> = () => "",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(250);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${await detail()}`);
}

export interface ExecutionRow {
  id: string;
  status: string;
  attempt: number;
  worker_id: string | null;
  exit_code: number | null;
}

/**
 * The "exactly once" check for one execution, from D1: one final status, one terminal event,
 * attempts numbered 1..n with only the last one final-and-current, no artifact path twice.
 */
export async function exactlyOnceReport(
  fs_: FaultStack,
  ids: string[],
): Promise<
  Map<string, { status: string; attempt: number; terminalEvents: number; startedEvents: number; attempts: string[]; artifacts: string[] }>
> {
  const list = ids.map((id) => `'${id.replace(/'/g, "")}'`).join(",");
  const executions = await fs_.d1<ExecutionRow>(`SELECT id, status, attempt, worker_id, exit_code FROM executions WHERE id IN (${list})`);
  const events = await fs_.d1<{ execution_id: string; type: string }>(
    `SELECT execution_id, type FROM events WHERE execution_id IN (${list}) ORDER BY id`,
  );
  const attempts = await fs_.d1<{ execution_id: string; attempt: number; status: string }>(
    `SELECT execution_id, attempt, status FROM attempts WHERE execution_id IN (${list}) ORDER BY execution_id, attempt`,
  );
  const artifacts = await fs_.d1<{ execution_id: string; path: string }>(
    `SELECT execution_id, path FROM artifacts WHERE execution_id IN (${list}) ORDER BY path`,
  );
  const report = new Map<
    string,
    { status: string; attempt: number; terminalEvents: number; startedEvents: number; attempts: string[]; artifacts: string[] }
  >();
  for (const e of executions) {
    const mine = events.filter((ev) => ev.execution_id === e.id);
    report.set(e.id, {
      status: e.status,
      attempt: e.attempt,
      terminalEvents: mine.filter((ev) => ["succeeded", "failed", "timed_out", "cancelled"].includes(ev.type)).length,
      startedEvents: mine.filter((ev) => ev.type === "started").length,
      attempts: attempts.filter((a) => a.execution_id === e.id).map((a) => `${a.attempt}:${a.status}`),
      artifacts: artifacts.filter((a) => a.execution_id === e.id).map((a) => a.path),
    });
  }
  return report;
}

export function tmpProject(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rgrid-fault-"));
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  return dir;
}

export interface CliChild {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

/** Starts the built CLI against this stack without waiting for it (to watch it while faults happen). */
export function spawnCli(home: string, args: string[], env: Record<string, string> = {}, cwd = os.tmpdir()): CliChild {
  const child = spawn(nodeForStack(), [cliBin, ...args], { cwd, env: cliEnv(home, env), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout?.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Submits one execution of an uploaded script through the API. */
export async function submitScript(
  fs_: FaultStack,
  sha256: string,
  name = "work.py",
  extra: Record<string, unknown> = {},
): Promise<string> {
  const view = await fs_.api<{ id: string }>("POST", "/api/v1/executions", {
    idempotency_key: `fault-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    script: { path: name, sha256 },
    ...extra,
  });
  return view.id;
}
