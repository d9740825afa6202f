/** The Durable Object's own SQLite schema; statements are idempotent and run at every start. */
export const SCHEDULER_SCHEMA = [
  "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
  `CREATE TABLE IF NOT EXISTS tasks (
     execution_id TEXT PRIMARY KEY,
     batch_id TEXT,
     state TEXT NOT NULL,
     attempt INTEGER NOT NULL,
     worker_id TEXT,
     lease_expires_at INTEGER,
     started_at INTEGER,
     enqueued_at INTEGER NOT NULL,
     payload TEXT NOT NULL
   )`,
  "CREATE INDEX IF NOT EXISTS tasks_queue ON tasks (state, enqueued_at)",
  "CREATE TABLE IF NOT EXISTS batches (batch_id TEXT PRIMARY KEY, parallel INTEGER NOT NULL)",
  "CREATE TABLE IF NOT EXISTS workers_seen (worker_id TEXT PRIMARY KEY, last_seen INTEGER NOT NULL)",
  `CREATE TABLE IF NOT EXISTS logs (
     execution_id TEXT NOT NULL, seq INTEGER NOT NULL, stream TEXT NOT NULL, ts INTEGER NOT NULL, text TEXT NOT NULL,
     PRIMARY KEY (execution_id, seq)
   )`,
  `CREATE TABLE IF NOT EXISTS log_sources (
     execution_id TEXT NOT NULL, attempt INTEGER NOT NULL, source_seq INTEGER NOT NULL,
     PRIMARY KEY (execution_id, attempt, source_seq)
   )`,
  "CREATE TABLE IF NOT EXISTS log_state (execution_id TEXT PRIMARY KEY, next_seq INTEGER NOT NULL, dropped INTEGER NOT NULL)",
  "CREATE TABLE IF NOT EXISTS d1_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, sql TEXT NOT NULL, params TEXT NOT NULL)",
];

/**
 * Columns added after the first release, each applied once; an "already exists" error means a
 * previous start applied it.
 */
export const SCHEDULER_COLUMNS = [
  // Automatic retries spent; attempts handed back by a stopping agent do not count.
  "ALTER TABLE tasks ADD COLUMN retries INTEGER NOT NULL DEFAULT 0",
];
