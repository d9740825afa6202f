import { SingleBar } from "cli-progress";
import type { BatchCounts } from "../../../shared/src/index";
import { formatDuration } from "../human-format";

/**
 * The batch's progress while `rgrid run --batch`, `rgrid watch` and `rgrid retry --batch` wait.
 * On a terminal: a bar redrawn in place on stderr,
 *   [=========>          ] 45/100 complete (3 failed, 10 running, 42 queued) | 1m 05s elapsed | ETA 1m 20s
 * Elsewhere (CI logs, pipes): the same figures as a plain line at most every 5 s, and once at the end.
 * The ETA assumes the rest completes at the rate completions have come so far.
 */

export interface ProgressFigures {
  complete: number;
  total: number;
  /** Failed, timed out or cancelled. */
  failed: number;
  /** Leased or running. */
  running: number;
  queued: number;
}

export function figuresOf(counts: BatchCounts, total: number): ProgressFigures {
  const complete = counts.succeeded + counts.failed + counts.timed_out + counts.cancelled;
  const all = complete + counts.queued + counts.leased + counts.running;
  return {
    complete,
    total: Math.max(total, all),
    failed: counts.failed + counts.timed_out + counts.cancelled,
    running: counts.leased + counts.running,
    queued: counts.queued,
  };
}

/** Time left at the rate so far; `undefined` until something has completed. */
export function estimateRemainingMs(figures: ProgressFigures, elapsedMs: number): number | undefined {
  if (figures.complete === 0 || elapsedMs <= 0) return undefined;
  return (elapsedMs / figures.complete) * Math.max(0, figures.total - figures.complete);
}

/** "45/100 complete (3 failed, 10 running, 42 queued)" */
export function describeFigures(f: ProgressFigures): string {
  return `${f.complete}/${f.total} complete (${f.failed} failed, ${f.running} running, ${f.queued} queued)`;
}

function timing(elapsedMs: number, etaMs: number | undefined): { elapsed: string; eta: string } {
  return { elapsed: formatDuration(Math.max(0, elapsedMs)), eta: etaMs === undefined ? "-" : formatDuration(etaMs) };
}

export interface ProgressDisplay {
  update(figures: ProgressFigures, elapsedMs: number): void;
  /** Prints a message above the bar without garbling it. */
  note(text: string): void;
  /** Leaves the last state on screen. */
  stop(): void;
}

type Output = NodeJS.WritableStream & { isTTY?: boolean };

export function createProgressDisplay(stream: Output, env: NodeJS.ProcessEnv, plainEveryMs = 5000): ProgressDisplay {
  if (stream.isTTY === true && env.TERM !== "dumb") return new BarDisplay(stream);
  return new PlainDisplay(stream, plainEveryMs);
}

class BarDisplay implements ProgressDisplay {
  private readonly bar: SingleBar;
  private started = false;

  constructor(private readonly stream: Output) {
    this.bar = new SingleBar({
      stream,
      format:
        "[{bar}] {value}/{total} complete ({failed} failed, {running} running, {queued} queued) | {elapsedText} elapsed | ETA {etaText}",
      barCompleteChar: "=",
      barIncompleteChar: " ",
      barGlue: ">",
      barsize: 24,
      hideCursor: true,
      // Redraw at least every second, even when nothing changed, so the elapsed time moves.
      fps: 2,
      forceRedraw: true,
      linewrap: false,
    });
  }

  update(f: ProgressFigures, elapsedMs: number): void {
    const { elapsed, eta } = timing(elapsedMs, estimateRemainingMs(f, elapsedMs));
    const payload = { failed: f.failed, running: f.running, queued: f.queued, elapsedText: elapsed, etaText: eta };
    if (!this.started) {
      this.bar.start(f.total, f.complete, payload);
      this.started = true;
      return;
    }
    this.bar.setTotal(f.total);
    this.bar.update(f.complete, payload);
  }

  note(text: string): void {
    // Clear the bar's line, print, and let the next redraw put the bar back below.
    this.stream.write(`\r\x1b[K${text}\n`);
    if (this.started) this.bar.render();
  }

  stop(): void {
    if (this.started) this.bar.stop();
    this.started = false;
  }
}

class PlainDisplay implements ProgressDisplay {
  private lastLine = 0;
  private last: { figures: ProgressFigures; elapsedMs: number } | undefined;
  private printed: string | undefined;

  constructor(
    private readonly stream: Output,
    private readonly everyMs: number,
  ) {}

  update(figures: ProgressFigures, elapsedMs: number): void {
    this.last = { figures, elapsedMs };
    if (Date.now() - this.lastLine >= this.everyMs) this.print();
  }

  note(text: string): void {
    this.stream.write(`${text}\n`);
  }

  stop(): void {
    this.print();
  }

  private print(): void {
    if (!this.last) return;
    const { figures, elapsedMs } = this.last;
    const { elapsed, eta } = timing(elapsedMs, estimateRemainingMs(figures, elapsedMs));
    const line = `${describeFigures(figures)}, ${elapsed} elapsed${figures.complete < figures.total ? `, ETA ${eta}` : ""}`;
    this.lastLine = Date.now();
    // At the end, do not repeat a line that was just printed.
    if (line === this.printed) return;
    this.printed = line;
    this.stream.write(`${line}\n`);
  }
}
