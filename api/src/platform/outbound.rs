//! The outbound queue: one table (`outbound_calls`) of calls to external systems, each row with
//! its `system`. A call is queued in the transaction of the change it carries ([`enqueue`]),
//! with an idempotency key stored before its first attempt. Each system registers an
//! [`Executor`]; a worker of that system claims only its own rows ([`Outbound::deliver_due`]):
//!
//! - in order per (system, consultation): a call runs once the earlier calls of the same system
//!   and consultation are over, so one system stuck never holds another's calls back;
//! - with a lease: a claimed call is the claimer's for `LEASE_MS`; on PostgreSQL the claim takes
//!   rows with `FOR UPDATE SKIP LOCKED`, and the outcome is written only by the holder of the
//!   lease, so two workers never run one call at the same time;
//! - retried with backoff while the system is down; an error no retry can fix makes the call
//!   `failed`, visible to admins, who can put it back ([`Outbound::retry`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use sqlx::AnyConnection;

use super::backoff::backoff_ms;
use super::future::BoxFuture;
use super::{Backend, Clock, Db};

/// A claimed call is someone else's for this long: longer than the slowest call can take
/// (retries × request timeout + backoff + pacing).
pub const LEASE_MS: i64 = 10 * 60_000;
/// Longest wait between attempts.
const MAX_BACKOFF_MS: i64 = 5 * 60_000;
/// Calls claimed per look.
const BATCH: i64 = 50;

/// A call to queue.
#[derive(Debug, Clone)]
pub struct NewCall<'a> {
    pub system: &'static str,
    pub operation: &'a str,
    pub consultation_id: &'a str,
    /// What the executor needs beyond the consultation's current state.
    pub payload: Option<Value>,
}

/// Queue a call inside the caller's transaction; `now` is when it is first due. Returns its id.
pub async fn enqueue(
    conn: &mut AnyConnection,
    call: NewCall<'_>,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO outbound_calls (system, operation, consultation_id, status, next_attempt_at, created_at, \
         idempotency_key, payload) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7) RETURNING id",
    )
    .bind(call.system)
    .bind(call.operation)
    .bind(call.consultation_id)
    .bind(now)
    .bind(now)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(call.payload.map(|p| p.to_string()))
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// A claimed call, as its executor sees it.
#[derive(Debug, Clone)]
pub struct Call {
    pub id: i64,
    pub system: String,
    pub operation: String,
    pub consultation_id: String,
    pub payload: Option<Value>,
    /// Sent to the external system so it recognises a repeat; the same on every attempt.
    pub idempotency_key: String,
    /// 1 on the first attempt.
    pub attempt: i64,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The system refused the change (e.g. the time was booked there first).
    Refused,
    /// What the call was about is gone from the system (moved or deleted there).
    Gone,
    /// Not delivered yet; tried again after a backoff.
    Retry(String),
    /// Given up: no retry can fix it; an admin can retry it.
    Failed(String),
}

/// A system's calls: how to run one.
pub trait Executor: Send + Sync + 'static {
    /// The `system` of its rows.
    fn system(&self) -> &'static str;

    /// How long a request waits for a consultation's calls of this system before answering
    /// that they are pending; zero: requests never run them.
    fn inline_timeout(&self) -> Duration;

    /// Run one claimed call. `inline`: the request that queued it is waiting for the answer.
    /// A database error leaves the call pending (its lease expires, it runs again).
    fn execute<'a>(
        &'a self,
        call: &'a Call,
        inline: bool,
    ) -> BoxFuture<'a, Result<Outcome, sqlx::Error>>;

    /// Called once a call's outcome is stored.
    fn finished(&self, _call: &Call, _outcome: &Outcome) {}

    /// Calls claimed per look, under one lease: few enough that the slowest of them all end
    /// well within `LEASE_MS`.
    fn batch(&self) -> i64 {
        BATCH
    }
}

/// One row of the queue, for admins.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CallRow {
    pub id: i64,
    pub operation: String,
    pub consultation_id: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub outcome: Option<String>,
    pub created_at: i64,
    pub done_at: Option<i64>,
}

/// A system's queue at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub pending: i64,
    pub failed: i64,
    pub oldest_pending_at: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("outbound call not found")]
    NotFound,
    #[error("only failed calls can be retried")]
    NotFailed,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The queue and the executors of each system.
