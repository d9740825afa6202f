import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { ExecutionView } from "../../shared/src/index";
import { batchInputIndex, batchMembers, currentExecutions } from "../../cli/src/batch/batch-members";
import { argsForInput, expandBatchInputs } from "../../cli/src/batch/expand-inputs";
import { findClashes, outputFolderNames, outputTarget } from "../../cli/src/batch/output-folders";
import { describeFigures, estimateRemainingMs, figuresOf } from "../../cli/src/batch/progress";
import { checkBatchOnlyOptions, layoutFrom, parseParallel } from "../../cli/src/batch/run-batch";
import { causeOf } from "../../cli/src/batch/watch-batch";
import { UserError } from "../../cli/src/errors";
import { separateScriptArgs } from "../../cli/src/run/argv";

// The pure parts of `rgrid run --batch`: pattern expansion, argument placement, output folder
// naming, working out each execution's input afterwards, progress figures and failure causes.

function tree(files: string[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rgrid-batch-unit-"));
  for (const name of files) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), name);
  }
  return dir;
}

function catchUserError(fn: () => unknown): UserError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    return error as UserError;
  }
  throw new Error("expected a UserError");
}

describe("expandBatchInputs", () => {
  const dir = tree([
    "data/1.csv",
    "data/2.csv",
    "data/10.csv",
    "data/a.csv",
    "data/b.txt",
    "data/sub/deep/x.csv",
    "data/.hidden.csv",
    "weird/f[1].csv",
    "in/3.json",
  ]);
  const expand = (...values: string[]) => expandBatchInputs(dir, values).map((f) => path.relative(dir, f));

  it.each([
    ["*", ["data/*.csv"], ["data/1.csv", "data/2.csv", "data/10.csv", "data/a.csv"]],
    ["**", ["data/**/*.csv"], ["data/1.csv", "data/2.csv", "data/10.csv", "data/a.csv", "data/sub/deep/x.csv"]],
    ["?", ["data/?.csv"], ["data/1.csv", "data/2.csv", "data/a.csv"]],
    ["[a-z]", ["data/[a-b].*"], ["data/a.csv", "data/b.txt"]],
    ["{a,b}", ["data/{a,b}.*"], ["data/a.csv", "data/b.txt"]],
    ["a numeric range {1..3}", ["data/{1..3}.csv"], ["data/1.csv", "data/2.csv"]],
    ["a range across two places", ["{data,in}/{1..3}.*"], ["data/1.csv", "data/2.csv", "in/3.json"]],
  ])("expands %s the way a shell would, so quoted patterns work everywhere", (_what, values, expected) => {
    expect(expand(...values)).toEqual(expected);
  });

  it("adds repeated values up, drops duplicates and sorts numbers as numbers (2 before 10)", () => {
    expect(expand("data/10.csv", "data/*.csv", "data/1.csv", "in/3.json")).toEqual([
      "data/1.csv",
      "data/2.csv",
      "data/10.csv",
      "data/a.csv",
      "in/3.json",
    ]);
  });

  it("takes a plain file literally even when its name looks like a pattern", () => {
    expect(expand("weird/f[1].csv")).toEqual(["weird/f[1].csv"]);
  });

  it("leaves hidden files out unless the pattern names the dot, as shells do", () => {
    expect(expand("data/*.csv")).not.toContain("data/.hidden.csv");
    expect(expand("data/.*.csv")).toEqual(["data/.hidden.csv"]);
  });

  it("refuses a pattern that matches nothing, naming it, rather than submitting an empty or partial batch", () => {
    const error = catchUserError(() => expand("data/*.csv", "nope/*.csv", "missing.csv"));
    expect(error.message).toContain('"nope/*.csv"');
    expect(error.message).toContain('"missing.csv"');
    expect(error.message).not.toContain('"data/*.csv"');
    expect(error.hint).toContain("**");
  });

  it("does not match folders, only files", () => {
    expect(expand("data/*")).not.toContain("data/sub");
  });
});

describe("argsForInput", () => {
  it("puts the input first when there is no {}, keeping the other arguments", () => {
    expect(argsForInput(["--fast", "-n", "3"], "data/a.csv")).toEqual({ args: ["data/a.csv", "--fast", "-n", "3"], index: 0 });
  });
  it("puts the input where {} stands, so scripts that take it as an option work", () => {
    expect(argsForInput(["--in", "{}", "--out", "x"], "data/a.csv")).toEqual({ args: ["--in", "data/a.csv", "--out", "x"], index: 1 });
  });
  it("replaces only a whole {} argument, not braces inside another", () => {
    expect(argsForInput(["{}x", "{}"], "a")).toEqual({ args: ["{}x", "a"], index: 1 });
  });
});

