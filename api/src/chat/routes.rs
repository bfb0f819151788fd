//! HTTP of the chat. The call page speaks with its join token (`/call/…`: the consultation is
//! the token's room); the consultations page reads the history with the session
//! (`/consultations/{id}/…`).

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Path as UrlPath, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::repo::MessageRow;
use super::service::{self, Error, SentFile};
use crate::consultations::repo::ConsultationRow;
use crate::domain::{Caller, ConsultationId, Principal, Role, UserId};
use crate::http::{ApiError, Body, Params, Problem, client_ip, id, to_rfc3339};
use crate::state::ApiState;
use vizit_signaling::CallRole;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(what) => ApiError::NotFound(what),
            Error::Forbidden(why) => ApiError::Forbidden(why),
            Error::Closed(_) => ApiError::conflict("consultation_closed", e.to_string()),
            Error::Invalid(message) => ApiError::bad_request("invalid_message", message),
            Error::Empty => ApiError::bad_request("empty_file", e.to_string()),
            Error::TooLarge(max) => ApiError::FileTooLarge(max),
            Error::Unsupported => ApiError::UnsupportedType(e.to_string()),
            Error::Flood(secs) => ApiError::TooManyRequests {
                retry_after_secs: secs,
                message: format!("too many messages at once: the next one in {secs} s"),
            },
            Error::NoStore => ApiError::conflict("files_disabled", e.to_string()),
            Error::Storage(message) => {
                tracing::error!(error = %message, "the chat's file store failed");
                ApiError::Upstream {
                    code: "storage_unavailable",
                    message: "the file store is unavailable; try again".into(),
                }
            }
            Error::Db(e) => e.into(),
            Error::Io(e) => ApiError::Internal(e.into()),
        }
    }
}

/// A party of a call, by its join token (`Authorization: Bearer <join token>`), with the
/// consultation that is the token's room. The token is asked again whether it still admits
/// its holder (the consultation not cancelled or closed since, the account not disabled).
pub struct CallParty {
    pub caller: Caller,
    pub consultation: ConsultationRow,
}

impl FromRequestParts<ApiState> for CallParty {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let token = crate::http::bearer(parts).ok_or(ApiError::Unauthenticated)?;
        let claims = state
            .keys
            .verify(token)
            .map_err(|_| ApiError::InvalidCredentials)?;
        let role = match claims.role {
            CallRole::Doctor => Role::Doctor,
            CallRole::Patient => Role::Patient,
        };
        // A room that is not a consultation (`vizit token`) has no chat.
        let cid: ConsultationId = id(&claims.room, "consultation")?;
        let consultation =
            match crate::consultations::admits_call(&state.core(), cid.as_str(), &claims.sub).await
            {
                Ok(Ok(row)) => row,
                Ok(Err(why)) => return Err(ApiError::Forbidden(why.words())),
                Err(e) => return Err(ApiError::Internal(e)),
            };
        Ok(CallParty {
            caller: Caller {
                principal: Principal::User {
                    id: UserId::from_stored(claims.sub),
                    role,
                    name: claims.name,
                },
                ip: client_ip(parts),
                via: Some("call".into()),
            },
            consultation,
        })
    }
}

/// A file sent in the chat.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatFileView {
    pub name: String,
    /// The type its bytes were found to be: `image/jpeg`, `image/png`, `image/webp`,
    /// `image/heic` or `application/pdf`.
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
}

/// A message of a consultation's chat.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessageView {
    pub id: String,
    /// Orders the consultation's messages; read on with `after`.
    pub seq: i64,
    /// The sender's client id (a retry with it returns this message).
    pub client_id: String,
    /// `patient` or `doctor`.
    pub sender_role: String,
    pub sender_name: String,
    /// Sent by the caller.
    pub mine: bool,
    pub text: Option<String>,
    pub file: Option<ChatFileView>,
    /// The doctor's conclusion file.
    pub conclusion: bool,
    pub created_at: String,
}

