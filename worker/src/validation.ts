import type { ValidationTargets } from "hono";
import { validator } from "hono/validator";
import type { z } from "zod";
import { ApiError } from "./http-error";

/**
 * zod validation for any request part with one failure shape: 400 `validation_failed`, naming the
 * first offending field so the caller knows what to fix.
 */
export function zValidator<Target extends keyof ValidationTargets, Schema extends z.ZodType>(target: Target, schema: Schema) {
  return validator(target, async (value): Promise<z.output<Schema>> => {
    const parsed = await schema.safeParseAsync(value);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join(".") : target;
    throw new ApiError(
      400,
      "validation_failed",
      `Invalid ${where}: ${issue?.message ?? "invalid value"}`,
      "Check the request against the API reference in the README.",
    );
  });
}
