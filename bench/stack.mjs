// Starts a real `rgrid dev` for a benchmark, in its own temporary RGRID_HOME, and reads back what
// it wrote (the local API key, the bootstrap token for minting agent registration tokens).
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../scripts/free-port.mjs";

export { freePort };

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const rgridBin = path.join(root, "cli", "bin", "rgrid.js");

function readProfileKey(home) {
  const text = fs.readFileSync(path.join(home, "credentials"), "utf8");
  const section = text.split(/^\[/m).find((s) => s.startsWith("local]"));
  return /api_key\s*=\s*(\S+)/.exec(section ?? "")?.[1];
}

/** @param {{ agent?: boolean, slots?: number }} options */
export async function startStack(options = {}) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "rgrid-bench-"));
  const port = await freePort();
  const args = [rgridBin, "dev", "--port", String(port)];
  if (options.agent === false) args.push("--no-agent");
  if (options.slots) args.push("--slots", String(options.slots));
  const env = { ...process.env, RGRID_HOME: home };
  const child = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let output = "";
  await new Promise((resolve, reject) => {
    const onData = (chunk) => {
      output += chunk;
      if (output.includes("Press Ctrl-C")) resolve();
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => reject(new Error(`rgrid dev exited (${code}):\n${output}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const secrets = JSON.parse(fs.readFileSync(path.join(home, "dev", "secrets.json"), "utf8"));
  return {
    url,
    home,
    env,
    apiKey: readProfileKey(home),
    /** A fresh one-time agent registration token. */
    async registrationToken() {
      const response = await fetch(`${url}/local/bootstrap`, {
        method: "POST",
        headers: { "X-Rgrid-Bootstrap": secrets.LOCAL_BOOTSTRAP_TOKEN },
      });
      return (await response.json()).registration_token;
    },
    async stop() {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {}
      await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once("exit", resolve)));
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
