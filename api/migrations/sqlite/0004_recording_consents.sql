-- Consent to recording, given and withdrawn in the call page: the evidence of who agreed to the
-- call being recorded, and when (152-FZ: consent must be provable; it may be withdrawn).
CREATE TABLE recording_consents (
    id              TEXT PRIMARY KEY,
    consultation_id TEXT NOT NULL REFERENCES consultations (id),
    user_id         TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('doctor', 'patient')),
    consent         INTEGER NOT NULL CHECK (consent IN (0, 1)),
    at              BIGINT NOT NULL
);
CREATE INDEX recording_consents_consultation ON recording_consents (consultation_id, at);
