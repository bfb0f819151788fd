//! The rules of the chat. A consultation's patient and doctor write while its call may run
//! (paid or under way) and read it then and afterwards; head doctors and the clinic's systems
//! read it; a clinic admin does not (medical data). Files are checked by their bytes, stored in
//! the object store first and recorded after, so a record never points at nothing. Every post,
//! file read and first read of the history is audited, without the content.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use vizit_recordings::ObjectStore;
use vizit_recordings::store::Upload;

use super::hub::Chat;
use super::repo::{self, MessageRow, NewFile, NewMessage};
use super::sniff::{self, FileKind};
use crate::consultations::repo::ConsultationRow;
use crate::domain::{Caller, Role};
use crate::platform::audit::audit;
use crate::state::Core;

/// Longest text message, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Most messages one read returns.
pub const PAGE: i64 = 200;
/// A waiting read looks at the database at least this often (a message posted through another
/// node wakes nobody here).
const POLL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("the consultation is {0}: its chat is closed")]
    Closed(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the file is empty")]
    Empty,
    #[error("the file is larger than the limit")]
    TooLarge(u64),
    #[error("{}", sniff::ACCEPTED)]
    Unsupported,
    #[error("too many messages: wait {0} s")]
    Flood(u64),
    #[error("files are not kept on this server (no object store is configured)")]
    NoStore,
    #[error("the file store failed: {0}")]
    Storage(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("staging the file: {0}")]
    Io(#[from] std::io::Error),
}

/// Who reads a chat, in words for a refusal.
pub const READERS: &str = "the chat is for the consultation's parties and the clinic's doctors";

/// Whether `caller` may read the chat of `c`.
pub fn may_read(caller: &Caller, c: &ConsultationRow) -> bool {
    match caller.role() {
        Some(Role::Patient) => caller.user_id() == Some(c.patient_id.as_str()),
        Some(Role::Doctor) => caller.user_id() == Some(c.doctor_id.as_str()),
        Some(Role::HeadDoctor) | None => true,
        Some(Role::Admin) => false,
    }
}

/// The party of `c` that `caller` is, if they may write in its chat now.
fn writer(caller: &Caller, c: &ConsultationRow) -> Result<Role, Error> {
    let role = match caller.role() {
        Some(Role::Patient) if caller.user_id() == Some(c.patient_id.as_str()) => Role::Patient,
        Some(Role::Doctor) if caller.user_id() == Some(c.doctor_id.as_str()) => Role::Doctor,
        _ => {
            return Err(Error::Forbidden(
                "only the consultation's patient and doctor write in its chat",
            ));
        }
    };
    if !matches!(c.status.as_str(), "paid" | "in_progress") {
        return Err(Error::Closed(c.status.clone()));
    }
    Ok(role)
}

/// A client's id of a message: 1 to 64 letters, digits, `-` or `_`.
fn check_client_id(client_id: &str) -> Result<(), Error> {
    if client_id.is_empty()
        || client_id.len() > 64
        || !client_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::Invalid(
            "clientId must be 1 to 64 letters, digits, '-' or '_'".into(),
        ));
    }
    Ok(())
}

/// The text as kept: trimmed, 1 to 4,000 characters, no control characters but line breaks
/// and tabs.
pub fn clean_text(text: &str) -> Result<String, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::Invalid("text is empty".into()));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::Invalid(format!(
            "text is longer than {MAX_TEXT_CHARS} characters"
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(Error::Invalid("text has control characters".into()));
    }
    Ok(text.replace("\r\n", "\n"))
}

