//! Demo mode: a consultation ready for a call, so the README's demo walks the whole path — join
//! links of a consultation's Room (recordable with consent), the recordings catalogue, and the
//! admin page to download them. Never available outside demo mode.

use rand::Rng;

use crate::consultations::{self, TransitionData};
use crate::domain::{Caller, ConsultationId, Kopecks, Principal, Role, Transition, UserId};
use crate::http::ApiError;
use crate::people::{self, NewPatient, NewStaff, create_session, create_staff_user};
use crate::slots;
use crate::state::ApiState;

const DEMO_DOCTOR: (&str, &str) = ("demo-doctor@vizit.demo", "Доктор (демо)");
const DEMO_ADMIN: (&str, &str) = ("demo-admin@vizit.demo", "Администратор клиники (демо)");

/// A paid consultation whose call is open, and who is in it.
pub struct DemoCall {
    pub consultation_id: ConsultationId,
    pub doctor_id: UserId,
    pub doctor_name: String,
    pub patient_id: UserId,
    pub patient_name: String,
    /// When the consultation starts, Unix milliseconds.
    pub starts_at: i64,
    /// A session of the demo clinic admin, for the recordings on `/consultations`.
    pub admin_session: String,
    /// Sessions of the demo doctor (the conclusion on the doctor's page) and of the patient.
    pub doctor_session: String,
    pub patient_session: String,
}

/// The demo staff member with this e-mail, created on first use (a random password nobody uses).
async fn demo_staff(
    state: &ApiState,
    role: Role,
    (email, name): (&str, &str),
) -> Result<UserId, ApiError> {
    let core = state.core();
    if let Some(id) = people::service::user_by_email(&core, email).await? {
        return Ok(id);
    }
    let password: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    match create_staff_user(
        &core.db,
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
        Err(people::Error::EmailTaken) => people::service::user_by_email(&core, email)
            .await?
            .ok_or(ApiError::NotFound("demo staff member")),
        Err(e) => Err(e.into()),
    }
}

/// A new demo consultation: the demo doctor, a new demo patient, a slot starting in a minute,
/// booked and paid, so both may join at once.
pub async fn demo_call(state: &ApiState) -> Result<DemoCall, ApiError> {
    if !state.settings.demo {
        return Err(ApiError::NotFound("page"));
    }
    let core = state.core();
    let doctor_id = demo_staff(state, Role::Doctor, DEMO_DOCTOR).await?;
    let admin_id = demo_staff(state, Role::Admin, DEMO_ADMIN).await?;
    let patient_name = "Пациент (демо)".to_owned();
    // An address of its own, so its notifications land in the demo's mail capture.
    let patient_email = format!(
        "patient-{}@vizit.demo",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let patient_phone = format!("+7900{:07}", uuid::Uuid::new_v4().as_u128() % 10_000_000);
    let patient_id = people::register_patient(
        &core,
        NewPatient {
            name: &patient_name,
            email: Some(patient_email),
            // A test number: its notifications go by the sandbox's edna (MAX once linked), the
            // staff's by e-mail — the demo shows both (`/sandbox/edna`, `/sandbox/mail`).
            phone: Some(&patient_phone),
            ..NewPatient::default()
        },
    )
    .await?;
    let admin = Caller {
        principal: Principal::User {
            id: admin_id.clone(),
            role: Role::Admin,
            name: DEMO_ADMIN.1.to_owned(),
        },
        ip: None,
        via: Some(crate::domain::caller::DEMO_SESSION.into()),
    };
    let starts = state.now() + 60_000;
    let (slot_id, _, _) = slots::service::publish(
        &core,
        &admin,
        slots::service::Publish {
            doctor: &doctor_id,
            starts_at: starts,
            ends_at: starts + 30 * 60_000,
            time_zone: None,
            price: Some(Kopecks::price(0).map_err(|e| ApiError::Internal(e.into()))?),
            external_id: None,
        },
    )
    .await?;
    let consultation_id = consultations::book(&core, &admin, &slot_id, &patient_id).await?;
    consultations::transition(
        &core,
        Some(&admin),
        &consultation_id,
        Transition::MarkPaid,
        TransitionData::default(),
    )
    .await?;
    let (admin_session, _) =
        create_session(&core, &admin_id, crate::domain::caller::DEMO_SESSION).await?;
    let (doctor_session, _) =
        create_session(&core, &doctor_id, crate::domain::caller::DEMO_SESSION).await?;
    let (patient_session, _) =
        create_session(&core, &patient_id, crate::domain::caller::DEMO_SESSION).await?;
    Ok(DemoCall {
        consultation_id,
        doctor_id,
        doctor_name: DEMO_DOCTOR.1.to_owned(),
        patient_id,
        patient_name,
        starts_at: starts,
        admin_session,
        doctor_session,
        patient_session,
    })
}
