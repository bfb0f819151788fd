//! HTTP of identity (JSON): how one may sign in, a patient's own data («Мои данные»), and the
//! clinic reading a patient's data (audited). The browser's sign-in pages are in `pages.rs`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::person::PersonalData;
use super::service::{self, MyData};
use crate::domain::{Caller, Role, UserId};
use crate::http::{ApiError, Problem, id, to_rfc3339};
use crate::state::ApiState;

/// How people may sign in on this server.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthOptions {
    /// «Войти через Госуслуги» (`/login/esia`) is on.
    esia: bool,
    /// Demo mode: `POST /auth/dev-login`.
    dev_login: bool,
    /// Where patients get help (a phone, an e-mail, hours); absent when the clinic set none.
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<String>,
    /// Patients may download their consultations' recordings (the clinic's choice).
    patient_recordings: bool,
    /// A patient who cancels a paid consultation at least this many minutes before it starts
    /// gets the money back (`payments.patient_refund_notice`); absent without payments.
    #[serde(skip_serializing_if = "Option::is_none")]
    refund_notice_minutes: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/auth/options", tag = "sessions",
    responses((status = 200, body = AuthOptions)))]
pub async fn auth_options(State(state): State<ApiState>) -> Json<AuthOptions> {
    Json(AuthOptions {
        esia: state.esia.is_some(),
        dev_login: state.settings.demo,
        help: state.settings.help.clone(),
        patient_recordings: state.settings.patient_recordings,
        refund_notice_minutes: state
            .payments
            .as_ref()
            .map(|p| p.settings.patient_refund_notice.as_secs() / 60),
    })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsentView {
    /// `personal_data`, `health_data` or `offer`.
    kind: String,
    /// The version of the text agreed to.
    version: String,
    given_at: String,
}

/// What ESIA gave about a patient, when, under which scopes.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonalDataView {
    /// `esia`.
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    esia_oid: Option<String>,
    data: PersonalData,
    scopes: Vec<String>,
    fetched_at: String,
    consents: Vec<ConsentView>,
}

fn view(d: MyData) -> PersonalDataView {
    PersonalDataView {
        source: "esia".into(),
        esia_oid: d.esia_oid,
        data: d.data,
        scopes: d.scopes,
        fetched_at: to_rfc3339(d.fetched_at),
        consents: d
            .consents
            .into_iter()
            .map(|(kind, version, at)| ConsentView {
                kind,
                version,
                given_at: to_rfc3339(at),
            })
            .collect(),
    }
}

/// The signed-in patient's data as received from ESIA («Мои данные»).
#[utoipa::path(get, path = "/api/v1/me/personal-data", tag = "people", security(("bearer" = [])),
    responses((status = 200, body = PersonalDataView), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn my_personal_data(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<PersonalDataView>, ApiError> {
    caller.require(caller.is(Role::Patient))?;
    let me = caller.user_id().unwrap_or_default().to_owned();
    service::personal_data(&state.core(), &caller, &me)
        .await?
        .map(|d| Json(view(d)))
        .ok_or(ApiError::NotFound("personal data from ESIA"))
}

/// A patient's data from ESIA, for the clinic (admins, head doctors, the portal); each read is
/// in the audit log.
#[utoipa::path(get, path = "/api/v1/patients/{id}/personal-data", tag = "people", security(("bearer" = [])),
    params(("id" = String, Path, description = "patient id")),
    responses((status = 200, body = PersonalDataView), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn patient_personal_data(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<PersonalDataView>, ApiError> {
    caller.require(caller.is_clinic() || caller.is(Role::HeadDoctor))?;
    let patient: UserId = id(&raw, "patient")?;
    service::personal_data(&state.core(), &caller, patient.as_str())
        .await?
        .map(|d| Json(view(d)))
        .ok_or(ApiError::NotFound("personal data from ESIA"))
}

/// How a party of a consultation was identified when joining its call.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentificationView {
    user_id: String,
    role: String,
    /// `esia`, `portal`, `password`, `demo`.
    method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    esia_oid: Option<String>,
    /// A confirmed ESIA account (only for `esia`).
    #[serde(skip_serializing_if = "Option::is_none")]
    trusted: Option<bool>,
    identified_at: String,
}

/// The identifications of a consultation, for its routes (consultations decide who may read).
pub async fn identifications_of(
    state: &ApiState,
    consultation: &str,
) -> Result<Vec<IdentificationView>, ApiError> {
    Ok(service::identifications(&state.core(), consultation)
        .await?
        .into_iter()
        .map(|i| IdentificationView {
            user_id: i.user_id,
            role: i.role,
            method: i.method,
            esia_oid: i.esia_oid,
            trusted: i.trusted,
            identified_at: to_rfc3339(i.at),
        })
        .collect())
}

/// A patient's data for the doctor of one of their consultations (consultations check that).
pub async fn for_doctor(
    state: &ApiState,
    caller: &Caller,
    patient: &str,
) -> Result<Json<PersonalDataView>, ApiError> {
    service::personal_data(&state.core(), caller, patient)
        .await?
        .map(|d| Json(view(d)))
        .ok_or(ApiError::NotFound("personal data from ESIA"))
}
