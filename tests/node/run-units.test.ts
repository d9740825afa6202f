import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { ExecutionView } from "../../shared/src/index";
import { safeOutputPath } from "../../cli/src/download-outputs";
import { UserError } from "../../cli/src/errors";
import { exitCodeFor, explainFailure, parseMissingModule, parseSyntaxError } from "../../cli/src/explain-failure";
import { formatBytes, formatDuration } from "../../cli/src/human-format";
import { separateScriptArgs } from "../../cli/src/run/argv";
import { parseCpus, parseEnv, parseMemory, parseMetadata, parseRuntime, parseTimeout } from "../../cli/src/run/options";
import { planRun } from "../../cli/src/run/plan";
import { prepareRun } from "../../cli/src/commands/run";

// The pure parts of `rgrid run`: option parsing, argument rewriting, failure explanations.

function expectUserError(fn: () => unknown, message: RegExp): UserError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(UserError);
  expect((caught as UserError).message).toMatch(message);
  expect((caught as UserError).hint).toBeTruthy();
  return caught as UserError;
}

describe("option parsing", () => {
  it.each([
    ["90", 90],
    ["30s", 30],
    ["10m", 600],
    ["2h", 7200],
    ["1.5h", 5400],
    [" 45 ", 45],
    ["10M", 600],
  ])("reads --timeout %s as %i seconds, so every common way of writing a duration works", (text, seconds) => {
    expect(parseTimeout(text)).toBe(seconds);
  });

  it.each(["", "0", "-5", "10d", "ten", "1h30m", "200h"])("refuses --timeout %j with a fix, before anything is uploaded", (text) => {
    expectUserError(() => parseTimeout(text), /--timeout/);
  });

  it.each([
    ["512m", 512],
    ["512", 512],
    ["2g", 2048],
    ["1.5G", 1536],
    ["256MB", 256],
    ["4gb", 4096],
  ])("reads --memory %s as %i MB", (text, mb) => {
    expect(parseMemory(text)).toBe(mb);
  });

  it.each(["", "32m", "2t", "lots", "-1g", "300g"])("refuses --memory %j (outside 64m–256g or not a size)", (text) => {
    expectUserError(() => parseMemory(text), /--memory/);
  });

  it("accepts fractional CPUs and refuses zero, so a typo never schedules a task that cannot run", () => {
    expect(parseCpus("0.5")).toBe(0.5);
    expect(parseCpus("2")).toBe(2);
    expectUserError(() => parseCpus("0"), /--cpus/);
    expectUserError(() => parseCpus("two"), /--cpus/);
  });

  it("lists the valid runtimes when given an unknown one", () => {
    expect(parseRuntime("python:3.11-datascience")).toBe("python:3.11-datascience");
    const error = expectUserError(() => parseRuntime("python:2.7"), /Unknown runtime "python:2.7"/);
    expect(error.hint).toContain("python:3.11");
    expect(error.hint).toContain("ffmpeg");
  });

  it("reads --env KEY=VALUE keeping '=' in values, takes a bare KEY from the local environment, and never puts a value in an error", () => {
    expect(parseEnv(["A=1", "B=x=y", "C="], {})).toEqual({ A: "1", B: "x=y", C: "" });
    expect(parseEnv(["TOKEN"], { TOKEN: "from-shell" })).toEqual({ TOKEN: "from-shell" });
    const missing = expectUserError(() => parseEnv(["NOPE"], {}), /NOPE is not set/);
    const badName = expectUserError(() => parseEnv(["1BAD=supersecret"], {}), /"1BAD"/);
    expect(`${badName.message}${badName.hint}${missing.message}`).not.toContain("supersecret");
  });

  it("reads --metadata key=value and refuses keys the API would reject", () => {
    expect(parseMetadata(["exp=baseline", "run.n=3"])).toEqual({ exp: "baseline", "run.n": "3" });
    expectUserError(() => parseMetadata(["novalue"]), /key=value/);
    expectUserError(() => parseMetadata(["bad key=1"]), /metadata/);
  });
});

