//! The sender: runs the outbound queue's `smtp` calls, one message each. The server down, slow
//! or answering `4xx` → the call is retried with backoff (the message waits, nothing is lost).
//! A `5xx` may be the message's (a mailbox that does not exist) or the server's setup (a wrong
//! password, a sender not allowed), which an admin fixes: it is retried too, and the message is
//! `failed` only after [`REFUSALS`] of them; an address no server can take fails at once. An
//! admin puts a failed message back (`POST /admin/emails/{id}/retry`). After the server's `250`
//! the message is `sent` and `email.sent` tells whoever cares (payments mark the receipt
//! e-mailed).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use vizit_integrations::smtp::{Email, Error as SmtpError, Inline};

use super::channels::Channel;
use super::repo;
use super::settings::{Notifications, SYSTEM};
use crate::domain::EventKind;
use crate::platform::BoxFuture;
use crate::platform::outbound::{Call, Executor, Outcome};
use crate::state::{ApiState, Core};

/// How often the worker looks when nobody wakes it.
const TICK: Duration = Duration::from_secs(2);
/// A message refused (`5xx`) this many times is failed.
pub const REFUSALS: i64 = 5;
/// Messages claimed at once: each may take several SMTP commands of `email.timeout`, and all
/// must end well within the outbound lease.
const BATCH: i64 = 2;
/// Tries to store "sent" after the server took a message (a lost write means a second copy).
const SENT_WRITES: u32 = 3;

pub struct EmailCalls {
    pub core: Core,
    pub notifications: Arc<Notifications>,
}

impl EmailCalls {
    /// The server took it: stored as sent and told (payments mark the receipt e-mailed).
    async fn mark_sent(&self, row: &repo::EmailRow, message_id: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.core.db.begin_write().await?;
        let changed = repo::sent(&mut tx, &row.id, message_id, self.core.now()).await?;
        self.tell(tx, changed, EventKind::EmailSent, row, None)
            .await
    }

    /// Given up on: stored as failed and told (a notification may try another channel).
    async fn mark_failed(&self, row: &repo::EmailRow, error: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.core.db.begin_write().await?;
        let changed = repo::give_up(&mut tx, &row.id, error).await?;
        self.tell(tx, changed, EventKind::EmailFailed, row, Some(error))
            .await
    }

    /// Emit `kind` for `row` if its state `changed` in `tx`, and commit.
    async fn tell(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        changed: bool,
        kind: EventKind,
        row: &repo::EmailRow,
        error: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        if changed {
            let mut payload = json!({"emailId": row.id, "kind": row.kind, "refId": row.ref_id});
            if let Some(error) = error {
                payload["error"] = json!(error);
            }
            self.core
                .outbox
                .emit(&mut tx, kind.as_str(), None, payload)
                .await?;
        }
        tx.commit().await?;
        self.core.outbox.notify();
        Ok(())
    }

    async fn send(&self, call: &Call) -> Result<Outcome, sqlx::Error> {
        let Some(id) = call
            .payload
            .as_ref()
            .and_then(|p| p["email"].as_str())
            .map(str::to_owned)
        else {
            return Ok(Outcome::Failed("no e-mail named".into()));
        };
        let core = &self.core;
        let mut conn = core.db.pool.acquire().await?;
        let Some(row) = repo::email(&mut conn, &id).await? else {
            return Ok(Outcome::Failed(format!("no e-mail {id}")));
        };
        drop(conn);
        if row.status != "queued" {
            return Ok(Outcome::Done);
        }
        let inline: Vec<Inline> = row
            .images()
            .into_iter()
            .map(|i| Inline {
                content_id: i.content_id,
                content_type: if i.content_type == "image/png" {
                    "image/png"
                } else {
                    "application/octet-stream"
                },
                bytes: i.bytes,
            })
            .collect();
        let email = Email {
            id: &row.id,
            to: &row.recipient,
            subject: &row.subject,
            text: &row.text_body,
            html: row.html_body.as_deref(),
            inline: &inline,
        };
        let Some(mailer) = &self.notifications.mailer else {
            // No SMTP server: nothing will ever send it; say so (a notification falls back).
            self.mark_failed(&row, NO_SMTP).await?;
            tracing::error!(email = %row.id, kind = %row.kind, "an e-mail cannot be sent: {NO_SMTP}");
            return Ok(Outcome::Failed(NO_SMTP.into()));
        };
        match mailer.send(&email).await {
            Ok(()) => {
                let message_id = format!("<{}@{}>", row.id, mailer.domain());
                let mut tries = 0;
                loop {
                    tries += 1;
                    match self.mark_sent(&row, &message_id).await {
                        Ok(()) => break,
                        Err(e) if tries < SENT_WRITES => {
                            tracing::warn!(email = %row.id, error = %e, "e-mail sent but not yet stored as sent; trying again");
                            tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
                tracing::info!(email = %row.id, kind = %row.kind, "e-mail sent");
                Ok(Outcome::Done)
            }
            Err(e) => {
                let give_up = match &e {
                    SmtpError::Address => true,
                    SmtpError::Refused(_) => call.attempt >= REFUSALS,
                    SmtpError::Unavailable(_) => false,
                };
                if give_up {
                    self.mark_failed(&row, &e.to_string()).await?;
                    tracing::error!(email = %row.id, kind = %row.kind, error = %e,
                                    "an e-mail was refused for good");
                    Ok(Outcome::Failed(e.to_string()))
                } else {
                    repo::tried(&core.db.pool, &row.id, &e.to_string()).await?;
                    tracing::warn!(email = %row.id, error = %e, "e-mail not sent yet; retrying");
                    Ok(Outcome::Retry(e.to_string()))
                }
            }
        }
    }
}

impl Executor for EmailCalls {
    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn inline_timeout(&self) -> Duration {
        // Nobody waits for an e-mail in a request.
        Duration::ZERO
    }

    fn execute<'a>(
        &'a self,
        call: &'a Call,
        _inline: bool,
    ) -> BoxFuture<'a, Result<Outcome, sqlx::Error>> {
        Box::pin(self.send(call))
    }

    fn batch(&self) -> i64 {
        BATCH
    }
}

/// Why an e-mail fails when Vizit has no SMTP server.
pub const NO_SMTP: &str = "no SMTP server is configured (email.smtp_url)";

/// Run until `stop` turns true: e-mail and the messengers' calls, and the messengers' stored
/// webhooks.
pub async fn run(
    state: ApiState,
    n: Arc<Notifications>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let wake = n.waker();
    let notices = super::notices::Notices::of(&state, &n);
    let mut systems = vec![SYSTEM];
    if n.channels.max.is_some() {
        systems.push(Channel::Max.system());
    }
    if n.channels.edna.is_some() {
        systems.push(Channel::Edna.system());
    }
    loop {
        if let Err(e) = super::messengers::handle_inbound(&state, &notices).await {
            tracing::warn!(error = %e, "messenger webhooks: database error; retrying");
        }
        for system in &systems {
            // Small batches, until none is due: a stop is seen between them.
            loop {
                match state.outbound.deliver_due(system).await {
                    Ok(0) => break,
                    Ok(_) if *stop.borrow() => break,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, system, "notification queue: database error; retrying");
                        break;
                    }
                }
            }
        }
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = wake.notified() => {}
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
    }
}
