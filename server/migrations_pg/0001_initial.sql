-- The PostgreSQL backend's schema (server/store/postgres.py): the SQLite schema as of its
-- migration 0009, with every row belonging to a clinic. The practice-management system's ids
-- (visits, clients, pets, vets, types) are unique per clinic only, so they are keyed by
-- (clinic_id, id); generated ids (event seq, outbox ids) are global and grow with time.
-- Times are timestamptz, days date, flags boolean, the event log's data jsonb.

CREATE TABLE clinics (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    timezone TEXT NOT NULL,
    region TEXT NOT NULL DEFAULT 'US',
    phone TEXT,
    settings JSONB NOT NULL DEFAULT '{}',
    configured BOOLEAN NOT NULL DEFAULT false   -- false: the placeholder made when the store first opened
);

CREATE TABLE vets (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (clinic_id, id)
);

CREATE TABLE appointment_types (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    booked_min DOUBLE PRECISION NOT NULL CHECK (booked_min > 0),
    PRIMARY KEY (clinic_id, id)
);

CREATE TABLE clients (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    mobile TEXT,
    sms_consent BOOLEAN NOT NULL DEFAULT false,
    language TEXT NOT NULL DEFAULT 'en',
    notes TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (clinic_id, id)
);
CREATE INDEX clients_mobile ON clients (clinic_id, mobile);

CREATE TABLE pets (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    id TEXT NOT NULL,
    client_id TEXT,
    name TEXT NOT NULL,
    species TEXT,
    sex TEXT CHECK (sex IN ('female', 'male', 'unknown')),
    PRIMARY KEY (clinic_id, id),
    FOREIGN KEY (clinic_id, client_id) REFERENCES clients (clinic_id, id)
);
CREATE INDEX pets_client ON pets (clinic_id, client_id);

CREATE TABLE appointments (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('appointment', 'walkin', 'emergency')),
    day DATE NOT NULL,                -- clinic-local date
    vet_id TEXT NOT NULL,
    type_id TEXT,
    pet_id TEXT,
    pet_name TEXT,
    scheduled TIMESTAMPTZ,
    booked_min DOUBLE PRECISION NOT NULL,
    expected_min DOUBLE PRECISION,
    priority DOUBLE PRECISION,
    status TEXT NOT NULL DEFAULT 'booked'
        CHECK (status IN ('booked', 'waiting', 'in_consult', 'done', 'noshow', 'cancelled')),
    arrived TIMESTAMPTZ,
    started TIMESTAMPTZ,
    ended TIMESTAMPTZ,
    PRIMARY KEY (clinic_id, id),
    FOREIGN KEY (clinic_id, vet_id) REFERENCES vets (clinic_id, id),
    FOREIGN KEY (clinic_id, type_id) REFERENCES appointment_types (clinic_id, id),
    FOREIGN KEY (clinic_id, pet_id) REFERENCES pets (clinic_id, id)
);
CREATE INDEX appointments_day ON appointments (clinic_id, day, vet_id);
CREATE INDEX appointments_pet ON appointments (clinic_id, pet_id);

CREATE TABLE events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    at TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    type TEXT NOT NULL,
    appointment_id TEXT,
    data JSONB NOT NULL DEFAULT '{}',
    actor TEXT NOT NULL
);
CREATE INDEX events_clinic_seq ON events (clinic_id, seq);
CREATE INDEX events_appointment ON events (clinic_id, appointment_id);
CREATE INDEX events_clinic_at ON events (clinic_id, at);

CREATE TABLE vet_status (
    clinic_id TEXT NOT NULL,
    vet_id TEXT NOT NULL,
    unavailable_until TIMESTAMPTZ,
    PRIMARY KEY (clinic_id, vet_id),
    FOREIGN KEY (clinic_id, vet_id) REFERENCES vets (clinic_id, id)
);

CREATE TABLE vet_blocks (
    clinic_id TEXT NOT NULL,
    id TEXT NOT NULL,
    vet_id TEXT NOT NULL,
    day DATE NOT NULL,
    start_at TIMESTAMPTZ NOT NULL,
    end_at TIMESTAMPTZ NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (clinic_id, id),
    FOREIGN KEY (clinic_id, vet_id) REFERENCES vets (clinic_id, id)
);
CREATE INDEX vet_blocks_day ON vet_blocks (clinic_id, day, vet_id);

-- A token names its clinic: a request that names no clinic (kiosk, API) takes it from the token.
CREATE TABLE tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('pms', 'kiosk', 'reception', 'display')),
    hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT false
);