/// The consultation's messages after `after`; with `wait`, holds the answer until one comes
/// or `wait` passes. A read from the start is audited (a patient's history is medical data);
/// the waits that follow it are not.
pub async fn read(
    core: &Core,
    chat: &Chat,
    caller: &Caller,
    c: &ConsultationRow,
    after: i64,
    wait: Duration,
) -> Result<Vec<MessageRow>, Error> {
    if !may_read(caller, c) {
        return Err(Error::Forbidden(READERS));
    }
    if after <= 0 {
        let mut conn = core.db.pool.acquire().await?;
        audit(
            &mut conn,
            Some(caller),
            "chat.read",
            "consultation",
            Some(&c.id),
            serde_json::Value::Null,
        )
        .await?;
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let room = chat.room(&c.id);
        let notified = room.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut conn = core.db.pool.acquire().await?;
        let rows = repo::after(&mut conn, &c.id, after, PAGE).await?;
        drop(conn);
        let now = tokio::time::Instant::now();
        if !rows.is_empty() || now >= deadline {
            return Ok(rows);
        }
        let slice = (deadline - now).min(POLL);
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(slice) => {}
        }
    }
}

/// Post a text message. `Ok((row, false))`: this sender sent `client_id` already (a retry),
/// and that message is the answer.
pub async fn post_text(
    core: &Core,
    chat: &Chat,
    caller: &Caller,
    c: &ConsultationRow,
    client_id: &str,
    text: &str,
) -> Result<(MessageRow, bool), Error> {
    let role = writer(caller, c)?;
    check_client_id(client_id)?;
    let text = clean_text(text)?;
    let sender = caller.user_id().unwrap_or_default();
    let mut conn = core.db.pool.acquire().await?;
    if let Some(known) = repo::by_client_id(&mut conn, &c.id, sender, client_id).await? {
        return Ok((known, false));
    }
    drop(conn);
    chat.spend(&c.id, sender, core.now())
        .map_err(Error::Flood)?;
    let id = uuid::Uuid::new_v4().to_string();
    let new = NewMessage {
        id: &id,
        consultation_id: &c.id,
        sender_id: sender,
        sender_role: role.as_str(),
        client_id,
        body: Some(&text),
        file: None,
        conclusion: false,
        created_at: core.now(),
    };
    record(
        core,
        chat,
        caller,
        &new,
        json!({"message": id, "kind": "text"}),
    )
    .await
}

/// Insert the message with its audit entry; wake the readers.
async fn record(
    core: &Core,
    chat: &Chat,
    caller: &Caller,
    new: &NewMessage<'_>,
    details: serde_json::Value,
) -> Result<(MessageRow, bool), Error> {
    let mut tx = core.db.begin_write().await?;
    let created = repo::insert(&mut tx, new).await?;
    if created {
        let action = if new.file.is_some() {
            "chat.file"
        } else {
            "chat.message"
        };
        audit(
            &mut tx,
            Some(caller),
            action,
            "consultation",
            Some(new.consultation_id),
            details,
        )
        .await?;
    }
    let row = repo::by_client_id(&mut tx, new.consultation_id, new.sender_id, new.client_id)
        .await?
        .ok_or(Error::NotFound("message"))?;
    tx.commit().await?;
    if created {
        chat.wake(new.consultation_id);
    }
    Ok((row, created))
}

/// A file to post.
pub struct SentFile<'a> {
    pub client_id: &'a str,
    pub name: &'a str,
    pub bytes: &'a [u8],
    /// The doctor's conclusion.
    pub conclusion: bool,
}

