-- Messenger channels (api/src/notifications/channels.rs): what a delivery carried and where,
-- people's channel choices, and their messenger accounts linked through a deep link.

-- The address on the channel (a MAX user id, a phone number), the provider's id of the
-- message (MAX `mid`, edna `messageId`), and the text sent (never medical).
ALTER TABLE notification_deliveries ADD COLUMN address TEXT;
ALTER TABLE notification_deliveries ADD COLUMN provider_id TEXT;
ALTER TABLE notification_deliveries ADD COLUMN body TEXT;
-- 1, 2, … per notification: the order channels were tried in (times may tie).
ALTER TABLE notification_deliveries ADD COLUMN seq BIGINT;
-- What a fallback needs to write the message again: {"expired": true} of a cancellation.
ALTER TABLE notifications ADD COLUMN context TEXT;

-- A person's channels, in the order they want them tried ('max,email'); none: the clinic's.
CREATE TABLE notification_preferences (
    user_id    TEXT PRIMARY KEY REFERENCES users (id),
    channels   TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A person's account on a messenger (MAX: the user id of whoever started the bot with their
-- code). One per person and channel.
CREATE TABLE messenger_links (
    user_id   TEXT NOT NULL REFERENCES users (id),
    channel   TEXT NOT NULL,
    address   TEXT NOT NULL,
    linked_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, channel)
);

-- A deep-link code waiting for its `bot_started` (single use, short-lived).
CREATE TABLE messenger_link_codes (
    code       TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    channel    TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX messenger_link_codes_user ON messenger_link_codes (user_id);
