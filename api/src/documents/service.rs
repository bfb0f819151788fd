//! The rules of documents. Questionnaires: assigned to a consultation (by its doctor, by the
//! clinic, or on booking), filled in by its patient, read by its doctor; a patient's request to
//! delete their medical documents: recorded with a deadline in working days, answered by the
//! clinic (done: the answers erased, except those under a legal hold; or refused with a reason),
//! once extendable, flagged overdue. Every change writes its audit entry and domain event in
//! its transaction; nothing here names a channel — notifications hear of the events.

use serde_json::{Value, json};
use sqlx::AnyConnection;

use super::forms::{self, FormBody, Invalid, Kind, Question};
use super::repo::{self, FormRow, QuestionnaireRow, RequestRow};
use crate::domain::{Caller, ConsultationId, EventKind, Role};
use crate::platform::audit::audit;
use crate::platform::outbox::Outbox;
use crate::platform::scheduler::{cancel_job, schedule_at};
use crate::state::Core;

/// The scheduler's kind of "a deletion request's deadline passed".
pub const OVERDUE: &str = "documents.deletion_overdue";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("the consultation has a {0} questionnaire already")]
    AlreadyAssigned(&'static str),
    #[error("the consultation is {0}: its questionnaires can no longer change")]
    Closed(String),
    #[error("the questionnaire was deleted on the patient's request")]
    Deleted,
    #[error("a request of yours is being considered already (answer due by its deadline)")]
    RequestPending(String),
    #[error("the request has been answered already")]
    Answered,
    #[error("the deadline can be extended only once")]
    ExtendedAlready,
    #[error("someone published a version of this form meanwhile; reload and try again")]
    ConcurrentChange,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Who may see a questionnaire of the consultation between `patient` and `doctor`.
fn may_see(caller: &Caller, patient: &str, doctor: &str) -> bool {
    match caller.role() {
        Some(Role::Patient) => caller.user_id() == Some(patient),
        Some(Role::Doctor) => caller.user_id() == Some(doctor),
        Some(Role::Admin | Role::HeadDoctor) | None => true,
    }
}

/// Whose eyes the answers are for (medical data): the patient, the doctor, the head doctor
/// and the clinic's systems (API keys: the portal, the MIS). A clinic admin sees that a
/// questionnaire exists and its state, not what it says.
pub fn sees_answers(caller: &Caller) -> bool {
    !caller.is(Role::Admin)
}

fn open(status: &str) -> bool {
    matches!(status, "booked" | "paid" | "in_progress")
}

/// A form's stored questions.
pub fn questions(row: &str) -> Vec<Question> {
    serde_json::from_str(row).unwrap_or_default()
}

/// The current form of `kind`: the clinic's newest version, else the built-in one (stored as
/// version 1 on first use).
pub async fn current_form(
    conn: &mut AnyConnection,
    kind: Kind,
    now: i64,
) -> Result<FormRow, sqlx::Error> {
    if let Some(f) = repo::current_form(conn, kind.as_str()).await? {
        return Ok(f);
    }
    let body = forms::builtin(kind);
    let row = FormRow {
        id: uuid::Uuid::new_v4().to_string(),
        kind: kind.as_str().into(),
        version: 1,
        title: body.title,
        questions: serde_json::to_string(&body.questions).unwrap_or_default(),
        created_at: now,
    };
    repo::insert_form(conn, &row, None).await?;
    Ok(repo::current_form(conn, kind.as_str())
        .await?
        .unwrap_or(row))
}

/// Every kind's current form and older versions.
pub async fn forms(core: &Core) -> Result<Vec<FormRow>, Error> {
    let mut tx = core.db.begin_write().await?;
    for kind in Kind::ALL {
        current_form(&mut tx, kind, core.now()).await?;
    }
    let all = repo::forms(&mut tx).await?;
    tx.commit().await?;
    Ok(all)
}

/// Publish a new version of `kind`'s form; questionnaires assigned from now on use it.
pub async fn publish(
    core: &Core,
    caller: &Caller,
    kind: Kind,
    body: &FormBody,
) -> Result<FormRow, Error> {
    forms::check_form(body)?;
    let now = core.now();
    let mut tx = core.db.begin_write().await?;
    let current = current_form(&mut tx, kind, now).await?;
    let row = FormRow {
        id: uuid::Uuid::new_v4().to_string(),
        kind: kind.as_str().into(),
        version: current.version + 1,
        title: body.title.trim().to_owned(),
        questions: serde_json::to_string(&body.questions).unwrap_or_default(),
        created_at: now,
    };
    if !repo::insert_form(&mut tx, &row, caller.user_id()).await? {
        return Err(Error::ConcurrentChange);
    }
    audit(
        &mut tx,
        Some(caller),
        "questionnaire_form.published",
        "questionnaire_form",
        Some(&row.id),
        json!({"kind": kind.as_str(), "version": row.version}),
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// What assignment needs of a consultation.
pub struct Visit<'a> {
    pub id: &'a str,
    pub patient_id: &'a str,
}

/// Assign questionnaires of `kinds` to `visit` in the caller's transaction (those it has are
/// skipped); one `questionnaire.assigned` event names the new ones. Returns their ids.
pub async fn assign_in(
    conn: &mut AnyConnection,
    outbox: &Outbox,
    caller: Option<&Caller>,
    visit: &Visit<'_>,
    kinds: &[Kind],
    now: i64,
) -> Result<Vec<(String, Kind)>, sqlx::Error> {
    let mut made = Vec::new();
    for &kind in kinds {
        let form = current_form(conn, kind, now).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let by = caller.and_then(Caller::user_id);
        if repo::insert_questionnaire(conn, &id, visit.id, visit.patient_id, &form, by, now).await?
        {
            audit(
                conn,
                caller,
                "questionnaire.assigned",
                "questionnaire",
                Some(&id),
                json!({"consultationId": visit.id, "kind": kind.as_str(),
                       "formVersion": form.version}),
            )
            .await?;
            made.push((id, kind));
        }
    }
    if !made.is_empty() {
        let list: Vec<Value> = made
            .iter()
            .map(|(id, kind)| json!({"id": id, "kind": kind.as_str()}))
            .collect();
        outbox
            .emit(
                conn,
                EventKind::QuestionnaireAssigned.as_str(),
                Some(visit.id),
                json!({"patientId": visit.patient_id, "questionnaires": list}),
            )
            .await?;
    }
    Ok(made)
}

/// The doctor of the consultation, or the clinic, assigns a questionnaire.
pub async fn assign(
    core: &Core,
    caller: &Caller,
    consultation: &ConsultationId,
    kind: Kind,
) -> Result<QuestionnaireRow, Error> {
    let mut tx = core.db.begin_write().await?;
    let c = crate::consultations::repo::load(&mut tx, consultation.as_str())
        .await?
        .filter(|c| may_see(caller, &c.patient_id, &c.doctor_id))
        .ok_or(Error::NotFound("consultation"))?;
    if caller.is(Role::Patient) || caller.is(Role::HeadDoctor) {
        return Err(Error::Forbidden(
            "only the consultation's doctor or the clinic assigns questionnaires",
        ));
    }
    if !open(&c.status) {
        return Err(Error::Closed(c.status));
    }
    let visit = Visit {
        id: &c.id,
        patient_id: &c.patient_id,
    };
    let made = assign_in(
        &mut tx,
        &core.outbox,
        Some(caller),
        &visit,
        &[kind],
        core.now(),
    )
    .await?;
    let Some((id, _)) = made.first() else {
        return Err(Error::AlreadyAssigned(kind.as_str()));
    };
    let row = repo::questionnaire(&mut tx, id)
        .await?
        .ok_or(Error::NotFound("questionnaire"))?;
    tx.commit().await?;
    core.outbox.notify();
    Ok(row)
}

/// A consultation's questionnaires, for whoever may see the consultation.
pub async fn of_consultation(
    core: &Core,
    caller: &Caller,
    consultation: &ConsultationId,
) -> Result<Vec<QuestionnaireRow>, Error> {
    let mut tx = core.db.begin_write().await?;
    let c = crate::consultations::repo::load(&mut tx, consultation.as_str())
        .await?
        .filter(|c| may_see(caller, &c.patient_id, &c.doctor_id))
        .ok_or(Error::NotFound("consultation"))?;
    let mut rows = repo::of_consultation(&mut tx, &c.id).await?;
    read_by(&mut tx, core, caller, &mut rows).await?;
    tx.commit().await?;
    Ok(rows)
}

/// A doctor's read of submitted answers is recorded (the patient sees it) and audited.
async fn read_by(
    conn: &mut AnyConnection,
    core: &Core,
    caller: &Caller,
    rows: &mut [QuestionnaireRow],
) -> Result<(), sqlx::Error> {
    for row in rows.iter_mut() {
        if row.answers.is_none() || !sees_answers(caller) {
            continue;
        }
        audit(
            conn,
            Some(caller),
            "questionnaire.read",
            "questionnaire",
            Some(&row.id),
            Value::Null,
        )
        .await?;
        if caller.is(Role::Doctor) && row.submitted_at.is_some() && row.read_at.is_none() {
            let now = core.now();
            repo::mark_read(conn, &row.id, now).await?;
            row.read_at = Some(now);
        }
    }
    Ok(())
}

/// One questionnaire.
pub async fn get(core: &Core, caller: &Caller, id: &str) -> Result<QuestionnaireRow, Error> {
    let mut tx = core.db.begin_write().await?;
    let row = repo::questionnaire(&mut tx, id)
        .await?
        .filter(|q| may_see(caller, &q.patient_id, &q.doctor_id))
        .ok_or(Error::NotFound("questionnaire"))?;
    let mut rows = [row];
    read_by(&mut tx, core, caller, &mut rows).await?;
    tx.commit().await?;
    let [row] = rows;
    Ok(row)
}

/// The patient's questionnaires, the newest consultation first.
pub async fn mine(core: &Core, caller: &Caller) -> Result<Vec<QuestionnaireRow>, Error> {
    let Some(patient) = caller.user_id().filter(|_| caller.is(Role::Patient)) else {
        return Err(Error::Forbidden("only a patient has questionnaires"));
    };
    let mut conn = core.db.pool.acquire().await?;
    Ok(repo::of_patient(&mut conn, patient, 200).await?)
}

/// The patient saves answers (a draft) or submits them; either may be repeated while the
/// consultation is ahead or under way. A submission answers every required question.
pub async fn save(
    core: &Core,
    caller: &Caller,
    id: &str,
    answers: &Value,
    submit: bool,
) -> Result<QuestionnaireRow, Error> {
    let mut tx = core.db.begin_write().await?;
    let row = repo::questionnaire(&mut tx, id)
        .await?
        .filter(|q| may_see(caller, &q.patient_id, &q.doctor_id))
        .ok_or(Error::NotFound("questionnaire"))?;
    if caller.user_id() != Some(row.patient_id.as_str()) {
        return Err(Error::Forbidden(
            "only the patient fills in their questionnaire",
        ));
    }
    if row.deleted_at.is_some() {
        return Err(Error::Deleted);
    }
    if !open(&row.consultation_status) {
        return Err(Error::Closed(row.consultation_status));
    }
    let kept = forms::check_answers(&questions(&row.form_questions), answers, submit)?;
    let now = core.now();
    let text = Value::Object(kept).to_string();
    if !repo::save_answers(&mut tx, id, &text, now, submit.then_some(now)).await? {
        return Err(Error::Deleted);
    }
    audit(
        &mut tx,
        Some(caller),
        if submit {
            "questionnaire.submitted"
        } else {
            "questionnaire.saved"
        },
        "questionnaire",
        Some(id),
        Value::Null,
    )
    .await?;
    let row = repo::questionnaire(&mut tx, id)
        .await?
        .ok_or(Error::NotFound("questionnaire"))?;
    tx.commit().await?;
    Ok(row)
}

/// The deadline settings.
fn due(core: &Core, from: i64, days: u32) -> i64 {
    core.settings
        .documents
        .calendar
        .after_working_days(from, days)
}

/// A patient asks the clinic to delete their medical documents.
pub async fn request_deletion(
    core: &Core,
    caller: &Caller,
    comment: Option<&str>,
) -> Result<RequestRow, Error> {
    let Some(patient) = caller.user_id().filter(|_| caller.is(Role::Patient)) else {
        return Err(Error::Forbidden(
            "only a patient asks to delete their documents",
        ));
    };
    let now = core.now();
    let mut tx = core.db.begin_write().await?;
    if let Some(id) = repo::pending_of(&mut tx, patient).await? {
        return Err(Error::RequestPending(id));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let due_at = due(core, now, core.settings.documents.answer_within_days);
    repo::insert_request(&mut tx, &id, patient, comment, now, due_at).await?;
    audit(
        &mut tx,
        Some(caller),
        "deletion_request.created",
        "deletion_request",
        Some(&id),
        json!({"dueAt": due_at}),
    )
    .await?;
    core.outbox
        .emit(
            &mut tx,
            EventKind::DeletionRequested.as_str(),
            None,
            json!({"requestId": id, "patientId": patient, "dueAt": due_at}),
        )
        .await?;
    schedule_overdue(&mut tx, now, &id, due_at).await?;
    let row = repo::request(&mut tx, &id)
        .await?
        .ok_or(Error::NotFound("deletion request"))?;
    tx.commit().await?;
    core.outbox.notify();
    Ok(row)
}

fn overdue_key(id: &str) -> String {
    format!("{OVERDUE}:{id}")
}

async fn schedule_overdue(
    conn: &mut AnyConnection,
    now: i64,
    id: &str,
    due_at: i64,
) -> Result<(), sqlx::Error> {
    schedule_at(
        conn,
        now,
        OVERDUE,
        &overdue_key(id),
        due_at,
        Some(json!({"requestId": id, "dueAt": due_at})),
    )
    .await
}

/// The patient's own requests, or the clinic's list.
pub async fn requests(
    core: &Core,
    caller: &Caller,
    status: Option<&str>,
    overdue_only: bool,
    limit: i64,
    offset: i64,
) -> Result<(Vec<RequestRow>, i64), Error> {
    let patient = match caller.role() {
        Some(Role::Patient) => caller.user_id(),
        _ if caller.is_clinic() => None,
        _ => {
            return Err(Error::Forbidden(
                "deletion requests are for the clinic's admins",
            ));
        }
    };
    let mut conn = core.db.pool.acquire().await?;
    Ok(repo::requests(&mut conn, patient, status, overdue_only, limit, offset).await?)
}

/// How the clinic answers.
pub enum Answer<'a> {
    /// Delete the patient's documents, except `keep` (questionnaire id, the legal reason) and
    /// any already under a legal hold.
    Done {
        note: Option<&'a str>,
        keep: &'a [(String, String)],
    },
    Refused {
        reason: &'a str,
    },
}

/// Request `id`, still pending, for the clinic to act on.
async fn pending_request(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: &str,
) -> Result<RequestRow, Error> {
    if !caller.is_clinic() {
        return Err(Error::Forbidden(
            "deletion requests are for the clinic's admins",
        ));
    }
    let req = repo::request(conn, id)
        .await?
        .ok_or(Error::NotFound("deletion request"))?;
    if req.status != "pending" {
        return Err(Error::Answered);
    }
    Ok(req)
}

/// The clinic answers a pending request; the destruction act says what went and what stayed.
pub async fn answer(
    core: &Core,
    caller: &Caller,
    id: &str,
    answer: Answer<'_>,
) -> Result<RequestRow, Error> {
    let now = core.now();
    let mut tx = core.db.begin_write().await?;
    let req = pending_request(&mut tx, caller, id).await?;
    let (status, text, act) = match answer {
        Answer::Refused { reason } => ("refused", Some(reason), json!({"deleted": [], "kept": []})),
        Answer::Done { note, keep } => {
            let docs = repo::of_patient(&mut tx, &req.patient_id, i64::MAX).await?;
            for (qid, _) in keep {
                if !docs.iter().any(|d| &d.id == qid) {
                    return Err(Error::Invalid(Invalid(vec![format!(
                        "keep: {qid} is not a questionnaire of this patient"
                    )])));
                }
            }
            let (mut deleted, mut kept) = (Vec::new(), Vec::new());
            for d in docs.iter().filter(|d| d.deleted_at.is_none()) {
                let hold = keep
                    .iter()
                    .find(|(q, _)| q == &d.id)
                    .map(|(_, r)| r.clone())
                    .or_else(|| d.legal_hold.clone());
                let what = json!({"type": "questionnaire", "id": d.id, "kind": d.kind,
                                  "consultationId": d.consultation_id});
                if let Some(reason) = hold {
                    repo::hold(&mut tx, &d.id, &reason).await?;
                    kept.push(json!({"document": what, "reason": reason}));
                } else if repo::erase(&mut tx, &d.id, id, now).await? {
                    audit(
                        &mut tx,
                        Some(caller),
                        "questionnaire.deleted",
                        "questionnaire",
                        Some(&d.id),
                        json!({"deletionRequestId": id}),
                    )
                    .await?;
                    deleted.push(json!({"document": what, "deletedAt": now}));
                }
            }
            ("done", note, json!({"deleted": deleted, "kept": kept}))
        }
    };
    if !repo::answer(
        &mut tx,
        id,
        status,
        caller.user_id(),
        text,
        &act.to_string(),
        now,
    )
    .await?
    {
        return Err(Error::Answered);
    }
    audit(
        &mut tx,
        Some(caller),
        "deletion_request.answered",
        "deletion_request",
        Some(id),
        json!({"outcome": status, "deleted": act["deleted"].as_array().map_or(0, Vec::len),
               "kept": act["kept"].as_array().map_or(0, Vec::len)}),
    )
    .await?;
    core.outbox
        .emit(
            &mut tx,
            EventKind::DeletionAnswered.as_str(),
            None,
            json!({"requestId": id, "patientId": req.patient_id, "outcome": status,
                   "createdAt": req.created_at}),
        )
        .await?;
    cancel_job(&mut tx, &overdue_key(id)).await?;
    let row = repo::request(&mut tx, id)
        .await?
        .ok_or(Error::NotFound("deletion request"))?;
    tx.commit().await?;
    core.outbox.notify();
    Ok(row)
}

/// The clinic extends the deadline once, by the configured working days, with a reason the
/// patient is told of.
pub async fn extend(
    core: &Core,
    caller: &Caller,
    id: &str,
    reason: &str,
) -> Result<RequestRow, Error> {
    let now = core.now();
    let mut tx = core.db.begin_write().await?;
    let req = pending_request(&mut tx, caller, id).await?;
    let due_at = due(core, req.due_at - 1, core.settings.documents.extension_days);
    if !repo::extend(&mut tx, id, due_at, reason, now).await? {
        return Err(Error::ExtendedAlready);
    }
    audit(
        &mut tx,
        Some(caller),
        "deletion_request.extended",
        "deletion_request",
        Some(id),
        json!({"dueAt": due_at}),
    )
    .await?;
    core.outbox
        .emit(
            &mut tx,
            EventKind::DeletionExtended.as_str(),
            None,
            json!({"requestId": id, "patientId": req.patient_id, "dueAt": due_at}),
        )
        .await?;
    schedule_overdue(&mut tx, now, id, due_at).await?;
    let row = repo::request(&mut tx, id)
        .await?
        .ok_or(Error::NotFound("deletion request"))?;
    tx.commit().await?;
    core.outbox.notify();
    Ok(row)
}

/// The deadline of request `id` (as planned: `due_at`) passed: flagged, and the clinic told.
pub async fn overdue(core: &Core, id: &str, due_at: i64) -> Result<bool, sqlx::Error> {
    let now = core.now();
    let mut tx = core.db.begin_write().await?;
    if !repo::flag_overdue(&mut tx, id, due_at, now).await? {
        return Ok(false);
    }
    audit(
        &mut tx,
        None,
        "deletion_request.overdue",
        "deletion_request",
        Some(id),
        json!({"dueAt": due_at}),
    )
    .await?;
    core.outbox
        .emit(
            &mut tx,
            EventKind::DeletionOverdue.as_str(),
            None,
            json!({"requestId": id, "dueAt": due_at}),
        )
        .await?;
    tx.commit().await?;
    core.outbox.notify();
    Ok(true)
}
