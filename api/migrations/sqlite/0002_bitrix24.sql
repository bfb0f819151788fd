-- Slots from Bitrix24, bookings pushed back, inbound events (see api/src/integrations/bitrix24).

-- Where a slot came from: 'manual' (API) or 'bitrix24' (sync). Sync only touches its own.
ALTER TABLE slots ADD COLUMN source TEXT NOT NULL DEFAULT 'manual';
-- A patient's contact in the clinic's CRM, linked to their Bitrix24 bookings when known.
ALTER TABLE users ADD COLUMN crm_contact_id TEXT;
-- The booking that holds this consultation's time in Bitrix24, and where that stands:
-- NULL (no integration) | pending | synced | conflict | released.
ALTER TABLE consultations ADD COLUMN external_booking_id TEXT;
ALTER TABLE consultations ADD COLUMN external_sync TEXT;
-- Set when the booked time changed in Bitrix24 under a live consultation (never silently dropped).
ALTER TABLE consultations ADD COLUMN slot_conflict_at BIGINT;
ALTER TABLE consultations ADD COLUMN slot_conflict TEXT;

-- Calls to external systems, written in the same transaction as the change they carry, delivered
-- in order per consultation, retried with backoff until done (or failed for good, for a person).
CREATE TABLE outbound_calls (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    system          TEXT NOT NULL,
    operation       TEXT NOT NULL,
    consultation_id TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    last_error      TEXT,
    outcome         TEXT,
    created_at      BIGINT NOT NULL,
    done_at         BIGINT
);
CREATE INDEX outbound_calls_due ON outbound_calls (status, next_attempt_at);
CREATE INDEX outbound_calls_consultation ON outbound_calls (consultation_id, id);

-- Inbound webhooks after verification; the unique key drops duplicates.
CREATE TABLE integration_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    system       TEXT NOT NULL,
    dedup_key    TEXT NOT NULL,
    event        TEXT NOT NULL,
    object_id    TEXT,
    received_at  BIGINT NOT NULL,
    processed_at BIGINT,
    outcome      TEXT,
    UNIQUE (system, dedup_key)
);
CREATE INDEX integration_events_pending ON integration_events (system, processed_at);

-- Health of each integration, for admins.
CREATE TABLE integration_state (
    system          TEXT PRIMARY KEY,
    last_sync_at    BIGINT,
    last_success_at BIGINT,
    last_error      TEXT,
    last_error_at   BIGINT,
    last_event_at   BIGINT,
    last_report     TEXT
);
