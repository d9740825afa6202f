import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ApiErrorBody, ApiErrorCode } from "../../shared/src/api-error";

/** The one error type routes throw; `app.onError` turns it into `{ error: { code, message, hint } }`. */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: ApiErrorCode,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = "ApiError";
  }

  toBody(): ApiErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.hint ? { hint: this.hint } : {}) } };
  }
}

export const notFound = (what: string) =>
  new ApiError(404, "not_found", `${what} not found`, "Check the id; `rgrid list` shows your recent executions.");
