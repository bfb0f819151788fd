-- Documents (api/src/documents): questionnaires as versioned forms, the answers of each
-- consultation's questionnaires, and patients' requests to delete their medical documents.

-- A form's questions (JSON, see documents/forms.rs); a new version never changes an old one,
-- and a questionnaire keeps the version it was assigned with.
CREATE TABLE questionnaire_forms (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    title      TEXT NOT NULL,
    questions  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT,
    UNIQUE (kind, version)
);

-- One questionnaire of a kind per consultation. `answers` (JSON) is medical data: NULL once
-- deleted on the patient's request (the row stays, as the record that it existed and went).
CREATE TABLE questionnaires (
    id                  TEXT PRIMARY KEY,
    consultation_id     TEXT NOT NULL REFERENCES consultations (id),
    patient_id          TEXT NOT NULL REFERENCES users (id),
    form_id             TEXT NOT NULL REFERENCES questionnaire_forms (id),
    kind                TEXT NOT NULL,
    assigned_by         TEXT,
    assigned_at         BIGINT NOT NULL,
    answers             TEXT,
    saved_at            BIGINT,
    submitted_at        BIGINT,
    read_at             BIGINT,
    deleted_at          BIGINT,
    deletion_request_id TEXT,
    legal_hold          TEXT,
    UNIQUE (consultation_id, kind)
);
CREATE INDEX questionnaires_patient ON questionnaires (patient_id);

-- A patient's request to delete their medical documents (152-FZ art. 14, 20, 21): answered by
-- the clinic by `due_at` (working days), once extendable with a reason. `act` (JSON) is the
-- destruction act: what was deleted and when, what was kept and why.
CREATE TABLE deletion_requests (
    id               TEXT PRIMARY KEY,
    patient_id       TEXT NOT NULL REFERENCES users (id),
    comment          TEXT,
    status           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    due_at           BIGINT NOT NULL,
    extended_at      BIGINT,
    extension_reason TEXT,
    overdue_at       BIGINT,
    answered_at      BIGINT,
    answered_by      TEXT,
    answer           TEXT,
    act              TEXT
);
CREATE INDEX deletion_requests_patient ON deletion_requests (patient_id);
CREATE INDEX deletion_requests_status ON deletion_requests (status, due_at);
