//! The outbox: a domain event is written in the same transaction as the change it describes
//! ([`Outbox::emit`]), together with one delivery row per subscriber that wants its kind. The
//! dispatcher hands each event to each of those subscribers:
//!
//! - **at least once**: a subscriber handles an event inside the transaction that marks the
//!   delivery done, so what it writes (an outbound call, a notification row) is kept exactly
//!   when the delivery is; a crash or restart before the commit delivers it again;
//! - **in order per consultation**: a subscriber gets an event only once its earlier events of
//!   the same consultation are done (events of different consultations do not wait for each
//!   other);
//! - **never skipped**: a subscriber that fails gets the same event again, with backoff, until it
//!   succeeds; its later events of that consultation wait.
//!
//! Each subscriber's progress is its delivery rows, so two subscribers never wait for each
//! other. Events are kept for `retention` after every delivery is done, then pruned. On
//! PostgreSQL several nodes dispatch at once: a delivery is taken with `FOR UPDATE SKIP LOCKED`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use sqlx::AnyConnection;
use tokio::sync::Notify;

use super::backoff::backoff_ms;
use super::future::BoxFuture;
use super::{Backend, Clock, Db};

/// One domain event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub kind: String,
    pub consultation_id: Option<String>,
    pub payload: Value,
    pub created_at: i64,
    /// How many times this subscriber was handed this event before (0 the first time).
    pub attempts: i64,
}

/// A consumer of domain events.
pub trait Subscriber: Send + Sync + 'static {
    /// Stable name: the subscriber's progress is stored under it.
    fn name(&self) -> &'static str;

    /// Whether it wants events of this kind (decided when the event is written).
    fn wants(&self, kind: &str) -> bool;

    /// Handle one event inside the transaction that records its delivery. An error rolls both
    /// back, and the event comes again after a backoff.
    fn handle<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Called after the delivery committed (to wake a worker, say).
    fn delivered(&self, _event: &Event) {}
}

/// How the outbox behaves.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// Events whose deliveries are all done are kept this long, then pruned.
    pub retention: Duration,
    /// Longest wait before a failed delivery is tried again.
    pub max_backoff: Duration,
    /// How often the dispatcher looks for work when nobody wakes it.
    pub poll: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            retention: Duration::from_secs(7 * 86_400),
            max_backoff: Duration::from_secs(5 * 60),
            poll: Duration::from_secs(1),
        }
    }
}

/// What became of one delivery.
enum Delivered {
    /// Handed over and acknowledged now.
    Now,
    /// Another dispatcher delivered it meanwhile.
    Elsewhere,
    /// Not now (held by another node, not the head, or the subscriber failed).
    Not,
}

/// Deliveries taken per look.
const BATCH: i64 = 100;

pub struct Outbox {
    db: Db,
    clock: Clock,
    settings: OutboxSettings,
    subscribers: RwLock<Vec<Arc<dyn Subscriber>>>,
    wake: Notify,
}

#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("a subscriber named {0} is registered already")]
    Duplicate(&'static str),
}

impl Outbox {
    pub fn new(db: Db, clock: Clock, settings: OutboxSettings) -> Outbox {
        Outbox {
            db,
            clock,
            settings,
            subscribers: RwLock::new(Vec::new()),
            wake: Notify::new(),
        }
    }

    /// Register a subscriber; events written from now on that it wants are delivered to it.
    pub fn subscribe(&self, subscriber: Arc<dyn Subscriber>) -> Result<(), SubscribeError> {
        // A short std lock: registration happens at start-up, reads copy the list out.
        let mut list = self.subscribers.write().unwrap_or_else(|e| e.into_inner());
        if list.iter().any(|s| s.name() == subscriber.name()) {
            return Err(SubscribeError::Duplicate(subscriber.name()));
        }
        list.push(subscriber);
        Ok(())
    }

