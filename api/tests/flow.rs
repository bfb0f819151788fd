//! The portal flow end to end, on SQLite and PostgreSQL: register, list slots, book, pay, join,
//! close — every step in the audit log and the outbox.

mod common;

use common::Clinic;
use reqwest::StatusCode;
use serde_json::json;

async fn portal_flow(backend: vizit_api::Backend) {
    let c = Clinic::new(backend).await;
    let api = &c.api;

    let (status, doctors) = api.get("/doctors", &c.patient).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doctors.as_array().unwrap().len(), 2);

    let slot = api.slot(&c.service, &c.doctor_id, 5).await;
    let (status, slots) = api
        .get(&format!("/doctors/{}/slots", c.doctor_id), &c.patient)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        slots
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == slot.as_str()),
        "{slots}"
    );

    let (status, booked) = api
        .post("/consultations", &c.patient, json!({"slotId": slot}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booked}");
    assert_eq!(booked["status"], "booked");
    let id = booked["id"].as_str().unwrap().to_owned();
    // The slot is no longer offered.
    let (_, slots) = api
        .get(&format!("/doctors/{}/slots", c.doctor_id), &c.other_patient)
        .await;
    assert!(
        !slots
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == slot.as_str())
    );

    // Not paid: no call yet.
    let (status, body) = api
        .post(&format!("/consultations/{id}/join"), &c.patient, json!({}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_paid"))
    );

    let (status, paid) = api
        .post(
            &format!("/consultations/{id}/payment"),
            &c.service,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["status"], "paid");

    let (status, mine) = api.get("/consultations", &c.patient).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["total"], 1);
    assert_eq!(mine["items"][0]["id"], id.as_str());

    let (status, join) = api
        .post(&format!("/consultations/{id}/join"), &c.patient, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{join}");
    let claims = c
        .api
        .keys
        .verify(join["token"].as_str().unwrap())
        .expect("a valid join token");
    assert_eq!(claims.room, id);
    assert_eq!(claims.sub, c.patient_id);
    assert_eq!(claims.role, vizit_signaling::CallRole::Patient);
    assert!(
        join["callUrl"]
            .as_str()
            .unwrap()
            .starts_with("/call#token=")
    );
    let (status, doctor_join) = api
        .post(&format!("/consultations/{id}/join"), &c.doctor, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{doctor_join}");
    assert_eq!(
        c.api
            .keys
            .verify(doctor_join["token"].as_str().unwrap())
            .unwrap()
            .role,
        vizit_signaling::CallRole::Doctor
    );
    let (_, now) = api.get(&format!("/consultations/{id}"), &c.doctor).await;
    assert_eq!(now["status"], "in_progress");

    let (status, closed) = api
        .post(
            &format!("/consultations/{id}/complete"),
            &c.doctor,
            json!({"conclusion": "Рекомендации даны."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "completed");
    assert_eq!(closed["conclusion"], "Рекомендации даны.");

    // Every step is in the audit log, with who did it.
    let (status, log) = api
        .get(&format!("/audit?objectId={id}&limit=200"), &c.admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "consultation.book",
        "consultation.paid",
        "consultation.in_progress",
        "consultation.join",
        "consultation.read",
        "consultation.completed",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["ip"] == "127.0.0.1")
    );

    // …and every change produced its domain event.
    let events = c
        .api
        .count(&format!(
            "SELECT COUNT(*) FROM outbox WHERE consultation_id = '{id}' AND event IN \
             ('consultation.booked', 'consultation.paid', 'consultation.started', 'consultation.completed')"
        ))
        .await;
    assert_eq!(events, 4);
}
on_both_databases!(portal_flow_works, super::portal_flow);

async fn no_double_booking(backend: vizit_api::Backend) {
    let c = Clinic::new(backend).await;
    let slot = c.api.slot(&c.service, &c.doctor_id, 60).await;
    let mut patients = Vec::new();
    for i in 0..50 {
        patients.push(c.api.patient(&c.service, &format!("Пациент {i}")).await.1);
    }
    let attempts = patients.iter().map(|token| {
        let api = &c.api;
        let slot = slot.clone();
        async move {
            api.post("/consultations", token, json!({"slotId": slot}))
                .await
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let taken = results
        .iter()
        .filter(|(s, b)| *s == StatusCode::CONFLICT && b["code"] == "slot_taken")
        .count();
    assert_eq!(created, 1, "{results:?}");
    assert_eq!(taken, 49, "{results:?}");
    assert_eq!(
        c.api
            .count(&format!(
                "SELECT COUNT(*) FROM consultations WHERE slot_id = '{slot}'"
            ))
            .await,
        1
    );
    assert_eq!(
        c.api
            .count("SELECT COUNT(*) FROM outbox WHERE event = 'consultation.booked'")
            .await,
        1
    );
}
on_both_databases!(
    fifty_simultaneous_bookings_make_one_consultation,
    super::no_double_booking
);

async fn invalid_transitions(backend: vizit_api::Backend) {
    let c = Clinic::new(backend).await;
    let api = &c.api;
    let booked = c.booked(60).await;
    let outbox_before = api.count("SELECT COUNT(*) FROM outbox").await;

    // Booked: cannot be completed.
    let (status, body) = api
        .post(
            &format!("/consultations/{booked}/complete"),
            &c.doctor,
            json!({"conclusion": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_transition"))
    );
    assert_eq!(status_of(&c, &booked).await, "booked");

    // Cancelled: nothing more.
    let (status, _) = api
        .post(
            &format!("/consultations/{booked}/cancel"),
            &c.patient,
            json!({"reason": "не смогу"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let after_cancel = api.count("SELECT COUNT(*) FROM outbox").await;
    assert_eq!(after_cancel, outbox_before + 1);
    for (path, token, body) in [
        ("payment", &c.service, json!({})),
        ("cancel", &c.patient, json!({"reason": "again"})),
        ("complete", &c.doctor, json!({"conclusion": "x"})),
    ] {
        let (status, problem) = api
            .post(&format!("/consultations/{booked}/{path}"), token, body)
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::CONFLICT, Some("invalid_transition")),
            "{path}"
        );
    }
    let (status, problem) = api
        .post(
            &format!("/consultations/{booked}/join"),
            &c.patient,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("consultation_closed"))
    );
    assert_eq!(status_of(&c, &booked).await, "cancelled");
    assert_eq!(
        api.count("SELECT COUNT(*) FROM outbox").await,
        after_cancel,
        "refusals write no events"
    );
    // The slot was released and can be booked again.
    let (_, slots) = api
        .get(&format!("/doctors/{}/slots", c.doctor_id), &c.other_patient)
        .await;
    assert_eq!(slots.as_array().unwrap().len(), 1);

    // Paid: a patient cannot mark it paid twice, and cannot start it outside the window.
    let paid = c.paid(180).await;
    let (status, problem) = api
        .post(
            &format!("/consultations/{paid}/payment"),
            &c.service,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_transition"))
    );
    let (status, problem) = api
        .post(
            &format!("/consultations/{paid}/join"),
            &c.patient,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("outside_join_window"))
    );
    assert_eq!(status_of(&c, &paid).await, "paid");
}
on_both_databases!(
    invalid_transitions_are_refused_and_change_nothing,
    super::invalid_transitions
);

async fn status_of(c: &Clinic, id: &str) -> String {
    let (_, body) = c.api.get(&format!("/consultations/{id}"), &c.admin).await;
    body["status"].as_str().unwrap().to_owned()
}

async fn jobs(backend: vizit_api::Backend) {
    let api = common::TestApi::spawn_with(
        backend,
        vizit_api::ApiSettings {
            pay_within: std::time::Duration::ZERO,
            overdue_after: std::time::Duration::ZERO,
            ..Default::default()
        },
    )
    .await;
    api.staff(vizit_api::domain::Role::Admin, "admin@clinic.test")
        .await;
    let doctor_id = api
        .staff(vizit_api::domain::Role::Doctor, "doctor@clinic.test")
        .await;
    let admin = api.login("admin@clinic.test").await;
    let (_, key) = api
        .post("/api-keys", &admin, json!({"name": "portal"}))
        .await;
    let service = key["key"].as_str().unwrap().to_owned();
    let (_, patient) = api.patient(&service, "П").await;
    let slot = api.slot(&service, &doctor_id, 30).await;
    let (status, booked) = api
        .post("/consultations", &patient, json!({"slotId": slot}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let report = vizit_api::jobs::run_all(&api.state).await.unwrap();
    assert_eq!(report.expired, 1);
    let (_, now) = api
        .get(
            &format!("/consultations/{}", booked["id"].as_str().unwrap()),
            &admin,
        )
        .await;
    assert_eq!(now["status"], "expired");
    let (_, slots) = api
        .get(&format!("/doctors/{doctor_id}/slots"), &patient)
        .await;
    assert_eq!(slots.as_array().unwrap().len(), 1, "the slot is free again");
    // A second pass finds nothing more to do.
    assert_eq!(
        vizit_api::jobs::run_all(&api.state).await.unwrap(),
        Default::default()
    );

    // Overdue: a paid consultation whose slot has ended (inserted directly: slots in the past
    // cannot be booked through the API).
    let past_slot = uuid::Uuid::new_v4().to_string();
    let now_ms = vizit_api::now_ms();
    sqlx::query("INSERT INTO slots (id, doctor_id, starts_at, ends_at, time_zone, status, price_kopecks, created_at) VALUES ($1, $2, $3, $4, 'Europe/Moscow', 'booked', 0, $5)")
        .bind(&past_slot).bind(&doctor_id).bind(now_ms - 7_200_000).bind(now_ms - 3_600_000).bind(now_ms)
        .execute(&api.state.db.pool).await.unwrap();
    let patient_id: (String,) = sqlx::query_as("SELECT id FROM users WHERE role = 'patient'")
        .fetch_one(&api.state.db.pool)
        .await
        .unwrap();
    let cid = uuid::Uuid::new_v4().to_string();
    sqlx::query("INSERT INTO consultations (id, slot_id, doctor_id, patient_id, status, price_kopecks, starts_at, ends_at, time_zone, booked_at, pay_by, paid_at, updated_at) VALUES ($1, $2, $3, $4, 'paid', 0, $5, $6, 'Europe/Moscow', $7, $7, $7, $7)")
        .bind(&cid).bind(&past_slot).bind(&doctor_id).bind(&patient_id.0).bind(now_ms - 7_200_000).bind(now_ms - 3_600_000).bind(now_ms - 8_000_000)
        .execute(&api.state.db.pool).await.unwrap();
    let report = vizit_api::jobs::run_all(&api.state).await.unwrap();
    assert_eq!(report.overdue, 1);
    let (status, overdue) = api.get("/admin/overdue", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(overdue["total"], 1);
    assert_eq!(overdue["items"][0]["id"], cid.as_str());
    // The list is whole: a filter it does not apply is refused, not ignored.
    let (status, problem) = api.get("/admin/overdue?q=Иванов", &admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(
        api.count("SELECT COUNT(*) FROM outbox WHERE event = 'consultation.overdue'")
            .await,
        1
    );
}
on_both_databases!(
    unpaid_bookings_expire_and_unclosed_consultations_are_flagged,
    super::jobs
);

async fn audit_log_is_append_only(backend: vizit_api::Backend) {
    let c = Clinic::new(backend).await;
    let update = sqlx::query("UPDATE audit_log SET action = 'forged'")
        .execute(&c.api.state.db.pool)
        .await;
    assert!(update.is_err(), "UPDATE of the audit log must fail");
    let delete = sqlx::query("DELETE FROM audit_log")
        .execute(&c.api.state.db.pool)
        .await;
    assert!(delete.is_err(), "DELETE from the audit log must fail");
    assert!(c.api.count("SELECT COUNT(*) FROM audit_log").await > 0);
}
on_both_databases!(
    the_audit_log_refuses_updates_and_deletes,
    super::audit_log_is_append_only
);

/// The pages poll their lists every 30 s: a list read is recorded once per person and list in
/// ten minutes; a record's own read every time.
async fn list_reads_are_recorded_once_per_ten_minutes(backend: vizit_api::Backend) {
    let c = Clinic::new(backend).await;
    let api = &c.api;
    let id = c.booked(60).await;
    let (_, admin) = api.get("/me", &c.admin).await;
    let admin_id = admin["id"].as_str().unwrap().to_owned();
    let sql = |action: &str, actor: &str| {
        format!("SELECT COUNT(*) FROM audit_log WHERE action = '{action}' AND actor_id = '{actor}'")
    };
    for _ in 0..3 {
        let (status, _) = api.get("/consultations", &c.admin).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = api.get("/admin/overdue", &c.admin).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = api.get(&format!("/consultations/{id}"), &c.admin).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(api.count(&sql("consultation.list", &admin_id)).await, 1);
    assert_eq!(
        api.count(&sql("consultation.list_overdue", &admin_id))
            .await,
        1
    );
    assert_eq!(api.count(&sql("consultation.read", &admin_id)).await, 3);
    // A search is its own entry (once per ten minutes, like the poll).
    for _ in 0..2 {
        let (status, _) = api.get("/consultations?status=booked", &c.admin).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(api.count(&sql("consultation.list", &admin_id)).await, 2);
    // Another person's reads are their own.
    let (status, _) = api.get("/consultations", &c.patient).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.count(&sql("consultation.list", &c.patient_id)).await, 1);
    // A read older than ten minutes does not hide a new one.
    let old = vizit_api::now_ms() - 11 * 60_000;
    sqlx::query(
        "INSERT INTO audit_log (at, actor_kind, actor_id, actor_role, action, object_type) \
         VALUES ($1, 'user', $2, 'patient', 'consultation.list', 'consultation')",
    )
    .bind(old)
    .bind(&c.other_patient_id)
    .execute(&api.state.db.pool)
    .await
    .unwrap();
    let (status, _) = api.get("/consultations", &c.other_patient).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.count(&sql("consultation.list", &c.other_patient_id))
            .await,
        2
    );
}

async fn disabled_staff_are_locked_out(backend: vizit_api::Backend) {
    let c = Clinic::new(backend).await;
    let (status, _) = c.api.get("/me", &c.other_doctor).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c
        .api
        .post(
            &format!("/staff/{}/disable", c.other_doctor_id),
            &c.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The open session ends at once, and a new login is refused.
    let (status, problem) = c.api.get("/me", &c.other_doctor).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
    let (status, problem) = c
        .api
        .call(
            reqwest::Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "other-doctor@clinic.test", "password": "password-123456"})),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("wrong_credentials"))
    );
    // An admin cannot lock themselves out.
    let (_, me) = c.api.get("/me", &c.admin).await;
    let (status, problem) = c
        .api
        .post(
            &format!("/staff/{}/disable", me["id"].as_str().unwrap()),
            &c.admin,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("cannot_disable_self"))
    );
}
on_both_databases!(
    list_reads_are_recorded_once_per_ten_minutes,
    super::list_reads_are_recorded_once_per_ten_minutes
);
on_both_databases!(
    disabled_staff_lose_their_sessions_and_cannot_log_in,
    super::disabled_staff_are_locked_out
);

/// The clinic finds consultations by the patient's (or doctor's) name, in any case and any
/// alphabet (SQLite's LOWER knows only ASCII: the names are compared in Rust).
async fn search_by_name(backend: vizit_api::Backend) {
    let c = Clinic::new(backend).await;
    let api = &c.api;
    let petrov = c.booked(60).await;
    let slot = api.slot(&c.service, &c.other_doctor_id, 90).await;
    let (status, body) = api
        .post("/consultations", &c.other_patient, json!({"slotId": slot}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ids = |page: &serde_json::Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, page) = api
        .get(
            "/consultations?q=%D0%BF%D0%B5%D1%82%D1%80%D0%BE%D0%B2",
            &c.admin,
        )
        .await; // «петров»
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), std::slice::from_ref(&petrov));
    assert_eq!(page["total"], 1);
    let (_, page) = api
        .get(
            "/consultations?q=%D0%9F%D0%90%D0%A6%D0%98%D0%95%D0%9D%D0%A2",
            &c.head,
        )
        .await; // «ПАЦИЕНТ»
    assert_eq!(page["total"], 2, "both patients' names contain it");
    let (_, page) = api.get("/consultations?q=nobody", &c.admin).await;
    assert_eq!(page["total"], 0);
    // A patient searching finds only their own, whatever the name.
    let (_, page) = api
        .get(
            "/consultations?q=%D0%BF%D0%B0%D1%86%D0%B8%D0%B5%D0%BD%D1%82",
            &c.patient,
        )
        .await; // «пациент»
    assert_eq!(ids(&page), [petrov]);
    let (status, p) = api.get("/consultations?q=a", &c.admin).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
}

on_both_databases!(
    the_clinic_finds_consultations_by_name,
    super::search_by_name
);
