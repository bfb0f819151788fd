-- The chat of a consultation (api/src/chat): what its patient and doctor wrote and the files
-- they sent (photos, PDFs of analyses, the doctor's conclusion), kept as part of the
-- consultation's medical record. A file's bytes are in the object store under `file_key`.
-- `seq` orders a consultation's messages and is the cursor clients wait on; `client_id`
-- makes a resent message (a retry after a lost answer) a no-op.
CREATE TABLE chat_messages (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    consultation_id TEXT NOT NULL REFERENCES consultations (id),
    sender_id       TEXT NOT NULL REFERENCES users (id),
    sender_role     TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    body            TEXT,
    file_key        TEXT,
    file_name       TEXT,
    file_type       TEXT,
    file_size       BIGINT,
    file_sha256     TEXT,
    conclusion      BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    UNIQUE (consultation_id, sender_id, client_id)
);
CREATE INDEX chat_messages_consultation ON chat_messages (consultation_id, seq);
