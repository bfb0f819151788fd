//! The consultations' periodic sweeps: unpaid bookings expire (their slots are released), and
//! consultations not closed in time are flagged for the clinic. Run by the scheduler.

use serde_json::json;

use super::repo;
use super::service::{Error, TransitionData, transition};
use crate::domain::{ConsultationId, EventKind, Transition};
use crate::platform::audit::audit;
use crate::state::Core;

/// Expire bookings not paid by now. Returns how many expired.
pub async fn expire_unpaid(core: &Core) -> Result<usize, Error> {
    let mut expired = 0;
    for id in repo::unpaid(&core.db.pool, core.now()).await? {
        let id = ConsultationId::from_stored(id);
        match transition(
            core,
            None,
            &id,
            Transition::Expire,
            TransitionData::default(),
        )
        .await
        {
            Ok(_) => expired += 1,
            // Paid or cancelled meanwhile: nothing to expire.
            Err(Error::Transition(_) | Error::ConcurrentChange | Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(expired)
}

/// Flag consultations whose slot ended more than `overdue_after` ago and that are not closed.
/// Returns how many were flagged.
pub async fn flag_overdue(core: &Core) -> Result<usize, Error> {
    let now = core.now();
    let limit = now - core.settings.overdue_after.as_millis() as i64;
    let mut flagged = 0;
    for id in repo::overdue_candidates(&core.db.pool, limit).await? {
        let mut tx = core.db.begin_write().await?;
        if repo::flag_overdue(&mut tx, &id, now).await? {
            core.outbox
                .emit(
                    &mut tx,
                    EventKind::ConsultationOverdue.as_str(),
                    Some(&id),
                    json!({"consultationId": id}),
                )
                .await?;
            audit(
                &mut tx,
                None,
                "consultation.overdue",
                "consultation",
                Some(&id),
                serde_json::Value::Null,
            )
            .await?;
            flagged += 1;
        }
        tx.commit().await?;
    }
    if flagged > 0 {
        core.outbox.notify();
    }
    Ok(flagged)
}
