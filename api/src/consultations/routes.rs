//! HTTP of consultations: book, list, read, cancel, pay (by the clinic, until payments land),
//! complete, join, reschedule, and the clinic's lists of overdue and conflicting ones.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vizit_signaling::CallRole;

use super::repo::{ConsultationRow, Filter, Flagged};
use super::service::{self, Error, Move, TransitionData};
use crate::domain::{
    Caller, ConsultationId, ConsultationStatus, JoinRefusal, Role, SlotId, SlotStatus, Transition,
    UserId,
};
use crate::http::{ApiError, Body, Page, Params, Problem, id, page, text, time_range, to_rfc3339};
use crate::identity::{self, IdentificationView, PersonalDataView};
use crate::platform::outbound::Outcome;
use crate::state::ApiState;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(what) => ApiError::NotFound(what),
            Error::SlotTaken | Error::TakenAtSource => {
                ApiError::conflict("slot_taken", e.to_string())
            }
            Error::SlotInPast => ApiError::conflict("slot_in_past", e.to_string()),
            Error::SameSlot => ApiError::conflict("same_slot", e.to_string()),
            Error::NotReschedulable(_) => ApiError::conflict("invalid_transition", e.to_string()),
            Error::Transition(t) => ApiError::Transition(t),
            Error::ConcurrentChange => ApiError::conflict("concurrent_change", e.to_string()),
            Error::Join(JoinRefusal::NotPaid) => ApiError::conflict("not_paid", e.to_string()),
            Error::Join(JoinRefusal::Closed(_)) => {
                ApiError::conflict("consultation_closed", e.to_string())
            }
            Error::Join(JoinRefusal::OutsideWindow { opens, closes }) => ApiError::conflict(
                "outside_join_window",
                format!(
                    "the call opens at {} and closes at {}",
                    to_rfc3339(opens),
                    to_rfc3339(closes)
                ),
            ),
            Error::Db(e) => e.into(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DoctorRef {
    id: String,
    name: String,
    specialty: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatientRef {
    id: String,
    name: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsultationView {
    id: String,
    slot_id: String,
    status: ConsultationStatus,
    doctor: DoctorRef,
    patient: PatientRef,
    price_kopecks: i64,
    starts_at: String,
    ends_at: String,
    time_zone: String,
    booked_at: String,
    pay_by: String,
    paid_at: Option<String>,
    started_at: Option<String>,
    completed_at: Option<String>,
    cancelled_at: Option<String>,
    cancelled_by: Option<String>,
    cancel_reason: Option<String>,
    conclusion: Option<String>,
    overdue: bool,
    /// Where the booking stands in Bitrix24: `pending` (on its way), `synced`, `conflict`
    /// (Bitrix24 had the time booked first), `released`; absent without the integration.
    booking_sync: Option<String>,
    /// Set when the booked time changed in Bitrix24 under this consultation: for the clinic.
    slot_conflict: Option<String>,
    /// The call may be joined from this moment (`consultations.join_before` ahead of the start)…
    join_opens_at: String,
    /// …until this one (`consultations.join_grace` after the end).
    join_closes_at: String,
    /// A patient who cancels by this moment gets their money back
    /// (`payments.patient_refund_notice` before the start); absent without payments.
    refundable_until: Option<String>,
}

/// The view of `r`, with its call's window and its refund deadline by the clinic's settings.
fn view(state: &ApiState, r: ConsultationRow) -> Result<ConsultationView, ApiError> {
    let s = &state.settings;
    let window =
        crate::domain::JoinWindow::around(r.starts_at, r.ends_at, s.join_before, s.join_grace);
    let refundable_until = state
        .payments
        .as_ref()
        .map(|p| to_rfc3339(r.starts_at - p.settings.patient_refund_notice.as_millis() as i64));
    let mut v = ConsultationView::try_from(r)?;
    v.join_opens_at = to_rfc3339(window.opens);
    v.join_closes_at = to_rfc3339(window.closes);
    v.refundable_until = refundable_until;
    Ok(v)
}

impl TryFrom<ConsultationRow> for ConsultationView {
    type Error = ApiError;

    fn try_from(r: ConsultationRow) -> Result<Self, ApiError> {
        Ok(ConsultationView {
            status: r.status().map_err(ApiError::from)?,
            doctor: DoctorRef {
                id: r.doctor_id,
                name: r.doctor_name,
                specialty: r.doctor_specialty,
            },
            patient: PatientRef {
                id: r.patient_id,
                name: r.patient_name,
            },
            id: r.id,
            slot_id: r.slot_id,
            price_kopecks: r.price_kopecks,
            starts_at: to_rfc3339(r.starts_at),
            ends_at: to_rfc3339(r.ends_at),
            time_zone: r.time_zone,
            booked_at: to_rfc3339(r.booked_at),
            pay_by: to_rfc3339(r.pay_by),
            paid_at: r.paid_at.map(to_rfc3339),
            started_at: r.started_at.map(to_rfc3339),
            completed_at: r.completed_at.map(to_rfc3339),
            cancelled_at: r.cancelled_at.map(to_rfc3339),
            cancelled_by: r.cancelled_by,
            cancel_reason: r.cancel_reason,
            conclusion: r.conclusion,
            overdue: r.overdue_at.is_some(),
            booking_sync: r.external_sync,
            slot_conflict: r.slot_conflict,
            join_opens_at: String::new(),
            join_closes_at: String::new(),
            refundable_until: None,
        })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BookRequest {
    slot_id: String,
    /// Only for the portal, booking on a patient's behalf.
    #[serde(default)]
    patient_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/consultations", tag = "consultations", security(("bearer" = [])), request_body = BookRequest, responses((status = 201, body = ConsultationView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
pub async fn book(
    State(state): State<ApiState>,
    caller: Caller,
    Body(req): Body<BookRequest>,
) -> Result<(StatusCode, Json<ConsultationView>), ApiError> {
    let patient: UserId = match (caller.role(), &req.patient_id) {
        (Some(Role::Patient), None) => caller.user().cloned().ok_or(ApiError::Unauthenticated)?,
        (Some(Role::Patient), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                "patients book for themselves; omit patientId",
            ));
        }
        (None, Some(p)) => id(p, "patient")?,
        (None, None) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                "patientId is required for the portal",
            ));
        }
        (Some(_), _) => {
            return Err(ApiError::Forbidden(
                "only patients and the portal book consultations",
            ));
        }
    };
    let slot: SlotId = id(&req.slot_id, "slot")?;
    let core = state.core();
    let consultation = service::book(&core, &caller, &slot, &patient).await?;
    // With an external slot source (Bitrix24), the booking is confirmed there first (bounded
    // wait; if it is slow or down the consultation stays `bookingSync: pending` and the queue
    // delivers it later).
    if let Some(Outcome::Refused) = service::settle(&core, &state.outbound, &consultation).await {
        return Err(Error::TakenAtSource.into());
    }
    let row = service::load(&core, &consultation)
        .await?
        .ok_or(ApiError::NotFound("consultation"))?;
    Ok((StatusCode::CREATED, Json(view(&state, row)?)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsultationQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    status: Option<ConsultationStatus>,
    #[serde(default)]
    doctor_id: Option<String>,
    /// Only those whose patient's or doctor's name contains this (2 to 100 characters, any
    /// case).
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/consultations", tag = "consultations", security(("bearer" = [])), params(ConsultationQuery), responses((status = 200, body = Page<ConsultationView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem, description = "`doctorId` is not a doctor's id")))]
pub async fn list_consultations(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<ConsultationQuery>,
) -> Result<Json<Page<ConsultationView>>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref())?;
    let doctor = q
        .doctor_id
        .as_deref()
        .map(|d| id::<UserId>(d, "doctor"))
        .transpose()?;
    let people = match q.q.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) if !(2..=100).contains(&text.chars().count()) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "q must be 2 to 100 characters",
            ));
        }
        Some(text) => Some(
            crate::consultations::repo::people_named(&state.db.pool, text, 500)
                .await
                .map_err(ApiError::from)?,
        ),
    };
    let filter = Filter {
        from,
        to,
        status: q.status,
        doctor,
        patient_of: None,
        doctor_of: None,
        people,
    };
    let (total, rows) = service::list(&state.core(), &caller, filter, limit, offset).await?;
    Ok(Json(Page {
        items: rows
            .into_iter()
            .map(|r| view(&state, r))
            .collect::<Result<_, _>>()?,
        total,
        limit,
        offset,
    }))
}

