//! The periodic jobs, run by the scheduler on the database (so with several nodes each runs
//! once per period): unpaid bookings expire, consultations not closed in time are flagged,
//! recordings past their retention are deleted. [`run_all`] runs them all now (tests, tools).

use std::sync::Arc;

use serde::Serialize;

use crate::consultations;
use crate::platform::scheduler::{Due, Job};
use crate::platform::{BoxFuture, Db};
use crate::recordings::{self, Recordings};
use crate::state::{ApiState, Core};

pub const EXPIRE_UNPAID: &str = "consultations.expire_unpaid";
pub const FLAG_OVERDUE: &str = "consultations.flag_overdue";
pub const RETENTION: &str = "recordings.retention";
pub const IDENTITY_PURGE: &str = "identity.purge";

/// ESIA sign-ins and registrations nobody finished are forgotten after this.
const UNFINISHED_SIGN_INS: std::time::Duration = std::time::Duration::from_secs(3600);

/// Summary of one pass of every job.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct JobReport {
    pub expired: usize,
    pub overdue: usize,
    /// Recordings deleted by the retention policy.
    pub recordings_deleted: usize,
}

/// Run every periodic job once, now.
pub async fn run_all(state: &ApiState) -> anyhow::Result<JobReport> {
    let core = state.core();
    Ok(JobReport {
        expired: consultations::jobs::expire_unpaid(&core).await?,
        overdue: consultations::jobs::flag_overdue(&core).await?,
        recordings_deleted: recordings::apply_retention(&state.db, state.recordings.as_deref())
            .await?,
    })
}

struct Sweep {
    kind: &'static str,
    core: Core,
    recordings: Option<Arc<Recordings>>,
    db: Db,
}

impl Sweep {
    async fn run(&self) -> anyhow::Result<()> {
        let (what, n) = match self.kind {
            EXPIRE_UNPAID => (
                "unpaid bookings expired",
                consultations::jobs::expire_unpaid(&self.core).await?,
            ),
            FLAG_OVERDUE => (
                "consultations flagged overdue",
                consultations::jobs::flag_overdue(&self.core).await?,
            ),
            RETENTION => (
                "recordings deleted by retention",
                recordings::apply_retention(&self.db, self.recordings.as_deref()).await?,
            ),
            IDENTITY_PURGE => (
                "unfinished ESIA sign-ins forgotten",
                crate::identity::purge(&self.core, UNFINISHED_SIGN_INS).await? as usize,
            ),
            other => anyhow::bail!("no sweep named {other}"),
        };
        if n > 0 {
            tracing::info!(count = n, "{what}");
        }
        Ok(())
    }
}

impl Job for Sweep {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn run<'a>(&'a self, _job: &'a Due) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(Sweep::run(self))
    }
}

/// Register the periodic jobs' code with the scheduler and keep one recurring job of each, every
/// `settings.jobs_interval`.
pub async fn schedule(state: &ApiState) -> Result<(), sqlx::Error> {
    for kind in [EXPIRE_UNPAID, FLAG_OVERDUE, RETENTION, IDENTITY_PURGE] {
        state.scheduler.register(Arc::new(Sweep {
            kind,
            core: state.core(),
            recordings: state.recordings.clone(),
            db: state.db.clone(),
        }));
        state
            .scheduler
            .every(kind, kind, state.settings.jobs_interval)
            .await?;
    }
    if state.payments.is_some() {
        let kind = crate::payments::reconcile::RECONCILE;
        state
            .scheduler
            .every(kind, kind, state.settings.jobs_interval)
            .await?;
    }
    Ok(())
}
