import { randomBytes } from "node:crypto";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerRuntime } from "../../agent/src/runtime/docker-runtime";
import os from "node:os";
import { AGENT_LABEL, MANAGED_LABEL, OWNER_HOST_LABEL, OWNER_PID_LABEL, ROLE_LABEL } from "../../agent/src/runtime/warm-pool";
import { releasePending, runScript, tempStateDir } from "../helpers/agent-runtime-harness";
import { WarmOnlyRuntime } from "../helpers/agent-warm-runtime";

const SHAPE = { image: "rgrid/python:3.11", memoryMb: 512, cpus: 1, network: "none" } as const;

/** Prints the container's id (its hostname) first, so a test can tell whether two runs shared one. */
const HOSTNAME = "import socket\nprint(socket.gethostname())\n";

const TASK_ONE = `${HOSTNAME}
import os, subprocess
open('/tmp/secret.txt', 'w').write('task one')
open('/work/left-behind.txt', 'w').write('task one')
open('/dev/shm/shared', 'w').write('task one')
subprocess.run(['ipcmk', '-M', '4096'], check=True, capture_output=True)
# A daemon that outlives the script: its own session, detached from the script's output.
subprocess.Popen(['sleep', '300'], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
subprocess.Popen(['sh', '-c', '(sleep 300 &) ; sleep 300'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print('started')
`;

const TASK_TWO = `${HOSTNAME}
import os, subprocess
for p in ['/tmp/secret.txt', '/work/left-behind.txt', '/dev/shm/shared']:
    print(p, os.path.exists(p))
print('env', os.environ.get('SECRET_TOKEN'))
mine = []
for pid in os.listdir('/proc'):
    if not pid.isdigit() or int(pid) == os.getpid():
        continue
    try:
        status = open(f'/proc/{pid}/status').read()
        cmd = open(f'/proc/{pid}/cmdline').read().replace('\\0', ' ').strip()
    except OSError:
        continue
    uid = next(l.split()[1] for l in status.splitlines() if l.startswith('Uid:'))
    if uid == '1000' and 'ipcs' not in cmd:
        mine.append(cmd)
print('processes', mine)
print('ipc', subprocess.run(['ipcs', '-m'], capture_output=True, text=True).stdout.count('0x'))
`;

