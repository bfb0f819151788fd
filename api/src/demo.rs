//! Demo mode: a consultation ready for a call, so the README's demo walks the whole path — join
//! links of a consultation's Room (recordable with consent), the recordings catalogue, and the
//! admin page to download them. Never available outside demo mode.

use rand::Rng;

use crate::auth::{Caller, Principal};
use crate::domain::{Role, Transition};
use crate::error::ApiError;
use crate::routes::{create_session, insert_patient};
use crate::service::{self, TransitionData};
use crate::{ApiState, NewStaff, create_staff_user, now_ms};

const DEMO_DOCTOR: (&str, &str) = ("demo-doctor@vizit.demo", "Доктор (демо)");
const DEMO_ADMIN: (&str, &str) = ("demo-admin@vizit.demo", "Администратор клиники (демо)");

/// A paid consultation whose call is open, and who is in it.
pub struct DemoCall {
    pub consultation_id: String,
    pub doctor_id: String,
    pub doctor_name: String,
    pub patient_id: String,
    pub patient_name: String,
    /// A session of the demo clinic admin, for the recordings on `/consultations`.
    pub admin_session: String,
}

/// The demo staff member with this e-mail, created on first use (a random password nobody uses).
async fn demo_staff(
    state: &ApiState,
    role: Role,
    (email, name): (&str, &str),
) -> Result<String, ApiError> {
    let existing: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(&state.db.pool)
        .await?;
    if let Some((id,)) = existing {
        return Ok(id);
    }
    let password: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    match create_staff_user(
        &state.db,
        NewStaff {
            role,
            email,
            name,
            password: &password,
            specialty: (role == Role::Doctor).then_some("Терапевт"),
            time_zone: None,
            bitrix_resource_id: None,
        },
    )
    .await
    {
        Ok(id) => Ok(id),
        // Two demo pages at once: the other one created it.
        Err(ApiError::Conflict { .. }) => {
            let (id,): (String,) = sqlx::query_as("SELECT id FROM users WHERE email = $1")
                .bind(email)
                .fetch_one(&state.db.pool)
                .await?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

/// A new demo consultation: the demo doctor, a new demo patient, a slot starting in a minute,
/// booked and paid, so both may join at once.
pub async fn demo_call(state: &ApiState) -> Result<DemoCall, ApiError> {
    if !state.settings.demo {
        return Err(ApiError::NotFound("page"));
    }
    let doctor_id = demo_staff(state, Role::Doctor, DEMO_DOCTOR).await?;
    let admin_id = demo_staff(state, Role::Admin, DEMO_ADMIN).await?;
    let patient_name = "Пациент (демо)".to_owned();
    let patient_id = insert_patient(state, &patient_name, None, None, None).await?;
    let admin = Caller {
        principal: Principal::User {
            id: admin_id.clone(),
            role: Role::Admin,
            name: DEMO_ADMIN.1.to_owned(),
        },
        ip: None,
    };
    let starts = now_ms() + 60_000;
    let slot_id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO slots (id, doctor_id, starts_at, ends_at, time_zone, status, price_kopecks, created_at) \
         SELECT $1, user_id, $2, $3, time_zone, 'free', 0, $4 FROM doctors WHERE user_id = $5",
    )
    .bind(&slot_id)
    .bind(starts)
    .bind(starts + 30 * 60_000)
    .bind(now_ms())
    .bind(&doctor_id)
    .execute(&state.db.pool)
    .await?;
    let consultation_id = service::book(state, &admin, &slot_id, &patient_id).await?;
    service::transition(
        state,
        Some(&admin),
        &consultation_id,
        Transition::MarkPaid,
        TransitionData::default(),
    )
    .await?;
    let (admin_session, _) = create_session(state, &admin_id).await?;
    Ok(DemoCall {
        consultation_id,
        doctor_id,
        doctor_name: DEMO_DOCTOR.1.to_owned(),
        patient_id,
        patient_name,
        admin_session,
    })
}
