//! The SQL of documents: forms, questionnaires, deletion requests.

use sqlx::AnyConnection;

/// A form version.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FormRow {
    pub id: String,
    pub kind: String,
    pub version: i64,
    pub title: String,
    pub questions: String,
    pub created_at: i64,
}

const FORM: &str =
    "SELECT id, kind, version, title, questions, created_at FROM questionnaire_forms";

/// The newest version of `kind`.
pub async fn current_form(
    conn: &mut AnyConnection,
    kind: &str,
) -> Result<Option<FormRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{FORM} WHERE kind = $1 ORDER BY version DESC LIMIT 1"
    )))
    .bind(kind)
    .fetch_optional(conn)
    .await
}

/// Every version of every kind, newest first within a kind.
pub async fn forms(conn: &mut AnyConnection) -> Result<Vec<FormRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{FORM} ORDER BY kind, version DESC"
    )))
    .fetch_all(conn)
    .await
}

/// Add version `version` of `kind`; false if that version exists (someone else published it).
pub async fn insert_form(
    conn: &mut AnyConnection,
    row: &FormRow,
    created_by: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "INSERT INTO questionnaire_forms (id, kind, version, title, questions, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kind, version) DO NOTHING",
    )
    .bind(&row.id)
    .bind(&row.kind)
    .bind(row.version)
    .bind(&row.title)
    .bind(&row.questions)
    .bind(row.created_at)
    .bind(created_by.map(str::to_owned))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// A questionnaire with its form and what the rules need of its consultation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuestionnaireRow {
    pub id: String,
    pub consultation_id: String,
    pub patient_id: String,
    pub kind: String,
    pub assigned_by: Option<String>,
    pub assigned_at: i64,
    pub answers: Option<String>,
    pub saved_at: Option<i64>,
    pub submitted_at: Option<i64>,
    pub read_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub legal_hold: Option<String>,
    pub form_id: String,
    pub form_version: i64,
    pub form_title: String,
    pub form_questions: String,
    pub form_created_at: i64,
    pub doctor_id: String,
    pub consultation_status: String,
    pub starts_at: i64,
    pub time_zone: String,
}

const QUESTIONNAIRE: &str = "SELECT q.id, q.consultation_id, q.patient_id, q.kind, q.assigned_by, \
    q.assigned_at, q.answers, q.saved_at, q.submitted_at, q.read_at, q.deleted_at, q.legal_hold, \
    f.id AS form_id, f.version AS form_version, f.title AS form_title, f.questions AS form_questions, f.created_at AS form_created_at, \
    c.doctor_id, c.status AS consultation_status, c.starts_at, c.time_zone \
    FROM questionnaires q JOIN questionnaire_forms f ON f.id = q.form_id \
    JOIN consultations c ON c.id = q.consultation_id";

pub async fn questionnaire(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<QuestionnaireRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{QUESTIONNAIRE} WHERE q.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn of_consultation(
    conn: &mut AnyConnection,
    consultation: &str,
) -> Result<Vec<QuestionnaireRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{QUESTIONNAIRE} WHERE q.consultation_id = $1 ORDER BY q.assigned_at, q.kind"
    )))
    .bind(consultation)
    .fetch_all(conn)
    .await
}

/// A patient's questionnaires, the newest consultation first (`limit` of them).
pub async fn of_patient(
    conn: &mut AnyConnection,
    patient: &str,
    limit: i64,
) -> Result<Vec<QuestionnaireRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{QUESTIONNAIRE} WHERE q.patient_id = $1 ORDER BY c.starts_at DESC, q.kind LIMIT $2"
    )))
    .bind(patient)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Assign a questionnaire; false if the consultation has one of this kind.
