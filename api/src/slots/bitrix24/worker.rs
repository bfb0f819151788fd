//! The background worker: delivers queued calls, handles events, synchronises periodically.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::events;
use super::source::{Bitrix24, SYSTEM};
use crate::state::ApiState;

/// How long the worker waits between looks at the outbox.
const TICK: Duration = Duration::from_secs(2);
/// Events and requests arriving together are handled in one synchronisation.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// The background worker: delivers queued calls, handles events, synchronises periodically.
pub async fn run(state: ApiState, b: Arc<Bitrix24>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut next_sync = tokio::time::Instant::now();
    // After a failed synchronisation, events and requests wait too (a portal that is down is not
    // asked again every tick): 5 s, doubling up to the sync interval.
    let mut backoff = Duration::from_secs(5);
    let mut failed_until: Option<tokio::time::Instant> = None;
    loop {
        if let Err(e) = state.outbound.deliver_due(SYSTEM).await {
            tracing::warn!(error = %e, "Bitrix24 outbound calls: database error; retrying");
        }
        let now = tokio::time::Instant::now();
        let asked = b.sync_requested.load(Ordering::Acquire)
            || state.inbound.unprocessed(SYSTEM).await.unwrap_or(0) > 0;
        if now >= next_sync || (asked && failed_until.is_none_or(|t| now >= t)) {
            b.sync_requested.store(false, Ordering::Release);
            match events::handle_events_and_sync(&state, &b).await {
                Ok(report) => {
                    tracing::debug!(?report, "Bitrix24 sync done");
                    backoff = Duration::from_secs(5);
                    failed_until = None;
                    next_sync = tokio::time::Instant::now() + b.settings.sync_interval;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "Bitrix24 sync failed");
                    next_sync = tokio::time::Instant::now() + backoff;
                    failed_until = Some(next_sync);
                    backoff =
                        (backoff * 2).min(b.settings.sync_interval.max(Duration::from_secs(5)));
                }
            }
        }
        let wait = next_sync
            .saturating_duration_since(tokio::time::Instant::now())
            .min(TICK);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = b.wake.notified() => tokio::time::sleep(DEBOUNCE).await,
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
    }
}
