import fs from "node:fs";
import path from "node:path";
import { isFinalStatus, type ArtifactView, type BatchView, type ExecutionView } from "../../../shared/src/index";
import { abortableSleep } from "../../../shared/src/abortable-sleep";
import type { ApiClient } from "../api-client";
import type { CommandContext } from "../context";
import { downloadOutputs } from "../download-outputs";
import { UserError } from "../errors";
import { exitCodeFor, explainFailure } from "../explain-failure";
import { sha256File } from "../hashing";
import { formatBytes } from "../human-format";
import { mapConcurrent } from "../map-concurrent";
import { isInteractive } from "../prompt";
import { batchMembers, currentExecutions, type BatchMember } from "./batch-members";
import { findClashes, outputTarget, type OutputLayout } from "./output-folders";
import { createProgressDisplay, figuresOf } from "./progress";

/**
 * Following a batch to its end: `rgrid run --batch`, `rgrid watch` and `rgrid retry --batch` all
 * end here. It polls the batch's counts (one small request a second), draws the progress,
 * downloads each execution's outputs as soon as it finishes (not all at the end), and prints the
 * summary. `q` or Ctrl-C detaches: the batch keeps running (its parallel cap lives with the
 * scheduler), and `rgrid watch <batch-id>` picks it up again with the same display.
 */

export interface WatchBatchOptions {
  api: ApiClient;
  ctx: CommandContext;
  batchId: string;
  layout: OutputLayout;
  remoteOnly: boolean;
  /** Any failure makes the exit code 1 (otherwise only a batch where nothing succeeded does). */
  strict: boolean;
  /** Only these executions are downloaded and summarised (a retry of some); default: every current one. */
  only?: ReadonlySet<string>;
  pollMs?: number;
}

/** A failure line in the summary: at most this many get their logs read for a cause. */
const EXPLAINED_FAILURES = 20;
/** Executions whose outputs download at once (each downloads four files at a time). */
const DOWNLOAD_CONCURRENCY = 3;
/** How long counts may show nothing active yet fewer executions than the batch's size before rgrid stops waiting (an interrupted submission). */
const INCOMPLETE_GRACE_MS = 15_000;

/** Ctrl-C, and `q` on a terminal, abort the returned signal; `dispose` restores the terminal. */
function listenForDetach(ctx: CommandContext): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.on("SIGINT", onSigint);
  const stdin = ctx.terminal.stdin;
  const raw = isInteractive(ctx.terminal);
  const onKey = (chunk: Buffer | string) => {
    const text = chunk.toString();
    // In raw mode Ctrl-C arrives as a byte, not as SIGINT.
    if (/[qQ\u0003]/.test(text)) controller.abort();
  };
  if (raw) {
    stdin.setRawMode?.(true);
    stdin.on("data", onKey);
    stdin.resume();
  }
  return {
    signal: controller.signal,
    dispose: () => {
      process.removeListener("SIGINT", onSigint);
      if (raw) {
        stdin.removeListener("data", onKey);
        stdin.setRawMode?.(false);
        stdin.pause();
      }
    },
  };
}

/** True when `target` already holds exactly this file (a reattach does not fetch it again). */
async function alreadyThere(target: string, artifact: ArtifactView): Promise<boolean> {
  try {
    if (fs.statSync(target).size !== artifact.size_bytes) return false;
    return (await sha256File(target)) === artifact.sha256;
  } catch {
    return false;
  }
}

interface DownloadTally {
  files: number;
  bytes: number;
  errors: Array<{ id: string; input: string; message: string }>;
}

/** Downloads the files (paths relative to `root`) that are not already there, and counts them. */
async function downloadMissing(api: ApiClient, files: readonly ArtifactView[], root: string, tally: DownloadTally): Promise<void> {
  const todo: ArtifactView[] = [];
  for (const file of files) if (!(await alreadyThere(path.join(root, ...file.path.split("/")), file))) todo.push(file);
  const done = await downloadOutputs(api, todo, root);
  tally.files += done.length;
  tally.bytes += done.reduce((sum, f) => sum + f.size, 0);
}

