// `npm run bench -- single`: end-to-end wall time of `rgrid run hello.py` (the real CLI as a child
// process, profile local) against a bare `docker run --rm` of the same script, interleaved in the
// same run; then a first run with a fresh requirements.txt (a wheel from a local PEP 503 index)
// against its second run, which reuses the dependency layer.
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { build } from "esbuild";
import { median, rgridBin, root, startStack } from "./stack.mjs";

const ITERATIONS = Number(process.env.BENCH_SINGLE_ITERATIONS ?? 10);
const IMAGE = "rgrid/python:3.11";

/** Runs a command, resolving with its wall time in ms, exit code and output. */
export function timed(command, args, options = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.once("error", reject);
    child.once("close", (code) => resolve({ ms: performance.now() - started, code, stdout, stderr }));
  });
}

/** The tests' PEP 503 index and hand-built wheel (TypeScript), bundled for plain Node. */
export async function loadPipIndexHelper() {
  const out = path.join(os.tmpdir(), `rgrid-bench-pip-index-${process.pid}.mjs`);
  await build({
    entryPoints: [path.join(root, "tests", "helpers", "agent-pip-index.ts")],
    outfile: out,
    bundle: true,
    platform: "node",
    format: "esm",
    logLevel: "warning",
  });
  try {
    return await import(out);
  } finally {
    fs.rmSync(out, { force: true });
  }
}

/** Starts `rgrid dev` with a local pip index in its environment (the agent reads RGRID_PIP_INDEX_URL). */
export async function startStackWithIndex(options = {}) {
  const { startSimpleIndex, testWheel } = await loadPipIndexHelper();
  const index = await startSimpleIndex([testWheel("1.0", 42)]);
  const previous = process.env.RGRID_PIP_INDEX_URL;
  process.env.RGRID_PIP_INDEX_URL = index.url;
  try {
    const stack = await startStack(options);
    return {
      stack,
      index,
      async stop() {
        await stack.stop();
        await index.close();
      },
    };
  } finally {
    if (previous === undefined) delete process.env.RGRID_PIP_INDEX_URL;
    else process.env.RGRID_PIP_INDEX_URL = previous;
  }
}

/** `rgrid …` as a user runs it: the built CLI, profile local, in `cwd`. */
export function rgrid(stack, args, cwd) {
  return timed(process.execPath, [rgridBin, ...args], { cwd, env: { ...process.env, RGRID_HOME: stack.home, RGRID_PROFILE: "local" } });
}

function check(result, what, expected) {
  if (result.code !== 0 || !result.stdout.includes(expected)) {
    throw new Error(`${what} failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  }
  return result.ms;
}

export async function benchSingle() {
  const { stack, stop } = await startStackWithIndex();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rgrid-bench-single-"));
  const nonce = crypto.randomBytes(6).toString("hex");
  const requirements = `# bench ${nonce}\nrgrid-testpkg==1.0\n`;
  try {
    fs.writeFileSync(path.join(dir, "hello.py"), "print('hello')\n");
    const depsDir = path.join(dir, "deps");
    fs.mkdirSync(depsDir);
    fs.writeFileSync(path.join(depsDir, "hello_deps.py"), "import rgrid_testpkg\nprint('value', rgrid_testpkg.VALUE)\n");
    fs.writeFileSync(path.join(depsDir, "requirements.txt"), requirements);

    const ours = () => rgrid(stack, ["run", "hello.py"], dir).then((r) => check(r, "rgrid run hello.py", "hello"));
    const bare = () =>
      timed("docker", ["run", "--rm", "-v", `${dir}:/work:ro`, "-w", "/work", IMAGE, "python", "hello.py"]).then((r) =>
        check(r, "docker run", "hello"),
      );
    // Warm-up: the agent's warm containers are up, the image and the CLI's files are in the page cache.
    await ours();
    await bare();
    const rgridMs = [];
    const dockerMs = [];
    for (let i = 0; i < ITERATIONS; i++) {
      rgridMs.push(await ours());
      dockerMs.push(await bare());
    }

    const depsRun = () => rgrid(stack, ["run", "hello_deps.py"], depsDir).then((r) => check(r, "rgrid run hello_deps.py", "value 42"));
    const firstMs = await depsRun();
    const secondMs = await depsRun();
    return { iterations: ITERATIONS, rgridMs, dockerMs, firstMs, secondMs };
  } finally {
    await stop();
    fs.rmSync(dir, { recursive: true, force: true });
    const tag = `rgrid-deps:${crypto.createHash("sha256").update(`${IMAGE}\n${requirements}`).digest("hex").slice(0, 32)}`;
    await timed("docker", ["rmi", "-f", tag]);
  }
}

export function printSingle(r) {
  const ours = median(r.rgridMs);
  const bare = median(r.dockerMs);
  const budget = 1.3 * bare + 150;
  console.log(
    `single: rgrid run hello.py  median ${ours.toFixed(0)} ms over ${r.iterations} runs (min ${Math.min(...r.rgridMs).toFixed(0)}, max ${Math.max(...r.rgridMs).toFixed(0)})`,
  );
  console.log(
    `single: docker run --rm     median ${bare.toFixed(0)} ms over ${r.iterations} runs (min ${Math.min(...r.dockerMs).toFixed(0)}, max ${Math.max(...r.dockerMs).toFixed(0)})`,
  );
  console.log(
    `single: ratio ${(ours / bare).toFixed(2)}× (target ≤ 1.3× + 150 ms = ${budget.toFixed(0)} ms: ${ours <= budget ? "met" : "NOT met"})`,
  );
  console.log(
    `single: requirements.txt first run ${r.firstMs.toFixed(0)} ms, cached second run ${r.secondMs.toFixed(0)} ms: ${(r.firstMs / r.secondMs).toFixed(1)}× faster (target ≥ 5×)`,
  );
}
