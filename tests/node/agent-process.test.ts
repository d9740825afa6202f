import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FakeControlPlane } from "../helpers/agent-fake-control-plane";
import { tempStateDir } from "../helpers/agent-runtime-harness";

const repo = path.resolve(import.meta.dirname, "../..");
const bundle = path.join(repo, "agent/dist/agent.mjs");

interface AgentProc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts the bundled agent the way systemd or `rgrid dev` would: only environment variables. */
function startAgent(env: Record<string, string>): AgentProc {
  const child = spawn(process.execPath, [bundle], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return { child, output: () => out, exited };
}

describe("agent process against a control plane", () => {
  const cp = new FakeControlPlane();
  let state: Awaited<ReturnType<typeof tempStateDir>>;
  const agents: AgentProc[] = [];
  const baseEnv = () => ({
    RGRID_API_URL: cp.url,
    RGRID_AGENT_STATE_DIR: state.dir,
    RGRID_AGENT_SLOTS: "2",
    RGRID_AGENT_GRACE_SECONDS: "30",
  });
  const agent = (env: Record<string, string>) => {
    const a = startAgent(env);
    cp.debugOutput = a.output;
    agents.push(a);
    return a;
  };

  beforeAll(async () => {
    execFileSync(process.execPath, [path.join(repo, "scripts/build.mjs")], { cwd: repo });
    await cp.start();
    state = await tempStateDir();
  });
  afterEach(async () => {
    for (const a of agents.splice(0)) {
      if (a.child.exitCode === null) {
        a.child.kill("SIGKILL");
        await a.exited;
      }
    }
  });
  afterAll(async () => {
    await cp.stop();
    await state.cleanup();
  });

  it("registers once, runs a leased task, streams numbered logs, uploads outputs and completes", async () => {
    const a = agent({ ...baseEnv(), RGRID_REGISTRATION_TOKEN: "rgrid_rt_test_token_123" });
    cp.enqueue(
      "exec_ok",
      "import sys\nprint('hello ✓')\nprint('warn', file=sys.stderr)\nimport os\nos.makedirs('out', exist_ok=True)\nopen('out/result.txt', 'w').write(open(sys.argv[1]).read().upper())\n",
      { "data/in.txt": "abc" },
      { args: ["data/in.txt"] },
    );
    const done = await cp.waitFor(() => cp.completions.get("exec_ok"));
    expect(done).toMatchObject({ attempt: 1, status: "succeeded", exit_code: 0, error_message: null, transient: false });
    expect(done.outputs).toEqual([
      {
        path: "out/result.txt",
        size_bytes: 3,
        sha256: createHash("sha256").update("ABC").digest("hex"),
        content_type: "text/plain; charset=utf-8",
      },
    ]);
    expect(cp.uploads.get("exec_ok/out/result.txt")).toEqual({ bytes: Buffer.from("ABC"), contentLength: "3" });
    const lines = cp.logs.get("exec_ok") ?? [];
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i + 1));
    // Docker reads stdout and stderr through separate pipes: order holds within a stream, not across.
    const text = (stream: string) => lines.filter((l) => l.stream === stream).map((l) => l.text);
    expect(text("stdout")).toEqual(["hello ✓"]);
    expect(text("stderr")).toEqual(["warn"]);
    expect(cp.started).toContain("exec_ok");
    expect(cp.registrations).toBe(1);
    expect((await stat(path.join(state.dir, "credential.json"))).mode & 0o777).toBe(0o600);
    expect(a.output()).not.toContain(cp.credential);
    expect(a.output()).not.toContain("rgrid_rt_test_token_123");
  });

  it("reuses the saved credential after a restart instead of spending another registration token", async () => {
    const a = agent(baseEnv());
    cp.enqueue("exec_restart", "print('again')\n");
    await cp.waitFor(() => cp.completions.get("exec_restart"));
    expect(cp.registrations).toBe(1);
    expect(a.output()).toContain("[agent] using the saved credential of worker wk_1");
  });

  it("drops a fenced completion (409) and keeps serving, so a task finishes once", async () => {
    const a = agent(baseEnv());
    cp.fenced.add("exec_fenced");
    cp.enqueue("exec_fenced", "print('late')\n");
    await cp.waitFor(() => a.output().includes("completion of attempt exec_fenced-1 refused with 409"));
    cp.enqueue("exec_after_fence", "print('next')\n");
    await cp.waitFor(() => cp.completions.get("exec_after_fence"));
    expect(cp.completions.has("exec_fenced")).toBe(false);
  });

  it("kills a revoked attempt's container at once and reports nothing for it", async () => {
    const a = agent(baseEnv());
    cp.revoke.add("exec_revoked#1");
    const started = Date.now();
    cp.enqueue("exec_revoked", "import time\ntime.sleep(120)\n");
    await cp.waitFor(() => a.output().includes("attempt exec_revoked-1 revoked (cancelled)"));
    // The slot frees as soon as the container is gone: the next task runs well before 120 s.
    cp.enqueue("exec_after_revoke", "print('next')\n");
    await cp.waitFor(() => cp.completions.get("exec_after_revoke"));
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(cp.completions.has("exec_revoked")).toBe(false);
  });

  it("on SIGTERM stops leasing, lets the running task finish and exits 0", async () => {
    const a = agent(baseEnv());
    cp.enqueue("exec_drain", "import time\ntime.sleep(3)\nprint('finished')\n");
    await cp.waitFor(() => cp.started.includes("exec_drain"));
    a.child.kill("SIGTERM");
    expect(await a.exited).toBe(0);
    expect(cp.completions.get("exec_drain")).toMatchObject({ status: "succeeded" });
    expect(a.output()).toContain("SIGTERM received");
  });

  it("exits 1 with a clear message when the credential is refused (401)", async () => {
    cp.rejectCredential = true;
    try {
      const a = agent(baseEnv());
      expect(await a.exited).toBe(1);
      expect(a.output()).toContain("The control plane refused this worker's credential (401)");
      expect(a.output()).not.toMatch(/\n\s+at /);
    } finally {
      cp.rejectCredential = false;
    }
  });

  it("refuses to start for a remote control plane without Docker, rather than run scripts unisolated", async () => {
    const a = agent({ ...baseEnv(), DOCKER_HOST: "unix:///nonexistent/docker.sock" });
    expect(await a.exited).toBe(1);
    expect(a.output()).toContain(
      "No Docker engine answered. An agent serving a remote control plane refuses to run scripts without isolation",
    );
  });

  it("under rgrid dev without Docker runs scripts as processes and warns once that they are not isolated", async () => {
    const a = agent({ ...baseEnv(), DOCKER_HOST: "unix:///nonexistent/docker.sock", RGRID_AGENT_LOCAL: "true" });
    cp.enqueue("exec_proc1", "print('p1')\n");
    cp.enqueue("exec_proc2", "print('p2')\n");
    await cp.waitFor(() => cp.completions.get("exec_proc1") && cp.completions.get("exec_proc2"));
    expect(a.output().split("NOT isolated").length - 1).toBe(1);
  });

  it("rejects a bad environment with the variable's name and no stack trace", async () => {
    const a = agent({ RGRID_API_URL: "ftp://x", RGRID_AGENT_SLOTS: "many", RGRID_AGENT_STATE_DIR: state.dir });
    expect(await a.exited).toBe(1);
    expect(a.output().trim()).toBe(
      "[agent] invalid environment: RGRID_API_URL must be an http(s) URL; RGRID_AGENT_SLOTS must be a whole number",
    );
  });
});