pub struct Outbound {
    db: Db,
    clock: Clock,
    executors: RwLock<HashMap<&'static str, Arc<dyn Executor>>>,
}

impl Outbound {
    pub fn new(db: Db, clock: Clock) -> Outbound {
        Outbound {
            db,
            clock,
            executors: RwLock::new(HashMap::new()),
        }
    }

    /// Register (or replace) the executor of a system.
    pub fn register(&self, executor: Arc<dyn Executor>) {
        // A short std lock: registration at start-up, lookups copy the Arc out.
        self.executors
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(executor.system(), executor);
    }

    fn executor(&self, system: &str) -> Option<Arc<dyn Executor>> {
        self.executors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(system)
            .cloned()
    }

    fn executors(&self) -> Vec<Arc<dyn Executor>> {
        let map = self.executors.read().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<_> = map.values().cloned().collect();
        list.sort_by_key(|e| e.system());
        list
    }

    /// Claim and run the due calls of `system`, each consultation's in order. Returns how many
    /// ran. A system without an executor runs nothing (its rows wait).
    pub async fn deliver_due(&self, system: &str) -> Result<usize, sqlx::Error> {
        let Some(executor) = self.executor(system) else {
            return Ok(0);
        };
        let claimed = self.claim_due(system, executor.batch()).await?;
        let ran = claimed.len();
        // A database error on one call leaves it to its lease; the others still run.
        let mut first_error = None;
        for (call, lease) in claimed {
            if let Err(e) = self.run(&*executor, &call, lease, false).await {
                tracing::warn!(system, call = call.id, error = %e, "outbound call: database error; it runs again after its lease");
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(ran),
        }
    }

    /// Claim up to a batch of due calls of `system`: the head of each consultation's line.
    async fn claim_due(&self, system: &str, batch: i64) -> Result<Vec<(Call, i64)>, sqlx::Error> {
        let now = self.clock.now_ms();
        let lease = now + LEASE_MS;
        let lock = match self.db.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let rows: Vec<ClaimedRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE outbound_calls SET locked_until = $1, attempts = attempts + 1 WHERE id IN ( \
               SELECT o.id FROM outbound_calls o WHERE o.system = $2 AND o.status = 'pending' \
               AND o.next_attempt_at <= $3 AND (o.locked_until IS NULL OR o.locked_until < $3) \
               AND NOT EXISTS (SELECT 1 FROM outbound_calls e WHERE e.system = o.system \
                               AND e.consultation_id = o.consultation_id AND e.status = 'pending' AND e.id < o.id) \
               ORDER BY o.id LIMIT $4{lock}) \
             RETURNING id, system, operation, consultation_id, payload, idempotency_key, attempts"
        )))
        .bind(lease)
        .bind(system)
        .bind(now)
        .bind(batch.clamp(1, BATCH))
        .fetch_all(&self.db.pool)
        .await?;
        let mut calls: Vec<(Call, i64)> = rows.into_iter().map(|r| (r.into(), lease)).collect();
        calls.sort_by_key(|(c, _)| c.id);
        Ok(calls)
    }

    /// Claim one call by id (`due_only`: respect its backoff). `None` if someone else holds it,
    /// it is not due, or it is over.
    async fn claim(&self, id: i64, due_only: bool) -> Result<Option<(Call, i64)>, sqlx::Error> {
        let now = self.clock.now_ms();
        let lease = now + LEASE_MS;
        let row: Option<ClaimedRow> = sqlx::query_as(
            "UPDATE outbound_calls SET locked_until = $1, attempts = attempts + 1 \
             WHERE id = $2 AND status = 'pending' AND (locked_until IS NULL OR locked_until < $3) \
             AND ($4 = 0 OR next_attempt_at <= $3) \
             RETURNING id, system, operation, consultation_id, payload, idempotency_key, attempts",
        )
        .bind(lease)
        .bind(id)
        .bind(now)
        .bind(i64::from(due_only))
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.map(|r| (r.into(), lease)))
    }

    /// Run a consultation's pending calls of every system now, each system's in order and
    /// within its executor's inline timeout (the request that queued them waits). A refusal
    /// (or a failure) ends it at once with that outcome; a system slow or down does not stop the
    /// next one, and its `Retry` is returned at the end; else `Done`. `None` without executors.
    /// Systems whose inline timeout is zero (nobody waits for them, e.g. e-mail) are left to
    /// their workers.
    pub async fn deliver_consultation(&self, consultation: &str) -> Option<Outcome> {
        let executors: Vec<_> = self
            .executors()
            .into_iter()
            .filter(|e| !e.inline_timeout().is_zero())
            .collect();
        if executors.is_empty() {
            return None;
        }
        let mut first = None;
        for executor in executors {
            match self.deliver_inline(&*executor, consultation).await {
                Outcome::Done => {}
                // Slow or down: the next system still gets its turn (a slot source down must
                // not keep a booking's payment from being created).
                outcome @ Outcome::Retry(_) => {
                    first.get_or_insert(outcome);
                }
                outcome => return Some(outcome),
            }
        }
        Some(first.unwrap_or(Outcome::Done))
    }

    /// Run a consultation's pending calls of one `system` now, within its executor's inline
    /// timeout (the request that queued them waits for its own system only). `None` without
    /// that system's executor.
    pub async fn deliver(&self, system: &str, consultation: &str) -> Option<Outcome> {
        let executor = self.executor(system)?;
        Some(self.deliver_inline(&*executor, consultation).await)
    }

    /// One system's calls of a consultation, bounded by its inline timeout; a database error or
    /// the timeout is a `Retry` (the worker takes it from there).
    async fn deliver_inline(&self, executor: &dyn Executor, consultation: &str) -> Outcome {
        let delivered = tokio::time::timeout(
            executor.inline_timeout(),
            self.deliver_system_consultation(executor, consultation),
        )
        .await;
        match delivered {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                tracing::warn!(system = executor.system(), error = %e, "outbound delivery: database error; the worker will retry");
                Outcome::Retry("database error".into())
            }
            Err(_) => Outcome::Retry(format!("{} did not answer in time", executor.system())),
        }
    }

    async fn deliver_system_consultation(
        &self,
        executor: &dyn Executor,
        consultation: &str,
    ) -> Result<Outcome, sqlx::Error> {
        let ids: Vec<(i64,)> = sqlx::query_as(
            "SELECT id FROM outbound_calls WHERE system = $1 AND consultation_id = $2 AND status = 'pending' ORDER BY id",
        )
        .bind(executor.system())
        .bind(consultation)
        .fetch_all(&self.db.pool)
        .await?;
        for (id,) in ids {
            let outcome = loop {
                if let Some((call, lease)) = self.claim(id, false).await? {
                    break self.run(executor, &call, lease, true).await?;
                }
                // Another worker holds it (or it is over): wait for that attempt to end, then
                // take it if it is still pending (the caller's timeout bounds the wait). An
                // attempt that ended elsewhere ends here as it ended there.
                match self.state_of(id).await? {
                    Some((status, outcome)) if status != "pending" => {
                        break match (status.as_str(), outcome.as_deref()) {
                            ("done", Some("conflict")) => Outcome::Refused,
                            ("done", Some("gone")) => Outcome::Gone,
                            ("done", _) => Outcome::Done,
                            _ => Outcome::Failed("failed for good".into()),
                        };
                    }
                    None => break Outcome::Done,
                    Some(_) => tokio::time::sleep(Duration::from_millis(25)).await,
                }
            };
            if outcome != Outcome::Done {
                return Ok(outcome);
            }
        }
        Ok(Outcome::Done)
    }

    /// (status, outcome) of a call.
    async fn state_of(&self, id: i64) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
        sqlx::query_as("SELECT status, outcome FROM outbound_calls WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await
    }

    /// Execute one claimed call and store how it ended (only while the lease is ours).
    async fn run(
        &self,
        executor: &dyn Executor,
        call: &Call,
        lease: i64,
        inline: bool,
    ) -> Result<Outcome, sqlx::Error> {
        let outcome = executor.execute(call, inline).await?;
        let now = self.clock.now_ms();
        let (status, outcome_text, error) = match &outcome {
            Outcome::Done => ("done", Some("delivered"), None),
            Outcome::Refused => ("done", Some("conflict"), None),
            Outcome::Gone => ("done", Some("gone"), None),
            Outcome::Failed(e) => ("failed", None, Some(e.clone())),
            Outcome::Retry(e) => ("pending", None, Some(e.clone())),
        };
        sqlx::query(
            "UPDATE outbound_calls SET status = $1, outcome = COALESCE($2, outcome), last_error = $3, locked_until = NULL, \
             next_attempt_at = $4, done_at = $5 WHERE id = $6 AND locked_until = $7",
        )
        .bind(status)
        .bind(outcome_text)
        .bind(error)
        .bind(now + backoff_ms(call.attempt, MAX_BACKOFF_MS))
        .bind((status != "pending").then_some(now))
        .bind(call.id)
        .bind(lease)
        .execute(&self.db.pool)
        .await?;
        match &outcome {
            Outcome::Retry(e) => {
                tracing::warn!(call = call.id, system = %call.system, operation = %call.operation, attempt = call.attempt, error = %e, "outbound call not delivered; retrying later")
            }
            Outcome::Failed(e) => {
                tracing::error!(call = call.id, system = %call.system, operation = %call.operation, error = %e, "outbound call failed for good; an admin can retry it")
            }
            _ => {}
        }
        executor.finished(call, &outcome);
        Ok(outcome)
    }

    /// Put a failed call of `system` back in the queue, due now.
    pub async fn retry(&self, system: &str, id: i64) -> Result<(), RetryError> {
        let changed = sqlx::query(
            "UPDATE outbound_calls SET status = 'pending', next_attempt_at = $1, done_at = NULL \
             WHERE id = $2 AND system = $3 AND status = 'failed'",
        )
        .bind(self.clock.now_ms())
        .bind(id)
        .bind(system)
        .execute(&self.db.pool)
        .await?
        .rows_affected();
        if changed == 1 {
            return Ok(());
        }
        let exists: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM outbound_calls WHERE id = $1 AND system = $2")
                .bind(id)
                .bind(system)
                .fetch_optional(&self.db.pool)
                .await?;
        Err(match exists {
            None => RetryError::NotFound,
            Some(_) => RetryError::NotFailed,
        })
    }

    /// One page of a system's calls, newest first (`status`: pending, done or failed).
    pub async fn list(
        &self,
        system: &str,
        status: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<CallRow>), sqlx::Error> {
        let (total,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM outbound_calls WHERE system = $1 AND ($2 IS NULL OR status = $2)",
        )
        .bind(system)
        .bind(status.map(str::to_owned))
        .fetch_one(&self.db.pool)
        .await?;
        let rows: Vec<CallRow> = sqlx::query_as(
            "SELECT id, operation, consultation_id, status, attempts, next_attempt_at, last_error, outcome, created_at, done_at \
             FROM outbound_calls WHERE system = $1 AND ($2 IS NULL OR status = $2) ORDER BY id DESC LIMIT $3 OFFSET $4",
        )
        .bind(system)
        .bind(status.map(str::to_owned))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.db.pool)
        .await?;
        Ok((total, rows))
    }

    /// Pending and failed calls of a system, and the oldest pending one.
    pub async fn summary(&self, system: &str) -> Result<Summary, sqlx::Error> {
        let (pending, failed, oldest): (i64, i64, Option<i64>) = sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0), \
             MIN(CASE WHEN status = 'pending' THEN created_at END) \
             FROM outbound_calls WHERE system = $1",
        )
        .bind(system)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(Summary {
            pending,
            failed,
            oldest_pending_at: oldest,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: i64,
    system: String,
    operation: String,
    consultation_id: String,
    payload: Option<String>,
    idempotency_key: Option<String>,
    attempts: i64,
}

impl From<ClaimedRow> for Call {
    fn from(r: ClaimedRow) -> Call {
        Call {
            // Rows queued before keys existed get a stable one of their own.
            idempotency_key: r
                .idempotency_key
                .unwrap_or_else(|| format!("outbound-call-{}", r.id)),
            id: r.id,
            system: r.system,
            operation: r.operation,
            consultation_id: r.consultation_id,
            payload: r.payload.and_then(|p| serde_json::from_str(&p).ok()),
            attempt: r.attempts,
        }
    }
}
