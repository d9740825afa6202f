import { Command, Option } from "commander";
import pkg from "../package.json";
import { runtimeNames } from "../../shared/src/index";
import { cancel } from "./commands/cancel";
import { showConfig } from "./commands/config";
import { dev } from "./commands/dev";
import { download } from "./commands/download";
import { init } from "./commands/init";
import { list } from "./commands/list";
import { logs } from "./commands/logs";
import { outputs } from "./commands/outputs";
import { checkBatchOnlyOptions, runBatch, type RunBatchOptions } from "./batch/run-batch";
import { retry, type RetryOptions } from "./commands/retry";
import { run } from "./commands/run";
import { status } from "./commands/status";
import { watch, type WatchOptions } from "./commands/watch";
import { whoami } from "./commands/whoami";
import { processContext, type CommandContext } from "./context";
import { reportError } from "./errors";
import { collect } from "./run/options";
import { separateScriptArgs } from "./run/argv";

/** Entry point: wires commands to their actions; each action lives in `commands/` and can be called directly. */

function contextOf(command: Command): CommandContext {
  const { profile } = command.optsWithGlobals<{ profile?: string }>();
  return processContext(profile);
}

export function buildProgram(): Command {
  const program = new Command("rgrid")
    .description("Run scripts on remote compute exactly as you run them locally.")
    .version(pkg.version, "-V, --version", "print the rgrid version")
    .option("--profile <name>", 'credentials profile to use (default: $RGRID_PROFILE, else "default")')
    .showHelpAfterError("(run `rgrid --help` for usage)")
    .addHelpText(
      "after",
      "\nEnvironment:\n  RGRID_HOME     where credentials and local state live (default ~/.rgrid)\n  RGRID_PROFILE  credentials profile (like --profile)\n  RGRID_API_URL  API URL for `rgrid init` (default https://api.rgrid.dev)\n  RGRID_DEBUG=1  print stack traces of unexpected errors",
    );

  program
    .command("init")
    .description("save your API key (prompted, or piped on stdin) as a credentials profile")
    // No declared arguments (the help stays clean); stray ones are refused inside `init`, with a reason.
    .allowExcessArguments(true)
    .option("--api-url <url>", "API to sign in to (default: $RGRID_API_URL, else https://api.rgrid.dev)")
    .option("--force", "overwrite the profile if it already exists")
    .addOption(new Option("--api-key <key>").hideHelp())
    .action(async (options: { apiUrl?: string; force?: boolean; apiKey?: string }, command: Command) => {
      await init({ apiUrl: options.apiUrl, force: options.force, extraArgs: command.args, apiKeyFlag: options.apiKey }, contextOf(command));
    });

  program
    .command("dev")
    .description('run the control plane locally (wrangler dev) and write the profile "local"')
    .option("--port <port>", "port to listen on, on 127.0.0.1", "8787")
    .option("--slots <n>", "executions the local agent runs at once (default: CPU cores)")
    .option("--no-agent", "start only the control plane, without a local agent")
    .action(async (options: { port: string; slots?: string; agent: boolean }, command: Command) => {
      process.exitCode = await dev({ port: options.port, slots: options.slots, agent: options.agent }, contextOf(command));
    });

  program
    .command("whoami")
    .description("show the account, API and key prefix of the selected profile")
    .action(async (_options: unknown, command: Command) => {
      await whoami(contextOf(command));
    });

  program
    .command("config")
    .description("show the selected profile and the project defaults from .rgrid/config")
    .action((_options: unknown, command: Command) => {
      showConfig(contextOf(command));
    });

  program
    .command("run")
    .description("run a script remotely, as `python script.py args…` would run it here")
    .argument("<script>", "the script to run (uploaded with its path relative to this folder)")
    .argument("[args...]", "arguments for the script; those naming files upload the files and point to the copies")
    .option("--runtime <name>", `runtime image: ${runtimeNames.join(", ")} (default: .rgrid/config, else python:3.11)`)
    .option("--image <image>", "any container image instead of a runtime")
    .option("-e, --env <KEY=VALUE>", "environment variable for the script (repeatable; `--env KEY` passes your local value)", collect)
    .option("--requirements <file>", "pip requirements to install (default: requirements.txt beside the script)")
    .option("--timeout <duration>", "wall-clock limit: seconds, or 30s, 10m, 2h (default 1h)")
    .option("--memory <size>", "memory limit: megabytes, or 512m, 2g (default 2g)")
    .option("--cpus <n>", "CPU limit (default 1)")
    .option("--network <mode>", '"none" to run without network access (default bridge)')
    .option("--metadata <key=value>", "label the execution, for `rgrid list --metadata` (repeatable)", collect)
    .option("--remote-only", "leave the outputs remote (fetch later with `rgrid download ID`)")
    .option(
      "--batch <pattern>",
      "run once per matching file: a file or a pattern such as 'data/*.csv', 'logs/**/*.txt', 'in/{1..100}.json' (repeatable)",
      collect,
    )
    .option("--parallel <n>", "batch: how many run at once (default: parallel in .rgrid/config, else 10)")
    .option("--output-dir <dir>", "batch: where the per-input output folders go (default ./outputs)")
    .option("--flat", "batch: put every output file directly in the output folder (refused if two would share a name)")
    .option("--flat-prefix", "batch: like --flat, each file prefixed with its input's name (implies --flat)")
    .option("--strict", "batch: exit 1 if any execution failed (default: only if none succeeded)")
    .addHelpText(
      "after",
      [
        "",
        "Everything after the script goes to the script unchanged, options included. In a batch run,",
        "rgrid's own options may follow the script too; pass a script option of the same name after `--`.",
        "The script's stdout and stderr become rgrid's; rgrid's own messages go to stderr.",
        "Exits with the script's exit code (124 on timeout, 130 when cancelled or detached with Ctrl-C).",
        "",
        "Batches (--batch): one execution per file, the file as the script's first argument, or where",
        "`{}` stands among the arguments. Quote patterns so rgrid expands them: * ** ? [a-z] {a,b} {1..100}.",
        "Each input's outputs go to outputs/<input name without extension>/; inputs with the same name",
        "in different folders get the shortest distinguishing path (data/a/x.csv → outputs/a/x/,",
        "data/b/x.csv → outputs/b/x/). Press q or Ctrl-C to detach; the batch keeps running and",
        "`rgrid watch BATCH` reattaches. Exits 0 if any succeeded, 1 if all failed (--strict: any).",
        "",
        "Examples:",
        "  rgrid run process.py --batch 'data/*.csv' --parallel 20",
        "  rgrid run convert.py --batch 'in/{1..100}.json' --config cfg.yaml --input {}",
      ].join("\n"),
    )
    .action(async (script: string, args: string[], options: RunBatchOptions, command: Command) => {
      if (options.batch !== undefined) {
        process.exitCode = await runBatch(script, args, options, contextOf(command));
        return;
      }
      checkBatchOnlyOptions(options);
      process.exitCode = await run(script, args, options, contextOf(command));
    });

  program
    .command("watch")
    .description("reattach to a batch: progress, outputs downloaded as executions finish, then the summary")
    .argument("<batch-id>", "batch id (batch_…)")
    .option("--output-dir <dir>", "where the per-input output folders go (default ./outputs)")
    .option("--flat", "put every output file directly in the output folder")
    .option("--flat-prefix", "like --flat, each file prefixed with its input's name")
    .option("--remote-only", "leave the outputs remote")
    .option("--strict", "exit 1 if any execution failed")
    .action(async (batchId: string, options: WatchOptions, command: Command) => {
      process.exitCode = await watch(batchId, options, contextOf(command));
    });

  program
    .command("retry")
    .description("run an execution again as a new linked one, or a batch's failed executions (--batch B --failed-only)")
    .argument("[id]", "execution id (exec_…)")
    .option("--batch <id>", "retry executions of this batch")
    .option("--failed-only", "with --batch: only those that failed or timed out")
    .option("--output-dir <dir>", "batch: where the per-input output folders go (default ./outputs)")
    .option("--flat", "batch: put every output file directly in the output folder")
    .option("--flat-prefix", "batch: like --flat, each file prefixed with its input's name")
    .option("--remote-only", "leave the outputs remote")
    .option("--strict", "batch: exit 1 if any retry failed")
    .action(async (id: string | undefined, options: RetryOptions, command: Command) => {
      process.exitCode = await retry(id, options, contextOf(command));
    });

  program
    .command("status")
    .description("show an execution's status, timing, worker, exit code and cost, or a batch's counts")
    .argument("<id>", "execution id (exec_…) or batch id (batch_…)")
    .option("--events", "also list its lifecycle events with their times")
    .option("--json", "print the execution as JSON")
    .action(async (id: string, options: { events?: boolean; json?: boolean }, command: Command) => {
      await status(id, options, contextOf(command));
    });

  program
    .command("logs")
    .description("print an execution's output (stdout to stdout, stderr to stderr, in order)")
    .argument("<id>", "execution id (exec_…)")
    .option("-f, --follow", "follow until it finishes, then exit with the script's exit code")
    .option("-t, --timestamps", "prefix each line with its time")
    .action(async (id: string, options: { follow?: boolean; timestamps?: boolean }, command: Command) => {
      process.exitCode = await logs(id, options, contextOf(command));
    });

  program
    .command("outputs")
    .description("list the files an execution wrote")
    .argument("<id>", "execution id (exec_…)")
    .action(async (id: string, _options: unknown, command: Command) => {
      await outputs(id, contextOf(command));
    });

  program
    .command("download")
    .description("download an execution's output files")
    .argument("<id>", "execution id (exec_…)")
    .option("--dir <folder>", "where to put them (default: the current folder)")
    .action(async (id: string, options: { dir?: string }, command: Command) => {
      await download(id, options, contextOf(command));
    });

  program
    .command("list")
    .description("list recent executions, newest first")
    .option("--status <status>", "only these: queued, leased, running, succeeded, failed, timed_out, cancelled")
    .option("--batch <id>", "only this batch")
    .option("--metadata <key=value>", "only executions labelled so (repeatable: all must match)", collect)
    .option("--limit <n>", "how many (default 20, at most 500)")
    .action(async (options: { status?: string; batch?: string; metadata?: string[]; limit?: string }, command: Command) => {
      await list(options, contextOf(command));
    });

  program
    .command("cancel")
    .description("cancel a queued or running execution, or every unfinished execution of a batch")
    .argument("[id]", "execution id (exec_…)")
    .option("--batch <id>", "cancel the batch's queued and running executions instead")
    .action(async (id: string | undefined, options: { batch?: string }, command: Command) => {
      await cancel(id, options, contextOf(command));
    });

  return program;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(separateScriptArgs(process.argv));
  } catch (error) {
    process.exitCode = reportError(error, process.stderr, process.env);
  }
}

void main();