    fn subscribers(&self) -> Vec<Arc<dyn Subscriber>> {
        self.subscribers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Write a domain event in the caller's transaction, with a delivery for every subscriber
    /// that wants it. Returns the event's id.
    pub async fn emit(
        &self,
        conn: &mut AnyConnection,
        kind: &str,
        consultation_id: Option<&str>,
        payload: Value,
    ) -> Result<i64, sqlx::Error> {
        let now = self.clock.now_ms();
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO outbox (event, consultation_id, payload, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(kind)
        .bind(consultation_id.map(str::to_owned))
        .bind(payload.to_string())
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
        for s in self.subscribers().iter().filter(|s| s.wants(kind)) {
            sqlx::query(
                "INSERT INTO outbox_deliveries (event_id, subscriber, consultation_id, next_attempt_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(s.name())
            .bind(consultation_id.map(str::to_owned))
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        Ok(id)
    }

    /// Ask the dispatcher to look now (after a commit that emitted events).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Deliver what is due to every subscriber. Returns how many deliveries were done.
    pub async fn dispatch_due(&self) -> Result<usize, sqlx::Error> {
        let mut done = 0;
        for s in self.subscribers() {
            done += self.dispatch(&s, None).await?;
        }
        Ok(done)
    }

    /// Deliver one consultation's pending events to every subscriber now, ignoring backoff: the
    /// request that wrote them waits for their effects (e.g. the outbound call a subscriber
    /// queues). Returns how many were delivered.
    pub async fn dispatch_consultation(&self, consultation: &str) -> Result<usize, sqlx::Error> {
        let mut done = 0;
        for s in self.subscribers() {
            done += self.dispatch(&s, Some(consultation)).await?;
        }
        Ok(done)
    }

    /// Deliver to `s` until nothing more is due: each look takes the deliveries at the head of
    /// their consultation (oldest first), so a consultation's next event is looked at once its
    /// earlier one is done. Returns how many were done.
    async fn dispatch(
        &self,
        s: &Arc<dyn Subscriber>,
        consultation: Option<&str>,
    ) -> Result<usize, sqlx::Error> {
        let mut done = 0;
        loop {
            let (delivered, progress) = self.look(s, consultation).await?;
            done += delivered;
            if !progress {
                return Ok(done);
            }
        }
    }

    /// One look: (deliveries done by this look, whether anything moved — done here or, for a
    /// consultation's look, by another dispatcher it waited for).
    async fn look(
        &self,
        s: &Arc<dyn Subscriber>,
        consultation: Option<&str>,
    ) -> Result<(usize, bool), sqlx::Error> {
        let now = self.clock.now_ms();
        let heads: Vec<(i64,)> = sqlx::query_as(
            "SELECT d.id FROM outbox_deliveries d \
             WHERE d.subscriber = $1 AND d.status = 'pending' AND ($2 IS NULL OR d.consultation_id = $2) \
             AND ($2 IS NOT NULL OR d.next_attempt_at <= $3) \
             AND NOT EXISTS (SELECT 1 FROM outbox_deliveries e WHERE e.subscriber = d.subscriber \
                             AND e.consultation_id = d.consultation_id AND e.status = 'pending' \
                             AND e.event_id < d.event_id) \
             ORDER BY d.event_id LIMIT $4",
        )
        .bind(s.name())
        .bind(consultation.map(str::to_owned))
        .bind(now)
        .bind(BATCH)
        .fetch_all(&self.db.pool)
        .await?;
        let mut done = 0;
        let mut progress = false;
        for (delivery,) in &heads {
            match self.deliver(s, *delivery, consultation.is_some()).await? {
                Delivered::Now => {
                    done += 1;
                    progress = true;
                }
                Delivered::Elsewhere => progress = true,
                Delivered::Not => {}
            }
        }
        Ok((done, progress))
    }

    /// Take one delivery and hand its event to the subscriber. `wait`: a request waits for
    /// this consultation's events, so a delivery another dispatcher holds is waited for (on
    /// PostgreSQL; SQLite's write lock waits anyway) rather than skipped.
    async fn deliver(
        &self,
        s: &Arc<dyn Subscriber>,
        delivery: i64,
        wait: bool,
    ) -> Result<Delivered, sqlx::Error> {
        let mut tx = self.db.begin_write().await?;
        // On SQLite the transaction holds the write lock already; on PostgreSQL the row lock
        // makes the delivery ours, and a node holding it is skipped (or, `wait`, waited for).
        let select = "SELECT o.id, o.event, o.consultation_id, o.payload, o.created_at, d.attempts, d.status \
             FROM outbox_deliveries d JOIN outbox o ON o.id = d.event_id WHERE d.id = $1";
        let lock = match (self.db.backend, wait) {
            (Backend::Postgres, false) => " FOR UPDATE OF d SKIP LOCKED",
            (Backend::Postgres, true) => " FOR UPDATE OF d",
            (Backend::Sqlite, _) => "",
        };
        type Row = (i64, String, Option<String>, String, i64, i64, String);
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{select}{lock}")))
            .bind(delivery)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((id, kind, consultation_id, payload, created_at, attempts, status)) = row else {
            return Ok(Delivered::Not);
        };
        if status != "pending" {
            // Delivered by another dispatcher meanwhile.
            return Ok(Delivered::Elsewhere);
        }
        // Still the head of its consultation (checked again under the lock).
        let earlier: Option<(i64,)> = sqlx::query_as(
            "SELECT e.id FROM outbox_deliveries e WHERE e.subscriber = $1 AND e.consultation_id = $2 \
             AND e.status = 'pending' AND e.event_id < $3 LIMIT 1",
        )
        .bind(s.name())
        .bind(consultation_id.clone())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if earlier.is_some() {
            return Ok(Delivered::Not);
        }
        let event = Event {
            id,
            kind,
            consultation_id,
            payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
            created_at,
            attempts,
        };
        match s.handle(&mut tx, &event).await {
            Ok(()) => {
                sqlx::query(
                    "UPDATE outbox_deliveries SET status = 'done', done_at = $1, attempts = attempts + 1, \
                     last_error = NULL WHERE id = $2",
                )
                .bind(self.clock.now_ms())
                .bind(delivery)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                s.delivered(&event);
                Ok(Delivered::Now)
            }
            Err(e) => {
                drop(tx);
                let next = self.clock.now_ms()
                    + backoff_ms(attempts, self.settings.max_backoff.as_millis() as i64);
                tracing::warn!(subscriber = s.name(), event = event.id, kind = %event.kind,
                               attempt = attempts + 1, error = %e, "outbox delivery failed; retrying later");
                sqlx::query(
                    "UPDATE outbox_deliveries SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 \
                     WHERE id = $3 AND status = 'pending'",
                )
                .bind(format!("{e:#}"))
                .bind(next)
                .bind(delivery)
                .execute(&self.db.pool)
                .await?;
                Ok(Delivered::Not)
            }
        }
    }

    /// Delete events older than the retention whose deliveries are all done (and deliveries of
    /// subscribers no longer registered). Returns how many events went.
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        let cutoff = self.clock.now_ms() - self.settings.retention.as_millis() as i64;
        let registered: Vec<&'static str> = self.subscribers().iter().map(|s| s.name()).collect();
        let mut tx = self.db.begin_write().await?;
        let stale: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT d.subscriber FROM outbox_deliveries d JOIN outbox o ON o.id = d.event_id \
             WHERE o.created_at < $1",
        )
        .bind(cutoff)
        .fetch_all(&mut *tx)
        .await?;
        for (name,) in stale {
            let gone = !registered.contains(&name.as_str());
            sqlx::query(
                "DELETE FROM outbox_deliveries WHERE subscriber = $1 AND ($2 = 1 OR status = 'done') \
                 AND event_id IN (SELECT id FROM outbox WHERE created_at < $3)",
            )
            .bind(&name)
            .bind(i64::from(gone))
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        }
        let pruned = sqlx::query(
            "DELETE FROM outbox WHERE created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.event_id = outbox.id)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(pruned)
    }

    /// The dispatcher: delivers what is due, when woken or every `poll`, prunes hourly, until
    /// `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut next_prune = tokio::time::Instant::now();
        loop {
            if let Err(e) = self.dispatch_due().await {
                tracing::warn!(error = %e, "outbox dispatcher: database error; retrying");
            }
            if tokio::time::Instant::now() >= next_prune {
                match self.prune().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(events = n, "outbox: old events pruned"),
                    Err(e) => tracing::warn!(error = %e, "outbox: pruning failed; next hour"),
                }
                next_prune = tokio::time::Instant::now() + Duration::from_secs(3600);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.poll) => {}
                _ = self.wake.notified() => {}
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            }
        }
    }
}
