import type { CommandContext } from "../context";
import { DEFAULT_DEV_PORT, startDevStack, wranglerLogPath } from "../dev-stack";
import { UserError } from "../errors";

export interface DevOptions {
  port?: string | number | undefined;
  /** `--no-agent`: run only the control plane. */
  agent?: boolean | undefined;
  /** `--slots N`: how many executions the local agent runs at once (default: CPU cores). */
  slots?: string | undefined;
}

export function parsePort(value: string | number | undefined): number {
  if (value === undefined) return DEFAULT_DEV_PORT;
  const port = typeof value === "number" ? value : /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UserError("bad_argument", `--port must be a number from 1 to 65535 (got "${value}").`);
  }
  return port;
}

/**
 * `rgrid dev`: runs the control plane locally in the foreground until Ctrl-C (or SIGTERM), then
 * stops everything it started. Resolves with the exit code.
 */
export async function dev(options: DevOptions, ctx: CommandContext): Promise<number> {
  const { stdout, stderr } = ctx.terminal;
  const port = parsePort(options.port);

  // Signals are handled from the very start, so Ctrl-C during start-up also stops what was started.
  const abort = new AbortController();
  const onSignal = () => {
    if (!abort.signal.aborted) stderr.write("Stopping the control plane…\n");
    abort.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const removeHandlers = () => {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  };

  let stack;
  try {
    const slots = options.slots === undefined ? undefined : Number(options.slots);
    if (slots !== undefined && (!Number.isInteger(slots) || slots < 1 || slots > 512)) {
      throw new UserError("bad_argument", `--slots must be a whole number from 1 to 512 (got "${options.slots}").`);
    }
    stack = await startDevStack({
      home: ctx.home,
      port,
      env: ctx.env,
      signal: abort.signal,
      agent: { enabled: options.agent !== false, ...(slots ? { slots } : {}) },
      log: (line) => stderr.write(`${line}\n`),
    });
  } catch (error) {
    removeHandlers();
    if (abort.signal.aborted) return 0;
    throw error;
  }
  // One write, so a reader that waits for "running at" also has the rest.
  const agentLine = stack.agentLog ? `Local agent ready (log: ${stack.agentLog})\n` : "";
  stdout.write(
    `rgrid control plane running at ${stack.url}\nLocal account: ${stack.accountEmail} (profile "local")\n${agentLine}Press Ctrl-C to stop.\n`,
  );

  const stopped = new Promise<number>((resolve) => {
    if (abort.signal.aborted) resolve(0);
    abort.signal.addEventListener("abort", () => resolve(0));
    void stack.exited.then((code) => {
      if (abort.signal.aborted) return;
      stderr.write(`❌ The control plane stopped unexpectedly (wrangler exited with ${code}).\nSee ${wranglerLogPath(ctx.home)}.\n`);
      resolve(1);
    });
  });
  const code = await stopped;
  await stack.stop();
  removeHandlers();
  return code;
}
