-- A consent in force is recorded once per kind and version of its text (two tabs finishing
-- one registration, or a repeated sign-in, add nothing).
CREATE UNIQUE INDEX consents_once ON consents (user_id, kind, version) WHERE withdrawn_at IS NULL;
