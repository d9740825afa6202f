// `npm run bench -- scheduler`: how fast one account's Durable Object dispatches work.
// 2,000 executions are queued (20 bulk requests), then simulated agents lease them and complete
// each at once. Prints dispatches per second: leased-and-completed executions over wall time.
import crypto from "node:crypto";
import { startStack } from "./stack.mjs";

const TOTAL = Number(process.env.BENCH_SCHEDULER_TOTAL ?? 2000);
const AGENTS = Number(process.env.BENCH_SCHEDULER_AGENTS ?? 4);
const SLOTS = Number(process.env.BENCH_SCHEDULER_SLOTS ?? 50);

const post = async (url, body, token) => {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`);
  return response.json();
};

export async function benchScheduler() {
  const stack = await startStack({ agent: false });
  try {
    const api = (path, body) => post(`${stack.url}/api/v1${path}`, body, stack.apiKey);
    const script = Buffer.from("print('noop')\n");
    const sha = crypto.createHash("sha256").update(script).digest("hex");
    const { missing } = await api("/blobs/missing", { sha256: [sha] });
    for (const m of missing)
      await fetch(m.upload_url, { method: "PUT", body: script, headers: { "content-length": String(script.length) } });

    const { batch_id } = await api("/batches", { parallel: 1000, total: TOTAL });
    const queueStart = performance.now();
    for (let i = 0; i < TOTAL; i += 100) {
      const executions = Array.from({ length: Math.min(100, TOTAL - i) }, (_, j) => ({
        idempotency_key: `${batch_id}-${i + j}`,
        script: { path: "noop.py", sha256: sha },
      }));
      await api(`/batches/${batch_id}/executions`, { executions });
    }
    const queueSeconds = (performance.now() - queueStart) / 1000;

    const credentials = [];
    for (let a = 0; a < AGENTS; a++) {
      const token = await stack.registrationToken();
      const reg = await post(
        `${stack.url}/agent/v1/register`,
        { registration_token: token, name: `sim-${a}`, slots: SLOTS, backend: "process", version: "bench" },
        "none",
      );
      credentials.push(reg.credential);
    }
    let done = 0;
    const timing = { lease: [], complete: [] };
    const start = performance.now();
    await Promise.all(
      credentials.map(async (credential) => {
        const agent = (path, body) => post(`${stack.url}/agent/v1${path}`, body, credential);
        while (done < TOTAL) {
          const t0 = performance.now();
          const { tasks } = await agent("/lease", { free_slots: SLOTS, wait_ms: 200 });
          timing.lease.push(performance.now() - t0);
          if (tasks.length === 0) continue;
          // Every task "finishes" at once, so all are reported in one request, as an agent batches completions.
          const t1 = performance.now();
          const { outcomes } = await agent("/complete", {
            completions: tasks.map((t) => ({
              execution_id: t.execution_id,
              attempt: t.attempt,
              status: "succeeded",
              exit_code: 0,
              duration_ms: 1,
              error_message: null,
              outputs: [],
            })),
          });
          timing.complete.push(performance.now() - t1);
          done += outcomes.filter((o) => o.outcome === "accepted").length;
        }
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    if (process.env.BENCH_DEBUG)
      console.log("lease ms", timing.lease.map(Math.round).join(" "), "\ncomplete ms", timing.complete.map(Math.round).join(" "));
    return { total: TOTAL, agents: AGENTS, slots: SLOTS, queueSeconds, seconds, perSecond: TOTAL / seconds };
  } finally {
    await stack.stop();
  }
}

export function printScheduler(r) {
  console.log(
    `scheduler: queued ${r.total} executions in ${r.queueSeconds.toFixed(2)} s (${(r.total / r.queueSeconds).toFixed(0)}/s, 100 per request)`,
  );
  console.log(`scheduler: ${r.agents} simulated agents × ${r.slots} slots leased and completed ${r.total} in ${r.seconds.toFixed(2)} s`);
  console.log(`scheduler: ${r.perSecond.toFixed(0)} dispatches/s (target ≥ 1000)`);
}
