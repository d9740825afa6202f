import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { leaseResponseSchema } from "../../shared/src/agent-protocol";
import { logStreamMessageSchema, type LogStreamMessage } from "../../shared/src/log-stream";
import { setup, strangerKey, submit, uploadScript } from "./fixtures";

async function connect(executionId: string, key: string, after: number) {
  const response = await SELF.fetch(`http://rgrid.test/api/v1/executions/${executionId}/stream?after=${after}`, {
    headers: { Upgrade: "websocket", Authorization: `Bearer ${key}` },
  });
  expect(response.status).toBe(101);
  const socket = response.webSocket!;
  const messages: LogStreamMessage[] = [];
  let closed = false;
  socket.addEventListener("message", (event) => messages.push(logStreamMessageSchema.parse(JSON.parse(String(event.data)))));
  socket.addEventListener("close", () => (closed = true));
  socket.accept();
  return { socket, messages, isClosed: () => closed };
}

const until = async (check: () => boolean) => {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  expect(check()).toBe(true);
};

describe("live log stream over WebSocket", () => {
  it("replays what a reconnecting client missed, then streams live lines, then ends with the final status", async () => {
    const { account, agent } = await setup();
    const sha = await uploadScript(account.api_key, "print(1)\n");
    const { view } = await submit(account.api_key, sha);
    const task = leaseResponseSchema
      .parse(await (await agent("/lease", { free_slots: 4, wait_ms: 0 })).json())
      .tasks.find((t) => t.execution_id === view.id)!;
    const line = (seq: number) => ({ seq, stream: "stdout", ts: Date.now(), text: `line ${seq}` });
    await agent(`/executions/${view.id}/logs`, { attempt: task.attempt, lines: [line(1), line(2), line(3)] });

    // Reconnect as a client that already saw line 1.
    const client = await connect(view.id, account.api_key, 1);
    await until(() => client.messages.length >= 1);
    await agent(`/executions/${view.id}/logs`, { attempt: task.attempt, lines: [line(4)] });
    await agent(`/executions/${view.id}/logs`, { attempt: task.attempt, lines: [line(4)] }); // replayed batch: not re-sent
    await agent(`/executions/${view.id}/complete`, {
      attempt: task.attempt,
      status: "succeeded",
      exit_code: 0,
      duration_ms: 1,
      error_message: null,
      outputs: [],
    });
    await until(client.isClosed);

    const texts = client.messages.flatMap((m) => (m.type === "lines" ? m.lines.map((l) => l.text) : []));
    expect(texts).toEqual(["line 2", "line 3", "line 4"]);
    expect(client.messages.at(-1)).toEqual({ type: "end", status: "succeeded", last_seq: 4, dropped_lines: 0 });
  });

  it("refuses to stream another account's execution", async () => {
    const { account } = await setup();
    const sha = await uploadScript(account.api_key, "print(2)\n");
    const { view } = await submit(account.api_key, sha);
    const response = await SELF.fetch(`http://rgrid.test/api/v1/executions/${view.id}/stream`, {
      headers: { Upgrade: "websocket", Authorization: `Bearer ${await strangerKey()}` },
    });
    expect(response.status).toBe(404);
  });
});
