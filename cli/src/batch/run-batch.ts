import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { MAX_EXECUTIONS_PER_REQUEST, type CreateExecutionRequest } from "../../../shared/src/index";
import type { ApiClient } from "../api-client";
import { buildExecutionRequest, planFiles, resolveRunSettings, type RunOptions } from "../commands/run";
import { connect } from "../connect";
import type { CommandContext } from "../context";
import { UserError } from "../errors";
import { formatDuration } from "../human-format";
import { mapConcurrent } from "../map-concurrent";
import { planRun, type LocalFile, type RunPlan } from "../run/plan";
import { hashFiles, reportUpload, uploadMissing, type HashedFile } from "../run/upload";
import { argsForInput, expandBatchInputs, INPUT_PLACEHOLDER } from "./expand-inputs";
import type { OutputLayout } from "./output-folders";
import { watchBatch } from "./watch-batch";

/**
 * `rgrid run script.py --batch 'data/*.csv' [args…]`: one execution per matching file, the file
 * as the script's first argument (or wherever `{}` stands), at most `--parallel` running at once.
 * Files are hashed once each and only the blobs the server lacks are uploaded; executions are
 * created 100 to a request. Then the batch is followed like `rgrid watch` follows it.
 */

export interface BatchOptions {
  /** `--batch VALUE` (repeatable): files or patterns. */
  batch?: string[] | undefined;
  parallel?: string | undefined;
  outputDir?: string | undefined;
  flat?: boolean | undefined;
  flatPrefix?: boolean | undefined;
  strict?: boolean | undefined;
}

export type RunBatchOptions = RunOptions & BatchOptions;

const DEFAULT_PARALLEL = 10;
/** `/blobs/missing` takes at most this many hashes per call. */
const MISSING_BLOBS_PER_CALL = 1000;
/** Chunk requests in flight at once. */
const CHUNK_CONCURRENCY = 4;

export function parseParallel(text: string): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 1000) {
    throw new UserError(
      "bad_argument",
      `--parallel "${text}" must be a whole number from 1 to 1000.`,
      "For example --parallel 20 runs up to 20 of the batch at once.",
    );
  }
  return n;
}

/** The output layout the options ask for: `--output-dir` (default ./outputs), `--flat`, `--flat-prefix`. */
export function layoutFrom(options: Pick<BatchOptions, "outputDir" | "flat" | "flatPrefix">, cwd: string): OutputLayout {
  const root = path.resolve(cwd, options.outputDir ?? "outputs");
  if (options.flat || options.flatPrefix) return { kind: "flat", root, prefix: options.flatPrefix === true };
  return { kind: "folders", root };
}

/** The flags that decide how a watched batch lands on disk and how it exits. */
export type BatchWatchFlags = Pick<BatchOptions, "outputDir" | "flat" | "flatPrefix" | "strict"> & { remoteOnly?: boolean | undefined };

/**
 * Watches a batch as `run --batch`, `watch` and `retry --batch` all do: progress, downloads into
 * the layout the flags choose, then the summary. `only` narrows it to some executions (a retry).
 */
export function watchBatchWithFlags(
  api: ApiClient,
  ctx: CommandContext,
  batchId: string,
  flags: BatchWatchFlags,
  only?: ReadonlySet<string>,
): Promise<number> {
  return watchBatch({
    api,
    ctx,
    batchId,
    layout: layoutFrom(flags, ctx.cwd),
    remoteOnly: flags.remoteOnly === true,
    strict: flags.strict === true,
    ...(only ? { only } : {}),
  });
}

/** Refuses batch-only options on a single run, where they would silently do nothing. */
export function checkBatchOnlyOptions(options: BatchOptions): void {
  const given = [
    options.parallel !== undefined && "--parallel",
    options.outputDir !== undefined && "--output-dir",
    options.flat && "--flat",
    options.flatPrefix && "--flat-prefix",
    options.strict && "--strict",
  ].filter(Boolean);
  if (given.length > 0) {
    throw new UserError(
      "bad_argument",
      `${given.join(", ")} only ${given.length === 1 ? "applies" : "apply"} to batches.`,
      "Add --batch PATTERN to run the script once per matching file.",
    );
  }
}

/**
 * `rgrid run x.py --batch data/*.csv` unquoted: the shell expands the pattern, so --batch gets the
 * first file and the rest land among the script's arguments, and every execution would quietly get
 * them all. When an argument is a file beside a batch input with the same extension, say so.
 */
