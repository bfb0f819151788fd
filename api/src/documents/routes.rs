//! HTTP of documents: questionnaires of a consultation (assign, read, fill in), the patient's
//! own questionnaires and deletion requests, the clinic's forms and deletion requests.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::forms::{FormBody, Kind, Question};
use super::repo::{FormRow, QuestionnaireRow, RequestRow};
use super::service::{self, Answer, Error};
use crate::domain::{Caller, ConsultationId, Role};
use crate::http::{ApiError, Body, Page, Params, Problem, id, page, text, to_rfc3339};
use crate::state::ApiState;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(what) => ApiError::NotFound(what),
            Error::Forbidden(why) => ApiError::Forbidden(why),
            Error::Invalid(_) => ApiError::bad_request("invalid_answers", e.to_string()),
            Error::AlreadyAssigned(_) => ApiError::conflict("already_assigned", e.to_string()),
            Error::Closed(_) => ApiError::conflict("consultation_closed", e.to_string()),
            Error::Deleted => ApiError::conflict("deleted", e.to_string()),
            Error::RequestPending(_) => ApiError::conflict("request_pending", e.to_string()),
            Error::Answered => ApiError::conflict("answered", e.to_string()),
            Error::ExtendedAlready => ApiError::conflict("extended_already", e.to_string()),
            Error::ConcurrentChange => ApiError::conflict("concurrent_change", e.to_string()),
            Error::Db(e) => e.into(),
        }
    }
}

/// A version of a form.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FormView {
    id: String,
    kind: Kind,
    version: i64,
    title: String,
    questions: Vec<Question>,
    created_at: String,
}

impl From<FormRow> for FormView {
    fn from(f: FormRow) -> Self {
        FormView {
            kind: Kind::parse(&f.kind).unwrap_or(Kind::Symptoms),
            questions: service::questions(&f.questions),
            id: f.id,
            version: f.version,
            title: f.title,
            created_at: to_rfc3339(f.created_at),
        }
    }
}

/// Where a questionnaire stands.
#[derive(Serialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum QuestionnaireStatus {
    /// Not started.
    Assigned,
    /// Answers saved, not submitted.
    Draft,
    Submitted,
    /// Erased on the patient's request.
    Deleted,
}

/// A questionnaire of a consultation, with its form (the version it was assigned with).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuestionnaireView {
    id: String,
    consultation_id: String,
    kind: Kind,
    status: QuestionnaireStatus,
    form: FormView,
    /// Keyed by question id. Absent for whoever may not read it (a clinic admin) and once
    /// deleted.
    answers: Option<Value>,
    /// The patient may still change the answers (the consultation is ahead or under way).
    editable: bool,
    /// The consultation's start and time zone, to tell questionnaires apart.
    consultation_starts_at: String,
    time_zone: String,
    assigned_at: String,
    /// The person who assigned it; absent: assigned on booking.
    assigned_by: Option<String>,
    saved_at: Option<String>,
    submitted_at: Option<String>,
    /// When the doctor first read the submitted answers.
    read_at: Option<String>,
    deleted_at: Option<String>,
    /// Why it is kept when the patient asked to delete their documents.
    legal_hold: Option<String>,
}

fn questionnaire_view(q: QuestionnaireRow, caller: &Caller) -> QuestionnaireView {
    let status = if q.deleted_at.is_some() {
        QuestionnaireStatus::Deleted
    } else if q.submitted_at.is_some() {
        QuestionnaireStatus::Submitted
    } else if q.saved_at.is_some() {
        QuestionnaireStatus::Draft
    } else {
        QuestionnaireStatus::Assigned
    };
    let answers = q
        .answers
        .as_deref()
        .filter(|_| service::sees_answers(caller))
        .and_then(|a| serde_json::from_str(a).ok());
    QuestionnaireView {
        kind: Kind::parse(&q.kind).unwrap_or(Kind::Symptoms),
        status,
        editable: status != QuestionnaireStatus::Deleted
            && matches!(
                q.consultation_status.as_str(),
                "booked" | "paid" | "in_progress"
            ),
        form: FormView {
            id: q.form_id,
            kind: Kind::parse(&q.kind).unwrap_or(Kind::Symptoms),
            version: q.form_version,
            title: q.form_title,
            questions: service::questions(&q.form_questions),
            created_at: to_rfc3339(q.form_created_at),
        },
        answers,
        consultation_starts_at: to_rfc3339(q.starts_at),
        time_zone: q.time_zone,
        assigned_at: to_rfc3339(q.assigned_at),
        assigned_by: q.assigned_by,
        saved_at: q.saved_at.map(to_rfc3339),
        submitted_at: q.submitted_at.map(to_rfc3339),
        read_at: q.read_at.map(to_rfc3339),
        deleted_at: q.deleted_at.map(to_rfc3339),
        legal_hold: q.legal_hold,
        id: q.id,
        consultation_id: q.consultation_id,
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuestionnaireList {
    items: Vec<QuestionnaireView>,
}

#[utoipa::path(get, path = "/api/v1/consultations/{id}/questionnaires", tag = "documents", security(("bearer" = [])),
    params(("id" = String, Path, description = "consultation id")),
    responses((status = 200, body = QuestionnaireList), (status = 401, body = Problem), (status = 404, body = Problem)))]
