//! What a slot source (Bitrix24) may do to the consultations booked on its slots. The
//! consultations capability implements it and the wiring (`lib.rs`) hands it over, so slots
//! never import consultations.

use crate::platform::BoxFuture;

pub trait BookedConsultations: Send + Sync + 'static {
    /// The source had the time booked first: the consultation is not confirmed. It is
    /// cancelled by the clinic with `reason` (for the patient) and its slot left blocked.
    fn refuse<'a>(&'a self, id: &'a str, reason: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Its booked time changed in the source: flag it for the clinic (not moved or cancelled:
    /// a paid patient is waiting). False if it was flagged already.
    fn flag_conflict<'a>(
        &'a self,
        id: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<bool, sqlx::Error>>;

    /// Its booking matches the source again: the flag goes. False if none was set.
    fn clear_conflict<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, sqlx::Error>>;
}
