import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import Docker from "dockerode";
import { DockerRuntime, type DockerRuntimeOptions } from "../../agent/src/runtime/docker-runtime";
import type { Sandbox, SandboxShape } from "../../agent/src/runtime/types";
import type { WarmMode } from "../../agent/src/runtime/warm-pool";

/** The shapes the shared and docker cases use: the harness's defaults, bridge mode, and a 64 MB limit. */
export const TEST_SHAPES: SandboxShape[] = [
  { image: "rgrid/python:3.11", memoryMb: 512, cpus: 1, network: "none" },
  { image: "rgrid/python:3.11", memoryMb: 512, cpus: 1, network: "bridge" },
  { image: "rgrid/python:3.11", memoryMb: 64, cpus: 1, network: "none" },
];

/**
 * A docker runtime whose every run must go through a warm container: a claim that finds none fails
 * the test instead of quietly falling back to a fresh container, so the cases prove the warm path.
 */
export class WarmOnlyRuntime extends DockerRuntime {
  readonly started: Promise<void>;

  constructor(opts: { mode?: WarmMode; shapes?: SandboxShape[]; capacity?: number; maxUses?: number; agentId?: string } = {}) {
    const shapes = opts.shapes ?? TEST_SHAPES;
    const warm: NonNullable<DockerRuntimeOptions["warm"]> = {
      capacity: opts.capacity ?? shapes.length,
      shapes,
      mode: opts.mode ?? "reuse",
      rootDir: path.join(os.tmpdir(), `rgrid-warm-test-${randomBytes(4).toString("hex")}`),
      ...(opts.maxUses ? { maxUses: opts.maxUses } : {}),
    };
    super(new Docker(), { agentId: opts.agentId ?? `test-${randomBytes(4).toString("hex")}`, warm });
    this.started = this.start();
  }

  override async claim(shape: SandboxShape): Promise<Sandbox | null> {
    await this.started;
    const sandbox = await super.claim(shape);
    if (!sandbox) throw new Error(`no warm container ready for ${JSON.stringify(shape)}`);
    return sandbox;
  }
}