describe("outputFolderNames", () => {
  const names = (inputs: string[]) => Object.fromEntries(outputFolderNames(inputs));

  it("names each folder after its input without the extension", () => {
    expect(names(["data/1.csv", "data/report.final.json", "Makefile"])).toEqual({
      "data/1.csv": "1",
      "data/report.final.json": "report.final",
      Makefile: "Makefile",
    });
  });
  it("gives same-named inputs in different folders the shortest distinguishing path, so outputs never collide", () => {
    expect(names(["data/a/x.csv", "data/b/x.csv", "data/y.csv"])).toEqual({
      "data/a/x.csv": "a/x",
      "data/b/x.csv": "b/x",
      "data/y.csv": "y",
    });
  });
  it("goes as deep as needed, and only for the inputs that collide", () => {
    expect(names(["p/a/x.csv", "q/a/x.csv", "r/b/x.csv", "r/b/z.csv"])).toEqual({
      "p/a/x.csv": "p/a/x",
      "q/a/x.csv": "q/a/x",
      "r/b/x.csv": "b/x",
      "r/b/z.csv": "z",
    });
  });
  it("tells apart an input at the top from one in a folder", () => {
    expect(names(["x.csv", "a/x.csv"])).toEqual({ "x.csv": "x", "a/x.csv": "a/x" });
  });
  it("keeps the extension for inputs that differ only by it", () => {
    expect(names(["d/x.csv", "d/x.json", "d/y.csv"])).toEqual({ "d/x.csv": "x.csv", "d/x.json": "x.json", "d/y.csv": "y" });
  });
  it("names every input uniquely, whatever the mix", () => {
    const inputs = ["a/b/c.txt", "b/c.txt", "c.txt", "c.csv", "x/c.txt", "x/a/b/c.txt", "inputs/c.txt"];
    const folders = [...outputFolderNames(inputs).values()];
    expect(new Set(folders).size).toBe(inputs.length);
  });
});

describe("output layout", () => {
  it("places an output under its input's folder by default, keeping its relative path", () => {
    expect(outputTarget({ kind: "folders", root: "/o" }, "a/x", "res/r.json")).toBe("a/x/res/r.json");
  });
  it("flattens to the file name with --flat, and prefixes the input name with --flat-prefix", () => {
    expect(outputTarget({ kind: "flat", root: "/o", prefix: false }, "a/x", "res/r.json")).toBe("r.json");
    expect(outputTarget({ kind: "flat", root: "/o", prefix: true }, "a/x", "res/r.json")).toBe("a_x_r.json");
  });
  it("finds names written by more than one input, for --flat to refuse before downloading", () => {
    const clashes = findClashes([
      { input: "1.csv", target: "r.json" },
      { input: "2.csv", target: "r.json" },
      { input: "2.csv", target: "log.txt" },
    ]);
    expect([...clashes]).toEqual([["r.json", ["1.csv", "2.csv"]]]);
  });
  it("defaults the output root to ./outputs, and --flat-prefix implies --flat", () => {
    expect(layoutFrom({}, "/p")).toEqual({ kind: "folders", root: "/p/outputs" });
    expect(layoutFrom({ flatPrefix: true, outputDir: "o" }, "/p")).toEqual({ kind: "flat", root: "/p/o", prefix: true });
  });
});

function view(partial: Partial<ExecutionView> & { id: string }): ExecutionView {
  return {
    status: "succeeded",
    script_name: "p.py",
    runtime: "python:3.11",
    image: "x",
    args: [],
    inputs: [],
    env_names: [],
    batch_id: "batch_1",
    retry_of: null,
    attempt: 1,
    worker_id: null,
    exit_code: 0,
    error_message: null,
    metadata: {},
    timeout_seconds: 3600,
    memory_mb: 2048,
    cpus: 1,
    network: "bridge",
    created_at: 0,
    started_at: null,
    finished_at: null,
    duration_ms: null,
    cost_micros: 0,
    ...partial,
  };
}
const input = (p: string) => ({ path: p, sha256: "0".repeat(64) });

describe("batch members (how watch and retry find each execution's input)", () => {
  const shared = input("cfg.json");
  const views = [
    view({ id: "e1", args: ["cfg.json", "data/a/x.csv", "-v"], inputs: [shared, input("data/a/x.csv")] }),
    view({ id: "e2", args: ["cfg.json", "data/b/x.csv", "-v"], inputs: [shared, input("data/b/x.csv")] }),
    view({ id: "e3", args: ["cfg.json", "data/y.csv", "-v"], inputs: [shared, input("data/y.csv")], status: "failed", exit_code: 1 }),
    view({ id: "e4", args: ["cfg.json", "data/y.csv", "-v"], inputs: [shared, input("data/y.csv")], retry_of: "e3" }),
  ];

  it("finds the argument that varies between executions, not a file passed to all of them", () => {
    expect(batchInputIndex(views)).toBe(1);
  });
  it("falls back to the first file argument for a batch of one", () => {
    expect(batchInputIndex([view({ id: "e", args: ["-v", "d/a.csv"], inputs: [input("d/a.csv")] })])).toBe(1);
  });
  it("gives a retry the folder of the execution it retried, named as run --batch named it", () => {
    const members = batchMembers(views);
    expect(members.get("e1")).toEqual({ input: "data/a/x.csv", folder: "a/x" });
    expect(members.get("e4")).toEqual({ input: "data/y.csv", folder: "y" });
    expect(members.get("e3")?.folder).toBe("y");
  });
  it("counts only the latest execution of each input, as the batch's counts do", () => {
    expect(currentExecutions(views).map((v) => v.id)).toEqual(["e1", "e2", "e4"]);
  });
  it("uses the execution id as the folder when no argument names an input", () => {
    expect(batchMembers([view({ id: "e9", args: ["x"] })]).get("e9")).toEqual({ input: undefined, folder: "e9" });
  });
});

