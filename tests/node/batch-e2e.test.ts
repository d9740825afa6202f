import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { executionListSchema, type ExecutionView } from "../../shared/src/index";
import { cliBin, cliEnv, nodeForStack, type CliResult } from "../helpers/cli";
import { startLocalStack, type LocalStack } from "../helpers/local-stack";

// `rgrid run --batch`, `rgrid watch` and `rgrid retry`, end to end: the built CLI against a real
// `rgrid dev` whose local agent runs the scripts in Docker. The agent gets 4 slots, so a batch's
// --parallel cap (at most 3 here), not the agent, is what limits how many run at once.

let stack: LocalStack;
beforeAll(async () => {
  stack = await startLocalStack({ env: { RGRID_AGENT_SLOTS: "4" } });
});
afterAll(async () => {
  await stack?.stop();
});

function project(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rgrid-batch-"));
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

const rgrid = (cwd: string, args: string[]) => stack.runCli(args, { cwd, timeoutMs: 150_000 });
const debug = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

function batchId(result: CliResult): string {
  const match = /Submitted \d+ executions as (batch_\S+) in/.exec(result.stderr);
  if (!match?.[1]) throw new Error(`no batch id in:\n${result.stderr}`);
  return match[1];
}

/** The local profile's key, to read the API as the CLI does. */
function apiKey(): string {
  const text = fs.readFileSync(path.join(stack.home, "credentials"), "utf8");
  const match = /\[local\][^[]*?api_key\s*=\s*(\S+)/.exec(text);
  if (!match?.[1]) throw new Error("no local api key");
  return match[1];
}

async function executionsOf(batch: string): Promise<ExecutionView[]> {
  const response = await fetch(`${stack.url}/api/v1/executions?batch=${batch}&limit=500`, {
    headers: { Authorization: `Bearer ${apiKey()}` },
  });
  return executionListSchema.parse(await response.json()).executions;
}

/** The most executions whose [started_at, finished_at] overlap at any moment. */
function maxConcurrent(views: readonly ExecutionView[]): number {
  const edges = views.flatMap((v) => [
    { t: v.started_at ?? 0, d: 1 },
    { t: v.finished_at ?? 0, d: -1 },
  ]);
  // An execution that finishes at the very moment another starts does not overlap it.
  edges.sort((a, b) => a.t - b.t || a.d - b.d);
  let current = 0;
  let max = 0;
  for (const edge of edges) max = Math.max(max, (current += edge.d));
  return max;
}

/** Writes an output from each input, and fails (exit 3, saying why) for inputs whose content says "fail". */
const PROCESS_PY = [
  "import sys, time, json, os",
  "text = open(sys.argv[1]).read()",
  "time.sleep(float(os.environ.get('NAP', '0')))",
  "if 'fail' in text:",
  "    print('input says fail: ' + sys.argv[1], file=sys.stderr)",
  "    sys.exit(3)",
  "os.makedirs('res', exist_ok=True)",
  "json.dump({'input': sys.argv[1], 'args': sys.argv[1:], 'upper': text.upper()}, open('res/out.json', 'w'))",
].join("\n");

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, "utf8")) as { input: string; args: string[]; upper: string };

