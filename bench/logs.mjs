// `npm run bench -- logs`: how quickly and how much log output reaches a `rgrid logs <id> --follow`
// client. Latency: a script prints a timestamped line every 10 ms for 10 s; each line's delay is
// its arrival at the client minus the time the script printed in it (same machine, same clock).
// Throughput: a script prints N numbered lines as fast as it can; lines/s from the first arrival to
// the last, and every number must arrive once, in order.
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import { percentile, rgridBin, startStack } from "./stack.mjs";

const THROUGHPUT_LINES = Number(process.env.BENCH_LOGS_LINES ?? 100_000);
const LATENCY_SECONDS = Number(process.env.BENCH_LOGS_SECONDS ?? 10);

const LATENCY_SCRIPT = `import time
end = time.time() + ${LATENCY_SECONDS}
i = 0
while time.time() < end:
    print(f"tick {i} {time.time():.6f}", flush=True)
    i += 1
    time.sleep(0.01)
print(f"end {i}", flush=True)
`;

const THROUGHPUT_SCRIPT = `import sys
out = sys.stdout
for i in range(${THROUGHPUT_LINES}):
    out.write(f"line {i}\\n")
out.flush()
`;

async function submit(stack, source) {
  const api = async (path, body) => {
    const response = await fetch(`${stack.url}/api/v1${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${stack.apiKey}` },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
    return response.json();
  };
  const script = Buffer.from(source);
  const sha256 = crypto.createHash("sha256").update(script).digest("hex");
  const { missing } = await api("/blobs/missing", { sha256: [sha256] });
  for (const m of missing) await fetch(m.upload_url, { method: "PUT", body: script, headers: { "content-length": String(script.length) } });
  const execution = await api("/executions", { idempotency_key: crypto.randomUUID(), script: { path: "bench.py", sha256 } });
  return execution.id;
}

/** Follows `rgrid logs <id> --follow`, calling `onLine(text, arrivedAtMs)` for each stdout line. */
function follow(stack, id, onLine) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [rgridBin, "logs", id, "--follow"], {
      env: { ...process.env, RGRID_HOME: stack.home, RGRID_PROFILE: "local" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let pending = "";
    let stderr = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      const now = Date.now();
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) onLine(line, now);
    });
    child.stderr.on("data", (c) => (stderr += c));
    child.once("error", reject);
    child.once("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`rgrid logs --follow exited ${code}: ${stderr.slice(-1000)}`)),
    );
  });
}

export async function benchLogs() {
  const stack = await startStack();
  try {
    // Warm-up: the warm containers are up and the CLI's files cached.
    await follow(stack, await submit(stack, "print('warm')\n"), () => {});

    const delays = [];
    let ticks = 0;
    let expected = -1;
    await follow(stack, await submit(stack, LATENCY_SCRIPT), (line, at) => {
      const tick = /^tick (\d+) (\d+\.\d+)$/.exec(line);
      if (tick) {
        ticks++;
        delays.push(at - Number(tick[2]) * 1000);
      }
      const end = /^end (\d+)$/.exec(line);
      if (end) expected = Number(end[1]);
    });
    if (ticks !== expected) throw new Error(`latency run: ${ticks} lines arrived, the script printed ${expected}`);

    let first = 0;
    let last = 0;
    let next = 0;
    let outOfOrder = 0;
    await follow(stack, await submit(stack, THROUGHPUT_SCRIPT), (line, at) => {
      const m = /^line (\d+)$/.exec(line);
      if (!m) return;
      if (next === 0) first = at;
      last = at;
      if (Number(m[1]) !== next) outOfOrder++;
      next = Number(m[1]) + 1;
    });
    const received = next;
    return {
      ticks,
      p50: percentile(delays, 50),
      p99: percentile(delays, 99),
      max: Math.max(...delays),
      lines: THROUGHPUT_LINES,
      received,
      outOfOrder,
      linesPerSecond: received / Math.max(0.001, (last - first) / 1000),
      spanSeconds: (last - first) / 1000,
    };
  } finally {
    if (process.env.BENCH_KEEP_AGENT_LOG) fs.copyFileSync(`${stack.home}/dev/agent.log`, process.env.BENCH_KEEP_AGENT_LOG);
    await stack.stop();
  }
}

export function printLogs(r) {
  console.log(
    `logs: ${r.ticks} lines at 10 ms intervals: print-to-client delay p50 ${r.p50.toFixed(0)} ms, p99 ${r.p99.toFixed(0)} ms, max ${r.max.toFixed(0)} ms (target p99 < 250 ms)`,
  );
  const lost = r.lines - r.received;
  console.log(
    `logs: ${r.lines} lines as fast as possible: ${r.linesPerSecond.toFixed(0)} lines/s at the client over ${r.spanSeconds.toFixed(1)} s (target ≥ 10,000), ${lost === 0 && r.outOfOrder === 0 ? "none lost, all in order" : `${lost} lost, ${r.outOfOrder} out of order`}`,
  );
}
