import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import { cliBin, cliEnv, ensureCliBuilt, nodeForStack, runCli, tempHome, type CliResult, type RunCliOptions } from "./cli";

/**
 * A real `rgrid dev` (the built CLI, as a child process) on a free loopback port, with its own
 * temporary rgrid home. One per test file, started in `beforeAll`.
 *
 * @example
 *   let stack: LocalStack;
 *   beforeAll(async () => { stack = await startLocalStack(); });
 *   afterAll(() => stack?.stop());
 *   const { code, stdout } = await stack.runCli(["whoami"]);
 */
export interface LocalStack {
  url: string;
  port: number;
  home: string;
  /** Everything `rgrid dev` printed so far (for failure messages). */
  output(): string;
  /** Runs the built CLI with this stack's home (other env via `options.env`). */
  runCli(args: string[], options?: RunCliOptions): Promise<CliResult>;
  /** SIGTERM to `rgrid dev` (which stops wrangler and workerd), then waits for it; resolves with its exit code. Idempotent. */
  stop(): Promise<number | null>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface StartLocalStackOptions {
  home?: string;
  port?: number;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  /** More arguments for `rgrid dev` (e.g. `--no-agent`). */
  args?: string[];
}

/**
 * Starts a stack, on a fresh port again if wrangler lost a race for one: a free port picked here can
 * be taken by another test file's wrangler (which binds internal sockets on random ports) before
 * this one binds it.
 */
export async function startLocalStack(options: StartLocalStackOptions = {}): Promise<LocalStack> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startLocalStackOnce(options);
    } catch (error) {
      const portRace = error instanceof Error && /Address already in use|EADDRINUSE|is already in use/.test(error.message);
      if (!portRace || options.port !== undefined || attempt >= 3) throw error;
    }
  }
}

async function startLocalStackOnce(options: StartLocalStackOptions): Promise<LocalStack> {
  await ensureCliBuilt();
  const home = options.home ?? tempHome("rgrid-stack-");
  const port = options.port ?? (await freePort());
  const child = spawn(nodeForStack(), [cliBin, "dev", "--port", String(port), ...(options.args ?? [])], {
    env: cliEnv(home, options.env),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

  const stop = async (): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill("SIGTERM");
    const timer = setTimeout(() => {
      try {
        process.kill(-(child.pid ?? 0), "SIGKILL");
      } catch {
        // Already gone.
      }
    }, 20_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`rgrid dev did not report "running at" within ${options.timeoutMs ?? 120_000} ms:\n${output}${logTail(home)}`));
    }, options.timeoutMs ?? 120_000);
    const onData = () => {
      const match = /rgrid control plane running at (http:\/\/\S+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        child.stdout.removeListener("data", onData);
        resolve(match[1]);
      }
    };
    child.stdout.on("data", onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`rgrid dev exited with ${code} before it was ready:\n${output}${logTail(home)}`));
    });
  });

  return {
    url,
    port,
    home,
    output: () => output,
    runCli: (args, runOptions) => runCli(home, args, runOptions),
    stop,
  };
}

function logTail(home: string): string {
  try {
    return `\n--- wrangler.log ---\n${fs.readFileSync(`${home}/dev/wrangler.log`, "utf8").split("\n").slice(-40).join("\n")}`;
  } catch {
    return "";
  }
}