describe("rgrid run --batch", () => {
  it("never runs more than --parallel at once even with free agent slots, and puts each input's outputs in its own folder (same names in different folders kept apart)", async () => {
    const files: Record<string, string> = { "process.py": PROCESS_PY };
    for (let i = 1; i <= 10; i++) files[`data/${i}.csv`] = `row ${i}`;
    files["data/a/x.csv"] = "a x";
    files["data/b/x.csv"] = "b x";
    const cwd = project(files);
    const result = await rgrid(cwd, [
      "run",
      "process.py",
      "--batch",
      "data/**/*.csv",
      "--parallel",
      "3",
      "--metadata",
      "suite=cap",
      "--env",
      "NAP=1",
    ]);
    expect(result.code, debug(result)).toBe(0);
    expect(result.stderr).toContain("Starting batch: 12 files, 3 parallel");
    expect(result.stderr).toContain("12 succeeded, 0 failed");
    const batch = batchId(result);

    const views = await executionsOf(batch);
    expect(views).toHaveLength(12);
    const running = maxConcurrent(views);
    expect(running, JSON.stringify(views.map((v) => [v.started_at, v.finished_at]))).toBeLessThanOrEqual(3);
    expect(running).toBeGreaterThanOrEqual(2); // they did run side by side

    for (let i = 1; i <= 10; i++) expect(readJson(path.join(cwd, `outputs/${i}/res/out.json`)).upper).toBe(`ROW ${i}`);
    expect(readJson(path.join(cwd, "outputs/a/x/res/out.json")).input).toBe("data/a/x.csv");
    expect(readJson(path.join(cwd, "outputs/b/x/res/out.json")).input).toBe("data/b/x.csv");
    // Without a TTY the progress is plain lines, never a redrawn bar.
    expect(result.stderr).toMatch(/^12\/12 complete \(0 failed, 0 running, 0 queued\)/m);
    expect(result.stderr).not.toContain("\x1b[");

    // Metadata lands on every execution, and list filters on it together with the batch and status.
    const listed = await rgrid(cwd, ["list", "--metadata", "suite=cap", "--batch", batch, "--status", "succeeded", "--limit", "50"]);
    expect(listed.stdout.trimEnd().split("\n").slice(1)).toHaveLength(12);
    const none = await rgrid(cwd, ["list", "--metadata", "suite=cap", "--status", "failed"]);
    expect(none.stdout).toBe("");
    const status = await rgrid(cwd, ["status", batch]);
    expect(status.stdout).toMatch(/progress\s+12\/12 complete/);
    expect(status.stdout).toMatch(/succeeded\s+12/);
  });

  it("expands {1..3} ranges and places the input where {} stands, keeping the other arguments", async () => {
    const cwd = project({ "process.py": PROCESS_PY, "in/1.txt": "one", "in/2.txt": "two", "in/3.txt": "three", "in/4.txt": "four" });
    const result = await rgrid(cwd, ["run", "process.py", "{}", "--tag", "x", "--batch", "in/{1..3}.txt", "--output-dir", "got"]);
    expect(result.code, debug(result)).toBe(0);
    expect(result.stderr).toContain("Starting batch: 3 files, 10 parallel");
    expect(readJson(path.join(cwd, "got/2/res/out.json")).args).toEqual(["in/2.txt", "--tag", "x"]);
    expect(fs.existsSync(path.join(cwd, "got/4"))).toBe(false);
  });

  it("refuses a pattern that matches nothing, naming it, and submits nothing", async () => {
    const cwd = project({ "process.py": PROCESS_PY, "data/1.csv": "x" });
    const result = await rgrid(cwd, ["run", "process.py", "--batch", "data/*.csv", "--batch", "nope/*.csv"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('--batch "nope/*.csv" matches no files');
    expect(result.stderr).not.toContain("Starting batch");
  });

  it("says the shell expanded an unquoted pattern instead of giving every execution all the files", async () => {
    const cwd = project({ "process.py": PROCESS_PY, "data/1.csv": "x", "data/2.csv": "y" });
    const result = await rgrid(cwd, ["run", "process.py", "--batch", "data/1.csv", "data/2.csv"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("the shell probably expanded the --batch pattern");
    expect(result.stderr).toContain("--batch 'data/*.csv'");
  });
});

describe("failures, --strict and retry", () => {
  let cwd: string;
  let batch: string;
  let first: CliResult;
  const failing = ["in/f1.txt", "in/f2.txt", "in/f3.txt", "in/f4.txt"];
  beforeAll(async () => {
    const files: Record<string, string> = { "process.py": PROCESS_PY };
    for (let i = 1; i <= 4; i++) files[`in/ok${i}.txt`] = `fine ${i}`;
    for (const f of failing) files[f] = "please fail";
    cwd = project(files);
    first = await rgrid(cwd, ["run", "process.py", "--batch", "in/*.txt", "--parallel", "3"]);
    batch = batchId(first);
  });

  it("keeps going past failures, lists each failed input with its cause and where to look, and exits 0 since some succeeded", async () => {
    expect(first.code, debug(first)).toBe(0);
    expect(first.stderr).toContain("4 succeeded, 4 failed");
    const views = await executionsOf(batch);
    for (const input of failing) {
      const id = views.find((v) => v.args[0] === input)?.id;
      expect(first.stderr).toContain(`✗ ${input}: exit code 3: input says fail: ${input}\n      rgrid logs ${id}`);
    }
    expect(fs.readdirSync(path.join(cwd, "outputs")).sort()).toEqual(["ok1", "ok2", "ok3", "ok4"]);
  });

  it("with --strict exits 1 when any execution failed (checked by reattaching to the finished batch)", async () => {
    const strict = await rgrid(cwd, ["watch", batch, "--strict", "--remote-only"]);
    expect(strict.code, debug(strict)).toBe(1);
    expect(strict.stderr).toContain("4 succeeded, 4 failed");
    const lenient = await rgrid(cwd, ["watch", batch, "--remote-only"]);
    expect(lenient.code).toBe(0);
  });

  it("retry --batch --failed-only re-runs exactly the failed ones as linked executions, and exits 1 when all of them fail again", async () => {
    const before = await executionsOf(batch);
    const failedIds = before.filter((v) => v.status === "failed").map((v) => v.id);
    expect(failedIds).toHaveLength(4);
    const retry = await rgrid(cwd, ["retry", "--batch", batch, "--failed-only"]);
    expect(retry.code, debug(retry)).toBe(1);
    expect(retry.stderr).toContain(`Retrying 4 failed executions of ${batch}`);
    expect(retry.stderr).toContain("0 succeeded, 4 failed");

    const after = await executionsOf(batch);
    expect(after).toHaveLength(12);
    const retries = after.filter((v) => v.retry_of !== null);
    expect(retries.map((v) => v.retry_of).sort()).toEqual([...failedIds].sort());
    for (const r of retries) expect(r.args[0]).toBe(before.find((v) => v.id === r.retry_of)?.args[0]);
    // The batch's counts follow the latest execution of each input: still 8 inputs.
    const status = await rgrid(cwd, ["status", batch, "--json"]);
    expect(JSON.parse(status.stdout)).toMatchObject({ total: 8, counts: { succeeded: 4, failed: 4 } });
  });

  it("retry ID re-runs one execution as a new linked one, follows it, and downloads into its batch folder", async () => {
    const ok = (await executionsOf(batch)).find((v) => v.args[0] === "in/ok2.txt");
    fs.rmSync(path.join(cwd, "outputs/ok2"), { recursive: true });
    const retry = await rgrid(cwd, ["retry", ok?.id ?? ""]);
    expect(retry.code, debug(retry)).toBe(0);
    expect(retry.stderr).toMatch(/Retry started: exec_/);
    expect(readJson(path.join(cwd, "outputs/ok2/res/out.json")).upper).toBe("FINE 2");
  });

  it("--flat refuses outputs that would share a name, before downloading anything; --flat-prefix keeps them apart", async () => {
    const flat = await rgrid(cwd, ["watch", batch, "--flat", "--output-dir", "flat"]);
    expect(flat.code).toBe(1);
    expect(flat.stderr).toMatch(
      /--flat: 1 output name is written by more than one input: out\.json \(from in\/ok1\.txt, in\/ok2\.txt, in\/ok3\.txt, …\)\. Nothing was downloaded\./,
    );
    expect(flat.stderr).toContain("--flat-prefix");
    expect(fs.existsSync(path.join(cwd, "flat"))).toBe(false);

    const prefixed = await rgrid(cwd, ["watch", batch, "--flat-prefix", "--output-dir", "flat"]);
    expect(prefixed.code, debug(prefixed)).toBe(0);
    expect(fs.readdirSync(path.join(cwd, "flat")).sort()).toEqual(["ok1_out.json", "ok2_out.json", "ok3_out.json", "ok4_out.json"]);
  });
});

describe("detaching", () => {
  it("on Ctrl-C detaches while the batch keeps running, and rgrid watch reattaches, completes it and downloads every output", async () => {
    const files: Record<string, string> = { "process.py": PROCESS_PY };
    for (let i = 1; i <= 6; i++) files[`d/${i}.txt`] = `n${i}`;
    const cwd = project(files);
    const child = spawn(nodeForStack(), [cliBin, "run", "process.py", "--batch", "d/*.txt", "--parallel", "2", "--env", "NAP=1.5"], {
      cwd,
      env: cliEnv(stack.home),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
    const deadline = Date.now() + 60_000;
    while (!/\d+\/6 complete/.test(stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    child.kill("SIGINT");
    expect(await exited, stderr).toBe(130);
    const batch = /Submitted 6 executions as (batch_\S+)/.exec(stderr)?.[1] ?? "";
    expect(stderr).toContain(`Detached. The batch keeps running. Reattach with: rgrid watch ${batch}`);
    expect(stderr).not.toContain("succeeded,");

    // Still running without the CLI: the scheduler holds the cap and keeps starting work.
    const midway = await executionsOf(batch);
    expect(midway.some((v) => v.status !== "succeeded")).toBe(true);

    const watch = await rgrid(cwd, ["watch", batch]);
    expect(watch.code, debug(watch)).toBe(0);
    expect(watch.stderr).toMatch(/^6\/6 complete \(0 failed, 0 running, 0 queued\)/m);
    expect(watch.stderr).toContain("6 succeeded, 0 failed");
    for (let i = 1; i <= 6; i++) expect(readJson(path.join(cwd, `outputs/${i}/res/out.json`)).upper).toBe(`N${i}`);
    expect(maxConcurrent(await executionsOf(batch))).toBeLessThanOrEqual(2);
  });
});
