import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { isRuntimeName, type RuntimeName } from "../../shared/src/index";
import { UserError } from "./errors";
import { rgridHome } from "./home";
import { IniParseError, parseIni } from "./ini";

/**
 * Project defaults live in `.rgrid/config`, found from the working directory upward, so a team can
 * commit them. The format is the same small INI as the credentials file, top-level keys only:
 *
 *   # .rgrid/config
 *   runtime = python:3.11
 *   parallel = 8        # default concurrency of batch runs
 *   timeout = 30m       # seconds, or with s/m/h
 *   memory = 2g         # megabytes, or with m/g
 *   cpus = 2
 *
 * INI over JSON: it allows comments and matches `credentials`. Because the file is shared, it must
 * never hold a key or a secret: a key named like one, or any value containing `rgrid_sk_`, is refused.
 */

export const PROJECT_CONFIG_DIR = ".rgrid";
export const PROJECT_CONFIG_FILE = "config";

export interface ProjectConfig {
  /** Absolute path of the file the settings came from; `undefined` when there is none. */
  path: string | undefined;
  runtime?: RuntimeName;
  parallel?: number;
  /** Wall-clock limit per execution, in seconds. */
  timeoutSeconds?: number;
  /** Memory limit per execution, in megabytes. */
  memoryMb?: number;
  cpus?: number;
}

const SECRET_KEY_NAME = /(api[_.-]?key|secret|token|passw(or)?d|credential|private[_.-]?key)/i;
const SECRET_VALUE = /rgrid_sk_/i;

const positiveInt = (what: string) =>
  z
    .string()
    .regex(/^\d+$/, `${what} must be a whole number`)
    .transform(Number)
    .refine((n) => n > 0, `${what} must be at least 1`);

const duration = z.string().transform((text, ctx) => {
  const match = /^(\d+(?:\.\d+)?)\s*(s|m|h)?$/i.exec(text);
  if (!match) {
    ctx.addIssue({ code: "custom", message: "timeout must be seconds or a duration like 90s, 30m, 2h" });
    return z.NEVER;
  }
  const unit = (match[2] ?? "s").toLowerCase();
  const seconds = Number(match[1]) * (unit === "h" ? 3600 : unit === "m" ? 60 : 1);
  if (seconds < 1) {
    ctx.addIssue({ code: "custom", message: "timeout must be at least 1 second" });
    return z.NEVER;
  }
  return Math.round(seconds);
});

const memory = z.string().transform((text, ctx) => {
  const match = /^(\d+(?:\.\d+)?)\s*(m|mb|g|gb)?$/i.exec(text);
  if (!match) {
    ctx.addIssue({ code: "custom", message: "memory must be megabytes or a size like 512m, 2g" });
    return z.NEVER;
  }
  const unit = (match[2] ?? "m").toLowerCase();
  const mb = Number(match[1]) * (unit.startsWith("g") ? 1024 : 1);
  if (mb < 1) {
    ctx.addIssue({ code: "custom", message: "memory must be at least 1m" });
    return z.NEVER;
  }
  return Math.round(mb);
});

const settingsSchema = z
  .object({
    runtime: z
      .string()
      .refine(isRuntimeName, "runtime is not a known runtime (see `rgrid run --help`)")
      .transform((name) => name as RuntimeName)
      .optional(),
    parallel: positiveInt("parallel").optional(),
    timeout: duration.optional(),
    memory: memory.optional(),
    cpus: z
      .string()
      .regex(/^\d+(\.\d+)?$/, "cpus must be a number")
      .transform(Number)
      .refine((n) => n > 0, "cpus must be more than 0")
      .optional(),
  })
  .strict();

/** The nearest `.rgrid/config` from `cwd` upward, skipping the rgrid home (which is also a `.rgrid` folder). */
export function findProjectConfig(cwd: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const home = rgridHome(env);
  let dir = path.resolve(cwd);
  for (;;) {
    const configDir = path.join(dir, PROJECT_CONFIG_DIR);
    const candidate = path.join(configDir, PROJECT_CONFIG_FILE);
    if (path.resolve(configDir) !== home && fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * Loads project defaults for later commands (`run`, batch runs). Never returns a config that holds a secret.
 *
 * @example
 *   const config = loadProjectConfig(process.cwd());
 *   const runtime = options.runtime ?? config.runtime ?? DEFAULT_RUNTIME;
 */
export function loadProjectConfig(cwd: string, env: NodeJS.ProcessEnv = process.env): ProjectConfig {
  const file = findProjectConfig(cwd, env);
  if (!file) return { path: undefined };
  const text = fs.readFileSync(file, "utf8");
  const credentials = path.join(rgridHome(env), "credentials");
  const refuse = (where: string): never => {
    throw new UserError(
      "project_config_has_secret",
      `Refusing to use ${file}: it contains what looks like an API key or secret (${where}).`,
      `Project files get committed and shared. Remove it from there, and store your key in ${credentials} with \`rgrid init\` (that file is private to you, mode 600).`,
    );
  };

  // Checked on the raw text first, so even a file that does not parse never passes a key along.
  const lines = text.split(/\r?\n/);
  const keyLine = lines.findIndex((line) => SECRET_VALUE.test(line));
  if (keyLine >= 0) refuse(`line ${keyLine + 1}`);

  let doc;
  try {
    doc = parseIni(text);
  } catch (error) {
    if (error instanceof IniParseError) {
      throw new UserError(
        "project_config_invalid",
        `Could not read ${file} (${error.message}).`,
        "Each line should be `key = value`, a `# comment`, or blank.",
      );
    }
    throw error;
  }
  for (const [section, entries] of doc) {
    if (SECRET_KEY_NAME.test(section)) refuse(`section [${section}]`);
    for (const key of entries.keys()) if (SECRET_KEY_NAME.test(key)) refuse(`\`${key}\``);
  }
  const sections = [...doc.keys()].filter((name) => name !== "");
  if (sections.length > 0) {
    throw new UserError(
      "project_config_invalid",
      `Unexpected section [${sections[0]}] in ${file}.`,
      "Project settings are top-level `key = value` lines: runtime, parallel, timeout, memory, cpus.",
    );
  }

  const parsed = settingsSchema.safeParse(Object.fromEntries(doc.get("") ?? []));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = issue?.path[0];
    const message =
      issue?.code === "unrecognized_keys"
        ? `unknown setting "${issue.keys.join('", "')}"`
        : `${String(key ?? "")}: ${issue?.message ?? "invalid"}`;
    throw new UserError(
      "project_config_invalid",
      `Invalid ${file}: ${message}.`,
      "Known settings: runtime, parallel, timeout (e.g. 30m), memory (e.g. 2g), cpus.",
    );
  }
  const { runtime, parallel, timeout, memory: memoryMb, cpus } = parsed.data;
  const config: ProjectConfig = { path: file };
  if (runtime !== undefined) config.runtime = runtime;
  if (parallel !== undefined) config.parallel = parallel;
  if (timeout !== undefined) config.timeoutSeconds = timeout;
  if (memoryMb !== undefined) config.memoryMb = memoryMb;
  if (cpus !== undefined) config.cpus = cpus;
  return config;
}
