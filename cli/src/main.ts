import { Command, Option } from "commander";
import pkg from "../package.json";
import { showConfig } from "./commands/config";
import { dev } from "./commands/dev";
import { init } from "./commands/init";
import { whoami } from "./commands/whoami";
import { processContext, type CommandContext } from "./context";
import { reportError } from "./errors";

/** Entry point: wires commands to their actions; each action lives in `commands/` and can be called directly. */

function contextOf(command: Command): CommandContext {
  const { profile } = command.optsWithGlobals<{ profile?: string }>();
  return processContext(profile);
}

export function buildProgram(): Command {
  const program = new Command("rgrid")
    .description("Run scripts on remote compute exactly as you run them locally.")
    .version(pkg.version, "-V, --version", "print the rgrid version")
    .option("--profile <name>", "credentials profile to use (default: $RGRID_PROFILE, else \"default\")")
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
    .description("run the control plane locally (wrangler dev) and write the profile \"local\"")
    .option("--port <port>", "port to listen on, on 127.0.0.1", "8787")
    .action(async (options: { port: string }, command: Command) => {
      process.exitCode = await dev({ port: options.port }, contextOf(command));
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

  return program;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (error) {
    process.exitCode = reportError(error, process.stderr, process.env);
  }
}

void main();
