import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

// Mirrors migrations/*.sql (the SQL files are what D1 applies; this is how the code reads them).

export const accounts = sqliteTable("accounts", {
  id: text("id").primaryKey(),
  email: text("email").notNull().unique(),
  creditsBalanceMicros: integer("credits_balance_micros").notNull().default(0),
  createdAt: integer("created_at").notNull(),
});

export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id").notNull(),
    keyHash: text("key_hash").notNull().unique(),
    prefix: text("prefix").notNull(),
    name: text("name").notNull().default(""),
    createdAt: integer("created_at").notNull(),
    lastUsedAt: integer("last_used_at"),
    revokedAt: integer("revoked_at"),
  },
  (t) => [index("api_keys_account").on(t.accountId)],
);

export const registrationTokens = sqliteTable("registration_tokens", {
  tokenHash: text("token_hash").primaryKey(),
  accountId: text("account_id").notNull(),
  createdAt: integer("created_at").notNull(),
  expiresAt: integer("expires_at").notNull(),
  usedAt: integer("used_at"),
});

export const workers = sqliteTable("workers", {
  id: text("id").primaryKey(),
  accountId: text("account_id").notNull(),
  name: text("name").notNull(),
  credentialHash: text("credential_hash").notNull().unique(),
  slots: integer("slots").notNull(),
  backend: text("backend").notNull(),
  provider: text("provider").notNull().default("local"),
  providerServerId: text("provider_server_id"),
  status: text("status").notNull().default("active"),
  registeredAt: integer("registered_at").notNull(),
  lastSeenAt: integer("last_seen_at"),
});

export const batches = sqliteTable("batches", {
  id: text("id").primaryKey(),
  accountId: text("account_id").notNull(),
  parallel: integer("parallel").notNull(),
  total: integer("total").notNull().default(0),
  createdAt: integer("created_at").notNull(),
});

export const executions = sqliteTable(
  "executions",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id").notNull(),
    batchId: text("batch_id"),
    idempotencyKey: text("idempotency_key").notNull(),
    status: text("status").notNull(),
    scriptName: text("script_name").notNull(),
    scriptHash: text("script_hash").notNull(),
    runtime: text("runtime"),
    image: text("image").notNull(),
    argsJson: text("args_json").notNull(),
    inputsJson: text("inputs_json").notNull(),
    envNamesJson: text("env_names_json").notNull().default("[]"),
    requirementsHash: text("requirements_hash"),
    timeoutSeconds: integer("timeout_seconds").notNull(),
    memoryMb: integer("memory_mb").notNull(),
    cpus: real("cpus").notNull(),
    network: text("network").notNull(),
    metadataJson: text("metadata_json").notNull().default("{}"),
    retryOf: text("retry_of"),
    attempt: integer("attempt").notNull().default(0),
    workerId: text("worker_id"),
    exitCode: integer("exit_code"),
    errorMessage: text("error_message"),
    createdAt: integer("created_at").notNull(),
    startedAt: integer("started_at"),
    finishedAt: integer("finished_at"),
    durationMs: integer("duration_ms"),
    costMicros: integer("cost_micros").notNull().default(0),
  },
  (t) => [uniqueIndex("executions_idempotency").on(t.accountId, t.idempotencyKey)],
);

export const attempts = sqliteTable(
  "attempts",
  {
    executionId: text("execution_id").notNull(),
    attempt: integer("attempt").notNull(),
    accountId: text("account_id").notNull(),
    workerId: text("worker_id").notNull(),
    status: text("status").notNull(),
    leasedAt: integer("leased_at").notNull(),
    startedAt: integer("started_at"),
    finishedAt: integer("finished_at"),
    exitCode: integer("exit_code"),
    errorMessage: text("error_message"),
  },
  (t) => [primaryKey({ columns: [t.executionId, t.attempt] })],
);

export const artifacts = sqliteTable("artifacts", {
  id: text("id").primaryKey(),
  accountId: text("account_id").notNull(),
  executionId: text("execution_id").notNull(),
  path: text("path").notNull(),
  sizeBytes: integer("size_bytes").notNull(),
  sha256: text("sha256").notNull(),
  contentType: text("content_type").notNull(),
  r2Key: text("r2_key").notNull(),
  createdAt: integer("created_at").notNull(),
});

export const events = sqliteTable("events", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  accountId: text("account_id").notNull(),
  executionId: text("execution_id"),
  attempt: integer("attempt"),
  type: text("type").notNull(),
  message: text("message").notNull().default(""),
  createdAt: integer("created_at").notNull(),
  dedupeKey: text("dedupe_key"),
});
