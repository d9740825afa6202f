import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey } from "../../shared/src/index";
import { parseIni } from "../../cli/src/ini";
import { tempHome } from "../helpers/cli";
import { startLocalStack, type LocalStack } from "../helpers/local-stack";

// `rgrid init` against a real control plane (`rgrid dev`, wrangler + workerd, real local D1).

let stack: LocalStack;
let localKey: string;

beforeAll(async () => {
  stack = await startLocalStack();
  const local = parseIni(fs.readFileSync(path.join(stack.home, "credentials"), "utf8")).get("local");
  localKey = local?.get("api_key") ?? "";
});

afterAll(async () => {
  await stack?.stop();
});

function credentialsOf(home: string) {
  return parseIni(fs.readFileSync(path.join(home, "credentials"), "utf8"));
}

function modeOf(file: string): number {
  return fs.statSync(file).mode & 0o777;
}

describe("rgrid init", () => {
  it("saves a key read from stdin as [default] with mode 600 once the API accepts it", async () => {
    const home = tempHome();
    const result = await stack.runCli(["init", "--api-url", stack.url], { input: `${localKey}\n`, env: { RGRID_HOME: home } });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("✅ Authentication successful! You're ready to run scripts.");
    const file = path.join(home, "credentials");
    expect(modeOf(file)).toBe(0o600);
    const profile = credentialsOf(home).get("default");
    expect(profile?.get("api_key")).toBe(localKey);
    expect(profile?.get("api_url")).toBe(stack.url);
  });

  it("rejects a well-formed key the API does not know, writing nothing, and says where to get one", async () => {
    const home = tempHome();
    const result = await stack.runCli(["init", "--api-url", stack.url], { input: `${generateApiKey()}\n`, env: { RGRID_HOME: home } });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("❌ Invalid API key");
    expect(result.stderr).toContain("console");
    expect(result.stderr).toContain("rgrid dev");
    expect(fs.existsSync(path.join(home, "credentials"))).toBe(false);
  });

  it("rejects a malformed key (bad checksum) locally, writing nothing", async () => {
    const home = tempHome();
    const key = generateApiKey();
    const typo = key.slice(0, -1) + (key.endsWith("A") ? "B" : "A");
    const result = await stack.runCli(["init", "--api-url", stack.url], { input: `${typo}\n`, env: { RGRID_HOME: home } });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("❌ Invalid API key: its checksum does not match");
    expect(fs.existsSync(path.join(home, "credentials"))).toBe(false);
  });

  it("refuses to overwrite an existing profile from a pipe without --force, so a script cannot clobber credentials by accident", async () => {
    const home = tempHome();
    expect((await stack.runCli(["init", "--api-url", stack.url], { input: `${localKey}\n`, env: { RGRID_HOME: home } })).code).toBe(0);
    const before = fs.readFileSync(path.join(home, "credentials"), "utf8");

    const refused = await stack.runCli(["init", "--api-url", stack.url], { input: `${localKey}\n`, env: { RGRID_HOME: home } });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('Profile "default" already has credentials');
    expect(refused.stderr).toContain("--force");
    expect(fs.readFileSync(path.join(home, "credentials"), "utf8")).toBe(before);
  });

  it("overwrites an existing profile with --force and tightens a loose file mode to 600", async () => {
    const home = tempHome();
    const file = path.join(home, "credentials");
    fs.writeFileSync(
      file,
      "[default]\napi_key = rgrid_sk_old\napi_url = http://old.example\n\n[other]\napi_key = keep\napi_url = http://keep.example\n",
      { mode: 0o644 },
    );
    fs.chmodSync(file, 0o644);
    const result = await stack.runCli(["init", "--force", "--api-url", stack.url], { input: `${localKey}\n`, env: { RGRID_HOME: home } });
    expect(result.code).toBe(0);
    expect(modeOf(file)).toBe(0o600);
    const doc = credentialsOf(home);
    expect(doc.get("default")?.get("api_key")).toBe(localKey);
    expect(doc.get("other")?.get("api_key")).toBe("keep"); // other profiles survive
  });

  it("writes [work] with --profile work, and RGRID_PROFILE=work selects it for later commands", async () => {
    const home = tempHome();
    const result = await stack.runCli(["init", "--profile", "work", "--api-url", stack.url], {
      input: `${localKey}\n`,
      env: { RGRID_HOME: home },
    });
    expect(result.code).toBe(0);
    const doc = credentialsOf(home);
    expect(doc.get("work")?.get("api_key")).toBe(localKey);
    expect(doc.has("default")).toBe(false);

    // With only [work] and no [default], nothing is selected implicitly...
    const implicit = await stack.runCli(["whoami"], { env: { RGRID_HOME: home } });
    expect(implicit.code).toBe(1);
    expect(implicit.stderr).toContain("No default profile");

    // ...RGRID_PROFILE selects it, and --profile wins over RGRID_PROFILE.
    const selected = await stack.runCli(["whoami"], { env: { RGRID_HOME: home, RGRID_PROFILE: "work" } });
    expect(selected.code).toBe(0);
    expect(selected.stdout).toContain("local@rgrid.dev");
    expect(selected.stdout).toMatch(/profile:\s+work/);
    const flagWins = await stack.runCli(["whoami", "--profile", "missing"], { env: { RGRID_HOME: home, RGRID_PROFILE: "work" } });
    expect(flagWins.code).toBe(1);
    expect(flagWins.stderr).toContain('Profile "missing" not found');
  });
});

describe("rgrid dev credentials", () => {
  it("writes profile local (mode 600) that is used by default when it is the only profile", async () => {
    expect(modeOf(path.join(stack.home, "credentials"))).toBe(0o600);
    expect(modeOf(path.join(stack.home, "dev", "secrets.json"))).toBe(0o600);
    const result = await stack.runCli(["whoami"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("local@rgrid.dev");
    expect(result.stdout).toMatch(/profile:\s+local/);
    expect(stack.output()).toContain('Local account: local@rgrid.dev (profile "local")');
  });

  it("never puts its secrets on a command line", () => {
    const secrets = JSON.parse(fs.readFileSync(path.join(stack.home, "dev", "secrets.json"), "utf8")) as Record<string, string>;
    const commandLines = fs
      .readdirSync("/proc")
      .filter((entry) => /^\d+$/.test(entry))
      .map((pid) => {
        try {
          return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
        } catch {
          return "";
        }
      })
      .join("\n");
    expect(commandLines).toContain(stack.home); // the stack's processes are visible here...
    for (const value of Object.values(secrets)) expect(commandLines).not.toContain(value); // ...but not its secrets
  });
});
