-- The clinic, its schedule and the append-only event log.
CREATE TABLE clinic (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    timezone TEXT NOT NULL,          -- IANA key ("America/Chicago") or a fixed offset ("-05:00")
    region TEXT NOT NULL DEFAULT 'US',   -- for reading phone numbers typed without a country code
    phone TEXT,
    settings TEXT NOT NULL DEFAULT '{}'  -- JSON
);

CREATE TABLE vets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

CREATE TABLE appointment_types (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    booked_min REAL NOT NULL CHECK (booked_min > 0)
);

CREATE TABLE clients (
    id TEXT PRIMARY KEY,             -- the practice-management system's id
    name TEXT NOT NULL,
    mobile TEXT,                     -- E.164
    sms_consent INTEGER NOT NULL DEFAULT 0,
    language TEXT NOT NULL DEFAULT 'en',
    notes TEXT NOT NULL DEFAULT ''
);
CREATE INDEX clients_mobile ON clients(mobile);

CREATE TABLE pets (
    id TEXT PRIMARY KEY,
    client_id TEXT REFERENCES clients(id),
    name TEXT NOT NULL,
    species TEXT,
    sex TEXT CHECK (sex IN ('female', 'male', 'unknown'))
);

-- Every visit of every day: booked appointments, walk-ins and emergencies. The time columns
-- are kept in step with the event log in the same transaction, so reading today's state
-- is one query; the log stays the record of who did what when.
CREATE TABLE appointments (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('appointment', 'walkin', 'emergency')),
    day TEXT NOT NULL,               -- clinic-local date, YYYY-MM-DD
    vet_id TEXT NOT NULL REFERENCES vets(id),
    type_id TEXT REFERENCES appointment_types(id),
    pet_id TEXT REFERENCES pets(id),
    pet_name TEXT,                   -- walk-ins and replay visits may have no pet record
    scheduled TEXT,                  -- ISO 8601 UTC
    booked_min REAL NOT NULL,
    expected_min REAL,
    priority REAL,
    status TEXT NOT NULL DEFAULT 'booked'
        CHECK (status IN ('booked', 'waiting', 'in_consult', 'done', 'noshow', 'cancelled')),
    arrived TEXT,
    started TEXT,
    ended TEXT
);
CREATE INDEX appointments_day ON appointments(day, vet_id);

CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,                -- when it happened (ISO 8601 UTC)
    recorded_at TEXT NOT NULL,
    type TEXT NOT NULL,
    appointment_id TEXT,
    data TEXT NOT NULL DEFAULT '{}', -- JSON: the event as posted
    actor TEXT NOT NULL              -- "token:<name>", "user:<name>", "replay", "cli"
);
CREATE INDEX events_appointment ON events(appointment_id);

-- Vet-level overrides ("running late", "away until") in force, kept in step with the log.
CREATE TABLE vet_status (
    vet_id TEXT PRIMARY KEY REFERENCES vets(id),
    unavailable_until TEXT
);

CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('pms', 'kiosk', 'reception', 'display')),
    hash TEXT NOT NULL UNIQUE,       -- sha256 of the token: tokens are long and random
    created_at TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);

-- Answers already given for an idempotency key (kiosk offline queue re-delivery).
CREATE TABLE idempotency (
    key TEXT PRIMARY KEY,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Kept models learned from history (`waitroom learn`).
CREATE TABLE models (
    id INTEGER PRIMARY KEY,
    learned_at TEXT NOT NULL,
    data TEXT NOT NULL
);
