import os from "node:os";
import path from "node:path";
import { z } from "zod";

/**
 * The agent's environment, parsed once at start-up (after trigger.dev's supervisor `env.ts`).
 * Nothing else in the agent reads `process.env`: every setting arrives through `AgentEnv`.
 */

const boolString = z
  .enum(["true", "false", "1", "0", ""])
  .optional()
  .transform((v) => v === "true" || v === "1");

const positiveInt = (name: string) =>
  z
    .string()
    .trim()
    .regex(/^[0-9]+$/, `${name} must be a whole number`)
    .transform(Number)
    .pipe(z.number().int().min(1, `${name} must be at least 1`));

const agentEnvSchema = z.object({
  /** Base URL of the control plane (`https://api.rgrid.dev`, or the local `rgrid dev` worker). Required. */
  RGRID_API_URL: z
    .string({ error: "RGRID_API_URL is required (the control plane's base URL)" })
    .trim()
    .min(1, "RGRID_API_URL is required (the control plane's base URL)")
    .refine((v) => {
      try {
        const u = new URL(v);
        return u.protocol === "http:" || u.protocol === "https:";
      } catch {
        return false;
      }
    }, "RGRID_API_URL must be an http(s) URL"),
  /** One-time token exchanged for this worker's credential on first start; unused once a credential is saved. */
  RGRID_REGISTRATION_TOKEN: z.string().trim().min(10, "RGRID_REGISTRATION_TOKEN looks truncated").optional(),
  /** Where the credential (mode 600) and per-attempt scratch folders live. Default `~/.rgrid/agent`. */
  RGRID_AGENT_STATE_DIR: z.string().trim().min(1).optional(),
  /** How many tasks run at once. Default: the machine's available parallelism. */
  RGRID_AGENT_SLOTS: positiveInt("RGRID_AGENT_SLOTS").pipe(z.number().max(512, "RGRID_AGENT_SLOTS must be at most 512")).optional(),
  /** `docker`, `process`, or `auto` (docker when an engine answers, else process — local mode only). */
  RGRID_AGENT_BACKEND: z
    .enum(["auto", "docker", "process"], { error: "RGRID_AGENT_BACKEND must be auto, docker or process" })
    .default("auto"),
  /** "true" only when `rgrid dev` started this agent: the one case where unisolated processes are allowed. */
  RGRID_AGENT_LOCAL: boolString,
  /** How this worker appears in the console. Default: the host name. */
  RGRID_AGENT_NAME: z.string().trim().min(1).max(128, "RGRID_AGENT_NAME must be at most 128 characters").optional(),
  /** pip index for dependency layers (e.g. a mirror on the host). Optional; pip's default otherwise. */
  RGRID_PIP_INDEX_URL: z
    .string()
    .trim()
    .refine((v) => URL.canParse(v), "RGRID_PIP_INDEX_URL must be a URL")
    .optional(),
  /** Most output files one attempt may produce. Default 1000. */
  RGRID_OUTPUT_MAX_FILES: positiveInt("RGRID_OUTPUT_MAX_FILES").default(1000),
  /** Most output bytes one attempt may produce. Default 1 GiB. */
  RGRID_OUTPUT_MAX_BYTES: positiveInt("RGRID_OUTPUT_MAX_BYTES").default(1024 * 1024 * 1024),
  /** Longer log lines are cut to this many bytes. Default (and maximum) 16384, the protocol's limit. */
  RGRID_LOG_MAX_LINE_BYTES: positiveInt("RGRID_LOG_MAX_LINE_BYTES")
    .pipe(z.number().min(64, "RGRID_LOG_MAX_LINE_BYTES must be at least 64").max(16_384, "RGRID_LOG_MAX_LINE_BYTES must be at most 16384"))
    .default(16_384),
  /**
   * Warm containers of the default runtime, started ahead of tasks: \`reuse\` (default) wipes one
   * after each task and keeps it, \`discard\` replaces it after every task, \`off\` starts a fresh
   * container per task.
   */
  RGRID_AGENT_WARM: z.enum(["reuse", "discard", "off"], { error: "RGRID_AGENT_WARM must be reuse, discard or off" }).default("reuse"),
  /** On SIGTERM/SIGINT, how long running tasks may take to finish before they are killed. Default 60. */
  RGRID_AGENT_GRACE_SECONDS: z
    .string()
    .trim()
    .regex(/^[0-9]+$/, "RGRID_AGENT_GRACE_SECONDS must be a whole number")
    .transform(Number)
    .default(60),
});

export interface AgentEnv {
  apiUrl: string;
  registrationToken: string | undefined;
  stateDir: string;
  slots: number;
  backend: "auto" | "docker" | "process";
  local: boolean;
  name: string;
  pipIndexUrl: string | undefined;
  outputMaxFiles: number;
  outputMaxBytes: number;
  logMaxLineBytes: number;
  warm: "reuse" | "discard" | "off";
  graceSeconds: number;
}

export class AgentEnvError extends Error {
  override readonly name = "AgentEnvError";
}

/**
 * Parses the agent's settings. Empty strings count as unset (systemd `EnvironmentFile`s often
 * carry `NAME=`). Errors name the variable and the rule, never the value.
 */
export function parseAgentEnv(env: Record<string, string | undefined>): AgentEnv {
  const relevant: Record<string, string> = {};
  for (const key of Object.keys(agentEnvSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== "") relevant[key] = value;
  }
  const parsed = agentEnvSchema.safeParse(relevant);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const key = String(i.path[0] ?? "environment");
      return i.message.includes(key) ? i.message : `${key}: ${i.message}`;
    });
    throw new AgentEnvError(problems.join("; "));
  }
  const e = parsed.data;
  return {
    apiUrl: e.RGRID_API_URL.replace(/\/+$/, ""),
    registrationToken: e.RGRID_REGISTRATION_TOKEN,
    stateDir: path.resolve(e.RGRID_AGENT_STATE_DIR ?? path.join(os.homedir(), ".rgrid", "agent")),
    slots: e.RGRID_AGENT_SLOTS ?? os.availableParallelism(),
    backend: e.RGRID_AGENT_BACKEND,
    local: e.RGRID_AGENT_LOCAL,
    name: e.RGRID_AGENT_NAME ?? os.hostname().slice(0, 128),
    pipIndexUrl: e.RGRID_PIP_INDEX_URL,
    outputMaxFiles: e.RGRID_OUTPUT_MAX_FILES,
    outputMaxBytes: e.RGRID_OUTPUT_MAX_BYTES,
    logMaxLineBytes: e.RGRID_LOG_MAX_LINE_BYTES,
    warm: e.RGRID_AGENT_WARM,
    graceSeconds: e.RGRID_AGENT_GRACE_SECONDS,
  };
}
