import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { AgentEnvError, parseAgentEnv } from "../../agent/src/env";
import { LineSplitter } from "../../agent/src/runtime/line-splitter";
import { ApiUnreachableError, StaleAttemptError } from "../../agent/src/control-plane";
import { LogShipper } from "../../agent/src/log-shipper";
import type { LogLine } from "../../shared/src/executions";

const API = { RGRID_API_URL: "https://api.example.test/" };
const fails = (env: Record<string, string>) => {
  try {
    parseAgentEnv(env);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentEnvError);
    return (err as Error).message;
  }
  throw new Error("expected the environment to be refused");
};

describe("agent environment", () => {
  it("fills documented defaults so a cloud box needs only the URL and a token", () => {
    const env = parseAgentEnv(API);
    expect(env).toMatchObject({
      apiUrl: "https://api.example.test",
      stateDir: path.join(os.homedir(), ".rgrid", "agent"),
      slots: os.availableParallelism(),
      backend: "auto",
      local: false,
      outputMaxFiles: 1000,
      outputMaxBytes: 1024 ** 3,
      logMaxLineBytes: 16_384,
      graceSeconds: 60,
      pipIndexUrl: undefined,
      registrationToken: undefined,
    });
  });

  it("treats empty values as unset, as systemd EnvironmentFiles often carry NAME=", () => {
    expect(parseAgentEnv({ ...API, RGRID_AGENT_SLOTS: "", RGRID_REGISTRATION_TOKEN: " " }).slots).toBe(os.availableParallelism());
  });

  it.each([
    [{}, "RGRID_API_URL is required (the control plane's base URL)"],
    [{ RGRID_API_URL: "not a url" }, "RGRID_API_URL must be an http(s) URL"],
    [{ ...API, RGRID_AGENT_SLOTS: "0" }, "RGRID_AGENT_SLOTS must be at least 1"],
    [{ ...API, RGRID_AGENT_SLOTS: "2.5" }, "RGRID_AGENT_SLOTS must be a whole number"],
    [{ ...API, RGRID_AGENT_SLOTS: "9999" }, "RGRID_AGENT_SLOTS must be at most 512"],
    [{ ...API, RGRID_AGENT_BACKEND: "podman" }, "RGRID_AGENT_BACKEND must be auto, docker or process"],
    [{ ...API, RGRID_LOG_MAX_LINE_BYTES: "100000" }, "RGRID_LOG_MAX_LINE_BYTES must be at most 16384"],
    [{ ...API, RGRID_PIP_INDEX_URL: "mirror" }, "RGRID_PIP_INDEX_URL must be a URL"],
    [{ ...API, RGRID_AGENT_LOCAL: "yes" }, "RGRID_AGENT_LOCAL"],
    [{ ...API, RGRID_REGISTRATION_TOKEN: "short" }, "RGRID_REGISTRATION_TOKEN looks truncated"],
  ])("refuses %o with a message naming the variable", (env, message) => {
    expect(fails(env as Record<string, string>)).toContain(message);
  });

  it("never echoes a value in its error, since values may be secrets", () => {
    expect(fails({ RGRID_API_URL: "secret-looking-value", RGRID_REGISTRATION_TOKEN: "abc" })).not.toContain("secret-looking-value");
  });

  it("accepts local mode only as an explicit true", () => {
    expect(parseAgentEnv({ ...API, RGRID_AGENT_LOCAL: "true" }).local).toBe(true);
    expect(parseAgentEnv({ ...API, RGRID_AGENT_LOCAL: "false" }).local).toBe(false);
  });
});

describe("line splitter", () => {
  it("rejoins a character split across chunks and a line split across writes", () => {
    const lines: string[] = [];
    const s = new LineSplitter(100, (l) => lines.push(l));
    const bytes = Buffer.from("ab🎉c\r\nsecond");
    for (const b of bytes) s.push(Uint8Array.of(b));
    s.end();
    expect(lines).toEqual(["ab🎉c", "second"]);
  });

  it("bounds a newline-less flood at the cap instead of buffering it all", () => {
    const lines: string[] = [];
    const s = new LineSplitter(64, (l) => lines.push(l));
    for (let i = 0; i < 1000; i++) s.push(Buffer.from("é".repeat(500)));
    s.end();
    expect(lines).toHaveLength(1);
    expect(Buffer.byteLength(lines[0] ?? "")).toBeLessThanOrEqual(64);
    expect(lines[0]).toMatch(/line cut: \d+ more bytes\]$/);
  });
});

describe("log shipper", () => {
  it("numbers lines from 1 without gaps and keeps them in order across a retried batch", async () => {
    const sent: LogLine[] = [];
    let failOnce = true;
    const shipper = new LogShipper({
      send: async (lines) => {
        if (failOnce) {
          failOnce = false;
          throw new ApiUnreachableError("down");
        }
        sent.push(...lines);
      },
      batchLines: 10,
    });
    for (let i = 0; i < 250; i++) shipper.push(i % 2 ? "stderr" : "stdout", `line ${i}`);
    await shipper.close();
    expect(sent.map((l) => l.seq)).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
    expect(sent[249]).toMatchObject({ stream: "stderr", text: "line 249" });
  });

  it("stops and tells the task when the attempt is stale (409)", async () => {
    let stale = 0;
    const shipper = new LogShipper({ send: () => Promise.reject(new StaleAttemptError("409")), onStale: () => stale++ });
    shipper.push("stdout", "x");
    await shipper.close();
    shipper.push("stdout", "ignored");
    expect(stale).toBe(1);
  });
});
