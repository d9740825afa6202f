import { afterAll, beforeAll, expect, it } from "vitest";
import type { ContainerRuntime } from "../../agent/src/runtime/types";
import { releasePending, runScript, tempStateDir } from "./agent-runtime-harness";

/**
 * Behaviour every backend shares (logs, timeout, outputs), registered as tests in the calling
 * `describe`. The isolation cases live in the docker test file only.
 */
export function registerCommonRuntimeCases(makeRuntime: () => ContainerRuntime): void {
  let runtime: ContainerRuntime;
  let state: Awaited<ReturnType<typeof tempStateDir>>;
  beforeAll(async () => {
    runtime = makeRuntime();
    state = await tempStateDir();
  });
  afterAll(async () => {
    await releasePending(runtime);
    await runtime.close();
    await state.cleanup();
  });

  it("tells stdout from stderr and reports the script's exit code, so the CLI can mirror both", async () => {
    const run = await runScript(runtime, state.dir, {
      script: "import sys\nprint('to out')\nprint('to err', file=sys.stderr)\nsys.exit(3)\n",
    });
    expect(run.result.outcome).toEqual({ kind: "exited", exitCode: 3 });
    expect(run.stdout).toEqual(["to out"]);
    expect(run.stderr).toEqual(["to err"]);
  });

  it("keeps multi-byte characters intact when a large write is split into chunks", async () => {
    // 3000 lines of 4-byte emoji and 3-byte CJK: chunk borders land inside characters.
    const run = await runScript(runtime, state.dir, {
      script: "import sys\nfor i in range(3000):\n    sys.stdout.write(f'{i} 🎉日本語✓ é\\n')\nsys.stdout.write('no newline at end ✓')\n",
    });
    expect(run.result.outcome).toEqual({ kind: "exited", exitCode: 0 });
    expect(run.stdout).toHaveLength(3001);
    expect(run.stdout[1234]).toBe("1234 🎉日本語✓ é");
    expect(run.stdout.every((l) => !l.includes("\uFFFD"))).toBe(true);
    expect(run.stdout.at(-1)).toBe("no newline at end ✓");
  });

  it("cuts an over-long line at the byte cap so one print cannot flood the log", async () => {
    const run = await runScript(runtime, state.dir, { script: "print('x' * 100000)\nprint('after')\n", maxLineBytes: 1000 });
    expect(run.stdout).toHaveLength(2);
    expect(Buffer.byteLength(run.stdout[0] ?? "")).toBeLessThanOrEqual(1000);
    expect(run.stdout[0]).toMatch(/line cut: \d+ more bytes/);
    expect(run.stdout[1]).toBe("after");
  });

  it("kills a script at its wall-clock timeout so a stuck job frees its slot", async () => {
    const started = Date.now();
    const run = await runScript(runtime, state.dir, {
      script: "import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n",
      timeoutSeconds: 2,
    });
    expect(run.result.outcome).toEqual({ kind: "timed_out" });
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(run.stdout).toEqual(["sleeping"]);
  });

  it("kills a script at once when its attempt is revoked", async () => {
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 1500);
    const started = Date.now();
    const run = await runScript(runtime, state.dir, { script: "import time\ntime.sleep(120)\n", signal: abort.signal });
    expect(run.result.outcome).toEqual({ kind: "aborted" });
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it("collects new and changed files, including nested folders, but not unchanged inputs", async () => {
    const run = await runScript(runtime, state.dir, {
      script: [
        "import os",
        "os.makedirs('out/deep/er', exist_ok=True)",
        "open('out/deep/er/result.json', 'w').write('{\"ok\": true}')",
        "open('summary.csv', 'w').write('a,b\\n1,2\\n')",
        "open('changed.txt', 'a').write('more')",
        "print(open('data/input.csv').read().strip())",
      ].join("\n"),
      files: { "data/input.csv": "x,y\n", "changed.txt": "v1" },
    });
    expect(run.result.outcome).toEqual({ kind: "exited", exitCode: 0 });
    expect(run.stdout).toEqual(["x,y"]);
    const collected = await run.collect();
    if (!collected.ok) throw new Error(collected.message);
    expect(collected.files.map((f) => f.path).sort()).toEqual(["changed.txt", "out/deep/er/result.json", "summary.csv"]);
    const json = collected.files.find((f) => f.path === "out/deep/er/result.json");
    expect(json).toMatchObject({ size_bytes: 12, content_type: "application/json" });
    expect(json?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(collected.files.find((f) => f.path === "summary.csv")?.content_type).toBe("text/csv; charset=utf-8");
  });

  it("never follows an output symlink, so a link to /etc/passwd cannot upload the host's file", async () => {
    const run = await runScript(runtime, state.dir, {
      script: "import os\nos.symlink('/etc/passwd', 'stolen.txt')\nos.symlink('/etc', 'etcdir')\nopen('real.txt', 'w').write('mine')\n",
    });
    expect(run.result.outcome).toEqual({ kind: "exited", exitCode: 0 });
    const collected = await run.collect();
    if (!collected.ok) throw new Error(collected.message);
    expect(collected.files.map((f) => f.path)).toEqual(["real.txt"]);
    expect(run.system).toContain("Skipped output etcdir: it is a symbolic link, and links are never followed");
    expect(run.system).toContain("Skipped output stolen.txt: it is a symbolic link, and links are never followed");
  });

  it("refuses all outputs past the count cap with a message saying what to change", async () => {
    const run = await runScript(runtime, state.dir, {
      script: "import os\nos.makedirs('many')\nfor i in range(30):\n    open(f'many/{i}.txt', 'w').write('x' * 1000)\n",
    });
    const byCount = await run.collect({ maxFiles: 10, maxBytes: 1024 ** 3 });
    expect(byCount).toEqual({
      ok: false,
      message: "Output limit exceeded: 30 files / 0.03 MB (limit 10 files / 1024.0 MB); write fewer or smaller files",
    });
    const byBytes = await run.collect({ maxFiles: 1000, maxBytes: 20_000 });
    expect(byBytes.ok).toBe(false);
    if (!byBytes.ok) expect(byBytes.message).toMatch(/^Output limit exceeded: 30 files \/ 0\.03 MB \(limit 1000 files \/ 0\.02 MB\)/);
  });
}
