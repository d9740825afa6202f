// `npm run bench -- <name…>`: runs the named benchmarks (default: all) and prints their figures.
const benches = {
  logs: async () => {
    const { benchLogs, printLogs } = await import("./logs.mjs");
    printLogs(await benchLogs());
  },
  batch: async () => {
    const { benchBatch, printBatch } = await import("./batch.mjs");
    printBatch(await benchBatch());
  },
  single: async () => {
    const { benchSingle, printSingle } = await import("./single.mjs");
    printSingle(await benchSingle());
  },
  scheduler: async () => {
    const { benchScheduler, printScheduler } = await import("./scheduler.mjs");
    printScheduler(await benchScheduler());
  },
};

const names = process.argv.slice(2).filter((a) => a !== "--");
const selected = names.length > 0 ? names : Object.keys(benches);
for (const name of selected) {
  const bench = benches[name];
  if (!bench) {
    console.error(`Unknown benchmark "${name}". Available: ${Object.keys(benches).join(", ")}`);
    process.exit(1);
  }
  console.log(`==> bench ${name}`);
  await bench();
}
