import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliBin, cliEnv, nodeForStack, type CliResult } from "../helpers/cli";
import { startLocalStack, type LocalStack } from "../helpers/local-stack";

// `rgrid run` and its companions, end to end: the built CLI against a real `rgrid dev` (control
// plane + local agent) running scripts in real Docker containers.

let stack: LocalStack;
beforeAll(async () => {
  stack = await startLocalStack();
});
afterAll(async () => {
  await stack?.stop();
});

/** A fresh project folder holding the given files. */
function project(files: Record<string, string | Buffer>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rgrid-run-"));
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

async function rgrid(cwd: string, args: string[]): Promise<CliResult> {
  return stack.runCli(args, { cwd, timeoutMs: 120_000 });
}

function executionId(result: CliResult): string {
  const match = /Execution started: (\S+)/.exec(result.stderr);
  if (!match?.[1]) throw new Error(`no execution id in:\n${result.stderr}`);
  return match[1];
}

const debug = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}\n--- agent\n${agentLogTail()}`;
function agentLogTail(): string {
  try {
    return fs
      .readFileSync(path.join(stack.home, "dev", "agent.log"), "utf8")
      .split("\n")
      .slice(-20)
      .join("\n");
  } catch {
    return "(no agent log)";
  }
}

describe("rgrid run", () => {
  it("passes arguments with spaces and quotes through unchanged and rewrites a file argument in a subfolder, as python would see them locally", async () => {
    const cwd = project({
      "show_args.py": "import sys, json\nprint(json.dumps(sys.argv[1:]))\nprint(open(sys.argv[1]).read().strip())\n",
      "data/raw/my input.csv": "a,b\n1,2\n",
    });
    const args = ["./data/raw/my input.csv", "two words", `it's "quoted"`, "--flag=$HOME", "-n", "3", ""];
    const result = await rgrid(cwd, ["run", "show_args.py", ...args]);
    expect(result.code, debug(result)).toBe(0);
    const [argvLine, ...content] = result.stdout.trimEnd().split("\n");
    expect(JSON.parse(argvLine ?? "")).toEqual(["data/raw/my input.csv", "two words", `it's "quoted"`, "--flag=$HOME", "-n", "3", ""]);
    expect(content.join("\n")).toBe("a,b\n1,2");
  });

  it("sends the script's stdout to stdout and its stderr and rgrid's own messages to stderr, so `> out.txt` captures what python would", async () => {
    const cwd = project({
      "streams.py": "import sys\nprint('out 1')\nprint('err 1', file=sys.stderr)\nprint('out 2')\nprint('héllo ✓ 日本 🚀')\n",
    });
    const result = await rgrid(cwd, ["run", "streams.py"]);
    expect(result.code, debug(result)).toBe(0);
    expect(result.stdout).toBe("out 1\nout 2\nhéllo ✓ 日本 🚀\n");
    expect(result.stderr).toContain("err 1\n");
    expect(result.stderr).toMatch(/Execution started: exec_/);
    expect(result.stderr).not.toContain("out 1");
  });

  it.each([0, 1, 3])("exits with the script's exit code %i, so shell scripts and CI can rely on it", async (code) => {
    const cwd = project({ "exit.py": `import sys\nprint('bye')\nsys.exit(${code})\n` });
    const result = await rgrid(cwd, ["run", "exit.py"]);
    expect(result.code, debug(result)).toBe(code);
    expect(result.stdout).toBe("bye\n");
  });

  it("downloads nested output folders at their relative paths, and a binary output byte-identical", async () => {
    const binary = randomBytes(3 * 1024 * 1024 + 17);
    const cwd = project({
      "outputs.py": [
        "import os, sys",
        "data = open(sys.argv[1], 'rb').read()",
        "os.makedirs('results/deep/deeper', exist_ok=True)",
        "open('results/deep/deeper/reversed.bin', 'wb').write(data[::-1])",
        "open('summary.txt', 'w').write(f'{len(data)} bytes\\n')",
      ].join("\n"),
      "inputs/blob.bin": binary,
    });
    const result = await rgrid(cwd, ["run", "outputs.py", "inputs/blob.bin"]);
    expect(result.code, debug(result)).toBe(0);
    expect(fs.readFileSync(path.join(cwd, "summary.txt"), "utf8")).toBe(`${binary.length} bytes\n`);
    const reversed = fs.readFileSync(path.join(cwd, "results/deep/deeper/reversed.bin"));
    expect(sha256(reversed)).toBe(sha256(Buffer.from(binary).reverse()));
    expect(result.stderr).toMatch(/✓ Downloaded: .*results\/deep\/deeper\/reversed\.bin \(3 MB\)/);
    expect(result.stderr).toContain("summary.txt (");
    // The unchanged input is not an output: it is not "downloaded" back over the local file.
    expect(result.stderr).not.toContain("inputs/blob.bin");
  });

  it("uploads nothing the second time an unchanged script and input are run (content-addressed)", async () => {
    const cwd = project({ "same.py": "print('same')\n", "in.txt": randomBytes(64).toString("hex") });
    const first = await rgrid(cwd, ["run", "same.py", "in.txt"]);
    expect(first.code, debug(first)).toBe(0);
    expect(first.stderr).toContain("Uploaded 2 files");
    const second = await rgrid(cwd, ["run", "same.py", "in.txt"]);
    expect(second.code, debug(second)).toBe(0);
    expect(second.stderr).not.toContain("Uploaded");
  });

  it("passes --env to the script, and the value appears in no CLI output but the script's own", async () => {
    const secret = `s3cr3t-${randomBytes(8).toString("hex")}`;
    const cwd = project({ "env.py": "import os, hashlib\nv = os.environ['API_TOKEN']\nprint(hashlib.sha256(v.encode()).hexdigest())\n" });
    const result = await rgrid(cwd, ["run", "--env", `API_TOKEN=${secret}`, "--metadata", "case=env", "env.py"]);
    expect(result.code, debug(result)).toBe(0);
    expect(result.stdout.trim()).toBe(sha256(secret));
    const id = executionId(result);
    const everything = [
      result,
      await rgrid(cwd, ["status", id, "--json", "--events"]),
      await rgrid(cwd, ["status", id]),
      await rgrid(cwd, ["logs", id]),
      await rgrid(cwd, ["list", "--metadata", "case=env"]),
    ];
    for (const r of everything) expect(`${r.stdout}${r.stderr}`).not.toContain(secret);
    expect(everything[1]?.stdout).toContain('"API_TOKEN"'); // the name is shown, never the value
  });

  it("with --remote-only leaves outputs remote and says how to fetch them; rgrid download then fetches them", async () => {
    const cwd = project({ "write.py": "import os\nos.makedirs('out/a', exist_ok=True)\nopen('out/a/r.txt','w').write('remote')\n" });
    const result = await rgrid(cwd, ["run", "--remote-only", "write.py"]);
    expect(result.code, debug(result)).toBe(0);
    const id = executionId(result);
    expect(result.stderr).toContain(`rgrid download ${id}`);
    expect(fs.existsSync(path.join(cwd, "out"))).toBe(false);

    const download = await rgrid(cwd, ["download", id, "--dir", "fetched"]);
    expect(download.code, debug(download)).toBe(0);
    expect(fs.readFileSync(path.join(cwd, "fetched/out/a/r.txt"), "utf8")).toBe("remote");
    expect(download.stderr).toContain("✓ Downloaded into fetched: out/a/r.txt (6 B)");
  });

  it("explains a ModuleNotFoundError with the module, the fix and where to look", async () => {
    const cwd = project({ "needs_pandas.py": "import pandas\n" });
    const result = await rgrid(cwd, ["run", "needs_pandas.py"]);
    expect(result.code, debug(result)).toBe(1);
    const id = executionId(result);
    expect(result.stderr).toContain("ModuleNotFoundError: No module named 'pandas'"); // the script's own traceback
    expect(result.stderr).toContain('Add "pandas" to requirements.txt');
    expect(result.stderr).toContain("--runtime python:3.11-datascience");
    expect(result.stderr).toContain(`rgrid logs ${id}`);
    expect(result.stdout).toBe("");
  });

  it("refuses a missing script or a bad option with a fix, before submitting anything", async () => {
    const cwd = project({ "ok.py": "print(1)\n" });
    const missing = await rgrid(cwd, ["run", "nope.py"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("Script not found: nope.py");
    expect(missing.stderr).not.toContain("Execution started");
    const badRuntime = await rgrid(cwd, ["run", "--runtime", "cobol", "ok.py"]);
    expect(badRuntime.code).toBe(1);
    expect(badRuntime.stderr).toContain('Unknown runtime "cobol"');
    expect(badRuntime.stderr).toContain("python:3.11-datascience");
    const badMemory = await rgrid(cwd, ["run", "--memory", "lots", "ok.py"]);
    expect(badMemory.stderr).toContain("--memory");
    for (const r of [missing, badRuntime, badMemory]) expect(r.stderr).not.toContain("Uploaded");
  });

  it("keeps going when the reader of its stdout goes away (| head), so outputs still download and the exit code is the script's", async () => {
    const cwd = project({ "many.py": "for i in range(20000):\n    print('line', i)\nopen('made.txt','w').write('ok')\n" });
    const child = spawn("bash", ["-c", `"$RGRID_NODE" "$RGRID_CLI" run many.py | head -n 1; echo "rgrid exit: \${PIPESTATUS[0]}" >&2`], {
      cwd,
      env: { ...cliEnv(stack.home), RGRID_NODE: nodeForStack(), RGRID_CLI: cliBin },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    await new Promise((resolve) => child.once("close", resolve));
    expect(stdout).toBe("line 0\n");
    expect(stderr).toContain("rgrid exit: 0");
    expect(stderr).not.toContain("EPIPE");
    expect(fs.readFileSync(path.join(cwd, "made.txt"), "utf8")).toBe("ok");
  });

  it("stops a script at its --timeout, exits 124 and suggests a longer timeout", async () => {
    const cwd = project({ "slow.py": "import time\nprint('starting', flush=True)\ntime.sleep(60)\n" });
    const result = await rgrid(cwd, ["run", "--timeout", "2s", "slow.py"]);
    expect(result.code, debug(result)).toBe(124);
    expect(result.stdout).toBe("starting\n");
    expect(result.stderr).toContain("--timeout");
  });
});

describe("status, logs, outputs, list", () => {
  let cwd: string;
  let id: string;
  beforeAll(async () => {
    cwd = project({
      "report.py":
        "import sys, os\nprint('line one')\nprint('warning!', file=sys.stderr)\nprint('line two')\nos.makedirs('res', exist_ok=True)\nopen('res/x.csv','w').write('a'*3000)\n",
    });
    const result = await rgrid(cwd, ["run", "--metadata", "suite=status", "report.py"]);
    expect(result.code, debug(result)).toBe(0);
    id = executionId(result);
  });

  it("rgrid status shows the final state, exit code, worker and attempt; --events lists the lifecycle in order", async () => {
    const result = await rgrid(cwd, ["status", id, "--events"]);
    expect(result.code, debug(result)).toBe(0);
    expect(result.stdout).toMatch(/status\s+succeeded/);
    expect(result.stdout).toMatch(/exit code\s+0/);
    expect(result.stdout).toMatch(/worker\s+wrk_/);
    expect(result.stdout).toMatch(/attempt\s+1/);
    const events = [...result.stdout.matchAll(/^\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+(\w+)/gm)].map((m) => m[1]);
    expect(events).toEqual(["queued", "leased", "started", "succeeded"]);
    const json = await rgrid(cwd, ["status", id, "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ id, status: "succeeded", exit_code: 0, metadata: { suite: "status" } });
  });

  it("rgrid logs replays stdout to stdout and stderr to stderr; --follow on a finished execution exits with its code", async () => {
    const result = await rgrid(cwd, ["logs", id]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("line one\nline two\n");
    expect(result.stderr).toContain("warning!");
    const stamped = await rgrid(cwd, ["logs", id, "--timestamps"]);
    expect(stamped.stdout).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} line one$/m);
    const follow = await rgrid(cwd, ["logs", id, "--follow"]);
    expect(follow.code).toBe(0);
    expect(follow.stdout).toBe("line one\nline two\n");
  });

  it("rgrid outputs lists files with human sizes", async () => {
    const result = await rgrid(cwd, ["outputs", id]);
    expect(result.code, debug(result)).toBe(0);
    expect(result.stdout).toMatch(/res\/x\.csv\s+2\.9 KB/);
  });

  it("rgrid list filters by status and metadata and shows id, status and script", async () => {
    const result = await rgrid(cwd, ["list", "--metadata", "suite=status", "--status", "succeeded"]);
    expect(result.code, debug(result)).toBe(0);
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+STATUS\s+SCRIPT\s+CREATED\s+DURATION$/);
    expect(lines.slice(1)).toHaveLength(1);
    expect(lines[1]).toMatch(new RegExp(`^${id}\\s+succeeded\\s+report\\.py\\s+`));
    const none = await rgrid(cwd, ["list", "--status", "cancelled", "--metadata", "suite=status"]);
    expect(none.stdout).toBe("");
    const bad = await rgrid(cwd, ["list", "--status", "done"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("succeeded");
  });
});

/** Starts `rgrid run` as a child and resolves once it printed its execution id. */
function startRun(cwd: string, args: string[]) {
  const child = spawn(nodeForStack(), [cliBin, "run", ...args], { cwd, env: cliEnv(stack.home), stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<CliResult>((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
  const waitFor = (pattern: RegExp, timeoutMs = 60_000) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const started = Date.now();
      const check = () => {
        const match = pattern.exec(stdout + stderr);
        if (match) return resolve(match);
        if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${pattern}:\n${stdout}\n${stderr}`));
        setTimeout(check, 50);
      };
      check();
    });
  return { child, exited, waitFor };
}

describe("detaching and cancelling", () => {
  it("on Ctrl-C detaches without cancelling (exit 130), and `rgrid logs --follow` reattaches to the end and exits with the script's code", async () => {
    const cwd = project({
      "waits.py": "import time, sys\nprint('tick', flush=True)\ntime.sleep(4)\nprint('done', flush=True)\nsys.exit(5)\n",
    });
    const run = startRun(cwd, ["waits.py"]);
    await run.waitFor(/tick/);
    const id = (await run.waitFor(/Execution started: (\S+)/))[1] ?? "";
    run.child.kill("SIGINT");
    const detached = await run.exited;
    expect(detached.code).toBe(130);
    expect(detached.stderr).toContain(`Detached: ${id} keeps running. Reattach with: rgrid logs ${id} --follow`);

    const follow = await rgrid(cwd, ["logs", id, "--follow"]);
    expect(follow.code, debug(follow)).toBe(5);
    expect(follow.stdout).toBe("tick\ndone\n");
  });

  it("rgrid cancel stops a running execution, and the run following it exits 130", async () => {
    const cwd = project({ "forever.py": "import time\nprint('up', flush=True)\ntime.sleep(120)\n" });
    const run = startRun(cwd, ["forever.py"]);
    await run.waitFor(/up/);
    const id = (await run.waitFor(/Execution started: (\S+)/))[1] ?? "";
    const cancel = await rgrid(cwd, ["cancel", id]);
    expect(cancel.code, debug(cancel)).toBe(0);
    expect(cancel.stderr).toContain(`Cancelled ${id}`);
    const result = await run.exited;
    expect(result.code, debug(result)).toBe(130);
    const again = await rgrid(cwd, ["cancel", id]);
    expect(again.stderr).toContain("already finished (cancelled)");
  });
});
