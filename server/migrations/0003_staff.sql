-- Staff accounts and sessions for the reception console, and the flags reception sets
-- (texts paused, waiting in the car). Written by server/web and by apply_event.

CREATE TABLE IF NOT EXISTS staff_users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,     -- scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>
    created_at TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);

-- A session cookie is 256 random bits: only its sha256 is kept, as for API tokens.
CREATE TABLE IF NOT EXISTS staff_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES staff_users(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,              -- the token every form and POST of this session carries
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- Every login attempt, for the lockout (5 failures in 15 minutes) and for the record.
CREATE TABLE IF NOT EXISTS login_attempts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL COLLATE NOCASE,
    remote TEXT,
    at TEXT NOT NULL,
    ok INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS login_attempts_name ON login_attempts(name, id);

-- Reception's "pause texts", kept in step with the pause_texts / resume_texts events.
-- The notifier must not queue an automatic text while a row covers it:
--   scope 'clinic' (client_id '') pauses every text, scope 'client' pauses that client's.
--   SELECT 1 FROM texts_paused WHERE scope = 'clinic' OR client_id = :client
CREATE TABLE IF NOT EXISTS texts_paused (
    scope TEXT NOT NULL CHECK (scope IN ('clinic', 'client')),
    client_id TEXT NOT NULL DEFAULT '',
    paused_at TEXT NOT NULL,
    paused_by TEXT NOT NULL,
    PRIMARY KEY (scope, client_id)
);

-- "I'm waiting in my car, text me when it's my turn" from the client's status page
-- (the in_car event). The notifier texts these visits when they are called in.
CREATE TABLE IF NOT EXISTS waiting_in_car (
    visit_id TEXT PRIMARY KEY,
    since TEXT NOT NULL
);
