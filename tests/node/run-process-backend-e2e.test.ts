import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliResult } from "../helpers/cli";
import { startLocalStack, type LocalStack } from "../helpers/local-stack";

// The local agent without Docker: scripts run as plain processes in a scratch folder. The same
// contract as in a container (arguments, inputs at their paths, outputs back, exit codes), minus isolation.

let stack: LocalStack;
beforeAll(async () => {
  stack = await startLocalStack({ env: { RGRID_AGENT_BACKEND: "process" } });
});
afterAll(async () => {
  await stack?.stop();
});

const debug = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

describe("rgrid run on the process backend", () => {
  it("runs the script with its file argument at the same relative path and brings back what it wrote", async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "rgrid-proc-"));
    fs.mkdirSync(path.join(cwd, "data"));
    fs.writeFileSync(path.join(cwd, "data", "in.txt"), "three words here\n");
    fs.writeFileSync(
      path.join(cwd, "count.py"),
      "import sys, os\nwords = open(sys.argv[1]).read().split()\nos.makedirs('out/nested', exist_ok=True)\nopen('out/nested/count.txt','w').write(str(len(words)))\nprint('counted', len(words), 'in', sys.argv[1])\nsys.exit(int(sys.argv[2]))\n",
    );
    const ok = await stack.runCli(["run", "count.py", "data/in.txt", "0"], { cwd, timeoutMs: 120_000 });
    expect(ok.code, debug(ok)).toBe(0);
    expect(ok.stdout).toContain("counted 3 in data/in.txt");
    expect(fs.readFileSync(path.join(cwd, "out", "nested", "count.txt"), "utf8")).toBe("3");

    const failing = await stack.runCli(["run", "count.py", "data/in.txt", "3"], { cwd, timeoutMs: 120_000 });
    expect(failing.code, debug(failing)).toBe(3);
  });

  it("says in the agent's log that scripts are not isolated", () => {
    const log = fs.readFileSync(path.join(stack.home, "dev", "agent.log"), "utf8");
    expect(log).toMatch(/NOT isolated/);
  });
});
