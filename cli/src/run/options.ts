import { envNameSchema, isRuntimeName, metadataSchema, networkModeSchema, runtimeNames, type RuntimeName } from "../../../shared/src/index";
import { UserError } from "../errors";

/**
 * Parsers for `rgrid run` options. Each throws a `UserError` naming the option, what it got and
 * what it accepts, so a typo fails before anything is hashed or uploaded.
 */

const bad = (message: string, hint: string) => new UserError("bad_argument", message, hint);

/**
 * `--timeout`: whole seconds, or a number with s, m or h.
 *
 * @example parseTimeout("90") === 90; parseTimeout("10m") === 600; parseTimeout("1.5h") === 5400
 */
export function parseTimeout(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?$/i.exec(text.trim());
  const unit = (match?.[2] ?? "s").toLowerCase()[0];
  const seconds = match ? Math.round(Number(match[1]) * (unit === "h" ? 3600 : unit === "m" ? 60 : 1)) : NaN;
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > 7 * 24 * 3600) {
    throw bad(
      `--timeout "${text}" is not a valid duration.`,
      "Use seconds or a duration from 1s to 168h, for example --timeout 90, --timeout 30m or --timeout 2h.",
    );
  }
  return seconds;
}

/**
 * `--memory`: megabytes, or a number with m/mb or g/gb.
 *
 * @example parseMemory("512m") === 512; parseMemory("2g") === 2048; parseMemory("1024") === 1024
 */
export function parseMemory(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(m|mb|mi|mib|g|gb|gi|gib)?$/i.exec(text.trim());
  const unit = (match?.[2] ?? "m").toLowerCase()[0];
  const mb = match ? Math.round(Number(match[1]) * (unit === "g" ? 1024 : 1)) : NaN;
  if (!Number.isFinite(mb) || mb < 64 || mb > 256 * 1024) {
    throw bad(
      `--memory "${text}" is not a valid memory size.`,
      "Use megabytes or a size from 64m to 256g, for example --memory 512m or --memory 2g.",
    );
  }
  return mb;
}

/** `--cpus`: a number from 0.1 to 64. */
export function parseCpus(text: string): number {
  const cpus = /^\d+(\.\d+)?$|^\.\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isFinite(cpus) || cpus < 0.1 || cpus > 64) {
    throw bad(`--cpus "${text}" is not a valid CPU count.`, "Use a number from 0.1 to 64, for example --cpus 2 or --cpus 0.5.");
  }
  return cpus;
}

export function parseNetwork(text: string): "bridge" | "none" {
  const parsed = networkModeSchema.safeParse(text.trim());
  if (!parsed.success)
    throw bad(`--network "${text}" is not a network mode.`, "Use --network none to run without network access (the default is bridge).");
  return parsed.data;
}

export function parseRuntime(text: string): RuntimeName {
  const name = text.trim();
  if (!isRuntimeName(name)) {
    throw bad(`Unknown runtime "${text}".`, `Valid runtimes: ${runtimeNames.join(", ")}. For any other image use --image IMAGE.`);
  }
  return name;
}

/**
 * `--env KEY=VALUE` (repeatable). `--env KEY` alone passes the local value of KEY, so a secret need
 * not appear on the command line. Error messages name the key, never the value.
 */
export function parseEnv(pairs: readonly string[], localEnv: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    const key = eq < 0 ? pair : pair.slice(0, eq);
    if (!envNameSchema.safeParse(key).success) {
      throw bad(
        `--env: "${key}" is not a valid environment variable name.`,
        "Use --env NAME=VALUE with a name of letters, digits and _ (not starting with a digit).",
      );
    }
    if (eq >= 0) env[key] = pair.slice(eq + 1);
    else {
      const value = localEnv[key];
      if (value === undefined)
        throw bad(`--env ${key}: ${key} is not set in your environment.`, `Set it first, or pass a value with --env ${key}=VALUE.`);
      env[key] = value;
    }
  }
  return env;
}

/** `--metadata key=value` (repeatable), checked against the API's rules. */
export function parseMetadata(pairs: readonly string[]): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0)
      throw bad(`--metadata "${pair}" is not key=value.`, "Use --metadata key=value, for example --metadata experiment=baseline.");
    metadata[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const parsed = metadataSchema.safeParse(metadata);
  if (!parsed.success) {
    throw bad(
      `--metadata: ${parsed.error.issues[0]?.message ?? "invalid"}.`,
      "Keys are 1-64 letters, digits, _ . - ; values up to 1024 characters; at most 50 entries.",
    );
  }
  return parsed.data;
}

/** Collects a repeatable option's values (commander's custom option processing). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
