import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliResult } from "../helpers/cli";
import { startSimpleIndex, testWheel } from "../helpers/agent-pip-index";
import { startLocalStack, type LocalStack } from "../helpers/local-stack";

// Isolation and dependency layers through the whole stack: `rgrid run` → control plane → local
// agent → a hardened Docker container. The pip index is one this test serves on loopback, since
// no public index is reachable here.

let stack: LocalStack;
let index: Awaited<ReturnType<typeof startSimpleIndex>>;
beforeAll(async () => {
  index = await startSimpleIndex([testWheel("1.0", 42), testWheel("2.0", 43)]);
  stack = await startLocalStack({ env: { RGRID_PIP_INDEX_URL: index.url, RGRID_OUTPUT_MAX_FILES: "50" } });
});
afterAll(async () => {
  await stack?.stop();
  await index?.close();
});

function project(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rgrid-iso-"));
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

const rgrid = (cwd: string, args: string[]): Promise<CliResult> => stack.runCli(args, { cwd, timeoutMs: 150_000 });
const debug = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

describe("dependency layers", () => {
  it("installs requirements.txt from the configured index once, reuses the layer on the next run, and rebuilds when requirements change", async () => {
    // A comment unique to this run changes the layer's hash, so a layer left by an earlier run is not reused.
    const nonce = `# test run ${randomUUID()}\n`;
    const cwd = project({
      "uses_dep.py": "import rgrid_testpkg\nprint('value', rgrid_testpkg.VALUE)\n",
      "requirements.txt": `${nonce}rgrid-testpkg==1.0\n`,
    });

    const firstStart = Date.now();
    const first = await rgrid(cwd, ["run", "uses_dep.py"]);
    const firstMs = Date.now() - firstStart;
    expect(first.code, debug(first)).toBe(0);
    expect(first.stdout).toContain("value 42");
    const indexHitsAfterFirst = index.requests.length;
    expect(indexHitsAfterFirst).toBeGreaterThan(0);

    const secondStart = Date.now();
    const second = await rgrid(cwd, ["run", "uses_dep.py"]);
    const secondMs = Date.now() - secondStart;
    expect(second.code, debug(second)).toBe(0);
    expect(second.stdout).toContain("value 42");
    // The cached layer means pip never ran: not one more request reached the index.
    expect(index.requests.length).toBe(indexHitsAfterFirst);
    expect(secondMs).toBeLessThan(firstMs);

    fs.writeFileSync(path.join(cwd, "requirements.txt"), `${nonce}rgrid-testpkg==2.0\n`);
    const third = await rgrid(cwd, ["run", "uses_dep.py"]);
    expect(third.code, debug(third)).toBe(0);
    expect(third.stdout).toContain("value 43");
    expect(index.requests.length).toBeGreaterThan(indexHitsAfterFirst);
  });
});

describe("isolation", () => {
  it("blocks egress with --network none while the default network reaches a server on this machine", async () => {
    const server = http.createServer((_req, res) => res.end("reached"));
    await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", resolve));
    const port = (server.address() as AddressInfo).port;
    // The docker0 bridge address is this machine's own: the only place a container's connect can go.
    const gateway = /inet (\d+\.\d+\.\d+\.\d+)/.exec(
      execFileSync("ip", ["-4", "-o", "addr", "show", "docker0"], { encoding: "utf8" }),
    )?.[1];
    expect(gateway, "docker0 has an IPv4 address").toBeDefined();
    const cwd = project({
      "fetch.py": `import urllib.request, sys\ntry:\n    print(urllib.request.urlopen('http://${gateway}:${port}/', timeout=3).read().decode())\nexcept Exception as e:\n    print('blocked', type(e).__name__, repr(e))\n    sys.exit(7)\n`,
    });
    try {
      const open = await rgrid(cwd, ["run", "fetch.py"]);
      expect(open.code, debug(open)).toBe(0);
      expect(open.stdout).toContain("reached");
      const closed = await rgrid(cwd, ["run", "--network", "none", "fetch.py"]);
      expect(closed.code, debug(closed)).toBe(7);
      expect(closed.stdout).toContain("blocked");
    } finally {
      server.close();
    }
  });

  it("kills a script past its memory limit and says it ran out of memory and how to raise the limit", async () => {
    const cwd = project({ "hog.py": "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n" });
    const result = await rgrid(cwd, ["run", "--memory", "128m", "hog.py"]);
    expect(result.code, debug(result)).toBe(137);
    expect(result.stderr).toMatch(/out of memory/i);
    expect(result.stderr).toMatch(/--memory/);
  });

  it("never downloads a symlink that points outside /work, and brings back nested real outputs", async () => {
    const cwd = project({
      "links.py":
        "import os\nos.makedirs('out/deep', exist_ok=True)\nopen('out/deep/real.txt','w').write('ok')\nos.symlink('/etc/passwd', 'out/passwd')\n",
    });
    const result = await rgrid(cwd, ["run", "links.py"]);
    expect(result.code, debug(result)).toBe(0);
    expect(fs.readFileSync(path.join(cwd, "out", "deep", "real.txt"), "utf8")).toBe("ok");
    expect(fs.existsSync(path.join(cwd, "out", "passwd"))).toBe(false);
  });

  it("fails a script that writes more files than the output cap with a clear error instead of uploading them", async () => {
    const cwd = project({
      "many.py": "import os\nos.makedirs('many', exist_ok=True)\nfor i in range(60):\n    open(f'many/{i}.txt','w').write(str(i))\n",
    });
    const result = await rgrid(cwd, ["run", "many.py"]);
    expect(result.code, debug(result)).not.toBe(0);
    expect(result.stderr).toMatch(/Output limit exceeded/);
    expect(fs.existsSync(path.join(cwd, "many"))).toBe(false);
  });

  it("fails an execution whose image is neither present nor pullable, naming the image", async () => {
    const cwd = project({ "hello.py": "print('hi')\n" });
    // A registry on a closed loopback port: the pull fails at once and no traffic leaves the machine.
    const result = await rgrid(cwd, ["run", "--image", "127.0.0.1:9/rgrid/does-not-exist:1", "hello.py"]);
    expect(result.code, debug(result)).not.toBe(0);
    expect(result.stderr).toContain("127.0.0.1:9/rgrid/does-not-exist:1");
  });
});