#[utoipa::path(get, path = "/api/v1/consultations/{id}", tag = "consultations", security(("bearer" = [])), params(("id" = String, Path, description = "consultation id")), responses((status = 200, body = ConsultationView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_consultation(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<ConsultationView>, ApiError> {
    let cid: ConsultationId = id(&raw, "consultation")?;
    let row = service::get(&state.core(), &caller, &cid).await?;
    Ok(Json(view(&state, row)?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/consultations/{id}/cancel", tag = "consultations", security(("bearer" = [])), params(("id" = String, Path, description = "consultation id")), request_body = CancelRequest, responses((status = 200, body = ConsultationView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
pub async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<CancelRequest>,
) -> Result<Json<ConsultationView>, ApiError> {
    caller.require(!caller.is(Role::HeadDoctor))?;
    let cid: ConsultationId = id(&raw, "consultation")?;
    let reason = text("reason", &req.reason, 1000)?;
    let by = service::cancelled_by(&caller);
    let row = service::transition(
        &state.core(),
        Some(&caller),
        &cid,
        Transition::Cancel(by),
        TransitionData {
            reason: Some(&reason),
            conclusion: None,
            block_slot: false,
        },
    )
    .await?;
    Ok(Json(view(&state, row)?))
}

/// The clinic marks a booking paid when the patient paid at its desk, not through YooKassa.
#[utoipa::path(post, path = "/api/v1/consultations/{id}/payment", tag = "consultations", security(("bearer" = [])), params(("id" = String, Path, description = "consultation id")), responses((status = 200, body = ConsultationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn mark_paid(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<ConsultationView>, ApiError> {
    caller.require(caller.is_clinic())?;
    let cid: ConsultationId = id(&raw, "consultation")?;
    let row = service::transition(
        &state.core(),
        Some(&caller),
        &cid,
        Transition::MarkPaid,
        TransitionData::default(),
    )
    .await?;
    Ok(Json(view(&state, row)?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    conclusion: String,
}

#[utoipa::path(post, path = "/api/v1/consultations/{id}/complete", tag = "consultations", security(("bearer" = [])), params(("id" = String, Path, description = "consultation id")), request_body = CompleteRequest, responses((status = 200, body = ConsultationView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
pub async fn complete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<CompleteRequest>,
) -> Result<Json<ConsultationView>, ApiError> {
    caller.require(caller.is(Role::Doctor))?;
    let cid: ConsultationId = id(&raw, "consultation")?;
    let conclusion = text("conclusion", &req.conclusion, 20_000)?;
    let row = service::transition(
        &state.core(),
        Some(&caller),
        &cid,
        Transition::Complete,
        TransitionData {
            reason: None,
            conclusion: Some(&conclusion),
            block_slot: false,
        },
    )
    .await?;
    Ok(Json(view(&state, row)?))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinView {
    token: String,
    call_url: String,
    expires_at: String,
}

/// How each party was identified when joining the call (ESIA `oid` and trust, or the kind of
/// session), oldest first: the consultation's doctor, head doctors, admins and the portal.
#[utoipa::path(get, path = "/api/v1/consultations/{id}/identifications", tag = "consultations", security(("bearer" = [])), params(("id" = String, Path, description = "consultation id")), responses((status = 200, body = [IdentificationView]), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn identifications(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<Vec<IdentificationView>>, ApiError> {
    caller.require(!caller.is(Role::Patient))?;
    let cid: ConsultationId = id(&raw, "consultation")?;
    service::get(&state.core(), &caller, &cid).await?;
    Ok(Json(
        identity::identifications_of(&state, cid.as_str()).await?,
    ))
}

/// The patient's data from ESIA for the consultation's doctor (the read is audited).
#[utoipa::path(get, path = "/api/v1/consultations/{id}/patient-data", tag = "consultations", security(("bearer" = [])), params(("id" = String, Path, description = "consultation id")), responses((status = 200, body = PersonalDataView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn patient_data(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<PersonalDataView>, ApiError> {
    caller.require(caller.is(Role::Doctor) || caller.is(Role::HeadDoctor))?;
    let cid: ConsultationId = id(&raw, "consultation")?;
    let row = service::get(&state.core(), &caller, &cid).await?;
    identity::for_doctor(&state, &caller, &row.patient_id).await
}

