import readline from "node:readline";
import { UserError } from "./errors";

/** The streams a command talks to; tests pass their own, the CLI passes the process's. */
export interface Terminal {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export function processTerminal(): Terminal {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
}

export function isInteractive(terminal: Terminal): boolean {
  return terminal.stdin.isTTY === true && typeof terminal.stdin.setRawMode === "function";
}

const cancelled = () => new UserError("cancelled", "Cancelled.");

/**
 * Reads one line from a terminal without echoing it (for secrets). Handles backspace, Ctrl-C and
 * pasted text arriving in one chunk.
 */
export function promptHidden(terminal: Terminal, question: string): Promise<string> {
  const { stdin, stdout } = terminal;
  return new Promise((resolve, reject) => {
    let value = "";
    stdout.write(question);
    stdin.setRawMode?.(true);
    stdin.resume();
    const finish = (error: Error | undefined) => {
      stdin.removeListener("data", onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      stdout.write("\n");
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: Buffer | string) => {
      for (const char of chunk.toString("utf8")) {
        if (char === "\r" || char === "\n") return finish(undefined);
        if (char === "\u0003" || char === "\u0004") return finish(cancelled());
        if (char === "\u007f" || char === "\b") value = value.slice(0, -1);
        else if (char >= " ") value += char;
      }
    };
    stdin.on("data", onData);
  });
}

/** Asks a yes/no question on a terminal; anything but y/yes is no. */
export async function confirm(terminal: Terminal, question: string): Promise<boolean> {
  const rl = readline.createInterface({ input: terminal.stdin, output: terminal.stdout, terminal: true });
  try {
    const answer = await new Promise<string>((resolve, reject) => {
      rl.once("SIGINT", () => reject(cancelled()));
      rl.question(question, resolve);
    });
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** The first line of a non-interactive stdin (a pipe or file), without its line ending. */
export function readFirstLine(stdin: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = "";
    const done = (line: string) => {
      stdin.removeListener("data", onData);
      stdin.removeListener("end", onEnd);
      stdin.removeListener("error", onError);
      stdin.pause();
      resolve(line.replace(/\r$/, ""));
    };
    const onData = (chunk: Buffer | string) => {
      buffered += chunk.toString();
      const newline = buffered.indexOf("\n");
      if (newline >= 0) done(buffered.slice(0, newline));
    };
    const onEnd = () => done(buffered);
    const onError = (error: Error) => reject(error);
    stdin.on("data", onData);
    stdin.once("end", onEnd);
    stdin.once("error", onError);
    stdin.resume();
  });
}
