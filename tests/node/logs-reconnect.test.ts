import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnCli, tmpProject, waitFor } from "../helpers/fault-stack";
import { startLocalStack, type LocalStack } from "../helpers/local-stack";

// The CLI's live log stream through a TCP proxy the test controls: connections are cut mid-stream
// (the CLI must resume after the last line it printed), or WebSocket upgrades are refused (the
// CLI must fall back to polling). Either way the output is exactly what the script printed.

let stack: LocalStack;
beforeAll(async () => {
  stack = await startLocalStack();
});
afterAll(async () => {
  await stack?.stop();
});

interface Proxy {
  url: string;
  /** Connections that asked for the log stream (WebSocket upgrades). */
  streamConnections(): number;
  /** Destroys every open connection, both ways, as a network failure would. */
  cut(): void;
  close(): Promise<void>;
}

function startProxy(targetPort: number, refuseUpgrades = false): Promise<Proxy> {
  const open = new Set<net.Socket>();
  let streams = 0;
  const server = net.createServer((client) => {
    open.add(client);
    client.once("close", () => open.delete(client));
    client.once("data", (first: Buffer) => {
      const head = first.toString("latin1");
      const upgrade = /^GET [^ ]*\/stream/.test(head) && /upgrade: websocket/i.test(head);
      if (upgrade) streams += 1;
      if (upgrade && refuseUpgrades) {
        client.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
      }
      const upstream = net.connect(targetPort, "127.0.0.1");
      open.add(upstream);
      upstream.once("close", () => {
        open.delete(upstream);
        client.destroy();
      });
      client.once("close", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
      upstream.write(first);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const address = server.address() as net.AddressInfo;
      resolve({
        url: `http://127.0.0.1:${address.port}`,
        streamConnections: () => streams,
        cut: () => {
          for (const socket of open) socket.destroy();
        },
        close: () =>
          new Promise((done) => {
            for (const socket of open) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

/** A profile that reaches the API through the proxy, with the local key. */
function addProxyProfile(name: string, url: string): void {
  const file = path.join(stack.home, "credentials");
  const key = /api_key = (\S+)/.exec(fs.readFileSync(file, "utf8"))?.[1] ?? "";
  fs.appendFileSync(file, `\n[${name}]\napi_key = ${key}\napi_url = ${url}\n`);
}

const numbered = (n: number) => Array.from({ length: n }, (_, i) => `${i + 1}\n`).join("");

describe("live logs across a flaky connection", () => {
  it("prints exactly lines 1..10000 in order when the WebSocket is cut three times mid-stream", async () => {
    const proxy = await startProxy(stack.port);
    addProxyProfile("cut", proxy.url);
    const cwd = tmpProject({
      "count.py":
        "import sys, time\nfor i in range(1, 10001):\n    print(i)\n    if i % 500 == 0:\n        sys.stdout.flush()\n        time.sleep(0.3)\n",
    });
    const started = Date.now();
    const run = spawnCli(stack.home, ["run", "count.py"], { RGRID_PROFILE: "cut" }, cwd);
    const lines = () => run.stdout().split("\n").length - 1;
    for (const at of [2000, 5000, 8000]) {
      await waitFor(
        `line ${at}`,
        () => lines() >= at,
        90_000,
        () => run.stderr(),
      );
      proxy.cut();
    }
    const code = await run.exited;
    await proxy.close();
    expect(code, run.stderr()).toBe(0);
    expect(run.stdout() === numbered(10_000), `got ${lines()} lines`).toBe(true);
    expect(proxy.streamConnections()).toBeGreaterThanOrEqual(4); // the first, then one per cut
    expect(run.stderr()).not.toContain("Error");
    console.log(`10,000 lines, 3 cuts: ${Date.now() - started} ms, ${proxy.streamConnections()} stream connections`);
  });

  it("falls back to polling when the WebSocket upgrade is refused, with the same output", async () => {
    const proxy = await startProxy(stack.port, true);
    addProxyProfile("noupgrade", proxy.url);
    const cwd = tmpProject({
      "few.py": "import sys\nfor i in range(1, 1001):\n    print(i)\nprint('to stderr', file=sys.stderr)\nsys.exit(4)\n",
    });
    const run = spawnCli(stack.home, ["run", "few.py"], { RGRID_PROFILE: "noupgrade" }, cwd);
    const code = await run.exited;
    await proxy.close();
    expect(code, run.stderr()).toBe(4);
    expect(run.stdout()).toBe(numbered(1000));
    expect(run.stderr()).toContain("to stderr\n");
    expect(proxy.streamConnections()).toBe(1);
  });
});
