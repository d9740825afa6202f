import { apiKeyDisplayPrefix } from "../../../shared/src/index";
import { ApiClient } from "../api-client";
import type { CommandContext } from "../context";
import { loadProfile } from "../credentials";

/** `rgrid whoami`: which account and API the selected profile signs in to (checks the key with the API). */
export async function whoami(ctx: CommandContext): Promise<void> {
  const profile = loadProfile(ctx.home, { flag: ctx.profileFlag, env: ctx.env });
  const api = new ApiClient({ baseUrl: profile.apiUrl, apiKey: profile.apiKey, log: ctx.terminal.stderr, env: ctx.env });
  const account = await api.validateKey();
  const out = ctx.terminal.stdout;
  out.write(`${account.email}\n`);
  out.write(`  profile:  ${profile.name}\n`);
  out.write(`  api:      ${profile.apiUrl}\n`);
  out.write(`  key:      ${apiKeyDisplayPrefix(profile.apiKey)}…\n`);
  out.write(`  account:  ${account.account_id}\n`);
}
