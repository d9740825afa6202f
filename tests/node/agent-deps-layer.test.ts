import { randomBytes } from "node:crypto";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dependencyLayerTag, DockerRuntime } from "../../agent/src/runtime/docker-runtime";
import { startSimpleIndex, testWheel } from "../helpers/agent-pip-index";
import { runScript, tempStateDir } from "../helpers/agent-runtime-harness";

const BASE = "rgrid/python:3.11";

describe("dependency layers", () => {
  const docker = new Docker();
  const runtime = new DockerRuntime(docker);
  let index: Awaited<ReturnType<typeof startSimpleIndex>>;
  let state: Awaited<ReturnType<typeof tempStateDir>>;
  // A nonce comment makes this run's layer tags new, so the first prepare really builds.
  const nonce = randomBytes(6).toString("hex");
  const reqV1 = `# test ${nonce}\nrgrid-testpkg==1.0\n`;
  const reqV2 = `# test ${nonce}\nrgrid-testpkg==2.0\n`;

  beforeAll(async () => {
    index = await startSimpleIndex([testWheel("1.0", 42), testWheel("2.0", 43)]);
    state = await tempStateDir();
  });
  afterAll(async () => {
    await index.close();
    await state.cleanup();
    for (const req of [reqV1, reqV2]) {
      await docker
        .getImage(dependencyLayerTag(BASE, req))
        .remove({ force: true })
        .catch(() => undefined);
    }
  });

  const prepare = async (requirements: string, log: string[] = []) => {
    const started = performance.now();
    const r = await runtime.prepare({ image: BASE, requirements, pipIndexUrl: index.url, log: (t) => log.push(t), scratchDir: state.dir });
    return { r, ms: performance.now() - started, log };
  };

  it("builds the layer once from a pip index on the host's loopback, then reuses it without pip", async () => {
    const first = await prepare(reqV1);
    expect(first.r).toEqual({ ok: true, image: dependencyLayerTag(BASE, reqV1), env: {} });
    expect(first.log.some((l) => l.startsWith("Building dependency layer rgrid-deps:"))).toBe(true);
    expect(first.log.some((l) => /Successfully installed rgrid-testpkg-1\.0/.test(l))).toBe(true);
    const idAfterBuild = await runtime.imageId(dependencyLayerTag(BASE, reqV1));

    const run = await runScript(runtime, state.dir, {
      image: dependencyLayerTag(BASE, reqV1),
      script: "import rgrid_testpkg\nprint(rgrid_testpkg.VALUE)\n",
    });
    expect(run.stdout).toEqual(["42"]);

    const requestsBefore = index.requests.length;
    const second = await prepare(reqV1);
    expect(second.r.ok).toBe(true);
    expect(second.log).toEqual([`Using dependency layer ${dependencyLayerTag(BASE, reqV1)}`]);
    expect(index.requests.length).toBe(requestsBefore);
    expect(await runtime.imageId(dependencyLayerTag(BASE, reqV1))).toBe(idAfterBuild);
    expect(second.ms).toBeLessThan(first.ms);
    console.log(`[timing] dependency layer: build ${first.ms.toFixed(0)} ms, reuse ${second.ms.toFixed(0)} ms`);
  });

  it("keeps the script's hardening on the layer: still uid 1000 with a read-only root", async () => {
    await prepare(reqV1);
    const run = await runScript(runtime, state.dir, {
      image: dependencyLayerTag(BASE, reqV1),
      script:
        "import os, rgrid_testpkg\nprint(os.getuid(), os.environ['PYTHONPATH'])\ntry:\n    open('/opt/rgrid/deps/x', 'w')\nexcept OSError as e:\n    print(e.errno)\n",
    });
    expect(run.stdout).toEqual(["1000 /opt/rgrid/deps", "30"]);
  });

  it("builds a new layer when the requirements change, since the tag hashes image and requirements", async () => {
    const v2 = await prepare(reqV2);
    expect(v2.r).toEqual({ ok: true, image: dependencyLayerTag(BASE, reqV2), env: {} });
    expect(dependencyLayerTag(BASE, reqV2)).not.toBe(dependencyLayerTag(BASE, reqV1));
    expect(v2.log.some((l) => l.startsWith("Building dependency layer"))).toBe(true);
    const run = await runScript(runtime, state.dir, {
      image: dependencyLayerTag(BASE, reqV2),
      script: "import rgrid_testpkg\nprint(rgrid_testpkg.VALUE)\n",
    });
    expect(run.stdout).toEqual(["43"]);
  });

  it("shares one build between concurrent tasks with the same requirements", async () => {
    const req = `# concurrent ${nonce}\nrgrid-testpkg==1.0\n`;
    try {
      const [a, b] = await Promise.all([prepare(req), prepare(req)]);
      expect(a.r.ok && b.r.ok).toBe(true);
      const builds = [...a.log, ...b.log].filter((l) => l.startsWith("Building dependency layer"));
      expect(builds).toHaveLength(1);
      expect([...a.log, ...b.log].some((l) => l.startsWith("Waiting for dependency layer"))).toBe(true);
    } finally {
      await docker
        .getImage(dependencyLayerTag(BASE, req))
        .remove({ force: true })
        .catch(() => undefined);
    }
  });

  it("fails a requirement pip cannot satisfy with pip's own words, not as transient", async () => {
    const bad = await prepare(`# ${nonce}\nrgrid-testpkg==9.9\n`);
    expect(bad.r.ok).toBe(false);
    if (bad.r.ok) return;
    expect(bad.r.transient).toBe(false);
    expect(bad.r.message).toMatch(
      /^Installing requirements failed \(pip exit 1\): .*No matching distribution found for rgrid-testpkg==9\.9/,
    );
  });
});