function refuseShellExpanded(cwd: string, args: readonly string[], inputs: readonly string[]): void {
  if (args.includes(INPUT_PLACEHOLDER)) return; // the user placed the input explicitly
  const kinds = new Set(inputs.map((f) => `${path.dirname(f)}\0${path.extname(f)}`));
  const suspicious = args.filter((a) => {
    const absolute = path.resolve(cwd, a);
    return (
      a !== "" && !inputs.includes(absolute) && kinds.has(`${path.dirname(absolute)}\0${path.extname(absolute)}`) && fileExists(absolute)
    );
  });
  if (suspicious.length === 0) return;
  throw new UserError(
    "bad_argument",
    `${suspicious.slice(0, 3).join(", ")}${suspicious.length > 3 ? ", …" : ""} ${suspicious.length === 1 ? "is" : "are"} among the script's arguments but ${suspicious.length === 1 ? "looks" : "look"} like batch inputs: the shell probably expanded the --batch pattern.`,
    "Quote the pattern so rgrid expands it (--batch 'data/*.csv'), or repeat --batch for each file. To pass a file to every execution, put {} where the batch input goes.",
  );
}

function fileExists(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Hashes each distinct file once (a script shared by every input is hashed one time). */
async function hashDistinct(plans: readonly RunPlan[]): Promise<Map<string, HashedFile>> {
  const distinct = new Map<string, LocalFile>();
  for (const plan of plans) for (const file of planFiles(plan)) distinct.set(file.localPath, file);
  const hashed = await hashFiles([...distinct.values()]);
  return new Map(hashed.map((f) => [f.localPath, f]));
}

/** Uploads what the server lacks, asking about at most 1000 blobs per call. */
async function uploadAll(api: ApiClient, files: readonly HashedFile[]): Promise<{ files: number; bytes: number }> {
  const bySha = [...new Map(files.map((f) => [f.sha256, f])).values()];
  const total = { files: 0, bytes: 0 };
  for (let i = 0; i < bySha.length; i += MISSING_BLOBS_PER_CALL) {
    const uploaded = await uploadMissing(api, bySha.slice(i, i + MISSING_BLOBS_PER_CALL));
    total.files += uploaded.files;
    total.bytes += uploaded.bytes;
  }
  return total;
}

/** Creates the batch's executions, 100 to a request, each under its own idempotency key. */
export async function submitChunks(api: ApiClient, batchId: string, requests: readonly CreateExecutionRequest[]): Promise<number> {
  const chunks: CreateExecutionRequest[][] = [];
  for (let i = 0; i < requests.length; i += MAX_EXECUTIONS_PER_REQUEST) chunks.push(requests.slice(i, i + MAX_EXECUTIONS_PER_REQUEST));
  const created = await mapConcurrent(chunks, CHUNK_CONCURRENCY, (chunk) => api.addBatchExecutions(batchId, chunk));
  return created.reduce((sum, c) => sum + c.length, 0);
}

export async function runBatch(script: string, args: readonly string[], options: RunBatchOptions, ctx: CommandContext): Promise<number> {
  const settings = resolveRunSettings(options, ctx);
  const parallel = options.parallel !== undefined ? parseParallel(options.parallel) : (settings.configParallel ?? DEFAULT_PARALLEL);
  const inputs = expandBatchInputs(ctx.cwd, options.batch ?? []);
  refuseShellExpanded(ctx.cwd, args, inputs);
  const stderr = ctx.terminal.stderr;
  stderr.write(`Starting batch: ${inputs.length} file${inputs.length === 1 ? "" : "s"}, ${parallel} parallel\n`);

  const started = Date.now();
  const plans = inputs.map((input) =>
    planRun({ cwd: ctx.cwd, script, args: argsForInput(args, input).args, requirements: options.requirements }),
  );
  const hashed = await hashDistinct(plans);
  const api = connect(ctx);
  const uploaded = await uploadAll(api, [...hashed.values()]);
  reportUpload(uploaded, stderr);

  const batchId = await api.createBatch({ parallel, total: plans.length });
  const lookup = (file: LocalFile) => {
    const found = hashed.get(file.localPath);
    if (!found) throw new Error(`${file.remotePath} was not hashed`);
    return found;
  };
  const requests = plans.map((plan) => buildExecutionRequest(settings, plan, lookup, { batchId, idempotencyKey: randomUUID() }));
  const count = await submitChunks(api, batchId, requests);
  stderr.write(`Submitted ${count} executions as ${batchId} in ${formatDuration(Date.now() - started)}.\n`);

  return watchBatchWithFlags(api, ctx, batchId, options);
}
