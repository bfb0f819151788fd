//! HTTP of slots: doctors and their free slots, and slots published by hand.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::repo::DoctorRow;
use super::service::{self, Error, Publish};
use crate::domain::{Caller, Kopecks, SlotStatus, UserId};
use crate::http::{ApiError, Body, Params, Problem, id, parse_time, to_rfc3339};
use crate::state::ApiState;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NoDoctor => ApiError::NotFound("doctor"),
            Error::BadLength => ApiError::bad_request("invalid_field", e.to_string()),
            Error::SlotExists => ApiError::conflict("slot_exists", e.to_string()),
            Error::BadTimeZone => ApiError::bad_request("invalid_field", e.to_string()),
            Error::PriceRequired => ApiError::bad_request("price_required", e.to_string()),
            Error::Db(e) => e.into(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DoctorView {
    id: String,
    name: String,
    specialty: String,
    time_zone: String,
    /// The doctor's own price, when the clinic prices per doctor; `null`: each slot has its own.
    price_kopecks: Option<i64>,
}

impl From<DoctorRow> for DoctorView {
    fn from(d: DoctorRow) -> Self {
        DoctorView {
            id: d.id,
            name: d.name,
            specialty: d.specialty,
            time_zone: d.time_zone,
            price_kopecks: d.price_kopecks,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/doctors", tag = "slots", security(("bearer" = [])),
    responses((status = 200, body = [DoctorView]), (status = 401, body = Problem)))]
pub async fn list_doctors(
    State(state): State<ApiState>,
    _caller: Caller,
) -> Result<Json<Vec<DoctorView>>, ApiError> {
    let rows = service::doctors(&state.core()).await?;
    Ok(Json(rows.into_iter().map(DoctorView::from).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetPrice {
    /// Kopecks, or `null` to price per slot again. Required (`null` is said, not implied).
    #[schema(value_type = Option<i64>)]
    price_kopecks: serde_json::Value,
}

/// Price a doctor (admins and the portal): their free slots still to come take the price at
/// once, and so do new ones (published without a price, or from Bitrix24); booked consultations
/// keep theirs. `null`: each slot has its own price again.
#[utoipa::path(put, path = "/api/v1/doctors/{id}/price", tag = "slots", security(("bearer" = [])),
    params(("id" = String, Path, description = "doctor id")), request_body = SetPrice,
    responses((status = 200, body = DoctorView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem)))]
pub async fn set_doctor_price(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<SetPrice>,
) -> Result<Json<DoctorView>, ApiError> {
    caller.require(caller.is_clinic())?;
    let doctor: UserId = id(&raw, "doctor")?;
    let bad = || {
        ApiError::bad_request(
            "invalid_field",
            "priceKopecks must be null or between 0 and 100000000",
        )
    };
    let price = match &req.price_kopecks {
        serde_json::Value::Null => None,
        v => Some(
            v.as_i64()
                .and_then(|p| Kopecks::price(p).ok())
                .ok_or_else(bad)?,
        ),
    };
    let row = service::set_price(&state.core(), &caller, &doctor, price).await?;
    Ok(Json(row.into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SlotQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotView {
    id: String,
    doctor_id: String,
    starts_at: String,
    ends_at: String,
    time_zone: String,
    status: SlotStatus,
    price_kopecks: i64,
}

#[utoipa::path(get, path = "/api/v1/doctors/{id}/slots", tag = "slots", security(("bearer" = [])), params(("id" = String, Path, description = "doctor id"), SlotQuery), responses((status = 200, body = [SlotView]), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn free_slots(
    State(state): State<ApiState>,
    _caller: Caller,
    Path(raw): Path<String>,
    Params(q): Params<SlotQuery>,
) -> Result<Json<Vec<SlotView>>, ApiError> {
    let doctor: UserId = id(&raw, "doctor")?;
    let from = q
        .from
        .as_deref()
        .map(|v| parse_time("from", v))
        .transpose()?
        .unwrap_or_else(|| state.now());
    let to =
        q.to.as_deref()
            .map(|v| parse_time("to", v))
            .transpose()?
            .unwrap_or(from + 14 * 86_400_000);
    let rows = service::free(&state.core(), &doctor, from, to).await?;
    Ok(Json(
        rows.into_iter()
            .map(|(id, s, e, tz, price)| SlotView {
                id,
                doctor_id: doctor.to_string(),
                starts_at: to_rfc3339(s),
                ends_at: to_rfc3339(e),
                time_zone: tz,
                status: SlotStatus::Free,
                price_kopecks: price,
            })
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateSlot {
    starts_at: String,
    ends_at: String,
    #[serde(default)]
    time_zone: Option<String>,
    /// The slot's price; omitted: the doctor's own (`400 price_required` if they have none).
    #[serde(default)]
    price_kopecks: Option<i64>,
    #[serde(default)]
    external_id: Option<String>,
}

/// Admins and the portal publish slots (until the Bitrix24 sync does).
#[utoipa::path(post, path = "/api/v1/doctors/{id}/slots", tag = "slots", security(("bearer" = [])), params(("id" = String, Path, description = "doctor id")), request_body = CreateSlot, responses((status = 201, body = SlotView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
pub async fn create_slot(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<CreateSlot>,
) -> Result<(StatusCode, Json<SlotView>), ApiError> {
    caller.require(caller.is_clinic())?;
    let doctor: UserId = id(&raw, "doctor")?;
    let starts = parse_time("startsAt", &req.starts_at)?;
    let ends = parse_time("endsAt", &req.ends_at)?;
    if !service::valid_length(starts, ends) {
        return Err(service::Error::BadLength.into());
    }
    let price = req
        .price_kopecks
        .map(|p| {
            Kopecks::price(p).map_err(|_| {
                ApiError::bad_request(
                    "invalid_field",
                    "priceKopecks must be between 0 and 100000000",
                )
            })
        })
        .transpose()?;
    let (slot_id, time_zone, price) = service::publish(
        &state.core(),
        &caller,
        Publish {
            doctor: &doctor,
            starts_at: starts,
            ends_at: ends,
            time_zone: req.time_zone.as_deref(),
            price,
            external_id: req.external_id.as_deref(),
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(SlotView {
            id: slot_id.into(),
            doctor_id: doctor.into(),
            starts_at: to_rfc3339(starts),
            ends_at: to_rfc3339(ends),
            time_zone,
            status: SlotStatus::Free,
            price_kopecks: price,
        }),
    ))
}
