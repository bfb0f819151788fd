-- Identity (api/src/identity): patients who sign in through ESIA (Gosuslugi), the personal
-- data ESIA gave, the consents 152-FZ requires, the browser flows in progress, and how each
-- party of a consultation was identified (the telemedicine procedure, order 965n).

-- How a session was opened: password (staff), portal, demo, esia.
ALTER TABLE sessions ADD COLUMN method TEXT;

-- A patient's ESIA account: `oid` is ESIA's id of the person (urn:esia:sbj_id).
CREATE TABLE esia_accounts (
    oid           TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL UNIQUE REFERENCES users (id),
    trusted       BIGINT NOT NULL,
    linked_at     BIGINT NOT NULL,
    linked_by     TEXT NOT NULL,
    last_login_at BIGINT NOT NULL
);

-- Verified identifiers of patients the portal registered, for linking an ESIA account to
-- them on a verified match only (SNILS, or name + birth date + a confirmed contact).
ALTER TABLE users ADD COLUMN snils TEXT;
ALTER TABLE users ADD COLUMN birth_date TEXT;
CREATE INDEX users_snils ON users (snils);

-- What ESIA gave about a patient (JSON, see identity/person.rs), refreshed at each login.
CREATE TABLE personal_data (
    user_id    TEXT PRIMARY KEY REFERENCES users (id),
    source     TEXT NOT NULL,
    data       TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    fetched_at BIGINT NOT NULL
);

-- Each consent is separate (152-FZ art. 9 and 10): its kind, the version of its text, when.
CREATE TABLE consents (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    kind         TEXT NOT NULL,
    version      TEXT NOT NULL,
    given_at     BIGINT NOT NULL,
    ip           TEXT,
    withdrawn_at BIGINT
);
CREATE INDEX consents_user ON consents (user_id, kind);

-- A sign-in started in a browser: `state` goes to ESIA; the browser holds a nonce (a cookie)
-- whose hash is here, so only that browser can finish it, once.
CREATE TABLE esia_logins (
    state      TEXT PRIMARY KEY,
    nonce_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);

-- A person ESIA vouched for who has no patient yet: waiting for their consents (minutes).
CREATE TABLE esia_registrations (
    id         TEXT PRIMARY KEY,
    nonce_hash TEXT NOT NULL,
    oid        TEXT NOT NULL,
    trusted    BIGINT NOT NULL,
    data       TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- How each party of a consultation was identified when they joined its call.
CREATE TABLE identifications (
    id              TEXT PRIMARY KEY,
    consultation_id TEXT NOT NULL REFERENCES consultations (id),
    user_id         TEXT NOT NULL REFERENCES users (id),
    role            TEXT NOT NULL,
    method          TEXT NOT NULL,
    esia_oid        TEXT,
    trusted         BIGINT,
    identified_at   BIGINT NOT NULL
);
CREATE INDEX identifications_consultation ON identifications (consultation_id, identified_at);