export async function watchBatch(options: WatchBatchOptions): Promise<number> {
  const { api, ctx, batchId, layout } = options;
  const stderr = ctx.terminal.stderr;
  const pollMs = options.pollMs ?? 1000;
  const display = createProgressDisplay(stderr, ctx.env);
  const detach = listenForDetach(ctx);
  const inScope = (id: string) => options.only === undefined || options.only.has(id);
  // --flat (without a prefix) can only tell a clash once every execution has finished, and must
  // refuse before writing anything: its downloads wait for the end.
  const deferDownloads = layout.kind === "flat" && !layout.prefix;

  const tally: DownloadTally = { files: 0, bytes: 0, errors: [] };
  /** Output targets taken so far (--flat-prefix), so two executions never overwrite each other. */
  const claimed = new Map<string, string>();
  const handled = new Set<string>();
  let members = new Map<string, BatchMember>();
  let views: ExecutionView[] = [];
  const pending: Array<() => Promise<void>> = [];
  const running = new Set<Promise<void>>();

  const pump = () => {
    while (running.size < DOWNLOAD_CONCURRENCY && pending.length > 0) {
      const job = pending.shift();
      if (!job) break;
      const promise = job().finally(() => {
        running.delete(promise);
        pump();
      });
      running.add(promise);
    }
  };
  const drained = async () => {
    while (running.size > 0 || pending.length > 0) await Promise.race(running);
  };

  const labelOf = (id: string) => members.get(id)?.input ?? id;
  const download = async (view: ExecutionView, member: BatchMember): Promise<void> => {
    try {
      const { artifacts } = await api.listArtifacts(view.id);
      const placed = artifacts.map((a) => ({ ...a, path: outputTarget(layout, member.folder, a.path) }));
      if (layout.kind === "flat") {
        for (const file of placed) {
          const owner = claimed.get(file.path);
          if (owner !== undefined && owner !== view.id) {
            throw new UserError("bad_argument", `${file.path} was already written for ${labelOf(owner)}; not overwriting it.`);
          }
        }
        for (const file of placed) claimed.set(file.path, view.id);
      }
      await downloadMissing(api, placed, layout.root, tally);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      tally.errors.push({ id: view.id, input: labelOf(view.id), message });
      display.note(`❌ Downloading the outputs of ${labelOf(view.id)} (${view.id}) failed: ${message}`);
    }
  };

  const refresh = async () => {
    views = await api.listAllExecutions({ batch: batchId });
    members = batchMembers(views);
    for (const view of currentExecutions(views)) {
      if (!isFinalStatus(view.status) || handled.has(view.id) || !inScope(view.id)) continue;
      handled.add(view.id);
      const member = members.get(view.id);
      if (options.remoteOnly || deferDownloads || !member) continue;
      pending.push(() => download(view, member));
    }
    pump();
  };

  const reportDetached = () => {
    display.stop();
    stderr.write(`Detached. The batch keeps running. Reattach with: rgrid watch ${batchId}\n`);
    return 130;
  };

  let batch: BatchView;
  let listedAtFinished = -1;
  let listedAt = 0;
  let idleShortSince: number | undefined;
  try {
    for (;;) {
      batch = await api.getBatch(batchId);
      const figures = figuresOf(batch.counts, batch.total);
      const active = figures.running + figures.queued;
      const now = Date.now();
      const all = figures.complete + active;
      idleShortSince = active === 0 && all < batch.total ? (idleShortSince ?? now) : undefined;
      const finished = active === 0 && (all >= batch.total || now - (idleShortSince ?? now) >= INCOMPLETE_GRACE_MS);
      // Listing the batch is the heavier call: only when something finished, at most every 2 s.
      if (finished || (figures.complete !== listedAtFinished && now - listedAt >= 2000)) {
        await refresh();
        listedAtFinished = figures.complete;
        listedAt = now;
      }
      display.update(figures, now - batch.created_at);
      if (finished) break;
      await abortableSleep(pollMs, detach.signal);
      if (detach.signal.aborted) return reportDetached();
    }
    if (pending.length > 0 || running.size > 0) {
      await Promise.race([drained(), new Promise((resolve) => detach.signal.addEventListener("abort", resolve, { once: true }))]);
      if (detach.signal.aborted) return reportDetached();
    }
  } finally {
    display.stop();
    detach.dispose();
  }

  const scope = currentExecutions(views).filter((v) => inScope(v.id));
  const submitted = views.filter((v) => v.retry_of === null).length;
  if (batch.total > submitted) {
    stderr.write(`Note: only ${submitted} of the batch's ${batch.total} executions were ever submitted.\n`);
  }
  const counts = await summarize(api, stderr, scope, members);
  if (deferDownloads && !options.remoteOnly) await downloadFlat(api, scope, members, layout, tally);
  if (!options.remoteOnly && tally.files > 0) {
    stderr.write(
      `✓ Downloaded ${tally.files} file${tally.files === 1 ? "" : "s"} (${formatBytes(tally.bytes)}) into ${displayPath(ctx.cwd, layout.root)}\n`,
    );
  } else if (options.remoteOnly && scope.length > 0) {
    stderr.write(`Outputs kept remote. Fetch one execution's with: rgrid download <id>\n`);
  }
  if (tally.errors.length > 0) return 1;
  if (options.strict && counts.failed > 0) return 1;
  return counts.succeeded > 0 ? 0 : 1;
}

