import { spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import { createRequire } from "node:module";
import path from "node:path";
import { z } from "zod";
import { ApiClient } from "./api-client";
import { LOCAL_PROFILE, profileExists, loadProfile, writePrivateFile, writeProfile } from "./credentials";
import { ApiError, UserError } from "./errors";

/**
 * The local control plane behind `rgrid dev`: the Worker under `wrangler dev`, with D1/R2/Durable
 * Object state persisted under `$RGRID_HOME/dev/state`, and the profile "local" pointing at it.
 *
 * Layout of `$RGRID_HOME/dev/`:
 *   secrets.json   API_KEY_PEPPER and LOCAL_BOOTSTRAP_TOKEN, generated once (mode 600)
 *   wrangler.env   the Worker's secrets + RGRID_LOCAL_MODE, handed to wrangler with --env-file so
 *                  they never appear on a command line (mode 600)
 *   state/         wrangler's --persist-to folder
 *   wrangler.log   output of wrangler (migrations and dev server), shown only when something fails
 */

export const DEFAULT_DEV_PORT = 8787;
/** How long the local agent gets to hand back its tasks when `rgrid dev` stops, before SIGKILL. */
const AGENT_STOP_GRACE_MS = 8000;
const MIN_WRANGLER_NODE: readonly [number, number] = [22, 12];

export interface DevStackOptions {
  home: string;
  port?: number;
  env?: NodeJS.ProcessEnv;
  /** How long to wait for `/health` (default 60 s). */
  healthTimeoutMs?: number;
  /** The folder holding rgrid's wrangler.toml; default `RGRID_STACK_DIR` or found upward from this file. */
  stackDir?: string;
  /** Start a local agent beside the control plane (default true); `slots` defaults to the CPU count. */
  agent?: { enabled: boolean; slots?: number };
  /** Progress lines ("Applying migrations…"); default silent. */
  log?: (line: string) => void;
  /** Aborting during start-up stops whatever was started and rejects with a "cancelled" UserError. */
  signal?: AbortSignal;
}

export interface DevStack {
  url: string;
  apiKey: string;
  /** A fresh one-time token the local agent exchanges for its worker credential. */
  registrationToken: string;
  accountEmail: string;
  /** The local agent's log file, when one was started. */
  agentLog: string | undefined;
  /** Resolves when wrangler exits on its own (not through `stop`), with its exit code. */
  exited: Promise<number | null>;
  /** Stops every process the stack started (whole process groups) and waits for them. */
  stop(): Promise<void>;
}

let currentRegistrationToken: string | undefined;

/** The agent registration token of the stack this process started, for the code that starts the local agent. */
export function localRegistrationToken(): string | undefined {
  return currentRegistrationToken;
}

export function devDir(home: string): string {
  return path.join(home, "dev");
}

export function wranglerLogPath(home: string): string {
  return path.join(devDir(home), "wrangler.log");
}

/** Folder with rgrid's wrangler.toml: `RGRID_STACK_DIR`, or the nearest one above `from` (the bundle's folder). */
export function findStackRoot(env: NodeJS.ProcessEnv, from: string = moduleDir()): string {
  const explicit = env.RGRID_STACK_DIR?.trim();
  if (explicit) {
    const root = path.resolve(explicit);
    if (!fs.existsSync(path.join(root, "wrangler.toml"))) {
      throw new UserError(
        "dev_stack_failed",
        `RGRID_STACK_DIR (${root}) has no wrangler.toml.`,
        "Point RGRID_STACK_DIR at the rgrid repository root, or unset it.",
      );
    }
    return root;
  }
  let dir = path.resolve(from);
  for (;;) {
    if (fs.existsSync(path.join(dir, "wrangler.toml"))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new UserError(
    "dev_stack_failed",
    "Could not find the rgrid control plane (wrangler.toml) next to this CLI.",
    "`rgrid dev` runs from a checkout of the rgrid repository (after `npm install`). Set RGRID_STACK_DIR to that folder if the CLI lives elsewhere.",
  );
}

function moduleDir(): string {
  // The CLI ships as a CJS bundle, where __dirname is cli/dist; vitest also defines it for TS sources.
  return typeof __dirname === "string" ? __dirname : process.cwd();
}

function nodeVersionAtLeast(version: string, [major, minor]: readonly [number, number]): boolean {
  const [a = 0, b = 0] = version.replace(/^v/, "").split(".").map(Number);
  return a > major || (a === major && b >= minor);
}

/** Wrangler needs Node ≥ 22.12: this Node if it qualifies, else the repository's `node` package. */
export function wranglerNode(root: string): string {
  if (nodeVersionAtLeast(process.versions.node, MIN_WRANGLER_NODE)) return process.execPath;
  const bundled = path.join(root, "node_modules", ".bin", process.platform === "win32" ? "node.cmd" : "node");
  if (fs.existsSync(bundled)) return bundled;
  throw new UserError(
    "dev_stack_failed",
    `rgrid dev needs Node.js ${MIN_WRANGLER_NODE.join(".")} or newer to run wrangler; this is Node.js ${process.versions.node}.`,
    `Install a newer Node.js (https://nodejs.org), or run \`npm install\` in ${root} so its bundled Node 22 is available.`,
  );
}

/** wrangler's bin script, resolved from the stack root (its package exports hide `bin/`, so go through package.json). */
export function wranglerBin(root: string): string {
  try {
    const pkg = createRequire(path.join(root, "package.json")).resolve("wrangler/package.json");
    return path.join(path.dirname(pkg), "bin", "wrangler.js");
  } catch {
    throw new UserError(
      "dev_stack_failed",
      `wrangler is not installed in ${root}.`,
      `Run \`npm install\` in ${root}, then \`rgrid dev\` again.`,
    );
  }
}

const secretsSchema = z.object({
  API_KEY_PEPPER: z.string().min(32),
  LOCAL_BOOTSTRAP_TOKEN: z.string().min(32),
});
type DevSecrets = z.infer<typeof secretsSchema>;

/** Secrets generated on the first `rgrid dev` and reused after, so keys minted earlier keep working. */
export function loadOrCreateSecrets(home: string): DevSecrets {
  const file = path.join(devDir(home), "secrets.json");
  try {
    const parsed = secretsSchema.safeParse(JSON.parse(fs.readFileSync(file, "utf8")));
    if (parsed.success) {
      fs.chmodSync(file, 0o600);
      return parsed.data;
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT" && !(error instanceof SyntaxError)) throw error;
  }
  // Missing or unreadable: start over. Keys hashed under an old pepper stop validating, and the
  // local profile is then re-minted below, so nothing is left half-working.
  const secrets: DevSecrets = {
    API_KEY_PEPPER: crypto.randomBytes(32).toString("base64url"),
    LOCAL_BOOTSTRAP_TOKEN: crypto.randomBytes(32).toString("base64url"),
  };
  writePrivateFile(file, JSON.stringify(secrets, null, 2) + "\n");
  return secrets;
}

function writeWranglerEnvFile(home: string, secrets: DevSecrets, env: NodeJS.ProcessEnv): string {
  const file = path.join(devDir(home), "wrangler.env");
  const lines = [
    "# Written by `rgrid dev` on every start; passed to wrangler with --env-file.",
    `API_KEY_PEPPER=${secrets.API_KEY_PEPPER}`,
    `LOCAL_BOOTSTRAP_TOKEN=${secrets.LOCAL_BOOTSTRAP_TOKEN}`,
    "RGRID_LOCAL_MODE=true",
    // Fault tests shorten leases so a lost worker is noticed in seconds; the Worker checks the value.
    ...(env.RGRID_LEASE_MS ? [`RGRID_LEASE_MS=${env.RGRID_LEASE_MS}`] : []),
  ];
  writePrivateFile(file, lines.join("\n") + "\n");
  return file;
}

function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE" || error.code === "EACCES") {
        reject(
          new UserError(
            "dev_stack_failed",
            `Port ${port} on 127.0.0.1 is already in use.`,
            "Is another `rgrid dev` running? Stop it, or pick another port with `rgrid dev --port N`.",
          ),
        );
      } else reject(error);
    });
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => server.close(() => resolve()));
  });
}

