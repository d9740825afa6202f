import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NOT_ISOLATED_WARNING, ProcessRuntime } from "../../agent/src/runtime/process-runtime";
import { registerCommonRuntimeCases } from "../helpers/agent-common-cases";
import { runScript, tempStateDir } from "../helpers/agent-runtime-harness";

const hostPath = process.env.PATH ?? "/usr/bin:/bin";

describe("process runtime (rgrid dev without Docker)", () => {
  registerCommonRuntimeCases(() => new ProcessRuntime(hostPath, path.join("/tmp", "rgrid-agent-test-deps")));

  let runtime: ProcessRuntime;
  let state: Awaited<ReturnType<typeof tempStateDir>>;
  beforeAll(async () => {
    runtime = new ProcessRuntime(hostPath, path.join("/tmp", "rgrid-agent-test-deps"));
    state = await tempStateDir();
  });
  afterAll(async () => {
    await state.cleanup();
  });

  it("rewrites /work arguments to the scratch folder, so the same command line works without a container", async () => {
    const run = await runScript(runtime, state.dir, {
      script: "import os, sys\nprint(open(sys.argv[1]).read().strip(), os.getcwd() == os.path.dirname(sys.argv[1]))\n",
      files: { "data.csv": "a,b" },
      args: ["/work/data.csv"],
    });
    expect(run.stdout).toEqual(["a,b True"]);
  });

  it("hands the script only its task env, not the agent's own (tokens stay out)", async () => {
    process.env.RGRID_TEST_SECRET_SHOULD_NOT_LEAK = "x";
    try {
      const run = await runScript(runtime, state.dir, {
        script: "import os\nprint(sorted(k for k in os.environ if k.startswith('RGRID')), os.environ['MINE'])\n",
        env: { MINE: "yes" },
      });
      expect(run.stdout).toEqual(["[] yes"]);
    } finally {
      delete process.env.RGRID_TEST_SECRET_SHOULD_NOT_LEAK;
    }
  });

  it("says plainly that scripts are not isolated", () => {
    expect(NOT_ISOLATED_WARNING).toBe("⚠ No Docker engine answered: scripts run as plain local processes, NOT isolated.");
  });
});