function displayPath(cwd: string, dir: string): string {
  const relative = path.relative(cwd, dir);
  return relative === "" ? "." : relative.startsWith("..") ? dir : `${relative}/`;
}

/** The one line of cause a summary shows for a failed execution. */
export function causeOf(view: ExecutionView, tail: readonly string[]): string {
  if (view.status === "cancelled") return "cancelled";
  const explanation = explainFailure(view, tail);
  // The generic "failed before the script finished" says less than the error message itself.
  if (
    explanation &&
    !(
      view.exit_code === null &&
      view.error_message &&
      explanation.cause === view.error_message &&
      /before the script finished/.test(explanation.what)
    )
  ) {
    return explanation.what;
  }
  // The script's last words say more than "exited with code 3".
  const last = [...tail].reverse().find((line) => line.trim() !== "");
  if (view.exit_code !== null || !view.error_message) return `exit code ${exitCodeFor(view)}${last ? `: ${last.trim()}` : ""}`;
  return view.error_message;
}

/** Prints "95 succeeded, 5 failed" and each failure with its input, cause and where to look. */
async function summarize(
  api: ApiClient,
  stderr: NodeJS.WritableStream,
  scope: readonly ExecutionView[],
  members: ReadonlyMap<string, BatchMember>,
): Promise<{ succeeded: number; failed: number }> {
  const succeeded = scope.filter((v) => v.status === "succeeded" && (v.exit_code ?? 0) === 0);
  const failures = scope.filter((v) => !succeeded.includes(v));
  const label = (v: ExecutionView) => members.get(v.id)?.input ?? v.id;
  failures.sort((a, b) => (label(a) < label(b) ? -1 : label(a) > label(b) ? 1 : 0));
  const cancelled = failures.filter((v) => v.status === "cancelled").length;
  const parts = [
    `${succeeded.length} succeeded`,
    `${failures.length - cancelled} failed`,
    ...(cancelled > 0 ? [`${cancelled} cancelled`] : []),
  ];
  stderr.write(`${parts.join(", ")}\n`);
  const explained = failures.slice(0, EXPLAINED_FAILURES);
  const causes = await mapConcurrent(explained, 4, async (view) => {
    try {
      const page = await api.getLogs(view.id, 0, 5000);
      return causeOf(
        view,
        page.lines.filter((l) => l.stream !== "stdout").map((l) => l.text),
      );
    } catch {
      return causeOf(view, []);
    }
  });
  explained.forEach((view, i) => {
    stderr.write(`  ✗ ${label(view)}: ${causes[i] ?? ""}\n      rgrid logs ${view.id}\n`);
  });
  if (failures.length > explained.length) {
    stderr.write(
      `  … and ${failures.length - explained.length} more (rgrid list --batch ${scope[0]?.batch_id ?? "<batch-id>"} --status failed)\n`,
    );
  }
  return { succeeded: succeeded.length, failed: failures.length };
}

/** --flat: every output straight into the root, refused before anything is written when two would share a name. */
async function downloadFlat(
  api: ApiClient,
  scope: readonly ExecutionView[],
  members: ReadonlyMap<string, BatchMember>,
  layout: OutputLayout,
  tally: DownloadTally,
): Promise<void> {
  const listed = await mapConcurrent(scope, 8, async (view) => ({ view, artifacts: (await api.listArtifacts(view.id)).artifacts }));
  const files = listed.flatMap(({ view, artifacts }) => {
    const member = members.get(view.id);
    return artifacts.map((a) => ({
      input: member?.input ?? view.id,
      target: outputTarget(layout, member?.folder ?? view.id, a.path),
      artifact: a,
    }));
  });
  const clashes = findClashes(files);
  if (clashes.size > 0) {
    const examples = [...clashes]
      .slice(0, 3)
      .map(([name, inputs]) => `${name} (from ${[...inputs].sort().slice(0, 3).join(", ")}${inputs.length > 3 ? ", …" : ""})`)
      .join("; ");
    throw new UserError(
      "bad_argument",
      `--flat: ${clashes.size} output name${clashes.size === 1 ? " is" : "s are"} written by more than one input: ${examples}. Nothing was downloaded.`,
      "Add --flat-prefix to prefix each file with its input's name, or drop --flat to get a folder per input. The outputs stay remote until you fetch them.",
    );
  }
  await downloadMissing(
    api,
    files.map(({ target, artifact }) => ({ ...artifact, path: target })),
    layout.root,
    tally,
  );
}
