//! The channels a notification goes by, what each can really report, and who can be reached on
//! which: e-mail (an address), MAX (an account linked through the bot's deep link), edna Pulse
//! (a phone number: a messenger, then SMS). The clinic sets the order channels are tried in
//! and whether a failure falls back to the next (`notifications.channels`,
//! `notifications.fallback`); a person may choose their own order among the clinic's channels.

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use super::log::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Max,
    Edna,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::Max, Channel::Edna];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Max => "max",
            Channel::Edna => "edna",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The statuses this channel can really report; the rest are "not reported by this
    /// channel". E-mail: the server's `250` (sent), a refusal (failed), the message's link
    /// opened (read). MAX: accepted by the API (sent), refused (failed), «Прочитано» pressed or
    /// the link opened (read) — MAX has no delivery or read event. edna: its callbacks.
    pub fn reports(self) -> &'static [Status] {
        match self {
            Channel::Email | Channel::Max => &[Status::Sent, Status::Read, Status::Failed],
            Channel::Edna => &[
                Status::Sent,
                Status::Delivered,
                Status::Read,
                Status::Failed,
            ],
        }
    }

    /// Where a `read` on this channel comes from, for people reading the history.
    pub fn read_means(self) -> &'static str {
        match self {
            Channel::Email => "the message's link was opened",
            Channel::Max => "«Прочитано» was pressed or the message's link was opened",
            Channel::Edna => "the messenger reported it read (SMS cannot)",
        }
    }

    /// The `system` of its calls in the outbound queue.
    pub fn system(self) -> &'static str {
        match self {
            // `settings::SYSTEM` (a test there keeps them equal).
            Channel::Email => "smtp",
            Channel::Max => "max",
            Channel::Edna => "edna",
        }
    }
}

/// `"max,email"` → the channels named, in order, each once.
pub fn parse_list(s: &str) -> Vec<Channel> {
    let mut out = Vec::new();
    for c in s.split(',').filter_map(|c| Channel::parse(c.trim())) {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

pub fn format_list(list: &[Channel]) -> String {
    list.iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A phone as edna takes it: digits with the country code (`+7 900 000-00-00` →
/// `79000000000`; a Russian `8…` becomes `7…`). `None` if it is not a plausible number.
pub fn phone_digits(raw: &str) -> Option<String> {
    let mut digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == 11 && digits.starts_with('8') {
        digits.replace_range(0..1, "7");
    }
    (11..=15).contains(&digits.len()).then_some(digits)
}

/// A person's choice of channels (`None`: the clinic's order).
pub async fn preference(
    conn: &mut AnyConnection,
    user: &str,
) -> Result<Option<Vec<Channel>>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT channels FROM notification_preferences WHERE user_id = $1")
            .bind(user)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(c,)| parse_list(&c)))
}

/// Set (or with `None` clear) a person's choice.
pub async fn set_preference(
    conn: &mut AnyConnection,
    user: &str,
    channels: Option<&[Channel]>,
    now: i64,
) -> Result<(), sqlx::Error> {
    match channels {
        Some(list) => {
            sqlx::query(
                "INSERT INTO notification_preferences (user_id, channels, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id) DO UPDATE SET channels = excluded.channels, updated_at = excluded.updated_at",
            )
            .bind(user)
            .bind(format_list(list))
            .bind(now)
            .execute(conn)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM notification_preferences WHERE user_id = $1")
                .bind(user)
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// A person's linked account on `channel`, and when it was linked.
pub async fn link(
    conn: &mut AnyConnection,
    user: &str,
    channel: Channel,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT address, linked_at FROM messenger_links WHERE user_id = $1 AND channel = $2",
    )
    .bind(user)
    .bind(channel.as_str())
    .fetch_optional(conn)
    .await
}

/// Link (or relink) a person's account.
pub async fn set_link(
    conn: &mut AnyConnection,
    user: &str,
    channel: Channel,
    address: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO messenger_links (user_id, channel, address, linked_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, channel) DO UPDATE SET address = excluded.address, linked_at = excluded.linked_at",
    )
    .bind(user)
    .bind(channel.as_str())
    .bind(address)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Unlink every person linked to `address` on `channel` (they stopped the bot); or one person.
pub async fn unlink(
    conn: &mut AnyConnection,
    channel: Channel,
    user: Option<&str>,
    address: Option<&str>,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "DELETE FROM messenger_links WHERE channel = $1 AND ($2 IS NULL OR user_id = $2) \
         AND ($3 IS NULL OR address = $3)",
    )
    .bind(channel.as_str())
    .bind(user.map(str::to_owned))
    .bind(address.map(str::to_owned))
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

/// A new single-use code for linking `user` on `channel`, valid until `expires_at`. Earlier
/// codes of the person stop working.
pub async fn new_code(
    conn: &mut AnyConnection,
    user: &str,
    channel: Channel,
    expires_at: i64,
) -> Result<String, sqlx::Error> {
    sqlx::query("DELETE FROM messenger_link_codes WHERE user_id = $1 AND channel = $2")
        .bind(user)
        .bind(channel.as_str())
        .execute(&mut *conn)
        .await?;
    let code = format!("v{}", uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO messenger_link_codes (code, user_id, channel, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&code)
    .bind(user)
    .bind(channel.as_str())
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(code)
}

/// Use a code: the person it was made for, if it is valid (it is then gone).
pub async fn take_code(
    conn: &mut AnyConnection,
    code: &str,
    channel: Channel,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "DELETE FROM messenger_link_codes WHERE code = $1 AND channel = $2 AND expires_at > $3 \
         RETURNING user_id",
    )
    .bind(code)
    .bind(channel.as_str())
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(u,)| u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_phones_parse() {
        assert_eq!(
            parse_list("max, email,max,sms"),
            vec![Channel::Max, Channel::Email]
        );
        assert_eq!(format_list(&[Channel::Edna, Channel::Email]), "edna,email");
        assert_eq!(
            phone_digits("+7 (900) 000-00-01").as_deref(),
            Some("79000000001")
        );
        assert_eq!(
            phone_digits("8 900 000 00 01").as_deref(),
            Some("79000000001")
        );
        assert_eq!(phone_digits("12345"), None);
    }

    #[test]
    fn email_and_max_cannot_report_delivery() {
        for c in [Channel::Email, Channel::Max] {
            assert!(!c.reports().contains(&Status::Delivered), "{c:?}");
            assert!(c.reports().contains(&Status::Read), "{c:?}");
        }
        assert!(Channel::Edna.reports().contains(&Status::Delivered));
    }
}
