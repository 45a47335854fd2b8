-- The range a client was told at check-in (kiosk or desk): a later text is owed when it
-- no longer holds, and reception sees who waited past it.
CREATE TABLE IF NOT EXISTS promises (
    visit_id TEXT PRIMARY KEY,
    start TEXT NOT NULL,
    p10 TEXT NOT NULL,
    p90 TEXT NOT NULL,
    at TEXT NOT NULL
);
