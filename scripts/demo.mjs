// `npm run demo`: the main job on the local stack. Starts `rgrid dev` (control plane + local agent),
// runs examples/summarize.py on examples/data/sales.csv remotely, and shows the outputs it
// downloaded. State lives in $RGRID_HOME (default: .rgrid-demo/ in this repo, so ~/.rgrid is untouched).
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./free-port.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const rgrid = path.join(root, "cli", "bin", "rgrid.js");
const home = process.env.RGRID_HOME ?? path.join(root, ".rgrid-demo");
const env = { ...process.env, RGRID_HOME: home };

function run(args, cwd) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [rgrid, ...args], { cwd, env, stdio: "inherit" });
    child.on("exit", (code) => resolve(code ?? 1));
  });
}

const port = process.env.RGRID_DEMO_PORT ?? String(await freePort());
console.log(`==> Starting the local stack (rgrid dev --port ${port}, state in ${home})`);
const dev = spawn(process.execPath, [rgrid, "dev", "--port", port], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
let devOutput = "";
const ready = new Promise((resolve, reject) => {
  const onData = (chunk) => {
    devOutput += chunk;
    process.stdout.write(chunk);
    if (/Local agent .*ready|agent started/i.test(devOutput)) resolve();
  };
  dev.stdout.on("data", onData);
  dev.stderr.on("data", onData);
  dev.on("exit", (code) => reject(new Error(`rgrid dev exited early (code ${code})`)));
});
const stopDev = () => {
  try {
    process.kill(-dev.pid, "SIGINT");
  } catch {}
};
process.on("SIGINT", () => {
  stopDev();
  process.exit(130);
});

let exitCode = 1;
try {
  await ready;
  console.log("\n==> Checking the local API key");
  if ((await run(["--profile", "local", "whoami"], root)) !== 0) throw new Error("the local key did not validate");

  const workdir = path.join(home, "demo-run");
  fs.rmSync(workdir, { recursive: true, force: true });
  fs.mkdirSync(path.join(workdir, "data"), { recursive: true });
  fs.copyFileSync(path.join(root, "examples", "summarize.py"), path.join(workdir, "summarize.py"));
  fs.copyFileSync(path.join(root, "examples", "data", "sales.csv"), path.join(workdir, "data", "sales.csv"));

  console.log(`\n==> rgrid run summarize.py data/sales.csv   (in ${workdir})`);
  exitCode = await run(["--profile", "local", "run", "summarize.py", "data/sales.csv"], workdir);

  console.log("\n==> Files that came back:");
  const walk = (dir) =>
    fs
      .readdirSync(dir, { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
  for (const file of walk(workdir)) {
    const rel = path.relative(workdir, file);
    if (rel === "summarize.py" || rel.startsWith("data")) continue;
    console.log(`  ${rel}`);
  }
  console.log(`\n${fs.readFileSync(path.join(workdir, "summary.json"), "utf8")}`);
} catch (error) {
  console.error(`Demo failed: ${error.message}`);
  exitCode = 1;
} finally {
  stopDev();
}
process.exit(exitCode);
