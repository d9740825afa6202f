import fs from "node:fs";
import path from "node:path";
import { IniParseError, isValidIniName, parseIni, serializeIni, type IniDocument } from "./ini";
import { UserError } from "./errors";

/**
 * `$RGRID_HOME/credentials`: INI, one section per profile, each with `api_key` and `api_url`.
 * Written with mode 600 (and chmod-ed if it already existed with a looser mode).
 *
 * @example
 *   [default]
 *   api_key = rgrid_sk_…
 *   api_url = https://api.rgrid.dev
 */

export const DEFAULT_API_URL = "https://api.rgrid.dev";
export const LOCAL_PROFILE = "local";

export interface Profile {
  name: string;
  apiKey: string;
  apiUrl: string;
}

export function credentialsPath(home: string): string {
  return path.join(home, "credentials");
}

function readDocument(home: string): IniDocument {
  const file = credentialsPath(home);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return new Map();
    throw error;
  }
  try {
    return parseIni(text);
  } catch (error) {
    if (error instanceof IniParseError) {
      throw new UserError(
        "credentials_malformed",
        `Could not read ${file} (${error.message}).`,
        "Fix or delete that line, then run `rgrid init` to write the profile again.",
      );
    }
    throw error;
  }
}

/** Names of the profiles in the credentials file, in file order. */
export function listProfiles(home: string): string[] {
  return [...readDocument(home).keys()].filter((name) => name !== "");
}

export function profileExists(home: string, name: string): boolean {
  return readDocument(home).has(name);
}

export function assertValidProfileName(name: string): void {
  if (!isValidIniName(name)) {
    throw new UserError(
      "bad_argument",
      `"${name}" is not a valid profile name.`,
      "Use letters, digits, `_`, `.` and `-` only (for example --profile work).",
    );
  }
}

/** Adds or replaces one profile, keeping the others; the file ends up with mode 600 either way. */
export function writeProfile(home: string, profile: Profile): void {
  assertValidProfileName(profile.name);
  const doc = readDocument(home);
  doc.delete("");
  doc.set(
    profile.name,
    new Map([
      ["api_key", profile.apiKey],
      ["api_url", profile.apiUrl],
    ]),
  );
  const text = serializeIni(doc, "# rgrid credentials: written by `rgrid init` and `rgrid dev`. Keep this file private (mode 600).");
  writePrivateFile(credentialsPath(home), text);
}

/**
 * Writes a file only its owner can read: a temp file created with mode 600, renamed over the target
 * (so a crash never leaves half a file), then chmod-ed in case the umask or filesystem interfered.
 */
export function writePrivateFile(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temp, text, { mode: 0o600 });
  fs.chmodSync(temp, 0o600);
  fs.renameSync(temp, file);
  fs.chmodSync(file, 0o600);
}

export interface ProfileSelection {
  /** `--profile NAME` */
  flag?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

/**
 * Which profile a command uses: `--profile` > `RGRID_PROFILE` > `default` if it exists >
 * `local` when it is the only profile. `undefined` when none applies.
 */
export function selectProfileName(selection: ProfileSelection, existing: readonly string[]): string | undefined {
  const explicit = selection.flag?.trim() || selection.env?.RGRID_PROFILE?.trim();
  if (explicit) return explicit;
  if (existing.includes("default")) return "default";
  if (existing.length === 1 && existing[0] === LOCAL_PROFILE) return LOCAL_PROFILE;
  return undefined;
}

function setupHint(name: string): string {
  return name === LOCAL_PROFILE
    ? 'Run `rgrid dev` to start the local control plane; it writes the profile "local".'
    : `Run \`rgrid init${name === "default" ? "" : ` --profile ${name}`}\` to add an API key (or \`rgrid dev\` for a local control plane).`;
}

/** Loads the selected profile, or explains how to create it. */
export function loadProfile(home: string, selection: ProfileSelection): Profile {
  const doc = readDocument(home);
  const existing = [...doc.keys()].filter((name) => name !== "");
  const name = selectProfileName(selection, existing);
  const file = credentialsPath(home);
  if (name === undefined) {
    if (existing.length === 0) {
      throw new UserError("profile_not_found", "No rgrid credentials found.", setupHint("default"));
    }
    throw new UserError(
      "profile_not_found",
      `No default profile in ${file} (profiles: ${existing.join(", ")}).`,
      "Choose one with --profile NAME or RGRID_PROFILE, or run `rgrid init` to create the default profile.",
    );
  }
  assertValidProfileName(name);
  const entries = doc.get(name);
  if (!entries) {
    throw new UserError("profile_not_found", `Profile "${name}" not found in ${file}.`, setupHint(name));
  }
  const apiKey = entries.get("api_key");
  if (!apiKey) {
    throw new UserError("credentials_malformed", `Profile "${name}" in ${file} has no api_key.`, setupHint(name));
  }
  return { name, apiKey, apiUrl: normalizeApiUrl(entries.get("api_url") || DEFAULT_API_URL) };
}

/** Checks an API URL is http(s) and drops any trailing slash. */
export function normalizeApiUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new UserError(
      "bad_argument",
      `"${raw}" is not a valid API URL.`,
      "Use a full URL such as https://api.rgrid.dev or http://127.0.0.1:8787.",
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UserError("bad_argument", `The API URL must start with http:// or https:// (got ${url.protocol}).`);
  }
  return url.toString().replace(/\/+$/, "");
}