/// A join token for the consultation's Room: only its patient and doctor, only once paid, only
/// in the window around the slot. The first join starts the consultation.
#[utoipa::path(post, path = "/api/v1/consultations/{id}/join", tag = "consultations", security(("bearer" = [])), params(("id" = String, Path, description = "consultation id")), responses((status = 200, body = JoinView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn join(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<JoinView>, ApiError> {
    let cid: ConsultationId = id(&raw, "consultation")?;
    let role = match caller.role() {
        Some(Role::Patient) => CallRole::Patient,
        Some(Role::Doctor) => CallRole::Doctor,
        _ => {
            return Err(ApiError::Forbidden(
                "only the consultation's patient and doctor join the call",
            ));
        }
    };
    let (token, expires) = service::join(&state.core(), &state.keys, &caller, &cid, role).await?;
    Ok(Json(JoinView {
        call_url: format!("/call#token={token}"),
        token,
        expires_at: to_rfc3339(expires),
    }))
}

/// A page of a list the clinic works through (overdue, slot conflicts): whole, never filtered —
/// there are few, and each must be seen.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FlaggedQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/admin/overdue", tag = "admin", security(("bearer" = [])), params(FlaggedQuery), responses((status = 200, body = Page<ConsultationView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn overdue(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<FlaggedQuery>,
) -> Result<Json<Page<ConsultationView>>, ApiError> {
    caller.require(caller.is(Role::Admin) || caller.is(Role::HeadDoctor))?;
    flagged(&state, &caller, &q, Flagged::Overdue).await
}

