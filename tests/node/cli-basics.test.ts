import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { generateApiKey } from "../../shared/src/index";
import { repoRoot, runCli, tempHome } from "../helpers/cli";
import { freePort } from "../helpers/local-stack";

// CLI behaviour that needs no control plane: the real built CLI, run as a child process.

const version = (JSON.parse(fs.readFileSync(path.join(repoRoot, "cli", "package.json"), "utf8")) as { version: string }).version;

describe("rgrid --version and --help", () => {
  it("prints the package version so bug reports name the build", async () => {
    const result = await runCli(tempHome(), ["--version"]);
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe(version);
  });

  it("lists every command and the global --profile option, so users can discover them", async () => {
    const result = await runCli(tempHome(), ["--help"]);
    expect(result.code).toBe(0);
    for (const command of ["init", "dev", "whoami", "config"]) expect(result.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, "m"));
    expect(result.stdout).toContain("--profile <name>");
  });

  it("exits 1 on an unknown command instead of silently doing nothing", async () => {
    const result = await runCli(tempHome(), ["frobnicate"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("unknown command");
  });
});

describe("rgrid init without a reachable API", () => {
  it("retries a refused connection 5 times with notices, then names the URL, so a restarting server is survived and a dead one explained", async () => {
    const home = tempHome();
    const port = await freePort(); // nothing listens here
    const result = await runCli(home, ["init", "--api-url", `http://127.0.0.1:${port}`], { input: `${generateApiKey()}\n` });
    expect(result.code).toBe(1);
    for (const attempt of [2, 3, 4, 5]) expect(result.stderr).toContain(`Connection lost. Retrying... (attempt ${attempt}/5)`);
    expect(result.stderr).not.toContain("attempt 6/5");
    expect(result.stderr).toContain(`❌ Could not reach the rgrid API at http://127.0.0.1:${port} (connection refused).`);
    expect(result.stderr).toContain("rgrid dev");
    expect(result.stderr).not.toMatch(/\n\s+at /); // a user error, not a stack trace
    expect(fs.existsSync(path.join(home, "credentials"))).toBe(false);
  });

  it("takes the API URL from RGRID_API_URL when --api-url is absent", async () => {
    const port = await freePort();
    const result = await runCli(tempHome(), ["init"], {
      input: `${generateApiKey()}\n`,
      env: { RGRID_API_URL: `http://127.0.0.1:${port}` },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`Could not reach the rgrid API at http://127.0.0.1:${port}`);
  });

  it("rejects a malformed key before any network call, so typos are caught instantly", async () => {
    const port = await freePort();
    const home = tempHome();
    const result = await runCli(home, ["init", "--api-url", `http://127.0.0.1:${port}`], { input: "rgrid_sk_tooshort\n" });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("❌ Invalid API key");
    expect(result.stderr).not.toContain("Retrying");
    expect(fs.existsSync(path.join(home, "credentials"))).toBe(false);
  });

  it("refuses a key passed as an argument, because command lines leak into shell history", async () => {
    const key = generateApiKey();
    const result = await runCli(tempHome(), ["init", key]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("does not take the API key as an argument");
    expect(result.stderr).toContain("pipe it");
    expect(result.stderr).not.toContain(key);
  });

  it("refuses --api-key=… for the same reason, without echoing the key", async () => {
    const key = generateApiKey();
    const result = await runCli(tempHome(), ["init", `--api-key=${key}`]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("does not take the API key");
    expect(result.stderr).not.toContain(key);
  });

  it("explains how to provide a key when stdin is empty", async () => {
    const result = await runCli(tempHome(), ["init", "--api-url", "http://127.0.0.1:9"], { input: "" });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("❌ No API key given.");
  });
});

describe("commands that need credentials", () => {
  it("tell a new user to run rgrid init (or rgrid dev) when there are no credentials", async () => {
    const result = await runCli(tempHome(), ["whoami"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("❌ No rgrid credentials found.");
    expect(result.stderr).toContain("rgrid init");
    expect(result.stderr).toContain("rgrid dev");
  });

  it("name the missing profile and the command that creates it", async () => {
    const result = await runCli(tempHome(), ["whoami", "--profile", "work"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Profile "work" not found');
    expect(result.stderr).toContain("rgrid init --profile work");
  });
});

describe("project config (.rgrid/config)", () => {
  it("is refused when it holds an API key, and the error says to move it to the credentials file via rgrid init", async () => {
    const home = tempHome();
    const project = tempHome("rgrid-project-");
    const key = generateApiKey();
    fs.mkdirSync(path.join(project, ".rgrid"));
    fs.writeFileSync(path.join(project, ".rgrid", "config"), `runtime = python:3.11\napi_key = ${key}\n`);
    fs.mkdirSync(path.join(project, "src", "deep"), { recursive: true });
    const result = await runCli(home, ["config"], { cwd: path.join(project, "src", "deep") });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("❌ Refusing to use");
    expect(result.stderr).toContain(path.join(home, "credentials"));
    expect(result.stderr).toContain("rgrid init");
    expect(result.stderr).not.toContain(key);
  });

  it("is shown with its parsed defaults when it holds only settings", async () => {
    const project = tempHome("rgrid-project-");
    fs.mkdirSync(path.join(project, ".rgrid"));
    fs.writeFileSync(
      path.join(project, ".rgrid", "config"),
      "# team defaults\nruntime = python:3.10\nparallel = 4\ntimeout = 30m\nmemory = 2g\n",
    );
    const result = await runCli(tempHome(), ["config"], { cwd: project });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("runtime   python:3.10");
    expect(result.stdout).toContain("timeout   1800s");
    expect(result.stdout).toContain("memory    2048m");
  });
});

describe("unexpected errors", () => {
  it("show the stack only with RGRID_DEBUG=1", async () => {
    // A credentials path that is a directory makes reading it fail with EISDIR: not a user error.
    const home = tempHome();
    fs.mkdirSync(path.join(home, "credentials"));
    const quiet = await runCli(home, ["whoami"]);
    expect(quiet.code).toBe(1);
    expect(quiet.stderr).toContain("❌ Unexpected error");
    expect(quiet.stderr).toContain("RGRID_DEBUG=1");
    expect(quiet.stderr).not.toMatch(/\n\s+at /);
    const debug = await runCli(home, ["whoami"], { env: { RGRID_DEBUG: "1" } });
    expect(debug.code).toBe(1);
    expect(debug.stderr).toMatch(/\n\s+at /);
  });
});
