//! The inbound webhook store (`integration_events`): an event a system sent us is verified by
//! its handler (token, signature or source address: each system's own rule), then stored here
//! and answered at once; a unique key per system drops repeats. A worker of that system claims
//! the stored events with a lease, processes them, and marks each processed with what it found
//! (or releases them for a later attempt).

use super::{Backend, Clock, Db};

/// Whether a webhook's secret (`given`, from a header or a field) is the `expected` one,
/// compared in constant time; none given is not the one.
pub fn same_secret(expected: &str, given: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    given.is_some_and(|g| bool::from(expected.as_bytes().ct_eq(g.as_bytes())))
}

/// A verified event to store.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub system: &'a str,
    /// Equal keys are one event (the system sent it again).
    pub dedup_key: &'a str,
    pub event: &'a str,
    pub object_id: Option<&'a str>,
    /// The verified body, when the worker needs more than the object id.
    pub payload: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New(i64),
    Duplicate,
}

/// A stored event, as its worker sees it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Inbound {
    pub id: i64,
    pub event: String,
    pub object_id: Option<String>,
    pub payload: Option<String>,
    pub attempts: i64,
}

/// How long claimed events are the claimer's.
pub const LEASE_MS: i64 = 10 * 60_000;

pub struct InboundStore {
    db: Db,
    clock: Clock,
}

impl InboundStore {
    pub fn new(db: Db, clock: Clock) -> InboundStore {
        InboundStore { db, clock }
    }

    /// Store a verified event; a repeat of one already stored is `Duplicate`.
    pub async fn store(&self, e: NewEvent<'_>) -> Result<Stored, sqlx::Error> {
        let row: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO integration_events (system, dedup_key, event, object_id, payload, received_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(e.system)
        .bind(e.dedup_key)
        .bind(e.event)
        .bind(e.object_id.map(str::to_owned))
        .bind(e.payload.map(str::to_owned))
        .bind(self.clock.now_ms())
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(match row {
            Some((id,)) => Stored::New(id),
            None => Stored::Duplicate,
        })
    }

    /// Events of `system` not processed yet.
    pub async fn unprocessed(&self, system: &str) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM integration_events WHERE system = $1 AND processed_at IS NULL",
        )
        .bind(system)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(n)
    }

    /// Claim up to `limit` due events of `system`, oldest first, with a lease. Returns them
    /// and the lease that proves they are ours.
    pub async fn claim(
        &self,
        system: &str,
        limit: i64,
    ) -> Result<(Vec<Inbound>, i64), sqlx::Error> {
        let now = self.clock.now_ms();
        let lease = now + LEASE_MS;
        let lock = match self.db.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut rows: Vec<Inbound> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE integration_events SET locked_until = $1, attempts = attempts + 1 WHERE id IN ( \
               SELECT id FROM integration_events WHERE system = $2 AND processed_at IS NULL \
               AND next_attempt_at <= $3 AND (locked_until IS NULL OR locked_until < $3) \
               ORDER BY id LIMIT $4{lock}) \
             RETURNING id, event, object_id, payload, attempts"
        )))
        .bind(lease)
        .bind(system)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.db.pool)
        .await?;
        rows.sort_by_key(|r| r.id);
        Ok((rows, lease))
    }

    /// A claimed event is handled: what was found is kept for admins.
    pub async fn processed(&self, id: i64, lease: i64, outcome: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE integration_events SET processed_at = $1, outcome = $2, locked_until = NULL, last_error = NULL \
             WHERE id = $3 AND locked_until = $4",
        )
        .bind(self.clock.now_ms())
        .bind(outcome)
        .bind(id)
        .bind(lease)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Processing failed: the events wait until `retry_at`.
    pub async fn release(
        &self,
        ids: &[i64],
        lease: i64,
        error: &str,
        retry_at: i64,
    ) -> Result<(), sqlx::Error> {
        for id in ids {
            sqlx::query(
                "UPDATE integration_events SET locked_until = NULL, last_error = $1, next_attempt_at = $2 \
                 WHERE id = $3 AND locked_until = $4",
            )
            .bind(error)
            .bind(retry_at)
            .bind(id)
            .bind(lease)
            .execute(&self.db.pool)
            .await?;
        }
        Ok(())
    }
}
