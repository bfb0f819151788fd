//! The payments worker: runs YooKassa's queued calls, and handles stored notifications by
//! reading each object back from YooKassa's API (notifications are not signed) and applying
//! what the API says.

use std::sync::Arc;
use std::time::Duration;

use super::service::{self, Applied};
use super::settings::{Payments, SYSTEM};
use crate::state::ApiState;

/// How often the worker looks when nobody wakes it.
const TICK: Duration = Duration::from_secs(2);
/// A notification whose object could not be read is tried again this much later.
const RETRY_MS: i64 = 30_000;

/// Run until `stop` turns true.
pub async fn run(state: ApiState, p: Arc<Payments>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let wake = p.waker();
    loop {
        if let Err(e) = state.outbound.deliver_due(SYSTEM).await {
            tracing::warn!(error = %e, "YooKassa calls: database error; retrying");
        }
        if let Err(e) = handle_notifications(&state, &p).await {
            tracing::warn!(error = %e, "YooKassa notifications: database error; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = wake.notified() => {}
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
    }
}

/// Handle the stored notifications: each object read back and applied. Returns how many.
pub async fn handle_notifications(state: &ApiState, p: &Payments) -> Result<usize, sqlx::Error> {
    let core = state.core();
    let (events, lease) = state.inbound.claim(SYSTEM, 50).await?;
    let count = events.len();
    for e in events {
        let id = e.object_id.clone().unwrap_or_default();
        let applied = if e.event.starts_with("refund.") {
            match p.client.refund(&id).await {
                Ok(r) => service::apply_refund(&core, p, &r).await,
                Err(err) => Err(service::Error::Provider(err)),
            }
        } else {
            match p.client.payment(&id).await {
                Ok(y) => service::apply_payment(&core, p, &y).await,
                Err(err) => Err(service::Error::Provider(err)),
            }
        };
        let outcome = match applied {
            Ok(Applied::Moved(s)) => format!("{}: now {s}", e.event),
            Ok(Applied::Unchanged) => format!("{}: nothing new", e.event),
            Ok(Applied::Unknown) => {
                tracing::warn!(event = %e.event, "a YooKassa notification named an object Vizit never made; ignored");
                format!("{}: an object Vizit never made; ignored", e.event)
            }
            Err(service::Error::Db(err)) => return Err(err),
            Err(service::Error::Provider(err)) if err.code() == Some("not_found") => {
                tracing::warn!(event = %e.event, "a YooKassa notification named an object YooKassa does not know; ignored");
                format!("{}: not found at YooKassa; ignored", e.event)
            }
            Err(err) => {
                state
                    .inbound
                    .release(&[e.id], lease, &err.to_string(), state.now() + RETRY_MS)
                    .await?;
                continue;
            }
        };
        state.inbound.processed(e.id, lease, &outcome).await?;
    }
    Ok(count)
}
