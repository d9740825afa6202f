import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { build } from "esbuild";
import { cliBundle } from "../../scripts/bundles.mjs";

/** Runs the real, built CLI as a child process, the way a user would. */

export const repoRoot = path.resolve(__dirname, "..", "..");
export const cliBin = path.join(repoRoot, "cli", "bin", "rgrid.js");
const bundle = path.join(repoRoot, "cli", "dist", "rgrid.cjs");

let built: Promise<void> | undefined;

/**
 * Bundles the CLI once per test process, so tests never run a stale `cli/dist`. Same options as
 * scripts/build.mjs (CLI part only, so a broken agent build cannot fail CLI tests); written to a
 * temp file and renamed, because parallel test files may build at the same moment.
 */
export function ensureCliBuilt(): Promise<void> {
  built ??= (async () => {
    const temp = `${bundle}.${process.pid}.tmp`;
    await build({ ...cliBundle, outfile: temp });
    fs.renameSync(temp, bundle);
  })();
  return built;
}

/** Node for child processes: this one when it is new enough for wrangler (≥ 22.12), else the repo's Node 22. */
export function nodeForStack(): string {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  if (major > 22 || (major === 22 && minor >= 12)) return process.execPath;
  return path.join(repoRoot, "node_modules", ".bin", "node");
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  /** Written to the CLI's stdin, which is then closed (stdin is a pipe, never a TTY). */
  input?: string;
  env?: Record<string, string | undefined>;
  cwd?: string;
  timeoutMs?: number;
}

/** Environment for a CLI child: no rgrid variables leak in from the developer's shell, retries are fast. */
export function cliEnv(home: string, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith("RGRID_")) delete env[key];
  Object.assign(env, { RGRID_HOME: home, RGRID_RETRY_BASE_MS: "20", NO_COLOR: "1" }, extra);
  for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
  return env;
}

export async function runCli(home: string, args: string[], options: RunCliOptions = {}): Promise<CliResult> {
  await ensureCliBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(nodeForStack(), [cliBin, ...args], {
      cwd: options.cwd ?? os.tmpdir(),
      env: cliEnv(home, options.env),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(`rgrid ${args.join(" ")} did not finish within ${options.timeoutMs ?? 60_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`),
      );
    }, options.timeoutMs ?? 60_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on("error", () => {}); // the CLI may exit before reading all of it
    child.stdin.end(options.input ?? "");
  });
}

/** A fresh rgrid home for one test (deleted by the caller or left in the OS temp dir). */
export function tempHome(prefix = "rgrid-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
