import { apiKeyFormatProblem, API_KEY_BODY_LENGTH, API_KEY_PREFIX, type ApiKeyFormatProblem } from "../../../shared/src/index";
import { ApiClient } from "../api-client";
import type { CommandContext } from "../context";
import { assertValidProfileName, credentialsPath, DEFAULT_API_URL, normalizeApiUrl, profileExists, writeProfile } from "../credentials";
import { ApiError, UserError } from "../errors";
import { confirm, isInteractive, promptHidden, readFirstLine } from "../prompt";

export interface InitOptions {
  apiUrl?: string | undefined;
  force?: boolean | undefined;
  /** Positional arguments: `init` takes none, but a key pasted there gets a helpful refusal. */
  extraArgs?: string[] | undefined;
  /** A hidden `--api-key` option exists only to refuse it with the same explanation. */
  apiKeyFlag?: string | undefined;
}

const KEY_ON_COMMAND_LINE_HINT =
  "Command lines end up in shell history and are visible to other processes. Run `rgrid init` and type the key at the prompt, or pipe it: `rgrid init < key.txt`.";

function describeProblem(problem: ApiKeyFormatProblem): string {
  switch (problem) {
    case "missing_prefix":
      return `rgrid API keys start with ${API_KEY_PREFIX}`;
    case "wrong_length":
      return `an rgrid API key is ${API_KEY_PREFIX} followed by ${API_KEY_BODY_LENGTH + 6} letters and digits; this one has a different length`;
    case "bad_characters":
      return "it contains characters other than letters and digits";
    case "bad_checksum":
      return "its checksum does not match (a typo, or part of it is missing)";
  }
}

/** Where a user gets a key for this API: the console beside it, or `rgrid dev` locally. */
export function keySourceHint(apiUrl: string): string {
  const url = new URL(apiUrl);
  const console = url.hostname.startsWith("api.") ? `${url.protocol}//${url.hostname.slice(4)}/console` : `${apiUrl}/console`;
  return `Create a key in the rgrid console (${console}) and run \`rgrid init\` again. For a local control plane, run \`rgrid dev\`: it writes the profile "local" with a working key.`;
}

/**
 * `rgrid init`: asks for an API key (hidden prompt, or the first line of piped stdin), checks it
 * against the API, and saves it as a credentials profile. Nothing is written unless the key works.
 */
export async function init(options: InitOptions, ctx: CommandContext): Promise<void> {
  const { terminal, env, home } = ctx;
  if (options.apiKeyFlag !== undefined) {
    throw new UserError("bad_argument", "rgrid init does not take the API key as an option.", KEY_ON_COMMAND_LINE_HINT);
  }
  const extra = options.extraArgs ?? [];
  if (extra.length > 0) {
    const looksLikeKey = extra.some((arg) => arg.startsWith(API_KEY_PREFIX) || /^[A-Za-z0-9_]{24,}$/.test(arg));
    if (looksLikeKey) {
      throw new UserError("bad_argument", "rgrid init does not take the API key as an argument.", KEY_ON_COMMAND_LINE_HINT);
    }
    throw new UserError("bad_argument", `rgrid init takes no arguments (got "${extra[0]}").`, "See `rgrid init --help`.");
  }

  const profile = ctx.profileFlag?.trim() || env.RGRID_PROFILE?.trim() || "default";
  assertValidProfileName(profile);
  const apiUrl = normalizeApiUrl(options.apiUrl ?? (env.RGRID_API_URL?.trim() || DEFAULT_API_URL));
  const interactive = isInteractive(terminal);

  if (profileExists(home, profile) && !options.force) {
    if (!interactive) {
      throw new UserError(
        "profile_exists",
        `Profile "${profile}" already has credentials in ${credentialsPath(home)}.`,
        `Pass --force to overwrite them, or pick another name with --profile NAME.`,
      );
    }
    if (!(await confirm(terminal, `Overwrite existing credentials for profile "${profile}"? [y/N] `))) {
      terminal.stdout.write("Kept the existing credentials.\n");
      return;
    }
  }

  const apiKey = (interactive ? await promptHidden(terminal, "Enter your API key: ") : await readFirstLine(terminal.stdin)).trim();
  if (apiKey === "") {
    throw new UserError(
      "invalid_api_key",
      "No API key given.",
      interactive ? keySourceHint(apiUrl) : "Pipe the key on stdin (`rgrid init < key.txt`) or run `rgrid init` in a terminal to type it.",
    );
  }
  const problem = apiKeyFormatProblem(apiKey);
  if (problem) {
    throw new UserError("invalid_api_key", `Invalid API key: ${describeProblem(problem)}.`, keySourceHint(apiUrl));
  }

  const api = new ApiClient({ baseUrl: apiUrl, apiKey, log: terminal.stderr, env });
  let account;
  try {
    account = await api.validateKey();
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      throw new UserError("invalid_api_key", `Invalid API key: ${apiUrl} did not accept it.`, keySourceHint(apiUrl));
    }
    throw error;
  }

  writeProfile(home, { name: profile, apiKey, apiUrl });
  terminal.stdout.write("✅ Authentication successful! You're ready to run scripts.\n");
  terminal.stdout.write(`Signed in as ${account.email}; saved as profile "${profile}" in ${credentialsPath(home)}.\n`);
}
