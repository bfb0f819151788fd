-- The platform layer the capabilities share (api/src/platform): outbox deliveries per
-- subscriber, the outbound queue per system, the inbound webhook store, the scheduler.

-- One row per (outbox event, subscriber interested in its type), written with the event. A
-- subscriber's progress is the state of its rows: delivered in order per consultation, retried
-- with backoff, never skipped.
CREATE TABLE outbox_deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        BIGINT NOT NULL REFERENCES outbox (id),
    subscriber      TEXT NOT NULL,
    consultation_id TEXT,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    done_at         BIGINT,
    UNIQUE (subscriber, event_id)
);
CREATE INDEX outbox_deliveries_due ON outbox_deliveries (subscriber, status, next_attempt_at);
CREATE INDEX outbox_deliveries_order ON outbox_deliveries (subscriber, consultation_id, status, event_id);
CREATE INDEX outbox_created ON outbox (created_at);

-- Outbound calls: the key sent to the external system so a repeat is recognised, stored before
-- the first attempt; the call's own data; claimed per (system, consultation).
ALTER TABLE outbound_calls ADD COLUMN idempotency_key TEXT;
ALTER TABLE outbound_calls ADD COLUMN payload TEXT;
CREATE INDEX outbound_calls_system_order ON outbound_calls (system, consultation_id, status, id);
CREATE INDEX outbound_calls_system_due ON outbound_calls (system, status, next_attempt_at);

-- Inbound webhooks: the verified body, and retries of the processing.
ALTER TABLE integration_events ADD COLUMN payload TEXT;
ALTER TABLE integration_events ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE integration_events ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE integration_events ADD COLUMN locked_until BIGINT;
ALTER TABLE integration_events ADD COLUMN last_error TEXT;

-- At-time jobs (reminders, expiry, overdue, retention). `key` names a job once: scheduling it
-- again moves it. Recurring jobs have `every_ms` and come back after each run.
CREATE TABLE scheduled_jobs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         TEXT NOT NULL,
    job_key      TEXT NOT NULL UNIQUE,
    due_at       BIGINT NOT NULL,
    every_ms     BIGINT,
    payload      TEXT,
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts     BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    done_at      BIGINT
);
CREATE INDEX scheduled_jobs_due ON scheduled_jobs (status, due_at);
