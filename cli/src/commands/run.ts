import { randomUUID } from "node:crypto";
import {
  createExecutionRequestSchema,
  isFinalStatus,
  type CreateExecutionRequest,
  type ExecutionStatus,
  type ExecutionView,
  type RuntimeName,
} from "../../../shared/src/index";
import type { ApiClient } from "../api-client";
import { connect } from "../connect";
import type { CommandContext } from "../context";
import { deliverOutputs } from "../download-outputs";
import { UserError } from "../errors";
import { exitCodeFor, explainFailure, formatExplanation } from "../explain-failure";
import { followLogs } from "../follow-logs";
import { LogPrinter } from "../log-printer";
import { loadProjectConfig } from "../project-config";
import { parseCpus, parseEnv, parseMemory, parseMetadata, parseNetwork, parseRuntime, parseTimeout } from "../run/options";
import { planRun, type LocalFile, type RunPlan } from "../run/plan";
import { hashFiles, reportUpload, uploadMissing, type HashedFile } from "../run/upload";

export interface RunOptions {
  runtime?: string | undefined;
  image?: string | undefined;
  env?: string[] | undefined;
  requirements?: string | undefined;
  timeout?: string | undefined;
  memory?: string | undefined;
  cpus?: string | undefined;
  network?: string | undefined;
  metadata?: string[] | undefined;
  remoteOnly?: boolean | undefined;
}

/** How long an execution may sit queued before rgrid checks whether any agent is there to take it. */
const NO_AGENT_NOTICE_MS = 5000;

/** What the options of `rgrid run` resolve to, shared by every execution of a run or batch. */
export interface RunSettings {
  runtime: RuntimeName | undefined;
  image: string | undefined;
  env: Record<string, string>;
  metadata: Record<string, string>;
  timeoutSeconds: number | undefined;
  memoryMb: number | undefined;
  cpus: number | undefined;
  network: "bridge" | "none";
  /** `parallel` from .rgrid/config, the default of `--parallel` for batches. */
  configParallel: number | undefined;
}

/** Checks the options of `rgrid run` (before anything is hashed or uploaded) and applies the project defaults. */
export function resolveRunSettings(options: RunOptions, ctx: CommandContext): RunSettings {
  if (options.runtime !== undefined && options.image !== undefined) {
    throw new UserError(
      "bad_argument",
      "Give either --runtime or --image, not both.",
      "--runtime picks one of rgrid's images by name; --image takes any image.",
    );
  }
  const config = loadProjectConfig(ctx.cwd, ctx.env);
  const runtime = options.runtime !== undefined ? parseRuntime(options.runtime) : options.image === undefined ? config.runtime : undefined;
  const image = options.image?.trim();
  if (image === "") throw new UserError("bad_argument", "--image needs an image name.", "For example --image python:3.12-slim.");
  return {
    runtime,
    image,
    env: parseEnv(options.env ?? [], ctx.env),
    metadata: parseMetadata(options.metadata ?? []),
    timeoutSeconds: options.timeout !== undefined ? parseTimeout(options.timeout) : config.timeoutSeconds,
    memoryMb: options.memory !== undefined ? parseMemory(options.memory) : config.memoryMb,
    cpus: options.cpus !== undefined ? parseCpus(options.cpus) : config.cpus,
    network: options.network !== undefined ? parseNetwork(options.network) : "bridge",
    configParallel: config.parallel,
  };
}

/**
 * The request for one planned execution, its files already hashed (`hashed` maps a local path to
 * its hashed file). Checked against the API schema, so a bad request fails here with a fix.
 */
export function buildExecutionRequest(
  settings: RunSettings,
  plan: RunPlan,
  hashed: (file: LocalFile) => HashedFile,
  extra: { batchId?: string; idempotencyKey?: string } = {},
): CreateExecutionRequest {
  const script = hashed(plan.script);
  const requirements = plan.requirements ? hashed(plan.requirements) : undefined;
  const request: CreateExecutionRequest = {
    idempotency_key: extra.idempotencyKey ?? randomUUID(),
    script: { path: script.remotePath, sha256: script.sha256 },
    inputs: plan.inputs.map((f) => ({ path: f.remotePath, sha256: hashed(f).sha256 })),
    args: plan.args,
    env: settings.env,
    network: settings.network,
    metadata: settings.metadata,
    ...(settings.runtime !== undefined ? { runtime: settings.runtime } : {}),
    ...(settings.image !== undefined ? { image: settings.image } : {}),
    ...(requirements ? { requirements_sha256: requirements.sha256 } : {}),
    ...(settings.timeoutSeconds !== undefined ? { timeout_seconds: settings.timeoutSeconds } : {}),
    ...(settings.memoryMb !== undefined ? { memory_mb: settings.memoryMb } : {}),
    ...(settings.cpus !== undefined ? { cpus: settings.cpus } : {}),
    ...(extra.batchId !== undefined ? { batch_id: extra.batchId } : {}),
  };
  const checked = createExecutionRequestSchema.safeParse(request);
  if (!checked.success) {
    // Never echo the request: it carries env values.
    const issue = checked.error.issues[0];
    throw new UserError(
      "bad_argument",
      `This run cannot be submitted: ${issue?.path.join(".") ?? ""} ${issue?.message ?? "is invalid"}.`,
      "Check the options of `rgrid run --help`.",
    );
  }
  return request;
}

