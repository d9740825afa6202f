// `npm run bench -- batch`: 200 trivial inputs through `rgrid run --batch 'in/*.txt' --parallel
// <slots>` (the real CLI, outputs downloaded) against the same 200 containers run by
// `xargs -P <slots> docker run --rm …`, in the same run. Prints both wall times and the ratio.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { rgrid, timed } from "./single.mjs";
import { startStack } from "./stack.mjs";

const INPUTS = Number(process.env.BENCH_BATCH_INPUTS ?? 200);
const SLOTS = Number(process.env.BENCH_BATCH_SLOTS ?? os.availableParallelism());
const ROUNDS = Number(process.env.BENCH_BATCH_ROUNDS ?? 1);
const IMAGE = "rgrid/python:3.11";

const SCRIPT = `import os, sys
name = os.path.basename(sys.argv[1])
os.makedirs('out', exist_ok=True)
open(os.path.join('out', name), 'w').write(open(sys.argv[1]).read().upper())
print('done', name)
`;

export async function benchBatch() {
  const stack = await startStack({ slots: SLOTS });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rgrid-bench-batch-"));
  try {
    fs.writeFileSync(path.join(dir, "upper.py"), SCRIPT);
    fs.mkdirSync(path.join(dir, "in"));
    for (let i = 0; i < INPUTS; i++) fs.writeFileSync(path.join(dir, "in", `${String(i).padStart(3, "0")}.txt`), `input ${i}\n`);
    const names = fs.readdirSync(path.join(dir, "in"));

    // Warm-up: the agent's warm containers are up, the CLI's and the image's files are cached.
    const warm = await rgrid(stack, ["run", "upper.py", "in/000.txt"], dir);
    if (warm.code !== 0) throw new Error(`warm-up run failed:\n${warm.stdout}\n${warm.stderr}`);
    fs.rmSync(path.join(dir, "out"), { recursive: true, force: true });

    const rgridSeconds = [];
    const dockerSeconds = [];
    for (let round = 0; round < ROUNDS; round++) {
      fs.rmSync(path.join(dir, "outputs"), { recursive: true, force: true });
      const ours = await rgrid(stack, ["run", "upper.py", "--batch", "in/*.txt", "--parallel", String(SLOTS)], dir);
      if (ours.code !== 0)
        throw new Error(`rgrid run --batch failed (exit ${ours.code}):\n${ours.stdout.slice(-2000)}\n${ours.stderr.slice(-2000)}`);
      const missing = names.filter((n) => !findOutput(path.join(dir, "outputs"), n));
      if (missing.length > 0) throw new Error(`rgrid run --batch: ${missing.length} outputs missing (e.g. ${missing[0]})`);
      rgridSeconds.push(ours.ms / 1000);

      const outDir = path.join(dir, "out");
      fs.rmSync(outDir, { recursive: true, force: true });
      fs.mkdirSync(outDir, { mode: 0o777 });
      fs.chmodSync(outDir, 0o777);
      const list = names.map((n) => `in/${n}`).join("\n");
      const bare = await timed(
        "sh",
        [
          "-c",
          `printf '%s\\n' "$LIST" | xargs -P ${SLOTS} -I{} docker run --rm -v "$DIR:/work" -w /work ${IMAGE} python upper.py {} >/dev/null`,
        ],
        { env: { ...process.env, LIST: list, DIR: dir } },
      );
      if (bare.code !== 0) throw new Error(`xargs docker run failed (exit ${bare.code}):\n${bare.stderr.slice(-2000)}`);
      if (fs.readdirSync(outDir).length !== INPUTS) throw new Error("xargs docker run: outputs missing");
      dockerSeconds.push(bare.ms / 1000);
    }
    return { inputs: INPUTS, slots: SLOTS, rgridSeconds, dockerSeconds };
  } finally {
    await stack.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** True when the batch downloaded `out/<name>` for input `name` somewhere under `root`. */
function findOutput(root, name) {
  const stack = [root];
  while (stack.length > 0) {
    const d = stack.pop();
    let entries = [];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) stack.push(full);
      else if (e.name === name && path.basename(d) === "out") return true;
    }
  }
  return false;
}

export function printBatch(r) {
  const best = (xs) => Math.min(...xs);
  const ours = best(r.rgridSeconds);
  const bare = best(r.dockerSeconds);
  const rounds = r.rgridSeconds.length > 1 ? ` (best of ${r.rgridSeconds.length})` : "";
  console.log(
    `batch: rgrid run --batch, ${r.inputs} inputs, --parallel ${r.slots}: ${ours.toFixed(2)} s${rounds} (${(r.inputs / ours).toFixed(1)} executions/s)`,
  );
  console.log(
    `batch: xargs -P ${r.slots} docker run --rm:           ${bare.toFixed(2)} s${rounds} (${(r.inputs / bare).toFixed(1)} containers/s)`,
  );
  console.log(`batch: ratio ${(ours / bare).toFixed(2)} (target ≤ 0.8)`);
}