/// Live consultations whose booked time changed in Bitrix24 under them, for the clinic to resolve
/// (cancel, reschedule, or restore the booking in Bitrix24 — the flag then clears by itself).
#[utoipa::path(get, path = "/api/v1/admin/slot-conflicts", tag = "admin", security(("bearer" = [])), params(FlaggedQuery), responses((status = 200, body = Page<ConsultationView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn slot_conflicts(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<FlaggedQuery>,
) -> Result<Json<Page<ConsultationView>>, ApiError> {
    caller.require(caller.is_clinic() || caller.is(Role::HeadDoctor))?;
    flagged(&state, &caller, &q, Flagged::SlotConflict).await
}

/// One page of the consultations the clinic must look at.
async fn flagged(
    state: &ApiState,
    caller: &Caller,
    q: &FlaggedQuery,
    which: Flagged,
) -> Result<Json<Page<ConsultationView>>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let (total, rows) = service::flagged(&state.core(), caller, which, limit, offset).await?;
    Ok(Json(Page {
        items: rows
            .into_iter()
            .map(|r| view(state, r))
            .collect::<Result<_, _>>()?,
        total,
        limit,
        offset,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RescheduleRequest {
    slot_id: String,
}

/// Move a booked or paid consultation to another free slot of the same doctor: its patient, an
/// admin or the portal. With Bitrix24 on, the booking there moves too; if Bitrix24 refuses the
/// new time (booked there first) the move is undone and the answer is 409 `slot_taken`.
#[utoipa::path(post, path = "/api/v1/consultations/{id}/reschedule", tag = "consultations", security(("bearer" = [])), params(("id" = String, Path, description = "consultation id")), request_body = RescheduleRequest, responses((status = 200, body = ConsultationView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
pub async fn reschedule(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<RescheduleRequest>,
) -> Result<Json<ConsultationView>, ApiError> {
    caller.require(caller.is(Role::Patient) || caller.is_clinic())?;
    let consultation: ConsultationId = id(&raw, "consultation")?;
    let slot: SlotId = id(&req.slot_id, "slot")?;
    let core = state.core();
    let (row, old_slot) = service::reschedule(
        &core,
        Some(&caller),
        &consultation,
        &slot,
        Move::Requested,
        SlotStatus::Free,
    )
    .await?;
    if let Some(Outcome::Refused) = service::settle(&core, &state.outbound, &consultation).await {
        // The slot source has the new time booked: go back to where it was (it never moved).
        // The refused slot is left blocked in the same transaction (the source has it).
        let back = SlotId::from_stored(old_slot);
        let undone = service::reschedule(
            &core,
            None,
            &consultation,
            &back,
            Move::Undo,
            SlotStatus::Blocked,
        )
        .await;
        if let Err(e) = undone {
            tracing::warn!(consultation = %consultation, error = %e, "could not undo a reschedule the slot source refused");
            service::flag_conflict(
                &core,
                consultation.as_str(),
                "the new time is taken in the clinic's schedule; the move could not be undone",
            )
            .await?;
        }
        return Err(Error::TakenAtSource.into());
    }
    let row = service::load(&core, &consultation).await?.unwrap_or(row);
    Ok(Json(view(&state, row)?))
}