/// The consultation's questionnaires. The doctor's read of submitted answers is recorded.
pub async fn of_consultation(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<QuestionnaireList>, ApiError> {
    let cid: ConsultationId = id(&raw, "consultation")?;
    let rows = service::of_consultation(&state.core(), &caller, &cid).await?;
    Ok(Json(QuestionnaireList {
        items: rows
            .into_iter()
            .map(|q| questionnaire_view(q, &caller))
            .collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    kind: Kind,
}

#[utoipa::path(post, path = "/api/v1/consultations/{id}/questionnaires", tag = "documents", security(("bearer" = [])),
    params(("id" = String, Path, description = "consultation id")), request_body = AssignRequest,
    responses((status = 201, body = QuestionnaireView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
/// The consultation's doctor (or the clinic) asks the patient to fill in a questionnaire of
/// the form's current version; the patient is notified.
pub async fn assign(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<AssignRequest>,
) -> Result<(StatusCode, Json<QuestionnaireView>), ApiError> {
    let cid: ConsultationId = id(&raw, "consultation")?;
    let row = service::assign(&state.core(), &caller, &cid, req.kind).await?;
    Ok((StatusCode::CREATED, Json(questionnaire_view(row, &caller))))
}

/// A path's id of `what` (a UUID, canonical); anything else names nothing: "`what` not found".
fn uuid_id(raw: &str, what: &'static str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::NotFound(what))
}

fn questionnaire_id(raw: &str) -> Result<String, ApiError> {
    uuid_id(raw, "questionnaire")
}

/// Optional text: absent or blank is none, else 1 to `max` characters.
fn optional_text(
    field: &'static str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| text(field, v, max))
        .transpose()
}

#[utoipa::path(get, path = "/api/v1/questionnaires/{id}", tag = "documents", security(("bearer" = [])),
    params(("id" = String, Path, description = "questionnaire id")),
    responses((status = 200, body = QuestionnaireView), (status = 401, body = Problem), (status = 404, body = Problem)))]
/// One questionnaire, for the patient, the doctor and the clinic.
pub async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<QuestionnaireView>, ApiError> {
    let row = service::get(&state.core(), &caller, &questionnaire_id(&raw)?).await?;
    Ok(Json(questionnaire_view(row, &caller)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveRequest {
    /// Keyed by question id; a question left out or null is unanswered.
    #[schema(value_type = Object)]
    answers: Value,
    /// Submit (every required question answered) rather than keep a draft.
    #[serde(default)]
    submit: bool,
}

#[utoipa::path(put, path = "/api/v1/questionnaires/{id}", tag = "documents", security(("bearer" = [])),
    params(("id" = String, Path, description = "questionnaire id")), request_body = SaveRequest,
    responses((status = 200, body = QuestionnaireView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
/// The patient saves a draft or submits; both may be repeated until the consultation is over.
pub async fn save(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<SaveRequest>,
) -> Result<Json<QuestionnaireView>, ApiError> {
    let qid = questionnaire_id(&raw)?;
    let row = service::save(&state.core(), &caller, &qid, &req.answers, req.submit).await?;
    Ok(Json(questionnaire_view(row, &caller)))
}

#[utoipa::path(get, path = "/api/v1/me/questionnaires", tag = "documents", security(("bearer" = [])),
    responses((status = 200, body = QuestionnaireList), (status = 401, body = Problem), (status = 403, body = Problem)))]
/// The patient's questionnaires, the newest consultation first.
pub async fn mine(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<QuestionnaireList>, ApiError> {
    let rows = service::mine(&state.core(), &caller).await?;
    Ok(Json(QuestionnaireList {
        items: rows
            .into_iter()
            .map(|q| questionnaire_view(q, &caller))
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FormList {
    /// Every version, the newest of each kind first.
    items: Vec<FormView>,
}

#[utoipa::path(get, path = "/api/v1/admin/questionnaire-forms", tag = "documents", security(("bearer" = [])),
    responses((status = 200, body = FormList), (status = 401, body = Problem), (status = 403, body = Problem)))]
/// The questionnaire forms, every version (staff).
pub async fn forms(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<FormList>, ApiError> {
    caller.require(!caller.is(Role::Patient))?;
    let rows = service::forms(&state.core()).await?;
    Ok(Json(FormList {
        items: rows.into_iter().map(FormView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/admin/questionnaire-forms/{kind}", tag = "documents", security(("bearer" = [])),
    params(("kind" = Kind, Path, description = "symptoms or anamnesis")), request_body = FormBody,
    responses((status = 201, body = FormView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
/// The clinic publishes a new version of a form; questionnaires assigned from now on use it,
/// those assigned before keep theirs.
pub async fn publish(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(body): Body<FormBody>,
) -> Result<(StatusCode, Json<FormView>), ApiError> {
    caller.require(caller.is_clinic())?;
    let kind = Kind::parse(&raw).ok_or(ApiError::NotFound("form kind"))?;
    let row = service::publish(&state.core(), &caller, kind, &body)
        .await
        .map_err(|e| match e {
            Error::Invalid(_) => ApiError::bad_request("invalid_form", e.to_string()),
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonRef {
    id: String,
    name: String,
}

/// A patient's request to delete their medical documents.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletionRequestView {
    id: String,
    patient: PersonRef,
    /// The patient's words, if any.
    comment: Option<String>,
    /// `pending`, `done` or `refused`.
    status: String,
    created_at: String,
    /// The answer is due by this time: midnight after the last working day of the clinic's
    /// calendar, in `timeZone`.
    due_at: String,
    /// The clinic's time zone, which the deadline's day is in.
    time_zone: String,
    /// Pending past its deadline.
    overdue: bool,
    extended_at: Option<String>,
    extension_reason: Option<String>,
    answered_at: Option<String>,
    /// The refusal's reason or the clinic's note.
    answer: Option<String>,
    /// The destruction act of an answered request.
    act: Option<DestructionAct>,
}

/// A document named in a destruction act.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocumentRef {
    /// `questionnaire`.
    #[serde(rename = "type")]
    kind: String,
    id: String,
    /// The questionnaire's kind.
    #[serde(rename = "kind")]
    of_kind: String,
    consultation_id: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedDocument {
    document: DocumentRef,
    deleted_at: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeptDocument {
    document: DocumentRef,
    /// The legal hold's reason.
    reason: String,
}

/// What an answer deleted and what it kept (and why).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestructionAct {
    deleted: Vec<DeletedDocument>,
    kept: Vec<KeptDocument>,
}

/// A request as the API shows it, with the clinic's time zone.
fn request_view(state: &ApiState, r: RequestRow) -> DeletionRequestView {
    DeletionRequestView {
        time_zone: state.settings.documents.calendar.time_zone.clone(),
        patient: PersonRef {
            id: r.patient_id,
            name: r.patient_name,
        },
        comment: r.comment,
        overdue: r.overdue_at.is_some() && r.status == "pending",
        status: r.status,
        created_at: to_rfc3339(r.created_at),
        due_at: to_rfc3339(r.due_at),
        extended_at: r.extended_at.map(to_rfc3339),
        extension_reason: r.extension_reason,
        answered_at: r.answered_at.map(to_rfc3339),
        answer: r.answer,
        act: r.act.as_deref().and_then(act_view),
        id: r.id,
    }
}

/// The stored act (times in UTC milliseconds) as the API shows it.
fn act_view(stored: &str) -> Option<DestructionAct> {
    let mut act: Value = serde_json::from_str(stored).ok()?;
    for d in act["deleted"].as_array_mut()? {
        let at = d["deletedAt"].as_i64()?;
        d["deletedAt"] = Value::String(to_rfc3339(at));
    }
    serde_json::from_value(act).ok()
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DeletionRequestBody {
    /// Anything the patient wants the clinic to know (up to 2,000 characters).
    #[serde(default)]
    comment: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/me/deletion-requests", tag = "documents", security(("bearer" = [])),
    request_body = DeletionRequestBody,
    responses((status = 201, body = DeletionRequestView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
/// The patient asks the clinic to delete their medical documents; the clinic's admins are told
/// and must answer by the deadline.
pub async fn request_deletion(
    State(state): State<ApiState>,
    caller: Caller,
    Body(req): Body<DeletionRequestBody>,
) -> Result<(StatusCode, Json<DeletionRequestView>), ApiError> {
    let comment = optional_text("comment", req.comment.as_deref(), 2000)?;
    let row = service::request_deletion(&state.core(), &caller, comment.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(request_view(&state, row))))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestQuery {
    /// `pending`, `done` or `refused`.
    #[serde(default)]
    status: Option<String>,
    /// Only those past their deadline.
    #[serde(default)]
    overdue: Option<bool>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

async fn list(
    state: &ApiState,
    caller: &Caller,
    q: RequestQuery,
) -> Result<Json<Page<DeletionRequestView>>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    if let Some(s) = q.status.as_deref()
        && !matches!(s, "pending" | "done" | "refused")
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "status must be pending, done or refused",
        ));
    }
    let (rows, total) = service::requests(
        &state.core(),
        caller,
        q.status.as_deref(),
        q.overdue.unwrap_or(false),
        limit,
        offset,
    )
    .await?;
    Ok(Json(Page {
        items: rows.into_iter().map(|r| request_view(state, r)).collect(),
        total,
        limit,
        offset,
    }))
}

#[utoipa::path(get, path = "/api/v1/me/deletion-requests", tag = "documents", security(("bearer" = [])),
    params(RequestQuery),
    responses((status = 200, body = Page<DeletionRequestView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
/// The patient's own deletion requests and their answers.
pub async fn my_requests(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<RequestQuery>,
) -> Result<Json<Page<DeletionRequestView>>, ApiError> {
    caller.require(caller.is(Role::Patient))?;
    list(&state, &caller, q).await
}

#[utoipa::path(get, path = "/api/v1/admin/deletion-requests", tag = "documents", security(("bearer" = [])),
    params(RequestQuery),
    responses((status = 200, body = Page<DeletionRequestView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
/// Deletion requests for the clinic: pending ones first, the nearest deadline first.
pub async fn requests(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<RequestQuery>,
) -> Result<Json<Page<DeletionRequestView>>, ApiError> {
    caller.require(caller.is_clinic())?;
    list(&state, &caller, q).await
}

#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Done,
    Refused,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeepDocument {
    questionnaire_id: String,
    /// The law that requires keeping it.
    reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnswerRequest {
    outcome: Outcome,
    /// Required for a refusal (the law that requires keeping the documents); a note otherwise.
    #[serde(default)]
    reason: Option<String>,
    /// For `done`: documents kept under a legal hold, each with its reason.
    #[serde(default)]
    keep: Vec<KeepDocument>,
}

#[utoipa::path(post, path = "/api/v1/admin/deletion-requests/{id}/answer", tag = "documents", security(("bearer" = [])),
    params(("id" = String, Path, description = "deletion request id")), request_body = AnswerRequest,
    responses((status = 200, body = DeletionRequestView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
/// The clinic answers: `done` erases the patient's questionnaires (except those kept under a
/// legal hold, with the reason) and records a destruction act; `refused` needs a reason. The
/// patient is told.
pub async fn answer(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<AnswerRequest>,
) -> Result<Json<DeletionRequestView>, ApiError> {
    caller.require(caller.is_clinic())?;
    let rid = request_id(&raw)?;
    let reason = optional_text("reason", req.reason.as_deref(), 2000)?;
    let mut keep = Vec::new();
    for k in &req.keep {
        let qid = questionnaire_id(&k.questionnaire_id).map_err(|_| {
            ApiError::bad_request("invalid_field", "keep: questionnaireId must be an id")
        })?;
        keep.push((qid, text("keep.reason", &k.reason, 1000)?));
    }
    let answer = match req.outcome {
        Outcome::Refused => {
            if !keep.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid_field",
                    "keep is for a done answer; a refusal keeps everything",
                ));
            }
            Answer::Refused {
                reason: reason.as_deref().ok_or_else(|| {
                    ApiError::bad_request("invalid_field", "a refusal needs a reason")
                })?,
            }
        }
        Outcome::Done => Answer::Done {
            note: reason.as_deref(),
            keep: &keep,
        },
    };
    let row = service::answer(&state.core(), &caller, &rid, answer).await?;
    Ok(Json(request_view(&state, row)))
}

fn request_id(raw: &str) -> Result<String, ApiError> {
    uuid_id(raw, "deletion request")
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// Why the answer needs more time; the patient is told there is one.
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/admin/deletion-requests/{id}/extend", tag = "documents", security(("bearer" = [])),
    params(("id" = String, Path, description = "deletion request id")), request_body = ExtendRequest,
    responses((status = 200, body = DeletionRequestView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
/// Extend the deadline once, by the configured working days (5 by default), with a reason.
pub async fn extend(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<ExtendRequest>,
) -> Result<Json<DeletionRequestView>, ApiError> {
    caller.require(caller.is_clinic())?;
    let rid = request_id(&raw)?;
    let reason = text("reason", &req.reason, 2000)?;
    let row = service::extend(&state.core(), &caller, &rid, &reason).await?;
    Ok(Json(request_view(&state, row)))
}