describe("separateScriptArgs", () => {
  const argv = (...args: string[]) => ["node", "rgrid", ...args];
  it("hands every argument after the script to the script, including ones that look like rgrid options", () => {
    expect(separateScriptArgs(argv("run", "--timeout", "60", "x.py", "--timeout", "5", "-v"))).toEqual(
      argv("run", "--timeout", "60", "x.py", "--", "--timeout", "5", "-v"),
    );
  });
  it("skips the values of rgrid's own options when looking for the script", () => {
    expect(separateScriptArgs(argv("--profile", "local", "run", "-e", "A=1", "--env", "B=2", "--remote-only", "s.py", "in.csv"))).toEqual(
      argv("--profile", "local", "run", "-e", "A=1", "--env", "B=2", "--remote-only", "s.py", "--", "in.csv"),
    );
  });
  it("leaves other commands, a run without arguments, and an explicit -- alone", () => {
    expect(separateScriptArgs(argv("logs", "exec_1", "--follow"))).toEqual(argv("logs", "exec_1", "--follow"));
    expect(separateScriptArgs(argv("run", "x.py"))).toEqual(argv("run", "x.py"));
    expect(separateScriptArgs(argv("run", "--", "x.py", "-a"))).toEqual(argv("run", "--", "x.py", "-a"));
  });
});

describe("planRun", () => {
  function workspace() {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "rgrid-plan-"));
    const cwd = path.join(root, "project");
    fs.mkdirSync(path.join(cwd, "data", "raw"), { recursive: true });
    fs.writeFileSync(path.join(cwd, "main.py"), "print(1)\n");
    fs.writeFileSync(path.join(cwd, "data", "raw", "in.csv"), "a,b\n");
    fs.writeFileSync(path.join(root, "outside.txt"), "far away\n");
    return { root, cwd };
  }

  it("places file arguments at their path relative to the cwd and rewrites the argument, so the script opens the same relative path remotely", () => {
    const { cwd } = workspace();
    const plan = planRun({ cwd, script: "main.py", args: ["./data/raw/in.csv", "--out", "result.json", "has space"] });
    expect(plan.script.remotePath).toBe("main.py");
    expect(plan.inputs.map((i) => i.remotePath)).toEqual(["data/raw/in.csv"]);
    expect(plan.args).toEqual(["data/raw/in.csv", "--out", "result.json", "has space"]);
  });

  it("places files outside the cwd under inputs/<name>, and an outside script at its basename", () => {
    const { root, cwd } = workspace();
    fs.writeFileSync(path.join(root, "tool.py"), "pass\n");
    const plan = planRun({ cwd, script: path.join(root, "tool.py"), args: [path.join(root, "outside.txt"), path.join(cwd, "main.py")] });
    expect(plan.script.remotePath).toBe("tool.py");
    expect(plan.inputs.map((i) => i.remotePath)).toEqual(["inputs/outside.txt", "main.py"]);
    expect(plan.args).toEqual(["inputs/outside.txt", "main.py"]);
  });

  it("uploads a file named twice once, and refuses two different files that would collide remotely", () => {
    const { root, cwd } = workspace();
    const plan = planRun({ cwd, script: "main.py", args: ["data/raw/in.csv", "data/raw/in.csv", "main.py"] });
    expect(plan.inputs.map((i) => i.remotePath)).toEqual(["data/raw/in.csv"]);
    fs.mkdirSync(path.join(root, "other"));
    fs.writeFileSync(path.join(root, "other", "outside.txt"), "other\n");
    expectUserError(
      () => planRun({ cwd, script: "main.py", args: [path.join(root, "outside.txt"), path.join(root, "other", "outside.txt")] }),
      /Two different files/,
    );
  });

  it("picks up requirements.txt beside the script, or the file given with --requirements", () => {
    const { cwd } = workspace();
    expect(planRun({ cwd, script: "main.py", args: [] }).requirements).toBeUndefined();
    fs.writeFileSync(path.join(cwd, "requirements.txt"), "requests\n");
    expect(planRun({ cwd, script: "main.py", args: [] }).requirements?.localPath).toBe(path.join(cwd, "requirements.txt"));
    fs.writeFileSync(path.join(cwd, "deps.txt"), "numpy\n");
    expect(planRun({ cwd, script: "main.py", args: [], requirements: "deps.txt" }).requirements?.localPath).toBe(
      path.join(cwd, "deps.txt"),
    );
    expectUserError(() => planRun({ cwd, script: "main.py", args: [], requirements: "nope.txt" }), /Requirements file not found/);
  });

  it("refuses a missing script or a folder with a fix", () => {
    const { cwd } = workspace();
    expectUserError(() => planRun({ cwd, script: "missing.py", args: [] }), /Script not found: missing.py/);
    expectUserError(() => planRun({ cwd, script: "data", args: [] }), /is not a file/);
  });
});

