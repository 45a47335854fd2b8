-- Practice-management connectors (issue 19): each connector's sync state, and the outbox of
-- what is written back to the practice system (arrivals, consult starts, cancels), retried like
-- texts and shown to reception when it cannot be done.
CREATE TABLE IF NOT EXISTS pms_sync (
    pms TEXT PRIMARY KEY,
    cursor TEXT,
    events_seen INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    last_ok_at TEXT,
    last_full_at TEXT,
    last_error TEXT,
    progress TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS pms_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pms TEXT NOT NULL,
    dedupe TEXT NOT NULL UNIQUE,
    visit_id TEXT NOT NULL,
    action TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    done_at TEXT,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS pms_outbox_due ON pms_outbox (status, next_at);