pub async fn insert_questionnaire(
    conn: &mut AnyConnection,
    id: &str,
    consultation: &str,
    patient: &str,
    form: &FormRow,
    assigned_by: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "INSERT INTO questionnaires (id, consultation_id, patient_id, form_id, kind, assigned_by, assigned_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (consultation_id, kind) DO NOTHING",
    )
    .bind(id)
    .bind(consultation)
    .bind(patient)
    .bind(&form.id)
    .bind(&form.kind)
    .bind(assigned_by.map(str::to_owned))
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Store answers (a draft, or submitted when `submitted_at` is set) unless deleted meanwhile.
pub async fn save_answers(
    conn: &mut AnyConnection,
    id: &str,
    answers: &str,
    now: i64,
    submitted_at: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE questionnaires SET answers = $2, saved_at = $3, \
         submitted_at = COALESCE($4, submitted_at), read_at = CASE WHEN $4 IS NULL THEN read_at END \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(answers)
    .bind(now)
    .bind(submitted_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// The consultation's doctor read it (the first read after each submission counts).
pub async fn mark_read(conn: &mut AnyConnection, id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE questionnaires SET read_at = $2 WHERE id = $1 AND read_at IS NULL \
         AND submitted_at IS NOT NULL AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Erase a questionnaire's answers for deletion request `request`.
pub async fn erase(
    conn: &mut AnyConnection,
    id: &str,
    request: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE questionnaires SET answers = NULL, deleted_at = $2, deletion_request_id = $3 \
         WHERE id = $1 AND deleted_at IS NULL AND legal_hold IS NULL",
    )
    .bind(id)
    .bind(now)
    .bind(request)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Keep a questionnaire under a legal hold (it is not deleted on request).
pub async fn hold(conn: &mut AnyConnection, id: &str, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE questionnaires SET legal_hold = $2 WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// A deletion request, with its patient's name (for the clinic).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestRow {
    pub id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub comment: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub due_at: i64,
    pub extended_at: Option<i64>,
    pub extension_reason: Option<String>,
    pub overdue_at: Option<i64>,
    pub answered_at: Option<i64>,
    pub answered_by: Option<String>,
    pub answer: Option<String>,
    pub act: Option<String>,
}

const REQUEST: &str = "SELECT r.id, r.patient_id, u.name AS patient_name, r.comment, r.status, \
    r.created_at, r.due_at, r.extended_at, r.extension_reason, r.overdue_at, r.answered_at, \
    r.answered_by, r.answer, r.act FROM deletion_requests r JOIN users u ON u.id = r.patient_id";

pub async fn request(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<RequestRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{REQUEST} WHERE r.id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Requests of one patient, or (None) all; of one status or all; the oldest due first for
/// pending ones, the newest first otherwise. Returns a page and the total.
pub async fn requests(
    conn: &mut AnyConnection,
    patient: Option<&str>,
    status: Option<&str>,
    overdue_only: bool,
    limit: i64,
    offset: i64,
) -> Result<(Vec<RequestRow>, i64), sqlx::Error> {
    let filter = "($1 IS NULL OR r.patient_id = $1) AND ($2 IS NULL OR r.status = $2) \
                  AND ($3 = 0 OR r.overdue_at IS NOT NULL)";
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{REQUEST} WHERE {filter} ORDER BY CASE WHEN r.status = 'pending' THEN 0 ELSE 1 END, \
         CASE WHEN r.status = 'pending' THEN r.due_at ELSE -r.created_at END, r.id LIMIT $4 OFFSET $5"
    )))
    .bind(patient.map(str::to_owned))
    .bind(status.map(str::to_owned))
    .bind(i64::from(overdue_only))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM deletion_requests r WHERE {filter}"
    )))
    .bind(patient.map(str::to_owned))
    .bind(status.map(str::to_owned))
    .bind(i64::from(overdue_only))
    .fetch_one(conn)
    .await?;
    Ok((rows, total))
}

pub async fn pending_of(
    conn: &mut AnyConnection,
    patient: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM deletion_requests WHERE patient_id = $1 AND status = 'pending' LIMIT 1",
    )
    .bind(patient)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| r.0))
}

pub async fn insert_request(
    conn: &mut AnyConnection,
    id: &str,
    patient: &str,
    comment: Option<&str>,
    now: i64,
    due_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO deletion_requests (id, patient_id, comment, status, created_at, due_at) \
         VALUES ($1, $2, $3, 'pending', $4, $5)",
    )
    .bind(id)
    .bind(patient)
    .bind(comment.map(str::to_owned))
    .bind(now)
    .bind(due_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Answer a pending request; false if it was answered meanwhile.
pub async fn answer(
    conn: &mut AnyConnection,
    id: &str,
    status: &str,
    by: Option<&str>,
    answer: Option<&str>,
    act: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE deletion_requests SET status = $2, answered_at = $3, answered_by = $4, \
         answer = $5, act = $6 WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(status)
    .bind(now)
    .bind(by.map(str::to_owned))
    .bind(answer.map(str::to_owned))
    .bind(act)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Move a pending, never extended request's deadline; false otherwise.
pub async fn extend(
    conn: &mut AnyConnection,
    id: &str,
    due_at: i64,
    reason: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE deletion_requests SET due_at = $2, extension_reason = $3, extended_at = $4, \
         overdue_at = NULL WHERE id = $1 AND status = 'pending' AND extended_at IS NULL",
    )
    .bind(id)
    .bind(due_at)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Flag a pending request whose deadline `due_at` passed; false if it is answered, moved or
/// flagged already.
pub async fn flag_overdue(
    conn: &mut AnyConnection,
    id: &str,
    due_at: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE deletion_requests SET overdue_at = $3 WHERE id = $1 AND status = 'pending' \
         AND due_at = $2 AND overdue_at IS NULL",
    )
    .bind(id)
    .bind(due_at)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}