CREATE TABLE idempotency (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    key TEXT NOT NULL,
    response JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (clinic_id, key)
);

CREATE TABLE models (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    learned_at TIMESTAMPTZ NOT NULL,
    data JSONB NOT NULL
);

-- The notifier's tables.
CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    dedupe_key TEXT NOT NULL,
    visit_id TEXT,
    kind TEXT NOT NULL,
    to_number TEXT NOT NULL,
    body TEXT NOT NULL,
    segments INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'held')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    uncertain BOOLEAN NOT NULL DEFAULT false,
    sending_at TIMESTAMPTZ,
    provider_sid TEXT,
    provider_status TEXT,
    error_code TEXT,
    error_message TEXT,
    told_start TIMESTAMPTZ,
    told_p10 TIMESTAMPTZ,
    told_p90 TIMESTAMPTZ,
    day DATE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (clinic_id, dedupe_key)
);
CREATE INDEX outbox_due ON outbox (clinic_id, status, next_attempt_at);
CREATE INDEX outbox_visit ON outbox (clinic_id, visit_id);
CREATE INDEX outbox_sid ON outbox (provider_sid);
CREATE INDEX outbox_to_number ON outbox (clinic_id, to_number, created_at);

CREATE TABLE outbox_visits (
    row_id BIGINT NOT NULL REFERENCES outbox(id),
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    visit_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    told_start TIMESTAMPTZ NOT NULL,
    told_p10 TIMESTAMPTZ NOT NULL,
    told_p90 TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (row_id, visit_id)
);
CREATE INDEX outbox_visits_visit ON outbox_visits (clinic_id, visit_id);

CREATE TABLE inbound_messages (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    provider_sid TEXT NOT NULL,
    from_number TEXT NOT NULL,
    to_number TEXT,
    body TEXT NOT NULL,
    kind TEXT NOT NULL,
    visit_id TEXT,
    needs_reception BOOLEAN NOT NULL DEFAULT false,
    handled_at TIMESTAMPTZ,
    received_at TIMESTAMPTZ NOT NULL,
    UNIQUE (clinic_id, provider_sid)
);
CREATE INDEX inbound_reception ON inbound_messages (clinic_id, needs_reception, handled_at);

CREATE TABLE inbound_media (
    inbound_id BIGINT NOT NULL REFERENCES inbound_messages(id),
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    n INTEGER NOT NULL,
    url TEXT NOT NULL,
    content_type TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (inbound_id, n)
);

CREATE TABLE opt_outs (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    number TEXT NOT NULL,
    source TEXT NOT NULL,
    opted_out_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (clinic_id, number)
);

CREATE TABLE link_uses (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    nonce TEXT NOT NULL,
    visit_id TEXT NOT NULL,
    used_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (clinic_id, nonce)
);

CREATE TABLE recovery_offers (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    visit_id TEXT NOT NULL,
    gesture TEXT NOT NULL,
    waited_past_min DOUBLE PRECISION NOT NULL,
    offered_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (clinic_id, visit_id)
);

-- Reception's accounts: names unique per clinic, without case.
CREATE TABLE staff_users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX staff_users_name ON staff_users (clinic_id, lower(name));

CREATE TABLE staff_sessions (
    token_hash TEXT PRIMARY KEY,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    user_id BIGINT NOT NULL REFERENCES staff_users(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE login_attempts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    name TEXT NOT NULL,
    remote TEXT,
    at TIMESTAMPTZ NOT NULL,
    ok BOOLEAN NOT NULL
);
CREATE INDEX login_attempts_name ON login_attempts (clinic_id, lower(name), id);
CREATE INDEX login_attempts_remote ON login_attempts (clinic_id, remote, id);

CREATE TABLE texts_paused (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    scope TEXT NOT NULL CHECK (scope IN ('clinic', 'client')),
    client_id TEXT NOT NULL DEFAULT '',
    paused_at TIMESTAMPTZ NOT NULL,
    paused_by TEXT NOT NULL,
    PRIMARY KEY (clinic_id, scope, client_id)
);

CREATE TABLE waiting_in_car (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    visit_id TEXT NOT NULL,
    since TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (clinic_id, visit_id)
);

CREATE TABLE promises (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    visit_id TEXT NOT NULL,
    start TIMESTAMPTZ NOT NULL,
    p10 TIMESTAMPTZ NOT NULL,
    p90 TIMESTAMPTZ NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (clinic_id, visit_id)
);