describe("safeOutputPath", () => {
  it("keeps outputs inside the target folder and refuses paths that climb out or are absolute", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rgrid-out-"));
    expect(safeOutputPath(dir, "results/x.csv")).toBe(path.join(dir, "results", "x.csv"));
    for (const bad of ["../escape.txt", "a/../../escape", "/etc/passwd", "a\\..\\b", "", "./x"]) {
      expect(() => safeOutputPath(dir, bad), bad).toThrow(UserError);
    }
  });
});

describe("failure explanations", () => {
  const base: ExecutionView = {
    id: "exec_test",
    status: "failed",
    script_name: "main.py",
    runtime: "python:3.11",
    image: "rgrid/python:3.11",
    args: [],
    inputs: [],
    env_names: [],
    batch_id: null,
    retry_of: null,
    attempt: 1,
    worker_id: "wrk_1",
    exit_code: 1,
    error_message: null,
    metadata: {},
    timeout_seconds: 60,
    memory_mb: 512,
    cpus: 1,
    network: "bridge",
    created_at: 0,
    started_at: 0,
    finished_at: 1,
    duration_ms: 1,
    cost_micros: 0,
  };
  const traceback = [
    "Traceback (most recent call last):",
    '  File "/work/main.py", line 1, in <module>',
    "    import pandas.io",
    "ModuleNotFoundError: No module named 'pandas'",
  ];

  it("names the missing module from the traceback and suggests requirements.txt or the datascience runtime", () => {
    expect(parseMissingModule(traceback)).toBe("pandas");
    const e = explainFailure(base, traceback);
    expect(e?.what).toContain("No module named 'pandas'");
    expect(e?.fix).toContain('"pandas" to requirements.txt');
    expect(e?.fix).toContain("--runtime python:3.11-datascience");
  });

  it("maps import names to their pip package (cv2 is opencv-python)", () => {
    expect(explainFailure(base, ["ModuleNotFoundError: No module named 'cv2'"])?.fix).toContain('"opencv-python"');
  });

  it("points at the file and line of a syntax error", () => {
    const lines = ['  File "/work/src/job.py", line 7', "    print('x'", "         ^", "SyntaxError: '(' was never closed"];
    expect(parseSyntaxError(lines)).toEqual({ file: "src/job.py", line: 7, message: "SyntaxError: '(' was never closed" });
    expect(explainFailure(base, lines)?.what).toContain("src/job.py, line 7");
  });

  it("explains a timeout, an out-of-memory kill and a missing image, each with the option that fixes it", () => {
    expect(explainFailure({ ...base, status: "timed_out", exit_code: null }, [])?.fix).toContain("--timeout");
    expect(explainFailure({ ...base, exit_code: 137 }, [])?.fix).toContain("--memory");
    expect(explainFailure({ ...base, exit_code: null, error_message: "Out of memory: the 512 MB limit was reached" }, [])?.what).toContain(
      "out of memory",
    );
    expect(explainFailure({ ...base, exit_code: null, error_message: "image nope:1 not found (pull access denied)" }, [])?.fix).toContain(
      "--image",
    );
  });

  it("adds nothing to an ordinary non-zero exit, where the script's own stderr says more", () => {
    expect(explainFailure({ ...base, exit_code: 3 }, ["boom"])).toBeUndefined();
  });

  it("exits like the script: its code, 124 on timeout, 130 when cancelled, 1 for a failure without a code", () => {
    expect(exitCodeFor({ status: "succeeded", exit_code: 0 })).toBe(0);
    expect(exitCodeFor({ status: "failed", exit_code: 3 })).toBe(3);
    expect(exitCodeFor({ status: "timed_out", exit_code: null })).toBe(124);
    expect(exitCodeFor({ status: "cancelled", exit_code: null })).toBe(130);
    expect(exitCodeFor({ status: "failed", exit_code: null })).toBe(1);
  });
});

