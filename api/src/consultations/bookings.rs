//! The consultations' side of a slot source: what Bitrix24 may do to the consultations booked
//! on its slots ([`crate::slots::BookedConsultations`]).

use super::service::{self, Error, TransitionData};
use crate::domain::{CancelledBy, ConsultationId, Transition};
use crate::platform::BoxFuture;
use crate::slots::BookedConsultations;
use crate::state::Core;

pub struct SlotBookings(pub Core);

impl BookedConsultations for SlotBookings {
    fn refuse<'a>(&'a self, id: &'a str, reason: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let id: ConsultationId = id.parse()?;
            let cancelled = service::transition(
                &self.0,
                None,
                &id,
                Transition::Cancel(CancelledBy::Clinic),
                TransitionData {
                    reason: Some(reason),
                    conclusion: None,
                    block_slot: true,
                },
            )
            .await;
            match cancelled {
                // Already over (cancelled, expired…): nothing to refuse.
                Ok(_) | Err(Error::Transition(_)) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn flag_conflict<'a>(
        &'a self,
        id: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<bool, sqlx::Error>> {
        Box::pin(service::flag_conflict(&self.0, id, reason))
    }

    fn clear_conflict<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, sqlx::Error>> {
        Box::pin(service::clear_conflict(&self.0, id))
    }
}
