//! `ONBOOKINGADD/UPDATE/DELETE` from Bitrix24: verified by `auth[application_token]`
//! (constant-time), stored in the inbound store (deduplicated), answered at once; the worker
//! later fetches the bookings they name and synchronises (events carry only an id and are never
//! retried by Bitrix24).

use secrecy::ExposeSecret;

use super::repo;
use super::source::{Bitrix24, SYSTEM};
use super::sync::{SyncError, SyncReport, sync};
use crate::platform::inbound::{NewEvent, Stored, same_secret};
use crate::state::ApiState;

const EVENTS: [&str; 3] = ["ONBOOKINGADD", "ONBOOKINGUPDATE", "ONBOOKINGDELETE"];

/// What became of a posted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Accepted,
    Duplicate,
    /// An event Vizit does not use.
    Ignored,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("wrong or missing application token")]
    Unauthenticated,
    #[error("data[ID] must be a booking id")]
    NoBooking,
    #[error("ts must be the event's time in seconds since the epoch, within the last week")]
    BadTimestamp,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Verify and store a form-encoded event body.
pub async fn receive(state: &ApiState, b: &Bitrix24, body: &[u8]) -> Result<Received, EventError> {
    let mut event = None;
    let mut id = None;
    let mut ts = None;
    let mut token = None;
    for (k, v) in form_urlencoded::parse(body) {
        match k.as_ref() {
            "event" => event = Some(v.into_owned()),
            "data[ID]" => id = Some(v.into_owned()),
            "ts" => ts = Some(v.into_owned()),
            "auth[application_token]" => token = Some(v.into_owned()),
            _ => {}
        }
    }
    let expected = b
        .settings
        .application_token
        .as_ref()
        .map(|t| t.expose_secret());
    let valid = expected.is_some_and(|e| same_secret(e, token.as_deref()));
    if !valid {
        b.metrics.event(false);
        static REFUSED: crate::platform::Throttle =
            crate::platform::Throttle::new(crate::platform::throttle::REFUSAL_LOG_EVERY);
        if let Some(more) = REFUSED.allow() {
            tracing::warn!(
                configured = expected.is_some(),
                refused_since_last = more,
                "Bitrix24 event refused: wrong or missing application token"
            );
        }
        return Err(EventError::Unauthenticated);
    }
    let event = event.unwrap_or_default().to_uppercase();
    if !EVENTS.contains(&event.as_str()) {
        return Ok(Received::Ignored);
    }
    let Some(booking) = id.as_deref().and_then(|i| i.trim().parse::<i64>().ok()) else {
        b.metrics.event(false);
        return Err(EventError::NoBooking);
    };
    // The event's time is part of its deduplication key: only a plausible one is stored (events
    // may arrive late through Bitrix24's queue, not by a week).
    let Some(ts) = ts.filter(|t| plausible_ts(t, state.now())) else {
        b.metrics.event(false);
        return Err(EventError::BadTimestamp);
    };
    let booking = booking.to_string();
    let stored = state
        .inbound
        .store(NewEvent {
            system: SYSTEM,
            dedup_key: &format!("{event}:{booking}:{ts}"),
            event: &event,
            object_id: Some(&booking),
            payload: None,
        })
        .await?;
    repo::event_received(&state.db.pool, state.now()).await?;
    b.metrics.event(true);
    match stored {
        Stored::New(_) => {
            b.request_sync();
            Ok(Received::Accepted)
        }
        Stored::Duplicate => Ok(Received::Duplicate),
    }
}

/// `ts`: decimal seconds since the epoch, from a week ago to an hour ahead (clock skew).
fn plausible_ts(ts: &str, now_ms: i64) -> bool {
    const WEEK: i64 = 7 * 86_400;
    ts.len() <= 12
        && ts.bytes().all(|b| b.is_ascii_digit())
        && ts.parse::<i64>().is_ok_and(|t| {
            let now = now_ms / 1000;
            (now - WEEK..=now + 3600).contains(&t)
        })
}

/// More events than this in one round are reconciled by the sync alone (no fetch each).
const FETCH_EACH_UP_TO: usize = 10;

/// Fetch the bookings events named, then synchronise; the events are marked handled with what
/// was found (or, if that fails, released for the next round).
pub async fn handle_events_and_sync(
    state: &ApiState,
    b: &Bitrix24,
) -> Result<SyncReport, SyncError> {
    let (events, lease) = state.inbound.claim(SYSTEM, 500).await?;
    let run = async {
        let mut outcomes = Vec::with_capacity(events.len());
        for e in &events {
            let booking = e.object_id.as_deref().and_then(|o| o.parse::<i64>().ok());
            let event = &e.event;
            let outcome = match booking {
                Some(booking) if events.len() <= FETCH_EACH_UP_TO => {
                    match b.client.booking(booking).await? {
                        Some(bk) => format!(
                            "{event}: booking {} on resources {:?}",
                            bk.id, bk.resource_ids
                        ),
                        None => format!(
                            "{event}: booking {booking} is not in Bitrix24 (deleted or unknown)"
                        ),
                    }
                }
                _ => format!("{event}: reconciled by the synchronisation"),
            };
            outcomes.push((e.id, outcome));
        }
        let report = sync(state, b).await?;
        Ok::<_, SyncError>((report, outcomes))
    };
    match run.await {
        Ok((report, outcomes)) => {
            for (id, outcome) in outcomes {
                state.inbound.processed(id, lease, &outcome).await?;
            }
            Ok(report)
        }
        Err(e) => {
            let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
            state
                .inbound
                .release(&ids, lease, &e.to_string(), state.now())
                .await?;
            Err(e)
        }
    }
}
