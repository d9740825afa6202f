/**
 * The CLI's error split (after workers-sdk): a `UserError` is something the user can fix, so it is
 * printed as what went wrong plus how to fix it, with no stack trace. Anything else is a bug and
 * prints a short message, with the stack only under `RGRID_DEBUG=1`.
 */

export type UserErrorCode =
  | "api_error"
  | "api_unreachable"
  | "bad_argument"
  | "cancelled"
  | "credentials_malformed"
  | "dev_stack_failed"
  | "invalid_api_key"
  | "profile_exists"
  | "profile_not_found"
  | "project_config_invalid"
  | "project_config_has_secret"
  | "unexpected_response";

export class UserError extends Error {
  override readonly name = "UserError";
  readonly code: UserErrorCode;
  /** How to fix it, shown on the line after the message. */
  readonly hint: string | undefined;

  constructor(code: UserErrorCode, message: string, hint?: string) {
    super(message);
    this.code = code;
    this.hint = hint;
  }
}

/** An error the API returned in its `{ error: { code, message, hint } }` shape. */
export class ApiError extends UserError {
  /** HTTP status of the response. */
  readonly status: number;
  /** The server's error code (`unauthorized`, `not_found`, …). */
  readonly apiCode: string;

  constructor(status: number, apiCode: string, message: string, hint?: string) {
    super("api_error", message, hint);
    this.status = status;
    this.apiCode = apiCode;
  }
}

export interface ErrorOutput {
  write(text: string): unknown;
}

/** Prints an error for a human and returns the process exit code to use. */
export function reportError(error: unknown, stderr: ErrorOutput, env: NodeJS.ProcessEnv): number {
  if (error instanceof UserError) {
    stderr.write(`❌ ${error.message}\n`);
    if (error.hint) stderr.write(`${error.hint}\n`);
    if (env.RGRID_DEBUG === "1" && error.stack) stderr.write(`${error.stack}\n`);
    return 1;
  }
  const message = error instanceof Error ? error.message : String(error);
  stderr.write(`❌ Unexpected error: ${message}\n`);
  if (env.RGRID_DEBUG === "1") {
    if (error instanceof Error && error.stack) stderr.write(`${error.stack}\n`);
  } else {
    stderr.write("This is a bug in rgrid. Run again with RGRID_DEBUG=1 to see the stack trace, and include it in a report.\n");
  }
  return 1;
}
