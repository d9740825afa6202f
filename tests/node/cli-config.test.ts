import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { generateApiKey } from "../../shared/src/index";
import { loadProfile, selectProfileName, writeProfile, credentialsPath } from "../../cli/src/credentials";
import { UserError } from "../../cli/src/errors";
import { findProjectConfig, loadProjectConfig } from "../../cli/src/project-config";
import { tempHome } from "../helpers/cli";

describe("selectProfileName", () => {
  it.each([
    ["--profile beats everything", { flag: "a", env: { RGRID_PROFILE: "b" } }, ["default", "local"], "a"],
    ["RGRID_PROFILE beats default", { env: { RGRID_PROFILE: "b" } }, ["default"], "b"],
    ["default when it exists", { env: {} }, ["local", "default"], "default"],
    ["local when it is the only profile (after rgrid dev)", { env: {} }, ["local"], "local"],
    ["nothing when several exist without default", { env: {} }, ["local", "work"], undefined],
    ["nothing when there are none", { env: {} }, [], undefined],
    ["a blank RGRID_PROFILE is ignored", { env: { RGRID_PROFILE: "  " } }, ["default"], "default"],
  ])("%s", (_name, selection, existing, expected) => {
    expect(selectProfileName(selection, existing)).toBe(expected);
  });
});

describe("credentials file", () => {
  it("is written with mode 600, keeping other profiles", () => {
    const home = tempHome();
    writeProfile(home, { name: "default", apiKey: "k1", apiUrl: "https://api.rgrid.dev" });
    writeProfile(home, { name: "local", apiKey: "k2", apiUrl: "http://127.0.0.1:8787" });
    expect(fs.statSync(credentialsPath(home)).mode & 0o777).toBe(0o600);
    expect(loadProfile(home, { env: {} })).toEqual({ name: "default", apiKey: "k1", apiUrl: "https://api.rgrid.dev" });
    expect(loadProfile(home, { flag: "local", env: {} }).apiKey).toBe("k2");
  });

  it("rejects profile names that would break the INI file", () => {
    expect(() => writeProfile(tempHome(), { name: "a]b", apiKey: "k", apiUrl: "http://x" })).toThrow(UserError);
  });

  it("explains a malformed file with the line to fix, instead of crashing", () => {
    const home = tempHome();
    fs.writeFileSync(credentialsPath(home), "[default]\nthis is not ini\n");
    expect(() => loadProfile(home, { env: {} })).toThrow(/line 2/);
  });
});

function project(files: Record<string, string>): string {
  const root = tempHome("rgrid-project-");
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    fs.writeFileSync(path.join(root, name), text);
  }
  return root;
}

function refusal(run: () => unknown): UserError {
  try {
    run();
  } catch (error) {
    if (error instanceof UserError) return error;
    throw error;
  }
  throw new Error("expected a UserError");
}

describe("loadProjectConfig", () => {
  const env = { RGRID_HOME: "/nonexistent/rgrid-home" };

  it("finds .rgrid/config in a parent folder and parses every setting", () => {
    const root = project({
      ".rgrid/config": "runtime = node:20\nparallel = 16\ntimeout = 2h\nmemory = 512m\ncpus = 1.5\n",
      "a/b/.keep": "",
    });
    const config = loadProjectConfig(path.join(root, "a", "b"), env);
    expect(config).toEqual({
      path: path.join(root, ".rgrid", "config"),
      runtime: "node:20",
      parallel: 16,
      timeoutSeconds: 7200,
      memoryMb: 512,
      cpus: 1.5,
    });
  });

  it("returns no settings when there is no config anywhere above", () => {
    const root = project({ "x/.keep": "" });
    expect(loadProjectConfig(path.join(root, "x"), env)).toEqual({ path: undefined });
  });

  it("does not mistake the rgrid home (~/.rgrid) for a project config", () => {
    const root = project({ ".rgrid/config": "runtime = python:3.11\n" });
    expect(findProjectConfig(root, { RGRID_HOME: path.join(root, ".rgrid") })).toBeUndefined();
  });

  it.each([
    ["seconds without a unit", "timeout = 90", { timeoutSeconds: 90 }],
    ["minutes", "timeout = 30m", { timeoutSeconds: 1800 }],
    ["gigabytes", "memory = 2g", { memoryMb: 2048 }],
    ["plain megabytes", "memory = 768", { memoryMb: 768 }],
  ])("parses %s", (_name, line, expected) => {
    expect(loadProjectConfig(project({ ".rgrid/config": `${line}\n` }), env)).toMatchObject(expected);
  });

  it.each([
    ["an unknown runtime", "runtime = cobol:85", /runtime/],
    ["a zero parallel", "parallel = 0", /parallel/],
    ["a fractional parallel", "parallel = 2.5", /parallel/],
    ["an unparseable timeout", "timeout = soon", /timeout/],
    ["a misspelled setting", "runtim = python:3.11", /unknown setting "runtim"/],
    ["a section", "[env]\nFOO = bar", /section \[env\]/],
  ])("refuses %s with a message naming it", (_name, text, message) => {
    const error = refusal(() => loadProjectConfig(project({ ".rgrid/config": `${text}\n` }), env));
    expect(error.code).toBe("project_config_invalid");
    expect(error.message).toMatch(message);
  });

  it.each([
    ["an rgrid key under any name", `note = ${generateApiKey()}`],
    ["an rgrid key in a comment", `# old key: ${generateApiKey()}`],
    ["an rgrid key in a file that does not even parse", `garbage ${generateApiKey()}`],
    ["api_key", "api_key = abc"],
    ["apiKey", "apiKey = abc"],
    ["a secret", "aws_secret = abc"],
    ["a token", "github_token = abc"],
    ["a password", "db_password = abc"],
    ["a section named like a secret", "[secrets]\nx = y"],
  ])("refuses a config holding %s, pointing at rgrid init and the credentials file", (_name, text) => {
    const error = refusal(() => loadProjectConfig(project({ ".rgrid/config": `${text}\n` }), env));
    expect(error.code).toBe("project_config_has_secret");
    expect(error.hint).toContain("rgrid init");
    expect(error.hint).toContain(path.join(env.RGRID_HOME, "credentials"));
    expect(`${error.message}${error.hint}`).not.toContain("rgrid_sk_");
  });
});
