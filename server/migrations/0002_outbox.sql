-- The notifier's tables (notifier/outbox.py, notifier/replies.py, notifier/links.py).
-- No foreign keys to the clinic's tables: texts outlive schedule edits, and this file
-- must not depend on their shape. Times are ISO 8601 UTC text, fixed width, so they
-- compare as strings.

-- Every text we mean to send. A row is written in the same transaction as its cause
-- and sent by the worker after commit: never lost, and (dedupe_key) never queued twice.
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key TEXT NOT NULL UNIQUE,
    visit_id TEXT,
    kind TEXT NOT NULL,
    to_number TEXT NOT NULL,
    body TEXT NOT NULL,
    segments INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'held')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    expires_at TEXT,
    uncertain INTEGER NOT NULL DEFAULT 0,
    sending_at TEXT,
    provider_sid TEXT,
    provider_status TEXT,
    error_code TEXT,
    error_message TEXT,
    told_start TEXT,
    told_p10 TEXT,
    told_p90 TEXT,
    day TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_visit ON outbox(visit_id);
CREATE INDEX IF NOT EXISTS outbox_sid ON outbox(provider_sid);

-- Replies from clients. Twilio retries webhooks: the provider's message id de-duplicates.
CREATE TABLE IF NOT EXISTS inbound_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_sid TEXT NOT NULL UNIQUE,
    from_number TEXT NOT NULL,
    to_number TEXT,
    body TEXT NOT NULL,
    kind TEXT NOT NULL,
    visit_id TEXT,
    needs_reception INTEGER NOT NULL DEFAULT 0,
    handled_at TEXT,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbound_reception ON inbound_messages(needs_reception, handled_at);

-- Numbers that said STOP (or that the carrier reports as unsubscribed): never texted again
-- until they say START.
CREATE TABLE IF NOT EXISTS opt_outs (
    number TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    opted_out_at TEXT NOT NULL
);

-- Reschedule links already used: single use.
CREATE TABLE IF NOT EXISTS link_uses (
    nonce TEXT PRIMARY KEY,
    visit_id TEXT NOT NULL,
    used_at TEXT NOT NULL
);

-- Service recovery gestures offered (one per visit).
CREATE TABLE IF NOT EXISTS recovery_offers (
    visit_id TEXT PRIMARY KEY,
    gesture TEXT NOT NULL,
    waited_past_min REAL NOT NULL,
    offered_at TEXT NOT NULL
);