function tailOfLog(file: string, lines = 40): string {
  try {
    const text = fs.readFileSync(file, "utf8").trimEnd();
    return text.split("\n").slice(-lines).join("\n");
  } catch {
    return "(no output)";
  }
}

function failure(message: string, home: string): UserError {
  const log = wranglerLogPath(home);
  return new UserError("dev_stack_failed", message, `Last lines of ${log}:\n${tailOfLog(log)}`);
}

/** Sends a signal to a child's whole process group (children are spawned detached, as group leaders). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  }
}

function waitForExit(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  const exited = waitForExit(child);
  signalGroup(child, "SIGTERM");
  const timer = setTimeout(() => signalGroup(child, "SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
  // The group may outlive its leader (workerd); make sure nothing is left behind.
  if (child.pid !== undefined) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // No such group: all gone.
    }
  }
}

/**
 * Starts the local control plane and makes sure profile "local" holds a key that works against it.
 *
 * @example
 *   const stack = await startDevStack({ home: tempHome, port: 8788 });
 *   try { ... fetch(`${stack.url}/health`) ... } finally { await stack.stop(); }
 */
export async function startDevStack(options: DevStackOptions): Promise<DevStack> {
  const env = options.env ?? process.env;
  const home = options.home;
  const port = options.port ?? DEFAULT_DEV_PORT;
  const log = options.log ?? (() => {});
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UserError("bad_argument", `--port must be a number from 1 to 65535 (got ${port}).`);
  }
  const root = options.stackDir ? path.resolve(options.stackDir) : findStackRoot(env);
  const node = wranglerNode(root);
  const wrangler = wranglerBin(root);
  const dir = devDir(home);
  const state = path.join(dir, "state");
  fs.mkdirSync(state, { recursive: true, mode: 0o700 });
  const secrets = loadOrCreateSecrets(home);
  const envFile = writeWranglerEnvFile(home, secrets, env);
  await assertPortFree(port);

  const logFile = wranglerLogPath(home);
  const logFd = fs.openSync(logFile, "w", 0o600);
  const childEnv: NodeJS.ProcessEnv = {
    ...env,
    CI: "true", // non-interactive: no confirmation prompts, no hotkeys
    WRANGLER_SEND_METRICS: "false",
    WRANGLER_LOG_PATH: path.join(dir, "wrangler-logs"),
    // Keep this stack out of wrangler's machine-wide dev registry, so parallel stacks never see each other.
    WRANGLER_REGISTRY_PATH: path.join(dir, "registry"),
    // The local stack needs no real `request.cf` data; skip fetching it from workers.cloudflare.com.
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    NO_COLOR: "1",
    FORCE_COLOR: "0",
  };
  const common = ["--config", path.join(root, "wrangler.toml"), "--persist-to", state, "--env-file", envFile];
  const children = new Set<ChildProcess>();
  const launch = (args: string[]): ChildProcess => {
    const child = spawn(node, [wrangler, ...args], { cwd: root, env: childEnv, stdio: ["ignore", logFd, logFd], detached: true });
    children.add(child);
    child.once("exit", () => children.delete(child));
    return child;
  };
  let agentChild: ChildProcess | undefined;
  const stopAll = async () => {
    // The agent first, while the control plane can still take back what it was running; then the rest.
    if (agentChild) await stopChild(agentChild, AGENT_STOP_GRACE_MS);
    await Promise.all([...children].map((child) => stopChild(child)));
  };
  const killAllNow = () => {
    for (const child of children) signalGroup(child, "SIGKILL");
  };
  process.once("exit", killAllNow);
  const signal = options.signal;
  const onAbort = () => void stopAll();
  signal?.addEventListener("abort", onAbort);
  const checkAborted = () => {
    if (signal?.aborted) throw new UserError("cancelled", "Cancelled while starting the control plane.");
  };

  try {
    checkAborted();
    log("Applying database migrations…");
    const migrate = launch(["d1", "migrations", "apply", "rgrid", "--local", ...common]);
    const migrateCode = await new Promise<number | null>((resolve, reject) => {
      migrate.once("error", reject);
      migrate.once("exit", (code) => resolve(code));
    });
    checkAborted();
    if (migrateCode !== 0) throw failure(`Applying the database migrations failed (wrangler exited with ${migrateCode}).`, home);

    log(`Starting the control plane on port ${port}…`);
    const dev = launch([
      "dev",
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--show-interactive-dev-session=false",
      "--log-level",
      "info",
      ...common,
    ]);
    const exited = waitForExit(dev);
    const url = `http://127.0.0.1:${port}`;
    await waitHealthy(url, dev, options.healthTimeoutMs ?? 60_000, home, signal);
    checkAborted();

    const credentials = await ensureLocalProfile(home, url, secrets.LOCAL_BOOTSTRAP_TOKEN, env);
    checkAborted();
    const agentLog = options.agent?.enabled === false ? undefined : path.join(dir, "agent.log");
    if (agentLog) {
      log("Starting the local agent…");
      const agentFd = fs.openSync(agentLog, "a", 0o600);
      const agent = spawn(process.execPath, [path.join(root, "agent", "dist", "agent.mjs")], {
        cwd: root,
        env: {
          ...env,
          RGRID_API_URL: url,
          RGRID_REGISTRATION_TOKEN: credentials.registrationToken,
          RGRID_AGENT_STATE_DIR: path.join(dir, "agent"),
          RGRID_AGENT_LOCAL: "true",
          RGRID_AGENT_NAME: "local",
          // Ctrl-C on `rgrid dev` should stop promptly: running tasks are handed back, not waited for.
          RGRID_AGENT_GRACE_SECONDS: env.RGRID_AGENT_GRACE_SECONDS ?? "3",
          ...(options.agent?.slots ? { RGRID_AGENT_SLOTS: String(options.agent.slots) } : {}),
        },
        stdio: ["ignore", agentFd, agentFd],
        detached: true,
      });
      fs.closeSync(agentFd);
      children.add(agent);
      agentChild = agent;
      agent.once("exit", () => {
        children.delete(agent);
        agentChild = undefined;
      });
      await waitForAgent(url, credentials.apiKey, agent, agentLog, signal);
    }
    signal?.removeEventListener("abort", onAbort);
    currentRegistrationToken = credentials.registrationToken;
    fs.closeSync(logFd);
    return {
      url,
      apiKey: credentials.apiKey,
      registrationToken: credentials.registrationToken,
      accountEmail: credentials.email,
      agentLog,
      exited,
      stop: async () => {
        await stopAll();
        process.removeListener("exit", killAllNow);
        if (currentRegistrationToken === credentials.registrationToken) currentRegistrationToken = undefined;
      },
    };
  } catch (error) {
    signal?.removeEventListener("abort", onAbort);
    await stopAll();
    process.removeListener("exit", killAllNow);
    try {
      fs.closeSync(logFd);
    } catch {
      // Already closed.
    }
    throw error;
  }
}

