import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliBin, cliEnv, ensureCliBuilt, nodeForStack, runCli, tempHome } from "../helpers/cli";
import { freePort } from "../helpers/local-stack";

// `rgrid run` with no agent to take the work: it must say so rather than hang silently.

let dev: ChildProcess | undefined;
let home: string;

beforeAll(async () => {
  await ensureCliBuilt();
  home = tempHome("rgrid-noagent-");
  const port = await freePort();
  dev = spawn(nodeForStack(), [cliBin, "dev", "--port", String(port), "--no-agent"], {
    env: cliEnv(home),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`rgrid dev --no-agent did not start:\n${output}`)), 120_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (/running at/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    dev?.stdout?.on("data", onData);
    dev?.stderr?.on("data", onData);
    dev?.once("exit", (code) => reject(new Error(`rgrid dev exited with ${code}:\n${output}`)));
  });
});

afterAll(async () => {
  if (!dev || dev.exitCode !== null) return;
  const exited = new Promise((resolve) => dev?.once("exit", resolve));
  dev.kill("SIGTERM");
  await exited;
});

describe("rgrid run without an agent", () => {
  it("says once that no agent is available (and how to start one), keeps waiting, and detaches on Ctrl-C leaving it queued", async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "rgrid-noagent-run-"));
    fs.writeFileSync(path.join(cwd, "job.py"), "print('never runs here')\n");
    const child = spawn(nodeForStack(), [cliBin, "run", "job.py"], { cwd, env: cliEnv(home), stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
    const started = Date.now();
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (stderr.includes("No agent is available")) return resolve();
        if (Date.now() - started > 30_000) return reject(new Error(`no notice within 30 s:\n${stderr}`));
        setTimeout(check, 100);
      };
      check();
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(4000); // not before it has waited a while
    expect(stderr).toContain("rgrid dev");
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(stderr.match(/No agent is available/g)).toHaveLength(1);
    expect(child.exitCode).toBeNull(); // still waiting

    child.kill("SIGINT");
    expect(await exited).toBe(130);
    const id = /Execution started: (\S+)/.exec(stderr)?.[1] ?? "";
    expect(stderr).toContain(`Detached: ${id} keeps running`);
    const status = await runCli(home, ["status", id, "--json"]);
    expect(JSON.parse(status.stdout)).toMatchObject({ id, status: "queued" });
  });
});
