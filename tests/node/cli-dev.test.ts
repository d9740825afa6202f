import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { healthResponseSchema } from "../../shared/src/index";
import { localRegistrationToken, startDevStack } from "../../cli/src/dev-stack";
import { UserError } from "../../cli/src/errors";
import { parseIni } from "../../cli/src/ini";
import { tempHome } from "../helpers/cli";
import { freePort, startLocalStack } from "../helpers/local-stack";

// `rgrid dev` lifecycle: the programmatic API, restarts over persisted state, and clean shutdown.

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

function localKeyIn(home: string): string | undefined {
  return parseIni(fs.readFileSync(path.join(home, "credentials"), "utf8"))
    .get("local")
    ?.get("api_key");
}

describe("startDevStack", () => {
  it("serves a healthy API, hands out a working key and a registration token, and frees its port on stop", async () => {
    const home = tempHome();
    const port = await freePort();
    const stack = await startDevStack({ home, port, env: { ...process.env, RGRID_HOME: home } });
    try {
      expect(stack.url).toBe(`http://127.0.0.1:${port}`);
      const health = healthResponseSchema.parse(await (await fetch(`${stack.url}/health`)).json());
      expect(health.status).toBe("healthy");
      const validate = await fetch(`${stack.url}/api/v1/auth/validate`, {
        method: "POST",
        headers: { Authorization: `Bearer ${stack.apiKey}` },
      });
      expect(validate.status).toBe(200);
      expect(stack.registrationToken.length).toBeGreaterThan(0);
      expect(localRegistrationToken()).toBe(stack.registrationToken); // for the code that starts the local agent
      expect(localKeyIn(home)).toBe(stack.apiKey);
    } finally {
      await stack.stop();
    }
    expect(await portIsFree(port)).toBe(true);
  });

  it("keeps profile local across restarts, because its key still validates against the persisted state", async () => {
    const home = tempHome();
    const env = { ...process.env, RGRID_HOME: home };
    const first = await startDevStack({ home, port: await freePort(), env });
    await first.stop();
    // Same port, so the profile's api_url still matches; state and secrets come from the rgrid home.
    const port = Number(new URL(first.url).port);
    const second = await startDevStack({ home, port, env });
    try {
      expect(second.apiKey).toBe(first.apiKey);
      expect(localKeyIn(home)).toBe(first.apiKey);
      expect(second.registrationToken).not.toBe(first.registrationToken); // one-time tokens are fresh each start
    } finally {
      await second.stop();
    }
  });

  it("refuses a port that is already taken, rather than health-checking someone else's server", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const home = tempHome();
      const error = await startDevStack({ home, port, env: { ...process.env, RGRID_HOME: home } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UserError);
      expect((error as UserError).message).toContain(`Port ${port}`);
      expect((error as UserError).hint).toContain("--port");
    } finally {
      blocker.close();
    }
  });
});

describe("rgrid dev (the CLI)", () => {
  it("prints where it runs, and on SIGTERM stops wrangler and workerd and exits 0", async () => {
    const stack = await startLocalStack();
    expect(stack.output()).toContain(`rgrid control plane running at ${stack.url}`);
    expect(stack.output()).toContain('Local account: local@rgrid.dev (profile "local")');
    const code = await stack.stop();
    expect(code).toBe(0);
    expect(await portIsFree(stack.port)).toBe(true);
    const leftovers = fs
      .readdirSync("/proc")
      .filter((entry) => /^\d+$/.test(entry))
      .filter((pid) => {
        try {
          return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(stack.home);
        } catch {
          return false;
        }
      });
    expect(leftovers).toEqual([]);
  });
});
