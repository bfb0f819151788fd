//! The scheduler: jobs that must run at a time (a reminder, an expiry, a retention pass), kept
//! in the database (`scheduled_jobs`) so a restart loses none, and leased so that with several
//! Vizit nodes on one PostgreSQL each run happens once.
//!
//! - [`Scheduler::schedule`] puts a one-off job at a time under a key (scheduling the key again
//!   moves it; [`Scheduler::cancel`] drops it), in the caller's transaction.
//! - [`Scheduler::every`] keeps a recurring job: after each run it is due again `every` later.
//! - [`Scheduler::run_due`] claims the jobs due by the [`Clock`] whose kind this node knows, runs
//!   them, and marks them done. A job due while the process was down runs once when it is back
//!   (a recurring one too: once, not once per missed period). A job that fails is tried again
//!   with backoff; a one-off job that failed `MAX_ATTEMPTS` times is `failed`, kept for a person.
//!
//! A claim is a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL); the run is recorded only by the
//! holder of the lease, so two nodes never both complete a job. A node that dies mid-run leaves
//! the job to be run again once the lease expires (at least once; handlers are idempotent).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use sqlx::AnyConnection;

use super::backoff::backoff_ms;
use super::future::BoxFuture;
use super::{Backend, Clock, Db};

/// A claimed job is the claimer's for this long.
pub const LEASE_MS: i64 = 10 * 60_000;
/// A one-off job is given up after this many failed runs.
pub const MAX_ATTEMPTS: i64 = 10;
const MAX_BACKOFF_MS: i64 = 10 * 60_000;
/// Jobs claimed per look.
const BATCH: i64 = 20;

/// A job being run.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub id: i64,
    pub kind: String,
    pub key: String,
    /// When it was due (UTC milliseconds).
    pub due_at: i64,
    pub payload: Option<Value>,
    /// 1 on the first run.
    pub attempt: i64,
}

/// The code of one kind of job.
pub trait Job: Send + Sync + 'static {
    fn kind(&self) -> &'static str;

    /// Run it. An error makes it run again after a backoff.
    fn run<'a>(&'a self, job: &'a Due) -> BoxFuture<'a, anyhow::Result<()>>;
}

pub struct Scheduler {
    db: Db,
    clock: Clock,
    jobs: RwLock<HashMap<&'static str, Arc<dyn Job>>>,
}

#[derive(sqlx::FromRow)]
struct Claimed {
    id: i64,
    kind: String,
    job_key: String,
    due_at: i64,
    every_ms: Option<i64>,
    payload: Option<String>,
    attempts: i64,
}

impl Scheduler {
    pub fn new(db: Db, clock: Clock) -> Scheduler {
        Scheduler {
            db,
            clock,
            jobs: RwLock::new(HashMap::new()),
        }
    }