/// Post a file: checked (size, kind by its bytes), stored, then recorded. Nothing is stored
/// for a refused file; a stored file whose record fails is deleted again.
#[allow(clippy::too_many_arguments)]
pub async fn post_file(
    core: &Core,
    chat: &Chat,
    store: &ObjectStore,
    staging: &Path,
    caller: &Caller,
    c: &ConsultationRow,
    file: &SentFile<'_>,
) -> Result<(MessageRow, bool), Error> {
    let role = writer(caller, c)?;
    check_client_id(file.client_id)?;
    if file.conclusion && role != Role::Doctor {
        return Err(Error::Forbidden("only the doctor sends the conclusion"));
    }
    let sender = caller.user_id().unwrap_or_default();
    let mut conn = core.db.pool.acquire().await?;
    if let Some(known) = repo::by_client_id(&mut conn, &c.id, sender, file.client_id).await? {
        return Ok((known, false));
    }
    drop(conn);
    if file.bytes.is_empty() {
        return Err(Error::Empty);
    }
    if file.bytes.len() as u64 > chat.settings.max_file_bytes {
        return Err(Error::TooLarge(chat.settings.max_file_bytes));
    }
    let kind = FileKind::detect(file.bytes).ok_or(Error::Unsupported)?;
    chat.spend(&c.id, sender, core.now())
        .map_err(Error::Flood)?;

    let id = uuid::Uuid::new_v4().to_string();
    let key = format!("chat/{}/{id}.{}", c.id, kind.extension());
    let name = sniff::clean_name(file.name, kind);
    let sha256 = hex::encode(Sha256::digest(file.bytes));
    let staged = staging.join(format!("chat-{id}.part"));
    tokio::fs::write(&staged, file.bytes).await?;
    let put = store
        .put(&Upload {
            key: &key,
            path: &staged,
            size: file.bytes.len() as u64,
            sha256: &sha256,
            content_type: kind.mime(),
        })
        .await;
    if let Err(e) = tokio::fs::remove_file(&staged).await {
        tracing::warn!(error = %e, "a staged chat file was not removed");
    }
    put.map_err(|e| Error::Storage(e.to_string()))?;

    let new = NewMessage {
        id: &id,
        consultation_id: &c.id,
        sender_id: sender,
        sender_role: role.as_str(),
        client_id: file.client_id,
        body: None,
        file: Some(NewFile {
            key: &key,
            name: &name,
            content_type: kind.mime(),
            size: file.bytes.len() as i64,
            sha256: &sha256,
        }),
        conclusion: file.conclusion,
        created_at: core.now(),
    };
    let details = json!({
        "message": id,
        "kind": "file",
        "type": kind.mime(),
        "size": file.bytes.len(),
        "conclusion": file.conclusion,
    });
    match record(core, chat, caller, &new, details).await {
        Ok((row, created)) => {
            if !created {
                // The same file raced in twice: keep the first.
                let _ = store.delete(&key).await;
            }
            Ok((row, created))
        }
        Err(e) => {
            if let Err(d) = store.delete(&key).await {
                tracing::warn!(key = %key, error = %d, "an unrecorded chat file was not deleted");
            }
            Err(e)
        }
    }
}

/// A file of the chat with its bytes (the read is audited).
pub async fn file(
    core: &Core,
    store: &ObjectStore,
    caller: &Caller,
    c: &ConsultationRow,
    message: &str,
) -> Result<(MessageRow, Vec<u8>), Error> {
    if !may_read(caller, c) {
        return Err(Error::Forbidden(READERS));
    }
    let mut conn = core.db.pool.acquire().await?;
    let row = repo::get(&mut conn, &c.id, message)
        .await?
        .filter(|r| r.file_key.is_some())
        .ok_or(Error::NotFound("file"))?;
    drop(conn);
    let key = row.file_key.clone().unwrap_or_default();
    let bytes = store
        .get(&key)
        .await
        .map_err(|e| Error::Storage(e.to_string()))?
        .ok_or_else(|| Error::Storage(format!("{key} is missing from the store")))?;
    let mut conn = core.db.pool.acquire().await?;
    audit(
        &mut conn,
        Some(caller),
        "chat.file.read",
        "consultation",
        Some(&c.id),
        json!({"message": row.id}),
    )
    .await?;
    Ok((row, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(
            clean_text("  привет \r\nдоктор ").unwrap(),
            "привет \nдоктор"
        );
        assert!(clean_text("   ").is_err());
        assert!(clean_text(&"я".repeat(MAX_TEXT_CHARS + 1)).is_err());
        assert!(clean_text(&"я".repeat(MAX_TEXT_CHARS)).is_ok());
        assert!(clean_text("a\u{7}b").is_err());
    }

    #[test]
    fn client_ids_are_short_and_plain() {
        assert!(check_client_id("m-1_a").is_ok());
        assert!(check_client_id("").is_err());
        assert!(check_client_id("a b").is_err());
        assert!(check_client_id(&"a".repeat(65)).is_err());
    }
}