async function waitHealthy(
  url: string,
  dev: ChildProcess,
  timeoutMs: number,
  home: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  const api = new ApiClient({ baseUrl: url, attempts: 1 });
  const deadline = Date.now() + timeoutMs;
  let lastState = "no answer yet";
  while (Date.now() < deadline) {
    if (signal?.aborted) return;
    if (dev.exitCode !== null || dev.signalCode !== null) {
      throw failure(`wrangler dev exited before the control plane became healthy (exit ${dev.exitCode ?? dev.signalCode}).`, home);
    }
    try {
      const health = await api.health({ retry: false, timeoutMs: 2000 });
      if (health.status === "healthy") return;
      lastState = `database ${health.database}, storage ${health.storage}`;
    } catch (error) {
      if (error instanceof UserError && error.code !== "api_unreachable") lastState = error.message;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw failure(`The control plane at ${url} did not become healthy within ${Math.round(timeoutMs / 1000)} s (${lastState}).`, home);
}

/** The agent is ready once the control plane has seen it poll for work. */
async function waitForAgent(
  url: string,
  apiKey: string,
  agent: ChildProcess,
  logFile: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  const api = new ApiClient({ baseUrl: url, apiKey, attempts: 1 });
  const deadline = Date.now() + 30_000;
  const agentFailure = (message: string) => new UserError("dev_stack_failed", message, `Last lines of ${logFile}:\n${tailOfLog(logFile)}`);
  while (Date.now() < deadline) {
    if (signal?.aborted) return;
    if (agent.exitCode !== null || agent.signalCode !== null) {
      throw agentFailure(`The local agent exited during start-up (exit ${agent.exitCode ?? agent.signalCode}).`);
    }
    const active = await api.request("GET", "/api/v1/workers/active", activeWorkersSchema, { retry: false }).catch(() => null);
    if (active && active.active > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw agentFailure("The local agent did not connect within 30 s.");
}

const activeWorkersSchema = z.object({ active: z.number() });

interface LocalCredentials {
  apiKey: string;
  registrationToken: string;
  email: string;
}

/**
 * Keeps profile "local" when its key still works against this server; otherwise bootstraps a new
 * key and rewrites the profile. Bootstrap is called either way, because each start needs a fresh
 * agent registration token (the only way to get one today also mints an API key).
 */
async function ensureLocalProfile(home: string, url: string, bootstrapToken: string, env: NodeJS.ProcessEnv): Promise<LocalCredentials> {
  let existingKey: string | undefined;
  if (profileExists(home, LOCAL_PROFILE)) {
    const profile = loadProfile(home, { flag: LOCAL_PROFILE, env });
    if (profile.apiUrl === url) {
      try {
        await new ApiClient({ baseUrl: url, apiKey: profile.apiKey, attempts: 1, env }).validateKey();
        existingKey = profile.apiKey;
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
      }
    }
  }
  let bootstrap;
  try {
    bootstrap = await new ApiClient({ baseUrl: url, env }).localBootstrap(bootstrapToken);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      throw new UserError(
        "dev_stack_failed",
        `The control plane at ${url} refused to create the local account.`,
        "Its local mode or bootstrap token did not match; delete " +
          path.join(devDir(home), "secrets.json") +
          " and run `rgrid dev` again.",
      );
    }
    throw error;
  }
  if (!existingKey) {
    writeProfile(home, { name: LOCAL_PROFILE, apiKey: bootstrap.api_key, apiUrl: url });
  }
  return { apiKey: existingKey ?? bootstrap.api_key, registrationToken: bootstrap.registration_token, email: bootstrap.email };
}