    /// Register the code of a kind of job; this node runs jobs of the kinds it knows.
    pub fn register(&self, job: Arc<dyn Job>) {
        // A short std lock: registration at start-up, lookups copy the Arc out.
        self.jobs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.kind(), job);
    }

    fn job(&self, kind: &str) -> Option<Arc<dyn Job>> {
        self.jobs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kind)
            .cloned()
    }

    fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<_> = self
            .jobs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        kinds.sort_unstable();
        kinds
    }

    /// Put a one-off job of `kind` under `key` at `due_at`, in the caller's transaction. A job
    /// with this key is moved there (and runs again if it had run).
    pub async fn schedule(
        &self,
        conn: &mut AnyConnection,
        kind: &str,
        key: &str,
        due_at: i64,
        payload: Option<Value>,
    ) -> Result<(), sqlx::Error> {
        schedule_at(conn, self.clock.now_ms(), kind, key, due_at, payload).await
    }

    /// Drop the job under `key` unless it has run; true if one was dropped.
    pub async fn cancel(&self, conn: &mut AnyConnection, key: &str) -> Result<bool, sqlx::Error> {
        cancel_job(conn, key).await
    }

    /// The payload of the job under `key` while it is still to run, in the caller's transaction:
    /// None if there is no such job, it has run, or it carries no (readable) payload.
    pub async fn pending_payload(
        &self,
        conn: &mut AnyConnection,
        key: &str,
    ) -> Result<Option<Value>, sqlx::Error> {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT payload FROM scheduled_jobs WHERE job_key = $1 AND status = 'pending'",
        )
        .bind(key)
        .fetch_optional(conn)
        .await?;
        Ok(row
            .and_then(|(p,)| p)
            .and_then(|p| serde_json::from_str(&p).ok()))
    }

    /// Keep a recurring job of `kind` under `key`: due now if new, then `every` after each run.
    /// A changed period applies from the next run.
    pub async fn every(&self, kind: &str, key: &str, every: Duration) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO scheduled_jobs (kind, job_key, due_at, every_ms, status, created_at) \
             VALUES ($1, $2, $3, $4, 'pending', $3) \
             ON CONFLICT (job_key) DO UPDATE SET kind = excluded.kind, every_ms = excluded.every_ms, \
             status = 'pending'",
        )
        .bind(kind)
        .bind(key)
        .bind(self.clock.now_ms())
        .bind(every.as_millis().max(1) as i64)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Claim the due jobs of known kinds and run them, one after another. Returns how many ran
    /// successfully.
    pub async fn run_due(&self) -> Result<usize, sqlx::Error> {
        let kinds = self.kinds();
        if kinds.is_empty() {
            return Ok(0);
        }
        let now = self.clock.now_ms();
        let lease = now + LEASE_MS;
        let lock = match self.db.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let placeholders = super::db::placeholders(4, kinds.len());
        let sql = format!(
            "UPDATE scheduled_jobs SET locked_until = $1, attempts = attempts + 1 WHERE id IN ( \
               SELECT id FROM scheduled_jobs WHERE status = 'pending' AND due_at <= $2 \
               AND (locked_until IS NULL OR locked_until < $2) AND kind IN ({}) \
               ORDER BY due_at, id LIMIT $3{lock}) \
             RETURNING id, kind, job_key, due_at, every_ms, payload, attempts",
            placeholders
        );
        let mut query = sqlx::query_as::<_, Claimed>(sqlx::AssertSqlSafe(sql))
            .bind(lease)
            .bind(now)
            .bind(BATCH);
        for kind in &kinds {
            query = query.bind(*kind);
        }
        let mut claimed = query.fetch_all(&self.db.pool).await?;
        claimed.sort_by_key(|c| (c.due_at, c.id));
        let mut ran = 0;
        for c in claimed {
            if self.run_one(c, lease).await? {
                ran += 1;
            }
        }
        Ok(ran)
    }

    async fn run_one(&self, c: Claimed, lease: i64) -> Result<bool, sqlx::Error> {
        let due = Due {
            id: c.id,
            kind: c.kind.clone(),
            key: c.job_key.clone(),
            due_at: c.due_at,
            payload: c
                .payload
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok()),
            attempt: c.attempts,
        };
        let result = match self.job(&c.kind) {
            Some(job) => job.run(&due).await,
            None => Err(anyhow::anyhow!("no code for jobs of kind {}", c.kind)),
        };
        let now = self.clock.now_ms();
        match (result, c.every_ms) {
            (Ok(()), Some(every)) => {
                // Due again a period after this run; a move made meanwhile is kept.
                sqlx::query(
                    "UPDATE scheduled_jobs SET due_at = CASE WHEN due_at = $1 THEN $2 ELSE due_at END, \
                     locked_until = NULL, attempts = 0, last_error = NULL, done_at = $3 \
                     WHERE id = $4 AND locked_until = $5",
                )
                .bind(c.due_at)
                .bind(now + every)
                .bind(now)
                .bind(c.id)
                .bind(lease)
                .execute(&self.db.pool)
                .await?;
                Ok(true)
            }
            (Ok(()), None) => {
                // Done, unless it was scheduled again (moved) while it ran.
                sqlx::query(
                    "UPDATE scheduled_jobs SET status = CASE WHEN due_at = $1 THEN 'done' ELSE status END, \
                     done_at = $2, locked_until = NULL, last_error = NULL WHERE id = $3 AND locked_until = $4",
                )
                .bind(c.due_at)
                .bind(now)
                .bind(c.id)
                .bind(lease)
                .execute(&self.db.pool)
                .await?;
                Ok(true)
            }
            (Err(e), every) => {
                let give_up = every.is_none() && c.attempts >= MAX_ATTEMPTS;
                if give_up {
                    tracing::error!(job = %c.job_key, kind = %c.kind, error = %e, "scheduled job failed for good");
                } else {
                    tracing::warn!(job = %c.job_key, kind = %c.kind, attempt = c.attempts, error = %e, "scheduled job failed; retrying later");
                }
                sqlx::query(
                    "UPDATE scheduled_jobs SET status = $1, last_error = $2, locked_until = NULL, \
                     due_at = CASE WHEN due_at = $3 THEN $4 ELSE due_at END WHERE id = $5 AND locked_until = $6",
                )
                .bind(if give_up { "failed" } else { "pending" })
                .bind(format!("{e:#}"))
                .bind(c.due_at)
                .bind(now + backoff_ms(c.attempts, MAX_BACKOFF_MS))
                .bind(c.id)
                .bind(lease)
                .execute(&self.db.pool)
                .await?;
                Ok(false)
            }
        }
    }

    /// Run due jobs every `poll` until `stop` turns true.
    pub async fn run(
        self: Arc<Self>,
        poll: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if let Err(e) = self.run_due().await {
                tracing::warn!(error = %e, "scheduler: database error; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            }
        }
    }
}

/// Drop the job under `key` unless it has run, in the caller's transaction; true if one was.
pub async fn cancel_job(conn: &mut AnyConnection, key: &str) -> Result<bool, sqlx::Error> {
    let n = sqlx::query("DELETE FROM scheduled_jobs WHERE job_key = $1 AND status = 'pending'")
        .bind(key)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// [`Scheduler::schedule`] for code that holds no scheduler (an outbox subscriber, in its
/// delivery's transaction); `now` is the creation time.
pub async fn schedule_at(
    conn: &mut AnyConnection,
    now: i64,
    kind: &str,
    key: &str,
    due_at: i64,
    payload: Option<Value>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO scheduled_jobs (kind, job_key, due_at, payload, status, created_at) \
         VALUES ($1, $2, $3, $4, 'pending', $5) \
         ON CONFLICT (job_key) DO UPDATE SET kind = excluded.kind, due_at = excluded.due_at, \
         payload = excluded.payload, status = 'pending', attempts = 0, last_error = NULL, done_at = NULL, \
         every_ms = NULL",
    )
    .bind(kind)
    .bind(key)
    .bind(due_at)
    .bind(payload.map(|p| p.to_string()))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
