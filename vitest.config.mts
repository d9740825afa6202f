import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        // Worker and Durable Object tests run inside workerd with real local D1, R2 and Durable Objects.
        plugins: [
          cloudflareTest(async () => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                API_KEY_PEPPER: "test-pepper-not-a-secret",
                TEST_MIGRATIONS: await readD1Migrations(path.join(import.meta.dirname, "migrations")),
                RGRID_LOCAL_MODE: "true",
                LOCAL_BOOTSTRAP_TOKEN: "test-bootstrap-token",
              },
            },
          })),
        ],
        test: {
          name: "workers",
          include: ["tests/worker/**/*.test.ts"],
          // The fast in-workerd tests run first, then the end-to-end group.
          sequence: { groupOrder: 0 },
          setupFiles: ["tests/worker/apply-migrations.ts"],
        },
      },
      {
        // End-to-end tests: the real CLI against a real `rgrid dev` and a real Docker engine.
        test: {
          name: "node",
          include: ["tests/node/**/*.test.ts"],
          sequence: { groupOrder: 1 },
          environment: "node",
          testTimeout: 180_000,
          hookTimeout: 180_000,
          // The local stacks these tests start are heavy; two cores cannot run many at once.
          maxWorkers: 2,
          fileParallelism: true,
        },
      },
    ],
  },
});