/** The files of a plan, script first: what is hashed and uploaded for it. */
export function planFiles(plan: RunPlan): LocalFile[] {
  return [plan.script, ...plan.inputs, ...(plan.requirements ? [plan.requirements] : [])];
}

/**
 * Everything `rgrid run` checks and builds before talking to the API. Bad options and missing
 * files fail here, before anything is hashed or uploaded.
 */
export async function prepareRun(script: string, args: readonly string[], options: RunOptions, ctx: CommandContext) {
  const settings = resolveRunSettings(options, ctx);
  const plan = planRun({ cwd: ctx.cwd, script, args, requirements: options.requirements });
  const files = await hashFiles(planFiles(plan));
  const byPath = new Map(files.map((f) => [f.localPath, f]));
  const request = buildExecutionRequest(settings, plan, (f) => {
    const found = byPath.get(f.localPath);
    if (!found) throw new Error(`hashFiles lost ${f.remotePath}`);
    return found;
  });
  return { request, files };
}

/**
 * Watches a queued execution: when it has waited a few seconds and no agent has polled recently,
 * says so once (rather than hanging silently), then keeps waiting.
 */
function noAgentNotice(api: ApiClient, ctx: CommandContext, since: number): (status: ExecutionStatus) => void {
  let noticed = false;
  let checking = false;
  let lastCheck = 0;
  return (status) => {
    const now = Date.now();
    if (noticed || checking || status !== "queued" || now - since < NO_AGENT_NOTICE_MS || now - lastCheck < NO_AGENT_NOTICE_MS) return;
    checking = true;
    lastCheck = now;
    api
      .activeWorkers()
      .then((active) => {
        if (active === 0 && !noticed) {
          noticed = true;
          ctx.terminal.stderr.write(
            "No agent is available to run this yet: start one with `rgrid dev` (local), or wait for a worker to come up. Still waiting…\n",
          );
        }
      })
      .catch(() => {
        // Only a hint; the follow loop reports real connection problems.
      })
      .finally(() => (checking = false));
  };
}

/** Follows until final, detaching on Ctrl-C. Returns the final view, or `undefined` when detached. */
export async function followExecution(
  api: ApiClient,
  executionId: string,
  printer: LogPrinter,
  ctx: CommandContext,
  onStatus?: (status: ExecutionStatus) => void,
): Promise<ExecutionView | undefined> {
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.on("SIGINT", onSigint);
  let logStatus: ExecutionStatus;
  try {
    const result = await followLogs({
      api,
      executionId,
      onLine: printer.print,
      signal: controller.signal,
      ...(onStatus ? { onStatus } : {}),
    });
    if (result.kind === "detached") {
      ctx.terminal.stderr.write(`\nDetached: ${executionId} keeps running. Reattach with: rgrid logs ${executionId} --follow\n`);
      return undefined;
    }
    if (result.droppedLines > 0) ctx.terminal.stderr.write(`(${result.droppedLines} log lines were dropped past the log size limit)\n`);
    logStatus = result.status;
  } finally {
    process.removeListener("SIGINT", onSigint);
  }
  return finalView(api, executionId, logStatus);
}

/**
 * The execution once its record is final. The log stream can report "complete" a moment before the
 * queryable record catches up (they are written separately), so wait briefly for it.
 */
async function finalView(api: ApiClient, executionId: string, logStatus: ExecutionStatus): Promise<ExecutionView> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const view = await api.getExecution(executionId);
    if (isFinalStatus(view.status)) return view;
    // Still behind: trust the log stream's final status (the exit code may then be unknown).
    if (Date.now() > deadline) return { ...view, status: logStatus };
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Prints why a finished execution failed (when rgrid can tell), after its logs. */
export function reportOutcome(view: ExecutionView, printer: LogPrinter, ctx: CommandContext): void {
  if (view.status === "succeeded" && (view.exit_code ?? 0) === 0) return;
  const explanation = explainFailure(view, printer.tail);
  if (explanation) ctx.terminal.stderr.write(formatExplanation(explanation, view.id));
  else if (view.status === "cancelled") ctx.terminal.stderr.write(`Execution ${view.id} was cancelled.\n`);
  else ctx.terminal.stderr.write(`❌ ${view.id} exited with code ${exitCodeFor(view)}. Logs: rgrid logs ${view.id}\n`);
}

/**
 * `rgrid run script.py [args…]`: runs the script remotely as `python script.py args` would run
 * locally, streams its output, downloads what it wrote, and resolves with its exit code.
 */
export async function run(script: string, args: readonly string[], options: RunOptions, ctx: CommandContext): Promise<number> {
  const { request, files } = await prepareRun(script, args, options, ctx);
  const api = connect(ctx);
  const stderr = ctx.terminal.stderr;

  const uploaded = await uploadMissing(api, files);
  reportUpload(uploaded, stderr);
  const created = await api.createExecution(request);
  stderr.write(`Execution started: ${created.id}\n`);

  const printer = new LogPrinter(ctx.terminal, ctx.env);
  const view = await followExecution(api, created.id, printer, ctx, noAgentNotice(api, ctx, Date.now()));
  if (!view) return 130;

  await deliverOutputs(api, view.id, ctx.cwd, { remoteOnly: options.remoteOnly === true, cwd: ctx.cwd, stderr });
  reportOutcome(view, printer, ctx);
  return exitCodeFor(view);
}
