import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";

const root = path.resolve(import.meta.dirname, "..", "..");

describe("cloud metadata address", () => {
  it("is unreachable from a container while the host reaches a fake metadata service, so credentials on a cloud box cannot leak", () => {
    // The script gives 169.254.169.254 to a network namespace it creates, with its own listener,
    // so a failure of the block reaches that listener and nothing leaves the machine.
    const result = spawnSync("bash", [path.join(root, "infra", "check-metadata-block.sh")], { encoding: "utf8", timeout: 120_000 });
    const output = `${result.stdout}\n${result.stderr}`;
    expect(output).toContain("host reaches fake metadata listener");
    expect(output).toContain("PASS");
    expect(result.status, output).toBe(0);
  });
});
