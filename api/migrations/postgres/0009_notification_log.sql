-- Notifications (api/src/notifications): one row per event and recipient (never two), one
-- delivery per channel tried, and each delivery's status history. Times UTC milliseconds.

CREATE TABLE notifications (
    id              TEXT PRIMARY KEY,
    -- What and to whom: 'patient.booked', 'doctor.reminder', 'admin.not_closed', …
    event           TEXT NOT NULL,
    recipient_id    TEXT NOT NULL REFERENCES users (id),
    recipient_role  TEXT NOT NULL,
    consultation_id TEXT REFERENCES consultations (id),
    -- One notification per key, however often its cause is seen.
    dedup_key       TEXT NOT NULL UNIQUE,
    created_at      BIGINT NOT NULL
);
CREATE INDEX notifications_consultation ON notifications (consultation_id, created_at);
CREATE INDEX notifications_recipient ON notifications (recipient_id, created_at);
CREATE INDEX notifications_created ON notifications (created_at);

-- A notification on one channel. Status moves forward only: queued → sent → delivered → read,
-- or failed (from queued or sent; a later sent/delivered/read still wins).
CREATE TABLE notification_deliveries (
    id              TEXT PRIMARY KEY,
    notification_id TEXT NOT NULL REFERENCES notifications (id),
    channel         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'delivered', 'read', 'failed')),
    -- The secret of the message's tracked link (opening it is a "read").
    open_token      TEXT UNIQUE,
    detail          TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    sent_at         BIGINT,
    delivered_at    BIGINT,
    read_at         BIGINT,
    failed_at       BIGINT
);
CREATE INDEX notification_deliveries_of ON notification_deliveries (notification_id);

-- Every status a delivery was given, with where it came from.
CREATE TABLE notification_statuses (
    id          TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES notification_deliveries (id),
    -- 1, 2, … per delivery: the order they were given in (times may tie).
    seq         BIGINT NOT NULL,
    status      TEXT NOT NULL,
    -- 'vizit', 'smtp', 'link', a provider's callback, …
    source      TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE UNIQUE INDEX notification_statuses_of ON notification_statuses (delivery_id, seq);
