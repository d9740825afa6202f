/**
 * The agent's own log: one line per event, prefixed `[agent]`. Callers pass messages they built
 * from ids, counts and error summaries — never env values, credentials or signed URLs.
 */
export function agentLog(message: string): void {
  process.stderr.write(`[agent] ${message.replace(/\r?\n/g, " ")}\n`);
}

/** A short, single-line description of an unknown error, safe to log (no stack, no request bodies). */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return `${typeof code === "string" ? `${code} ` : ""}${err.message}${cause}`.slice(0, 500);
  }
  return String(err).slice(0, 500);
}