fn view(caller: &Caller, m: MessageRow) -> ChatMessageView {
    ChatMessageView {
        mine: caller.user_id() == Some(m.sender_id.as_str()),
        file: m.file_key.as_ref().map(|_| ChatFileView {
            name: m.file_name.clone().unwrap_or_default(),
            content_type: m.file_type.clone().unwrap_or_default(),
            size_bytes: m.file_size.unwrap_or_default(),
            sha256: m.file_sha256.clone().unwrap_or_default(),
        }),
        id: m.id,
        seq: m.seq,
        client_id: m.client_id,
        sender_role: m.sender_role,
        sender_name: m.sender_name,
        text: m.body,
        conclusion: m.conclusion != 0,
        created_at: to_rfc3339(m.created_at),
    }
}

/// Messages, oldest first.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatPage {
    pub items: Vec<ChatMessageView>,
    /// The `seq` to read on after (the last one here, else the `after` asked).
    pub last: i64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChatQuery {
    /// Only messages after this `seq` (0 or absent: from the first).
    #[serde(default)]
    after: Option<i64>,
    /// Hold the answer up to this many seconds (at most 25) until a message comes.
    #[serde(default)]
    wait_seconds: Option<u64>,
}

/// Longest wait of a read.
const MAX_WAIT: Duration = Duration::from_secs(25);

async fn read_page(
    state: &ApiState,
    caller: &Caller,
    c: &ConsultationRow,
    q: &ChatQuery,
) -> Result<Json<ChatPage>, ApiError> {
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "after must be 0 or more",
        ));
    }
    let wait = Duration::from_secs(q.wait_seconds.unwrap_or(0)).min(MAX_WAIT);
    let rows = service::read(&state.core(), &state.chat, caller, c, after, wait).await?;
    let last = rows.last().map_or(after, |m| m.seq);
    Ok(Json(ChatPage {
        items: rows.into_iter().map(|m| view(caller, m)).collect(),
        last,
    }))
}

#[utoipa::path(get, path = "/api/v1/call/messages", tag = "chat", security(("callToken" = [])),
    params(ChatQuery),
    responses((status = 200, body = ChatPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
/// The call's chat: messages after `after`, waiting up to `waitSeconds` for the next one (a
/// long poll: ask again with the answer's `last`).
pub async fn call_messages(
    State(state): State<ApiState>,
    party: CallParty,
    Params(q): Params<ChatQuery>,
) -> Result<Json<ChatPage>, ApiError> {
    read_page(&state, &party.caller, &party.consultation, &q).await
}

/// A text message.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChatText {
    /// 1 to 4,000 characters.
    text: String,
    /// The client's id of this message (1 to 64 letters, digits, `-`, `_`): a resend with the
    /// same id returns the first instead of posting twice.
    client_id: String,
}

#[utoipa::path(post, path = "/api/v1/call/messages", tag = "chat", security(("callToken" = [])),
    request_body = ChatText,
    responses((status = 201, body = ChatMessageView), (status = 200, description = "sent before with this clientId", body = ChatMessageView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem), (status = 429, body = Problem)))]
/// Write in the call's chat (the consultation's patient and doctor, while it is paid or under
/// way). At most `chat.messages_per_minute` per party, after a burst of 10.
pub async fn post_message(
    State(state): State<ApiState>,
    party: CallParty,
    Body(req): Body<ChatText>,
) -> Result<(StatusCode, Json<ChatMessageView>), ApiError> {
    let (row, created) = service::post_text(
        &state.core(),
        &state.chat,
        &party.caller,
        &party.consultation,
        &req.client_id,
        &req.text,
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&party.caller, row))))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileQuery {
    /// The file's name as the sender's device knows it (folders are dropped; the extension of
    /// its real type is added if it has another).
    name: String,
    /// As for text messages: a resend with the same id posts nothing new.
    client_id: String,
    /// The doctor's conclusion (doctors only).
    #[serde(default)]
    conclusion: bool,
}

#[utoipa::path(post, path = "/api/v1/call/files", tag = "chat", security(("callToken" = [])),
    params(FileQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the file's bytes"),
    responses((status = 201, body = ChatMessageView), (status = 200, description = "sent before with this clientId", body = ChatMessageView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem), (status = 429, body = Problem), (status = 502, body = Problem)))]
