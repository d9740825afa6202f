-- rgrid control-plane schema (D1). The Durable Object per account owns the live queue and leases;
-- these tables hold what is queried: accounts, keys, workers, executions and their history.

CREATE TABLE accounts (
  id TEXT PRIMARY KEY,
  email TEXT NOT NULL UNIQUE,
  credits_balance_micros INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);

-- Only an HMAC-SHA-256 of each key is stored; `prefix` is what may be shown back to the user.
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  key_hash TEXT NOT NULL UNIQUE,
  prefix TEXT NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  last_used_at INTEGER,
  revoked_at INTEGER
);
CREATE INDEX api_keys_account ON api_keys(account_id);

-- One-time tokens an agent exchanges for its own worker credential.
CREATE TABLE registration_tokens (
  token_hash TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER
);

CREATE TABLE workers (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  name TEXT NOT NULL,
  credential_hash TEXT NOT NULL UNIQUE,
  slots INTEGER NOT NULL,
  backend TEXT NOT NULL,
  provider TEXT NOT NULL DEFAULT 'local',
  provider_server_id TEXT,
  status TEXT NOT NULL DEFAULT 'active',
  registered_at INTEGER NOT NULL,
  last_seen_at INTEGER
);
CREATE INDEX workers_account ON workers(account_id);

CREATE TABLE batches (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  parallel INTEGER NOT NULL,
  total INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
CREATE INDEX batches_account ON batches(account_id);

-- Env values are never stored here (only their names): they live with the task in the Durable Object.
CREATE TABLE executions (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  batch_id TEXT,
  idempotency_key TEXT NOT NULL,
  status TEXT NOT NULL,
  script_name TEXT NOT NULL,
  script_hash TEXT NOT NULL,
  runtime TEXT,
  image TEXT NOT NULL,
  args_json TEXT NOT NULL,
  inputs_json TEXT NOT NULL,
  env_names_json TEXT NOT NULL DEFAULT '[]',
  requirements_hash TEXT,
  timeout_seconds INTEGER NOT NULL,
  memory_mb INTEGER NOT NULL,
  cpus REAL NOT NULL,
  network TEXT NOT NULL,
  metadata_json TEXT NOT NULL DEFAULT '{}',
  retry_of TEXT,
  attempt INTEGER NOT NULL DEFAULT 0,
  worker_id TEXT,
  exit_code INTEGER,
  error_message TEXT,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  duration_ms INTEGER,
  cost_micros INTEGER NOT NULL DEFAULT 0,
  UNIQUE (account_id, idempotency_key)
);
CREATE INDEX executions_account_created ON executions(account_id, created_at DESC);
CREATE INDEX executions_batch ON executions(batch_id);

CREATE TABLE attempts (
  execution_id TEXT NOT NULL REFERENCES executions(id),
  attempt INTEGER NOT NULL,
  account_id TEXT NOT NULL,
  worker_id TEXT NOT NULL,
  status TEXT NOT NULL,
  leased_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  exit_code INTEGER,
  error_message TEXT,
  PRIMARY KEY (execution_id, attempt)
);

CREATE TABLE artifacts (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  execution_id TEXT NOT NULL REFERENCES executions(id),
  path TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  content_type TEXT NOT NULL,
  r2_key TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (execution_id, path)
);

CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id TEXT NOT NULL,
  execution_id TEXT,
  attempt INTEGER,
  type TEXT NOT NULL,
  message TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
);
CREATE INDEX events_execution ON events(execution_id, id);
CREATE INDEX events_account ON events(account_id, id);
