-- E-mail (api/src/notifications): what a message is about, its inline images, and its tries.
-- `ref_id`: the id of the thing it is about (a receipt for kind 'receipt').
ALTER TABLE emails ADD COLUMN ref_id TEXT;
-- Images the HTML shows (`cid:`): JSON [{"contentId", "contentType", "hex"}].
ALTER TABLE emails ADD COLUMN inline_images TEXT;
ALTER TABLE emails ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
CREATE INDEX emails_kind_ref ON emails (kind, ref_id);
