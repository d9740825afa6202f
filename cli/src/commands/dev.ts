import type { CommandContext } from "../context";
import { DEFAULT_DEV_PORT, startDevStack, wranglerLogPath } from "../dev-stack";
import { UserError } from "../errors";

export interface DevOptions {
  port?: string | number | undefined;
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
  const stack = await startDevStack({ home: ctx.home, port, env: ctx.env, log: (line) => stderr.write(`${line}\n`) });
  stdout.write(`rgrid control plane running at ${stack.url}\n`);
  stdout.write(`Local account: ${stack.accountEmail} (profile "local")\n`);
  stdout.write("Press Ctrl-C to stop.\n");

  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = (code: number) => {
      if (stopping) return;
      stopping = true;
      process.removeListener("SIGINT", onSignal);
      process.removeListener("SIGTERM", onSignal);
      void stack.stop().then(() => resolve(code));
    };
    const onSignal = () => {
      stderr.write("Stopping the control plane…\n");
      shutdown(0);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    void stack.exited.then((code) => {
      if (stopping) return;
      stderr.write(`❌ The control plane stopped unexpectedly (wrangler exited with ${code}).\nSee ${wranglerLogPath(ctx.home)}.\n`);
      shutdown(1);
    });
  });
}