describe("human formats", () => {
  it("shows sizes and durations the way the download summary prints them", () => {
    expect(formatBytes(12)).toBe("12 B");
    expect(formatBytes(3 * 1024)).toBe("3 KB");
    expect(formatBytes(1.2 * 1024 * 1024)).toBe("1.2 MB");
    expect(formatDuration(850)).toBe("850 ms");
    expect(formatDuration(12_340)).toBe("12.3 s");
    expect(formatDuration(245_000)).toBe("4m 05s");
    expect(formatDuration(3_720_000)).toBe("1h 02m");
  });
});

describe("prepareRun", () => {
  async function prepare(files: Record<string, string>, options: Parameters<typeof prepareRun>[2], args: string[] = []) {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "rgrid-prepare-"));
    for (const [name, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(cwd, name)), { recursive: true });
      fs.writeFileSync(path.join(cwd, name), text);
    }
    const terminal = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
    return prepareRun("job.py", args, options, {
      terminal,
      env: { RGRID_HOME: path.join(cwd, "home") },
      cwd,
      home: path.join(cwd, "home"),
      profileFlag: undefined,
    });
  }

  it("takes limits and runtime from .rgrid/config, and lets flags override them, so a team's defaults apply without retyping", async () => {
    const config = { "job.py": "print(1)\n", ".rgrid/config": "runtime = python:3.11-datascience\ntimeout = 10m\nmemory = 1g\ncpus = 2\n" };
    const fromConfig = await prepare(config, {});
    expect(fromConfig.request).toMatchObject({
      runtime: "python:3.11-datascience",
      timeout_seconds: 600,
      memory_mb: 1024,
      cpus: 2,
      network: "bridge",
    });
    const overridden = await prepare(config, { timeout: "30s", memory: "512m", cpus: "0.5", network: "none", image: "alpine:3" });
    expect(overridden.request).toMatchObject({ image: "alpine:3", timeout_seconds: 30, memory_mb: 512, cpus: 0.5, network: "none" });
    expect(overridden.request.runtime).toBeUndefined(); // --image replaces the configured runtime
  });

  it("sends the requirements hash and every file once, with a fresh idempotency key per submission", async () => {
    const files = { "job.py": "print(1)\n", "requirements.txt": "requests==2.32.3\n", "in.txt": "x" };
    const a = await prepare(files, {}, ["in.txt"]);
    const b = await prepare(files, {}, ["in.txt"]);
    expect(a.request.requirements_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(a.request.inputs).toEqual([{ path: "in.txt", sha256: a.files[1]?.sha256 }]);
    expect(a.files.map((f) => f.remotePath)).toEqual(["job.py", "in.txt", "requirements.txt"]);
    expect(a.request.idempotency_key).not.toBe(b.request.idempotency_key);
  });

  it("refuses --runtime together with --image", async () => {
    await expect(prepare({ "job.py": "" }, { runtime: "python:3.11", image: "alpine" })).rejects.toThrow(/either --runtime or --image/);
  });
});
