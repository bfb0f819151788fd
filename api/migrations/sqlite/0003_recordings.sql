-- The catalogue of recordings: per-participant WebM files and the composite MP4 of each
-- consultation, where they are, and where they stand.
CREATE TABLE recordings (
    id               TEXT PRIMARY KEY,
    consultation_id  TEXT NOT NULL REFERENCES consultations (id),
    kind             TEXT NOT NULL CHECK (kind IN ('participant', 'composite')),
    participant_role TEXT CHECK (participant_role IN ('doctor', 'patient')),
    status           TEXT NOT NULL CHECK (status IN ('recording', 'processing', 'uploading', 'stored', 'failed', 'deleted')),
    content_type     TEXT NOT NULL,
    storage_key      TEXT NOT NULL UNIQUE,
    started_at       BIGINT,
    duration_ms      BIGINT,
    size_bytes       BIGINT,
    sha256           TEXT,
    error            TEXT,
    legal_hold_at    BIGINT,
    legal_hold_by    TEXT,
    legal_hold_reason TEXT,
    created_at       BIGINT NOT NULL,
    stored_at        BIGINT,
    deleted_at       BIGINT,
    deleted_reason   TEXT
);
CREATE INDEX recordings_consultation ON recordings (consultation_id);
CREATE INDEX recordings_status ON recordings (status, created_at);