describe("progress figures", () => {
  const counts = { queued: 42, leased: 2, running: 8, succeeded: 42, failed: 2, timed_out: 1, cancelled: 0 };
  it("reads counts as complete, failed, running and queued", () => {
    expect(describeFigures(figuresOf(counts, 97))).toBe("45/97 complete (3 failed, 10 running, 42 queued)");
  });
  it("never shows a total below what exists (counts can run ahead of the batch's declared size)", () => {
    expect(figuresOf(counts, 10).total).toBe(97);
  });
  it("estimates the time left from the rate of completions so far, and none before the first", () => {
    expect(estimateRemainingMs({ complete: 10, total: 40, failed: 0, running: 0, queued: 30 }, 20_000)).toBe(60_000);
    expect(estimateRemainingMs({ complete: 0, total: 40, failed: 0, running: 0, queued: 40 }, 20_000)).toBeUndefined();
  });
});

describe("failure causes in the summary", () => {
  it("shows the exit code with the script's last stderr line, which says more than the code alone", () => {
    expect(
      causeOf(view({ id: "e", status: "failed", exit_code: 3, error_message: "The script exited with code 3" }), [
        "Traceback",
        "ValueError: bad row 7",
        "",
      ]),
    ).toBe("exit code 3: ValueError: bad row 7");
  });
  it("uses the failure explanation when there is one", () => {
    expect(causeOf(view({ id: "e", status: "failed", exit_code: 1 }), ["ModuleNotFoundError: No module named 'pandas'"])).toContain(
      "No module named 'pandas'",
    );
    expect(causeOf(view({ id: "e", status: "timed_out", exit_code: null, timeout_seconds: 5 }), [])).toContain("timeout");
  });
  it("uses the error message when the script never exited", () => {
    expect(causeOf(view({ id: "e", status: "failed", exit_code: null, error_message: "image pull failed twice" }), [])).toBe(
      "image pull failed twice",
    );
  });
});

describe("batch options", () => {
  it.each(["0", "1001", "2.5", "many", ""])("refuses --parallel %j with the accepted range", (text) => {
    expect(catchUserError(() => parseParallel(text)).message).toContain("1 to 1000");
  });
  it("accepts --parallel within 1-1000", () => {
    expect(parseParallel(" 20 ")).toBe(20);
  });
  it("refuses batch-only options on a single run, where they would silently do nothing", () => {
    expect(catchUserError(() => checkBatchOnlyOptions({ parallel: "3", flat: true })).message).toContain(
      "--parallel, --flat only apply to batches",
    );
    expect(() => checkBatchOnlyOptions({})).not.toThrow();
  });
});

describe("separateScriptArgs in a batch run", () => {
  const argv = (...args: string[]) => separateScriptArgs(["node", "rgrid", ...args]).slice(2);

  it("takes rgrid's options after the script as rgrid's in a batch run, since --batch goes there naturally", () => {
    expect(argv("run", "p.py", "--batch", "data/*.csv", "--parallel", "3", "--metadata", "k=v", "--strict", "--verbose")).toEqual([
      "run",
      "--batch",
      "data/*.csv",
      "--parallel",
      "3",
      "--metadata",
      "k=v",
      "--strict",
      "p.py",
      "--",
      "--verbose",
    ]);
  });
  it("keeps the = form and a --batch given before the script", () => {
    expect(argv("run", "--batch=a/*", "p.py", "--parallel=2", "x")).toEqual(["run", "--batch=a/*", "--parallel=2", "p.py", "--", "x"]);
  });
  it("passes everything after -- to the script, so a script's own --parallel still reaches it", () => {
    expect(argv("run", "p.py", "--batch", "a/*", "--", "--parallel", "9")).toEqual([
      "run",
      "--batch",
      "a/*",
      "p.py",
      "--",
      "--parallel",
      "9",
    ]);
  });
  it("leaves a single run exactly as before: everything after the script is the script's", () => {
    expect(argv("run", "p.py", "--parallel", "3", "--", "x")).toEqual(["run", "p.py", "--", "--parallel", "3", "--", "x"]);
  });
});
