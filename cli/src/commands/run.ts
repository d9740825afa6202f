import { randomUUID } from "node:crypto";
import { createExecutionRequestSchema, isFinalStatus, type CreateExecutionRequest, type ExecutionStatus, type ExecutionView } from "../../../shared/src/index";
import type { ApiClient } from "../api-client";
import { connect } from "../connect";
import type { CommandContext } from "../context";
import { describeDownloads, downloadOutputs } from "../download-outputs";
import { UserError } from "../errors";
import { exitCodeFor, explainFailure, formatExplanation } from "../explain-failure";
import { followLogs } from "../follow-logs";
import { formatBytes } from "../human-format";
import { LogPrinter } from "../log-printer";
import { loadProjectConfig } from "../project-config";
import { parseCpus, parseEnv, parseMemory, parseMetadata, parseNetwork, parseRuntime, parseTimeout } from "../run/options";
import { planRun } from "../run/plan";
import { hashFiles, uploadMissing } from "../run/upload";

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

/**
 * Everything `rgrid run` checks and builds before talking to the API. Bad options and missing
 * files fail here, before anything is hashed or uploaded.
 */
export async function prepareRun(script: string, args: readonly string[], options: RunOptions, ctx: CommandContext) {
  if (options.runtime !== undefined && options.image !== undefined) {
    throw new UserError("bad_argument", "Give either --runtime or --image, not both.", "--runtime picks one of rgrid's images by name; --image takes any image.");
  }
  const config = loadProjectConfig(ctx.cwd, ctx.env);
  const runtime = options.runtime !== undefined ? parseRuntime(options.runtime) : options.image === undefined ? config.runtime : undefined;
  const image = options.image?.trim();
  if (image === "") throw new UserError("bad_argument", "--image needs an image name.", "For example --image python:3.12-slim.");
  const env = parseEnv(options.env ?? [], ctx.env);
  const metadata = parseMetadata(options.metadata ?? []);
  const timeoutSeconds = options.timeout !== undefined ? parseTimeout(options.timeout) : config.timeoutSeconds;
  const memoryMb = options.memory !== undefined ? parseMemory(options.memory) : config.memoryMb;
  const cpus = options.cpus !== undefined ? parseCpus(options.cpus) : config.cpus;
  const network = options.network !== undefined ? parseNetwork(options.network) : "bridge";
  const plan = planRun({ cwd: ctx.cwd, script, args, requirements: options.requirements });

  const [scriptFile, ...rest] = await hashFiles([plan.script, ...plan.inputs, ...(plan.requirements ? [plan.requirements] : [])]);
  if (!scriptFile) throw new Error("hashFiles lost the script");
  const inputs = rest.slice(0, plan.inputs.length);
  const requirements = plan.requirements ? rest[plan.inputs.length] : undefined;
  const request: CreateExecutionRequest = {
    idempotency_key: randomUUID(),
    script: { path: scriptFile.remotePath, sha256: scriptFile.sha256 },
    inputs: inputs.map((f) => ({ path: f.remotePath, sha256: f.sha256 })),
    args: plan.args,
    env,
    network,
    metadata,
    ...(runtime !== undefined ? { runtime } : {}),
    ...(image !== undefined ? { image } : {}),
    ...(requirements ? { requirements_sha256: requirements.sha256 } : {}),
    ...(timeoutSeconds !== undefined ? { timeout_seconds: timeoutSeconds } : {}),
    ...(memoryMb !== undefined ? { memory_mb: memoryMb } : {}),
    ...(cpus !== undefined ? { cpus } : {}),
  };
  const checked = createExecutionRequestSchema.safeParse(request);
  if (!checked.success) {
    // Never echo the request: it carries env values.
    const issue = checked.error.issues[0];
    throw new UserError("bad_argument", `This run cannot be submitted: ${issue?.path.join(".") ?? ""} ${issue?.message ?? "is invalid"}.`, "Check the options of `rgrid run --help`.");
  }
  return { request, files: [scriptFile, ...inputs, ...(requirements ? [requirements] : [])] };
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
          ctx.terminal.stderr.write("No agent is available to run this yet: start one with `rgrid dev` (local), or wait for a worker to come up. Still waiting…\n");
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
    const result = await followLogs({ api, executionId, onLine: printer.print, signal: controller.signal, ...(onStatus ? { onStatus } : {}) });
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
  if (uploaded.files > 0) stderr.write(`Uploaded ${uploaded.files} file${uploaded.files === 1 ? "" : "s"} (${formatBytes(uploaded.bytes)}).\n`);
  const created = await api.createExecution(request);
  stderr.write(`Execution started: ${created.id}\n`);

  const printer = new LogPrinter(ctx.terminal, ctx.env);
  const view = await followExecution(api, created.id, printer, ctx, noAgentNotice(api, ctx, Date.now()));
  if (!view) return 130;

  const { artifacts } = await api.listArtifacts(view.id);
  if (artifacts.length > 0) {
    if (options.remoteOnly) {
      stderr.write(`${artifacts.length} output file${artifacts.length === 1 ? "" : "s"} kept remote. Fetch them with: rgrid download ${view.id}\n`);
    } else {
      const downloaded = await downloadOutputs(api, artifacts, ctx.cwd);
      stderr.write(`${describeDownloads(downloaded, ctx.cwd, ctx.cwd)}\n`);
    }
  }
  reportOutcome(view, printer, ctx);
  return exitCodeFor(view);
}
