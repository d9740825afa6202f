-- Scheduler transitions reach D1 through an outbox that may replay a statement after a crash;
-- a dedupe key per (execution, attempt, event type) makes replayed event inserts no-ops.
ALTER TABLE events ADD COLUMN dedupe_key TEXT;
CREATE UNIQUE INDEX events_dedupe ON events(dedupe_key);