describe("warm containers", () => {
  const docker = new Docker();
  let state: Awaited<ReturnType<typeof tempStateDir>>;
  beforeAll(async () => {
    state = await tempStateDir();
  });
  afterAll(async () => {
    await state.cleanup();
  });

  it("leaves nothing of one task for the next in a reused container: files, env, processes, IPC", async () => {
    const runtime = new WarmOnlyRuntime({ shapes: [SHAPE], capacity: 1 });
    try {
      const one = await runScript(runtime, state.dir, { script: TASK_ONE, env: { SECRET_TOKEN: "task-one-secret" } });
      expect(one.result.outcome).toEqual({ kind: "exited", exitCode: 0 });
      expect(one.stdout[1]).toBe("started");
      const two = await runScript(runtime, state.dir, { script: TASK_TWO });
      expect(two.result.outcome).toEqual({ kind: "exited", exitCode: 0 });
      // The same container served both: the checks below are about reuse, not a fresh start.
      expect(two.stdout[0]).toBe(one.stdout[0]);
      expect(two.stdout.slice(1)).toEqual([
        "/tmp/secret.txt False",
        "/work/left-behind.txt False",
        "/dev/shm/shared False",
        "env None",
        "processes []",
        "ipc 0",
      ]);
    } finally {
      await releasePending(runtime);
      await runtime.close();
    }
  });

  it("ends a task when its script exits even if a child still holds its output, as a stopped container would", async () => {
    const runtime = new WarmOnlyRuntime({ shapes: [SHAPE], capacity: 1 });
    try {
      const started = Date.now();
      const run = await runScript(runtime, state.dir, {
        script: "import subprocess\nsubprocess.Popen(['sleep', '300'])\nprint('main done', flush=True)\n",
      });
      expect(run.result.outcome).toEqual({ kind: "exited", exitCode: 0 });
      expect(run.stdout).toEqual(["main done"]);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await releasePending(runtime);
      await runtime.close();
    }
  });

  it("discards a container whose task timed out, so the next task starts in a new one", async () => {
    const runtime = new WarmOnlyRuntime({ shapes: [SHAPE], capacity: 1 });
    try {
      const one = await runScript(runtime, state.dir, {
        script: `${HOSTNAME}import time\ntime.sleep(120)\n`,
        timeoutSeconds: 2,
      });
      expect(one.result.outcome).toEqual({ kind: "timed_out" });
      const two = await runScript(runtime, state.dir, { script: HOSTNAME });
      expect(two.result.outcome).toEqual({ kind: "exited", exitCode: 0 });
      expect(two.stdout[0]).not.toBe(one.stdout[0]);
    } finally {
      await releasePending(runtime);
      await runtime.close();
    }
  });

  it("in discard mode gives every task a container no task used before", async () => {
    const runtime = new WarmOnlyRuntime({ shapes: [SHAPE], capacity: 1, mode: "discard" });
    try {
      const hosts: string[] = [];
      for (let i = 0; i < 3; i++) {
        const run = await runScript(runtime, state.dir, { script: HOSTNAME });
        expect(run.result.outcome).toEqual({ kind: "exited", exitCode: 0 });
        hosts.push(run.stdout[0] ?? "");
      }
      expect(new Set(hosts).size).toBe(3);
    } finally {
      await releasePending(runtime);
      await runtime.close();
    }
  });

  it("never hands a task a container of other limits; it runs fresh, and its shape is warmed for next time", async () => {
    const runtime = new DockerRuntime(docker, {
      agentId: `test-${randomBytes(4).toString("hex")}`,
      warm: { capacity: 1, shapes: [SHAPE], mode: "reuse", rootDir: `${state.dir}/warm` },
    });
    await runtime.start();
    try {
      while (runtime.pool?.stats().idle !== 1) await new Promise((r) => setTimeout(r, 50));
      const limit =
        "import os\nv1 = '/sys/fs/cgroup/memory/memory.limit_in_bytes'\nprint(open(v1 if os.path.exists(v1) else '/sys/fs/cgroup/memory.max').read().strip())\n";
      const first = await runScript(runtime, state.dir, { script: limit, memoryMb: 256 });
      expect(first.warm).toBe(false);
      expect(first.stdout).toEqual([String(256 * 1024 * 1024)]);
      // The miss replaced the idle container of the other shape with one of this shape.
      const second = await runScript(runtime, state.dir, { script: limit, memoryMb: 256 });
      expect(second.warm).toBe(true);
      expect(second.stdout).toEqual([String(256 * 1024 * 1024)]);
    } finally {
      await releasePending(runtime);
      await runtime.close();
    }
  });

  it("on start-up removes the containers an earlier run of the same agent left behind, and no one else's", async () => {
    const mine = `test-${randomBytes(4).toString("hex")}`;
    const theirs = `test-${randomBytes(4).toString("hex")}`;
    const make = (agent: string) =>
      docker.createContainer({
        Image: SHAPE.image,
        Cmd: ["sleep", "300"],
        Labels: { [MANAGED_LABEL]: "true", [AGENT_LABEL]: agent },
        HostConfig: { NetworkMode: "none" },
      });
    const left = await make(mine);
    await left.start();
    const other = await make(theirs);
    try {
      const runtime = new DockerRuntime(docker, { agentId: mine });
      await runtime.start();
      expect(await docker.listContainers({ all: true, filters: { label: [`${AGENT_LABEL}=${mine}`] } })).toHaveLength(0);
      expect(await docker.listContainers({ all: true, filters: { label: [`${AGENT_LABEL}=${theirs}`] } })).toHaveLength(1);
    } finally {
      await other.remove({ force: true });
      await left.remove({ force: true }).catch(() => undefined);
    }
  });

  it("on start-up removes the warm containers of a dead agent on this host, so killed agents leak nothing", async () => {
    const dead = `test-${randomBytes(4).toString("hex")}`;
    const make = (pid: number) =>
      docker.createContainer({
        Image: SHAPE.image,
        Cmd: ["sleep", "300"],
        Labels: {
          [MANAGED_LABEL]: "true",
          [AGENT_LABEL]: dead,
          [ROLE_LABEL]: "warm",
          [OWNER_HOST_LABEL]: os.hostname(),
          [OWNER_PID_LABEL]: String(pid),
        },
        HostConfig: { NetworkMode: "none" },
      });
    // pid_max is at most 2^22: this pid cannot exist. The other belongs to this live test process.
    const orphan = await make(2 ** 22 + 1);
    const alive = await make(process.pid === 1 ? 2 : process.ppid);
    try {
      const runtime = new DockerRuntime(docker, { agentId: `test-${randomBytes(4).toString("hex")}` });
      await runtime.start();
      const left = await docker.listContainers({ all: true, filters: { label: [`${AGENT_LABEL}=${dead}`] } });
      expect(left.map((c) => c.Id)).toEqual([alive.id]);
    } finally {
      await orphan.remove({ force: true }).catch(() => undefined);
      await alive.remove({ force: true });
    }
  });

  it("removes its warm containers on close, so a stopped agent leaves nothing running", async () => {
    const agentId = `test-${randomBytes(4).toString("hex")}`;
    const runtime = new WarmOnlyRuntime({ shapes: [SHAPE], capacity: 2, agentId });
    const run = await runScript(runtime, state.dir, { script: "print('x')\n" });
    expect(run.warm).toBe(true);
    expect(await docker.listContainers({ all: true, filters: { label: [`${AGENT_LABEL}=${agentId}`] } })).toHaveLength(2);
    await releasePending(runtime);
    await runtime.close();
    expect(await docker.listContainers({ all: true, filters: { label: [`${AGENT_LABEL}=${agentId}`] } })).toHaveLength(0);
  });
});
