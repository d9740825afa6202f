import { Writable } from "node:stream";
import type Docker from "dockerode";
import { LineSplitter } from "./line-splitter";
import type { OutputStream } from "./types";

/** How long to wait, after the script exited, for its output stream to deliver the last lines. */
const OUTPUT_DRAIN_MS = 2000;

export interface ScriptOutput {
  /** Resolves when the stream ends, closes or fails. */
  ended: Promise<void>;
  /** Waits (briefly) for the stream to end, then emits any unterminated last lines. */
  drain(): Promise<void>;
}

function lineSink(s: LineSplitter): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      s.push(chunk);
      cb();
    },
  });
}

/**
 * Demultiplexes a Docker attach or exec stream into stdout and stderr lines — the same for a fresh
 * container and a warm one, so both paths cut, decode and deliver output identically.
 */
export function pipeScriptOutput(
  modem: Docker["modem"],
  stream: NodeJS.ReadWriteStream,
  maxLineBytes: number,
  onLine: (stream: OutputStream, text: string) => void,
): ScriptOutput {
  const stdout = new LineSplitter(maxLineBytes, (t) => onLine("stdout", t));
  const stderr = new LineSplitter(maxLineBytes, (t) => onLine("stderr", t));
  const ended = new Promise<void>((resolve) => {
    stream.on("end", resolve);
    stream.on("close", resolve);
    stream.on("error", resolve);
  });
  modem.demuxStream(stream, lineSink(stdout), lineSink(stderr));
  return {
    ended,
    async drain() {
      await Promise.race([ended, new Promise((r) => setTimeout(r, OUTPUT_DRAIN_MS).unref())]);
      stdout.end();
      stderr.end();
    },
  };
}

export type KillReason = "timeout" | "abort";

/**
 * Kills a running script once, for whichever comes first: its wall-clock timeout or the attempt's
 * abort signal (revoked, cancelled, agent stopping). `dispose` must run when the script is over.
 */
export class KillSwitch {
  private reason: KillReason | null = null;
  private timer: NodeJS.Timeout | undefined;
  private readonly onAbort = () => this.fire("abort");

  constructor(
    private readonly kill: () => void,
    private readonly signal: AbortSignal | undefined,
  ) {
    signal?.addEventListener("abort", this.onAbort);
    if (signal?.aborted) this.fire("abort");
  }

  get killedBy(): KillReason | null {
    return this.reason;
  }

  /** Starts the wall-clock limit (callers start it when the script starts). */
  armTimeout(ms: number): void {
    this.timer = setTimeout(() => this.fire("timeout"), ms);
  }

  /** Stops the clock without disarming the abort (the script has ended; cleanup may follow). */
  stopClock(): void {
    clearTimeout(this.timer);
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.signal?.removeEventListener("abort", this.onAbort);
  }

  private fire(reason: KillReason): void {
    if (this.reason) return;
    this.reason = reason;
    this.kill();
  }
}
