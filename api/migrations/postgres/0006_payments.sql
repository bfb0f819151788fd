-- Payments, refunds and fiscal receipts (api/src/payments), and outgoing e-mail
-- (api/src/notifications). Money is kopecks; times UTC milliseconds.

-- One payment attempt of a consultation at the payment provider (YooKassa). A consultation has
-- at most one attempt in flight or succeeded; a canceled one may be followed by another.
CREATE TABLE payments (
    id                  TEXT PRIMARY KEY,
    consultation_id     TEXT NOT NULL REFERENCES consultations (id),
    provider            TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('awaiting_contact', 'creating', 'pending',
                        'waiting_for_capture', 'succeeded', 'canceled', 'failed')),
    amount_kopecks      BIGINT NOT NULL CHECK (amount_kopecks > 0),
    refunded_kopecks    BIGINT NOT NULL DEFAULT 0,
    provider_payment_id TEXT UNIQUE,
    -- Sent with the create call on every attempt, stored before the first.
    idempotence_key     TEXT NOT NULL UNIQUE,
    confirmation_url    TEXT,
    return_url          TEXT,
    -- Where the receipt goes (54-FZ): the patient's e-mail or phone.
    receipt_email       TEXT,
    receipt_phone       TEXT,
    cancel_party        TEXT,
    cancel_reason       TEXT,
    last_error          TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    succeeded_at        BIGINT,
    canceled_at         BIGINT
);
CREATE UNIQUE INDEX payments_one_live_per_consultation ON payments (consultation_id)
    WHERE status IN ('awaiting_contact', 'creating', 'pending', 'waiting_for_capture', 'succeeded');
CREATE INDEX payments_consultation ON payments (consultation_id, created_at);
CREATE INDEX payments_status ON payments (status, updated_at);

CREATE TABLE refunds (
    id                 TEXT PRIMARY KEY,
    payment_id         TEXT NOT NULL REFERENCES payments (id),
    consultation_id    TEXT NOT NULL REFERENCES consultations (id),
    status             TEXT NOT NULL CHECK (status IN ('creating', 'pending', 'succeeded', 'canceled', 'failed')),
    amount_kopecks     BIGINT NOT NULL CHECK (amount_kopecks > 0),
    reason             TEXT NOT NULL,
    requested_by       TEXT,
    provider_refund_id TEXT UNIQUE,
    idempotence_key    TEXT NOT NULL UNIQUE,
    last_error         TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    succeeded_at       BIGINT
);
CREATE INDEX refunds_payment ON refunds (payment_id);
CREATE INDEX refunds_status ON refunds (status, updated_at);

-- The fiscal receipt (чек) of a succeeded payment or refund, read back from the provider.
CREATE TABLE receipts (
    id                     TEXT PRIMARY KEY,
    payment_id             TEXT NOT NULL REFERENCES payments (id),
    refund_id              TEXT REFERENCES refunds (id),
    kind                   TEXT NOT NULL CHECK (kind IN ('payment', 'refund')),
    status                 TEXT NOT NULL CHECK (status IN ('pending', 'registered')),
    amount_kopecks         BIGINT NOT NULL,
    provider_receipt_id    TEXT UNIQUE,
    fiscal_document_number TEXT,
    fiscal_storage_number  TEXT,
    fiscal_attribute       TEXT,
    registered_at          TEXT,
    fiscal_provider_id     TEXT,
    items                  TEXT,
    attempts               BIGINT NOT NULL DEFAULT 0,
    -- Not registered in time: flagged for the clinic's admins.
    flagged_at             BIGINT,
    emailed_at             BIGINT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE UNIQUE INDEX receipts_one_per_payment ON receipts (payment_id) WHERE kind = 'payment';
CREATE UNIQUE INDEX receipts_one_per_refund ON receipts (refund_id) WHERE refund_id IS NOT NULL;
CREATE INDEX receipts_status ON receipts (status, created_at);

-- Outgoing e-mail, sent by the SMTP worker through the outbound queue (system 'smtp'): an outage
-- delays a message and loses none.
CREATE TABLE emails (
    id           TEXT PRIMARY KEY,
    recipient    TEXT NOT NULL,
    subject      TEXT NOT NULL,
    text_body    TEXT NOT NULL,
    html_body    TEXT,
    -- What it is about, for admins and deduplication (e.g. 'receipt', 'receipt:<id>').
    kind         TEXT NOT NULL,
    dedup_key    TEXT NOT NULL UNIQUE,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    message_id   TEXT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    sent_at      BIGINT
);
CREATE INDEX emails_status ON emails (status, created_at);
