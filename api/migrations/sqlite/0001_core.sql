-- Consultations core (SQLite). Times are UTC milliseconds since the epoch; money is kopecks.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('patient', 'doctor', 'admin', 'head_doctor')),
    email         TEXT UNIQUE,
    password_hash TEXT,
    name          TEXT NOT NULL,
    phone         TEXT,
    created_at    BIGINT NOT NULL,
    disabled_at   BIGINT
);

CREATE TABLE doctors (
    user_id            TEXT PRIMARY KEY REFERENCES users (id),
    specialty          TEXT NOT NULL,
    bitrix_resource_id TEXT UNIQUE,
    time_zone          TEXT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE slots (
    id            TEXT PRIMARY KEY,
    doctor_id     TEXT NOT NULL REFERENCES doctors (user_id),
    starts_at     BIGINT NOT NULL,
    ends_at       BIGINT NOT NULL CHECK (ends_at > starts_at),
    time_zone     TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('free', 'held', 'booked', 'blocked')),
    price_kopecks BIGINT NOT NULL CHECK (price_kopecks >= 0),
    external_id   TEXT UNIQUE,
    created_at    BIGINT NOT NULL,
    UNIQUE (doctor_id, starts_at)
);
CREATE INDEX slots_doctor_time ON slots (doctor_id, starts_at);

CREATE TABLE consultations (
    id            TEXT PRIMARY KEY,
    slot_id       TEXT NOT NULL REFERENCES slots (id),
    doctor_id     TEXT NOT NULL REFERENCES users (id),
    patient_id    TEXT NOT NULL REFERENCES users (id),
    status        TEXT NOT NULL CHECK (status IN ('booked', 'paid', 'in_progress', 'completed', 'cancelled', 'expired')),
    price_kopecks BIGINT NOT NULL,
    starts_at     BIGINT NOT NULL,
    ends_at       BIGINT NOT NULL,
    time_zone     TEXT NOT NULL,
    booked_at     BIGINT NOT NULL,
    pay_by        BIGINT NOT NULL,
    paid_at       BIGINT,
    started_at    BIGINT,
    completed_at  BIGINT,
    cancelled_at  BIGINT,
    cancelled_by  TEXT,
    cancel_reason TEXT,
    conclusion    TEXT,
    overdue_at    BIGINT,
    updated_at    BIGINT NOT NULL
);
-- No double booking, ever: one live consultation per slot, enforced by the database.
CREATE UNIQUE INDEX consultations_one_live_per_slot ON consultations (slot_id)
    WHERE status IN ('booked', 'paid', 'in_progress', 'completed');
CREATE INDEX consultations_patient ON consultations (patient_id, starts_at);
CREATE INDEX consultations_doctor ON consultations (doctor_id, starts_at);
CREATE INDEX consultations_status ON consultations (status, ends_at);

-- Domain events, written in the same transaction as the change; later issues deliver them.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event           TEXT NOT NULL,
    consultation_id TEXT,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    attempts        BIGINT NOT NULL DEFAULT 0
);

-- Append-only record of who read or changed what.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT,
    actor_role  TEXT,
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id   TEXT,
    ip          TEXT,
    details     TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
