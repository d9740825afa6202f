import { createHash } from "node:crypto";
import { rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import Docker from "dockerode";
import { LIMIT_DEFAULTS } from "../../shared/src/executions";
import { DEFAULT_RUNTIME, runtimeImages } from "../../shared/src/runtimes";
import { AgentLoop } from "./agent-loop";
import { BlobCache } from "./blob-cache";
import { ApiUnreachableError, ControlPlane, CredentialRejectedError } from "./control-plane";
import { loadCredential, saveCredential } from "./credential-store";
import { AgentEnvError, type AgentEnv, parseAgentEnv } from "./env";
import { agentLog, describeError } from "./log";
import { DockerRuntime, dockerAnswers } from "./runtime/docker-runtime";
import { ProcessRuntime } from "./runtime/process-runtime";
import type { ContainerRuntime } from "./runtime/types";

const AGENT_VERSION = "0.1.0";

/** Something the operator must fix: printed as one line, exit 1, no stack. */
class FatalError extends Error {
  override readonly name = "FatalError";
}

async function chooseRuntime(env: AgentEnv): Promise<ContainerRuntime> {
  const docker = new Docker();
  const answers = env.backend !== "process" && (await dockerAnswers(docker));
  if (answers) {
    // The same host and state dir is the same agent: its leftovers are its own to remove.
    const agentId = createHash("sha256").update(`${os.hostname()}\n${env.stateDir}`).digest("hex").slice(0, 16);
    return new DockerRuntime(docker, {
      agentId,
      ...(env.warm === "off"
        ? {}
        : {
            warm: {
              // One spare: a task need not wait while the last task's container is wiped.
              capacity: env.slots + 1,
              mode: env.warm,
              rootDir: path.join(env.stateDir, "warm"),
              // The runtime most tasks use, with the limits a task gets when it names none.
              shapes: [
                {
                  image: runtimeImages[DEFAULT_RUNTIME],
                  memoryMb: LIMIT_DEFAULTS.memoryMb,
                  cpus: LIMIT_DEFAULTS.cpus,
                  network: "bridge",
                },
              ],
            },
          }),
    });
  }
  if (env.backend === "docker") {
    throw new FatalError(
      "RGRID_AGENT_BACKEND is docker but no Docker engine answered: start Docker and make sure this user can use its socket.",
    );
  }
  if (!env.local) {
    throw new FatalError(
      env.backend === "process"
        ? "The process backend runs scripts without isolation and is allowed only for a local agent started by `rgrid dev` (RGRID_AGENT_LOCAL=true)."
        : "No Docker engine answered. An agent serving a remote control plane refuses to run scripts without isolation: install and start Docker (infra/install-docker.sh) and make sure this user can use its socket.",
    );
  }
  const runtime = new ProcessRuntime(process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin", path.join(env.stateDir, "deps"));
  runtime.warnOnce();
  return runtime;
}

/** Loads the saved credential, or spends the one-time registration token and saves what it returns. */
async function authenticate(env: AgentEnv, api: ControlPlane, backend: "docker" | "process", stopped: () => boolean): Promise<void> {
  const saved = await loadCredential(env.stateDir, env.apiUrl);
  if (saved) {
    api.setCredential(saved.credential);
    agentLog(`using the saved credential of worker ${saved.worker_id}`);
    return;
  }
  if (!env.registrationToken) {
    throw new FatalError(
      "No saved credential and RGRID_REGISTRATION_TOKEN is not set: start the agent with a registration token (from cloud-init user data or `rgrid dev`).",
    );
  }
  let backoff = 1000;
  let outage = false;
  while (!stopped()) {
    try {
      const reg = await api.register({
        registration_token: env.registrationToken,
        name: env.name,
        slots: env.slots,
        backend,
        version: AGENT_VERSION,
      });
      await saveCredential(env.stateDir, {
        api_url: env.apiUrl,
        worker_id: reg.worker_id,
        account_id: reg.account_id,
        credential: reg.credential,
      });
      api.setCredential(reg.credential);
      agentLog(`registered as worker ${reg.worker_id}`);
      return;
    } catch (err) {
      if (err instanceof CredentialRejectedError) {
        throw new FatalError(
          "The registration token was refused (401): tokens are one-time and expire. Mint a new one and restart the agent with it.",
        );
      }
      if (!(err instanceof ApiUnreachableError)) throw new FatalError(`Registration failed: ${describeError(err)}`);
      if (!outage) agentLog(`control plane unreachable while registering (${describeError(err)}); retrying with backoff`);
      outage = true;
      // Wake early on SIGTERM: there is nothing to drain yet.
      for (let waited = 0; waited < backoff && !stopped(); waited += 250) await new Promise((r) => setTimeout(r, 250));
      backoff = Math.min(backoff * 2, 30_000);
    }
  }
}

async function main(): Promise<number> {
  let env: AgentEnv;
  try {
    env = parseAgentEnv(process.env);
  } catch (err) {
    if (err instanceof AgentEnvError) {
      agentLog(`invalid environment: ${err.message}`);
      return 1;
    }
    throw err;
  }

  let loop: AgentLoop | null = null;
  let stopRequested = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopRequested) {
      agentLog(`${sig} again: exiting now`);
      process.exit(0);
    }
    stopRequested = true;
    agentLog(`${sig} received: no new work; running tasks get ${env.graceSeconds}s to finish`);
    void loop?.shutdown(env.graceSeconds * 1000);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  const runtime = await chooseRuntime(env);
  // Scratch and warm folders left by an agent that died mid-task: nothing will come back for them.
  await rm(path.join(env.stateDir, "scratch"), { recursive: true, force: true }).catch(() => undefined);
  await rm(path.join(env.stateDir, "warm"), { recursive: true, force: true }).catch(() => undefined);
  await rm(path.join(env.stateDir, "blobs"), { recursive: true, force: true }).catch(() => undefined);
  const api = new ControlPlane(env.apiUrl);
  await authenticate(env, api, runtime.backend, () => stopRequested);
  if (stopRequested) return 0;

  await runtime.start();
  agentLog(`ready: ${env.slots} slot(s), ${runtime.backend} backend, ${os.platform()}/${os.arch()}, agent ${AGENT_VERSION}`);
  loop = new AgentLoop(api, runtime, env.slots, {
    stateDir: env.stateDir,
    blobs: new BlobCache(path.join(env.stateDir, "blobs")),
    pipIndexUrl: env.pipIndexUrl,
    outputMaxFiles: env.outputMaxFiles,
    outputMaxBytes: env.outputMaxBytes,
    logMaxLineBytes: env.logMaxLineBytes,
  });
  const end = await loop.run();
  if (end.kind === "fatal") {
    agentLog(end.message);
    await runtime.close();
    return 1;
  }
  // run() returns once the shutdown's drain is over (it heartbeats until then).
  await runtime.close();
  agentLog("stopped");
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    agentLog(err instanceof FatalError ? err.message : `crashed: ${describeError(err)}`);
    process.exit(1);
  },
);
