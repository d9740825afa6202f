import { ApiClient } from "./api-client";
import type { CommandContext } from "./context";
import { loadProfile } from "./credentials";

/** The API client for the selected profile; retry notices go to stderr. */
export function connect(ctx: CommandContext): ApiClient {
  const profile = loadProfile(ctx.home, { flag: ctx.profileFlag, env: ctx.env });
  return new ApiClient({ baseUrl: profile.apiUrl, apiKey: profile.apiKey, log: ctx.terminal.stderr, env: ctx.env });
}
