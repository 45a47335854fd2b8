-- Practice-management connectors (issue 19; SQLite's 0010): each connector's sync state per
-- clinic, and the outbox of what is written back to the practice system.
CREATE TABLE pms_sync (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    pms TEXT NOT NULL,
    cursor TEXT,
    events_seen BIGINT NOT NULL DEFAULT 0,
    last_attempt_at TIMESTAMPTZ,
    last_ok_at TIMESTAMPTZ,
    last_full_at TIMESTAMPTZ,
    last_error TEXT,
    progress JSONB NOT NULL DEFAULT '{}',
    PRIMARY KEY (clinic_id, pms)
);
CREATE TABLE pms_outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    pms TEXT NOT NULL,
    dedupe TEXT NOT NULL,
    visit_id TEXT NOT NULL,
    action TEXT NOT NULL,
    data JSONB NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    done_at TIMESTAMPTZ,
    last_error TEXT,
    UNIQUE (clinic_id, dedupe)
);
CREATE INDEX pms_outbox_due ON pms_outbox (clinic_id, status, next_at);
