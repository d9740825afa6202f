import { execFile } from "node:child_process";
import net from "node:net";
import { promisify } from "node:util";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerRuntime } from "../../agent/src/runtime/docker-runtime";
import { oomMessage } from "../../agent/src/runtime/types";
import { registerCommonRuntimeCases } from "../helpers/agent-common-cases";
import { releasePending, runScript, tempStateDir } from "../helpers/agent-runtime-harness";
import { WarmOnlyRuntime } from "../helpers/agent-warm-runtime";

const exec = promisify(execFile);

// Every case runs twice: in a fresh container per script, and by `docker exec` in a warm container
// that is wiped and reused, so the warm path is held to the same hardening, limits and results.
describe.each([
  { path: "fresh containers", make: (): DockerRuntime => new DockerRuntime(new Docker()) },
  { path: "warm containers", make: (): DockerRuntime => new WarmOnlyRuntime() },
])("docker runtime, $path", ({ make }) => {
  registerCommonRuntimeCases(make);

  let runtime: DockerRuntime;
  let state: Awaited<ReturnType<typeof tempStateDir>>;
  beforeAll(async () => {
    runtime = make();
    state = await tempStateDir();
  });
  afterAll(async () => {
    await releasePending(runtime);
    await runtime.close();
    await state.cleanup();
  });

  it("runs the script as uid 1000, not root, so a container escape lands unprivileged", async () => {
    const run = await runScript(runtime, state.dir, { script: "import os\nprint(os.getuid(), os.getgid())\n" });
    expect(run.stdout).toEqual(["1000 1000"]);
  });

  it("drops every capability and forbids new privileges", async () => {
    const run = await runScript(runtime, state.dir, {
      script: "for l in open('/proc/self/status'):\n    if l.startswith(('CapEff', 'CapBnd', 'CapPrm', 'NoNewPrivs')): print(l.strip())\n",
    });
    expect(run.stdout).toContain("CapEff:\t0000000000000000");
    expect(run.stdout).toContain("CapBnd:\t0000000000000000");
    expect(run.stdout).toContain("NoNewPrivs:\t1");
  });

  it("keeps the root filesystem read-only while /work and /tmp stay writable", async () => {
    const run = await runScript(runtime, state.dir, {
      script: [
        "import errno",
        "try:",
        "    open('/etc/rgrid-test', 'w')",
        "    print('etc writable')",
        "except OSError as e:",
        "    print('etc', errno.errorcode[e.errno])",
        "open('/tmp/t', 'w').write('ok'); print('tmp', open('/tmp/t').read())",
        "open('/work/w', 'w').write('ok'); print('work', open('/work/w').read())",
      ].join("\n"),
    });
    expect(run.stdout).toEqual(["etc EROFS", "tmp ok", "work ok"]);
  });

  it("with --network none cannot reach a server on the host, which bridge mode can", async () => {
    const server = net.createServer((s) => s.end("hello from host\n"));
    await new Promise<void>((r) => server.listen(0, "0.0.0.0", r));
    const port = (server.address() as net.AddressInfo).port;
    // The target is the docker0 gateway, i.e. this machine: the bridge run finds it from its own
    // default route (Node does not list docker0 while it has no carrier), the none run is told it.
    const script = [
      "import socket, struct, sys",
      "def gateway():",
      "    for line in open('/proc/net/route').read().splitlines()[1:]:",
      "        f = line.split()",
      "        if f[1] == '00000000': return socket.inet_ntoa(struct.pack('<L', int(f[2], 16)))",
      "host = sys.argv[1] if len(sys.argv) > 1 else gateway()",
      "print('target', host)",
      "try:",
      `    s = socket.create_connection((host, ${port}), timeout=3)`,
      "    print('connected', s.recv(100).decode().strip())",
      "except OSError as e:",
      "    print('blocked', type(e).__name__)",
    ].join("\n");
    try {
      // Positive control first: the connect works on the bridge, so "blocked" below is the network mode.
      const bridge = await runScript(runtime, state.dir, { script, network: "bridge" });
      expect(bridge.stdout[1]).toBe("connected hello from host");
      const host = bridge.stdout[0]?.replace("target ", "") ?? "";
      expect(host).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      const none = await runScript(runtime, state.dir, { script, network: "none", args: [host] });
      expect(none.stdout[0]).toBe(`target ${host}`);
      expect(none.stdout[1]).toMatch(/^blocked /);
    } finally {
      server.close();
    }
  });

  it("reports a memory hog as out of memory with the limit and the flag to raise it", async () => {
    const run = await runScript(runtime, state.dir, {
      script: "chunks = []\nwhile True:\n    chunks.append(bytearray(8 * 1024 * 1024))\n",
      memoryMb: 64,
    });
    expect(run.result.outcome).toEqual({ kind: "oom", exitCode: 137 });
    expect(oomMessage(64)).toBe("Out of memory: the script exceeded its 64 MB memory limit; raise it with --memory");
  });

  it("caps processes so a fork bomb stays inside its container", async () => {
    const run = await runScript(runtime, state.dir, {
      script:
        "import subprocess\nps = []\ntry:\n    for i in range(600):\n        ps.append(subprocess.Popen(['sleep', '5']))\n    print('spawned all')\nexcept OSError as e:\n    print('stopped at', len(ps))\nfor p in ps: p.kill()\n",
      timeoutSeconds: 60,
    });
    expect(run.stdout[0]).toMatch(/^stopped at \d+$/);
    expect(Number(run.stdout[0]?.split(" ").at(-1))).toBeLessThan(512);
  });

  it("passes the task's env and its arguments to the script", async () => {
    const run = await runScript(runtime, state.dir, {
      script: "import os, sys\nprint(os.environ['GREETING'], sys.argv[1:], os.getcwd())\n",
      env: { GREETING: "hi there" },
      args: ["/work/data.csv", "--n", "3"],
    });
    expect(run.stdout).toEqual(["hi there ['/work/data.csv', '--n', '3'] /work"]);
  });

  it("removes the container after the run so nothing piles up on the worker", async () => {
    const docker = new Docker();
    await runScript(runtime, state.dir, { script: "print('x')\n" });
    const left = await docker.listContainers({ all: true, filters: { label: ["dev.rgrid.attempt=test"] } });
    expect(left).toHaveLength(0);
  });

  it("fails an image that is absent and cannot be pulled as transient, with how to fix it", async () => {
    const logs: string[] = [];
    const r = await runtime.prepare({
      // A registry on a closed loopback port: the pull fails at once and no traffic leaves the machine.
      image: "127.0.0.1:9/rgrid/does-not-exist:1",
      requirements: null,
      pipIndexUrl: undefined,
      log: (t) => logs.push(t),
      scratchDir: state.dir,
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.transient).toBe(true);
    expect(r.message).toMatch(
      /^Image "127\.0\.0\.1:9\/rgrid\/does-not-exist:1" not found locally and could not be pulled: .+; build it with infra\/build-runtimes\.sh or pass an image that exists$/,
    );
  });

  it("uses a present image without pulling", async () => {
    const logs: string[] = [];
    const r = await runtime.prepare({
      image: "rgrid/python:3.11",
      requirements: null,
      pipIndexUrl: undefined,
      log: (t) => logs.push(t),
      scratchDir: state.dir,
    });
    expect(r).toEqual({ ok: true, image: "rgrid/python:3.11", env: {} });
    expect(logs).toEqual([]);
  });

  it("runs hello.py about as fast as a bare docker run (prints both timings)", async () => {
    const t0 = performance.now();
    const run = await runScript(runtime, state.dir, { script: "print('hello')\n" });
    const ours = performance.now() - t0;
    expect(run.stdout).toEqual(["hello"]);
    const t1 = performance.now();
    const bare = await exec("docker", ["run", "--rm", "rgrid/python:3.11", "python", "-c", "print('hello')"]);
    const theirs = performance.now() - t1;
    expect(bare.stdout.trim()).toBe("hello");
    console.log(`[timing] hello.py through DockerRuntime: ${ours.toFixed(0)} ms; docker run --rm: ${theirs.toFixed(0)} ms`);
    expect(ours).toBeLessThan(theirs * 3 + 1000);
  });
});