/// Send a file in the call's chat: a photo (JPEG, PNG, WebP, HEIC) or a PDF, up to
/// `chat.max_file_mb`. Its type is told by its bytes, whatever its name or `Content-Type`
/// say; it is kept in the recordings' object store with the consultation.
pub async fn post_file(
    State(state): State<ApiState>,
    party: CallParty,
    Params(q): Params<FileQuery>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<ChatMessageView>), ApiError> {
    let max = state.chat.settings.max_file_bytes;
    let bytes = axum::body::to_bytes(body, max as usize + 1)
        .await
        .map_err(|_| ApiError::FileTooLarge(max))?;
    let recordings = state.recordings.as_ref().ok_or(Error::NoStore)?;
    let (row, created) = service::post_file(
        &state.core(),
        &state.chat,
        recordings.store(),
        recordings.spool.dir(),
        &party.caller,
        &party.consultation,
        &SentFile {
            client_id: &q.client_id,
            name: &q.name,
            bytes: &bytes,
            conclusion: q.conclusion,
        },
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&party.caller, row))))
}

async fn send_file(
    state: &ApiState,
    caller: &Caller,
    c: &ConsultationRow,
    raw_id: &str,
) -> Result<Response, ApiError> {
    let message: uuid::Uuid = raw_id.parse().map_err(|_| ApiError::NotFound("file"))?;
    if !service::may_read(caller, c) {
        return Err(Error::Forbidden(service::READERS).into());
    }
    let recordings = state.recordings.as_ref().ok_or(Error::NoStore)?;
    let (row, bytes) = service::file(
        &state.core(),
        recordings.store(),
        caller,
        c,
        &message.to_string(),
    )
    .await?;
    let content_type = row
        .file_type
        .as_deref()
        .and_then(super::sniff::FileKind::parse_mime)
        .map_or("application/octet-stream", |k| k.mime());
    let name = row.file_name.unwrap_or_default();
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&disposition(&name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    // Whatever a file holds, it runs nothing in Vizit's origin.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(response)
}

/// `attachment` with an ASCII fallback name and the real one in RFC 5987 form.
fn disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[utoipa::path(get, path = "/api/v1/call/files/{id}", tag = "chat", security(("callToken" = [])),
    params(("id" = String, Path, description = "the message's id")),
    responses((status = 200, description = "the file, as an attachment", content_type = "application/octet-stream"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 502, body = Problem)))]
/// A file of the call's chat (the read is audited).
pub async fn call_file(
    State(state): State<ApiState>,
    party: CallParty,
    UrlPath(raw): UrlPath<String>,
) -> Result<Response, ApiError> {
    send_file(&state, &party.caller, &party.consultation, &raw).await
}

async fn consultation(
    state: &ApiState,
    caller: &Caller,
    raw: &str,
) -> Result<ConsultationRow, ApiError> {
    let cid: ConsultationId = id(raw, "consultation")?;
    let row = crate::consultations::service::load(&state.core(), &cid)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?
        .filter(|c| crate::consultations::visible_to(c, caller))
        .ok_or(ApiError::NotFound("consultation"))?;
    Ok(row)
}

#[utoipa::path(get, path = "/api/v1/consultations/{id}/messages", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path, description = "consultation id"), ChatQuery),
    responses((status = 200, body = ChatPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
/// The consultation's chat, during the call and after it: its patient and doctor, head doctors
/// and the clinic's systems (not clinic admins: it is medical data).
pub async fn consultation_messages(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath(raw): UrlPath<String>,
    Params(q): Params<ChatQuery>,
) -> Result<Json<ChatPage>, ApiError> {
    let c = consultation(&state, &caller, &raw).await?;
    read_page(&state, &caller, &c, &q).await
}

#[utoipa::path(get, path = "/api/v1/consultations/{id}/files/{file}", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path, description = "consultation id"), ("file" = String, Path, description = "the message's id")),
    responses((status = 200, description = "the file, as an attachment", content_type = "application/octet-stream"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 502, body = Problem)))]
/// A file of the consultation's chat (the read is audited).
pub async fn consultation_file(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath((raw, file)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let c = consultation(&state, &caller, &raw).await?;
    send_file(&state, &caller, &c, &file).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_download_name_survives_in_both_forms() {
        assert_eq!(
            disposition("Анализ 1.pdf"),
            "attachment; filename=\"______ 1.pdf\"; filename*=UTF-8''%D0%90%D0%BD%D0%B0%D0%BB%D0%B8%D0%B7%201.pdf"
        );
    }
}
