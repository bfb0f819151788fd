//! Every endpoint × every role, and bad input: allowed, or 401/403/404 as appropriate, always a
//! problem document, never a 500. Runs on SQLite and PostgreSQL.

mod common;

use common::Clinic;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ANON: usize = 0;
const ROLES: [&str; 8] = [
    "anonymous",
    "patient",
    "other patient",
    "doctor",
    "other doctor",
    "admin",
    "head doctor",
    "service",
];

fn token(c: &Clinic, role: usize) -> Option<&str> {
    [
        None,
        Some(c.patient.as_str()),
        Some(c.other_patient.as_str()),
        Some(c.doctor.as_str()),
        Some(c.other_doctor.as_str()),
        Some(c.admin.as_str()),
        Some(c.head.as_str()),
        Some(c.service.as_str()),
    ][role]
}

struct Case {
    method: Method,
    /// `{d}` doctor, `{p}` patient, `{c}` a fresh paid consultation starting in 5 minutes, `{k}` a
    /// fresh API key, `{s}` a fresh staff member, `{n}` a two-digit number unique within the case.
    path: &'static str,
    body: Value,
    /// Expected status per role, in the order of ROLES.
    expect: [u16; 8],
}

async fn fresh_key(c: &Clinic) -> String {
    let (_, key) = c
        .api
        .post("/api-keys", &c.admin, json!({"name": "spare"}))
        .await;
    key["id"].as_str().unwrap().to_owned()
}

async fn every_endpoint_by_every_role(backend: vizit_api::Backend) {
    let c = Clinic::new(backend).await;
    let n = std::sync::atomic::AtomicUsize::new(0);
    let cases = [
        Case {
            method: Method::GET,
            path: "/me",
            body: Value::Null,
            expect: [401, 200, 200, 200, 200, 200, 200, 200],
        },
        Case {
            method: Method::GET,
            path: "/doctors",
            body: Value::Null,
            expect: [401, 200, 200, 200, 200, 200, 200, 200],
        },
        Case {
            method: Method::GET,
            path: "/doctors/{d}/slots",
            body: Value::Null,
            expect: [401, 200, 200, 200, 200, 200, 200, 200],
        },
        Case {
            method: Method::POST,
            path: "/doctors/{d}/slots",
            body: json!({"startsAt": "2099-01-{n}T10:00:00Z", "endsAt": "2099-01-{n}T10:30:00Z", "priceKopecks": 100}),
            expect: [401, 403, 403, 403, 403, 201, 403, 201],
        },
        Case {
            method: Method::POST,
            path: "/patients",
            body: json!({"name": "Новый"}),
            expect: [401, 403, 403, 403, 403, 201, 403, 201],
        },
        Case {
            method: Method::POST,
            path: "/patients/{p}/sessions",
            body: json!({}),
            expect: [401, 403, 403, 403, 403, 403, 403, 201],
        },
        Case {
            method: Method::POST,
            path: "/staff",
            body: json!({"role": "admin", "email": "staff{n}@clinic.test", "name": "N", "password": "password-123456"}),
            expect: [401, 403, 403, 403, 403, 201, 403, 403],
        },
        Case {
            method: Method::GET,
            path: "/staff",
            body: Value::Null,
            expect: [401, 403, 403, 403, 403, 200, 403, 403],
        },
        Case {
            method: Method::POST,
            path: "/api-keys",
            body: json!({"name": "k"}),
            expect: [401, 403, 403, 403, 403, 201, 403, 403],
        },
        Case {
            method: Method::GET,
            path: "/api-keys",
            body: Value::Null,
            expect: [401, 403, 403, 403, 403, 200, 403, 403],
        },
        Case {
            method: Method::DELETE,
            path: "/api-keys/{k}",
            body: Value::Null,
            expect: [401, 403, 403, 403, 403, 204, 403, 403],
        },
        Case {
            method: Method::GET,
            path: "/consultations",
            body: Value::Null,
            expect: [401, 200, 200, 200, 200, 200, 200, 200],
        },
        Case {
            method: Method::GET,
            path: "/consultations/{c}",
            body: Value::Null,
            expect: [401, 200, 404, 200, 404, 200, 200, 200],
        },
        Case {
            method: Method::POST,
            path: "/consultations/{c}/cancel",
            body: json!({"reason": "причина"}),
            expect: [401, 200, 404, 200, 404, 200, 403, 200],
        },
        Case {
            method: Method::POST,
            path: "/consultations/{c}/join",
            body: json!({}),
            expect: [401, 200, 404, 200, 404, 403, 403, 403],
        },
        Case {
            method: Method::GET,
            path: "/consultations/{c}/messages",
            body: Value::Null,
            expect: [401, 200, 404, 200, 404, 403, 200, 200],
        },
        Case {
            method: Method::GET,
            // No object store in this API: the parties learn so; others get no further.
            path: "/consultations/{c}/files/00000000-0000-4000-8000-000000000001",
            body: Value::Null,
            expect: [401, 409, 404, 409, 404, 403, 409, 409],
        },
        Case {
            method: Method::GET,
            // A session is not a join token.
            path: "/call/messages",
            body: Value::Null,
            expect: [401, 401, 401, 401, 401, 401, 401, 401],
        },
        Case {
            method: Method::POST,
            path: "/consultations/{c}/complete",
            body: json!({"conclusion": "Заключение"}),
            expect: [401, 403, 403, 200, 404, 403, 403, 403],
        },
        Case {
            method: Method::GET,
            path: "/admin/overdue",
            body: Value::Null,
            expect: [401, 403, 403, 403, 403, 200, 200, 403],
        },
        Case {
            method: Method::GET,
            path: "/audit",
            body: Value::Null,
            expect: [401, 403, 403, 403, 403, 200, 403, 403],
        },
    ];
    for case in &cases {
        for (role, expected) in case.expect.iter().enumerate() {
            // Unique enough within one case: a day of month for slots, a suffix for e-mails.
            let unique = format!(
                "{:02}",
                n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 28 + 1
            );
            let mut path = case
                .path
                .replace("{d}", &c.doctor_id)
                .replace("{p}", &c.patient_id);
            if path.contains("{c}") {
                path = path.replace("{c}", &c.paid(5).await);
            }
            if path.contains("{s}") {
                let email = format!("spare{unique}@clinic.test");
                path = path.replace(
                    "{s}",
                    &c.api.staff(vizit_api::domain::Role::Doctor, &email).await,
                );
            }
            if path.contains("{k}") {
                path = path.replace("{k}", &fresh_key(&c).await);
            }
            let body =
                serde_json::from_str::<Value>(&case.body.to_string().replace("{n}", &unique))
                    .unwrap();
            let (status, response) = c
                .api
                .call(
                    case.method.clone(),
                    &path,
                    token(&c, role),
                    (!body.is_null()).then_some(body),
                )
                .await;
            assert_eq!(
                status.as_u16(),
                *expected,
                "{} {} as {}: {response}",
                case.method,
                case.path,
                ROLES[role]
            );
            if role == ANON {
                assert_eq!(response["code"], "unauthenticated");
            }
        }
    }
}
on_both_databases!(
    every_endpoint_answers_every_role_as_specified,
    super::every_endpoint_by_every_role
);

async fn lists_are_scoped_to_the_caller(backend: vizit_api::Backend) {
    let c = Clinic::new(backend).await;
    let id = c.paid(60).await;
    for (who, total) in [
        (&c.patient, 1),
        (&c.other_patient, 0),
        (&c.doctor, 1),
        (&c.other_doctor, 0),
        (&c.admin, 1),
        (&c.service, 1),
    ] {
        let (status, page) = c.api.get("/consultations", who).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["total"], total, "{page}");
        if total == 1 {
            assert_eq!(page["items"][0]["id"], id.as_str());
        }
    }
    // Filters.
    let (_, page) = c.api.get("/consultations?status=booked", &c.admin).await;
    assert_eq!(page["total"], 0);
    let (_, page) = c
        .api
        .get(
            &format!("/consultations?status=paid&doctorId={}", c.doctor_id),
            &c.admin,
        )
        .await;
    assert_eq!(page["total"], 1);
    let (_, page) = c
        .api
        .get("/consultations?from=2099-01-01T00:00:00Z", &c.admin)
        .await;
    assert_eq!(page["total"], 0);
}
on_both_databases!(
    lists_show_each_caller_only_their_consultations,
    super::lists_are_scoped_to_the_caller
);

async fn bad_input(backend: vizit_api::Backend) {
    let c = Clinic::new(backend).await;
    let api = &c.api;
    let slot = api.slot(&c.service, &c.doctor_id, 60).await;
    let code =
        |r: &(StatusCode, Value)| (r.0.as_u16(), r.1["code"].as_str().unwrap_or("").to_owned());

    let wrong_type = api
        .post("/consultations", &c.patient, json!({"slotId": 5}))
        .await;
    assert_eq!(code(&wrong_type), (400, "invalid_body".into()));
    let missing = api.post("/consultations", &c.patient, json!({})).await;
    assert_eq!(code(&missing), (400, "invalid_body".into()));
    let unknown = api
        .post(
            "/consultations",
            &c.patient,
            json!({"slotId": slot, "discount": 100}),
        )
        .await;
    assert_eq!(code(&unknown), (400, "invalid_body".into()));
    let huge = api
        .post(
            "/consultations",
            &c.patient,
            json!({"slotId": "x".repeat(100 * 1024)}),
        )
        .await;
    assert_eq!(code(&huge), (413, "body_too_large".into()));
    let malformed_id = api.get("/consultations/not-a-uuid", &c.admin).await;
    assert_eq!(code(&malformed_id), (404, "not_found".into()));
    let bad_slot = api
        .post(
            "/consultations",
            &c.patient,
            json!({"slotId": "1; DROP TABLE slots"}),
        )
        .await;
    assert_eq!(code(&bad_slot), (404, "not_found".into()));
    let bad_limit = api.get("/consultations?limit=abc", &c.admin).await;
    assert_eq!(code(&bad_limit), (400, "invalid_query".into()));
    let big_limit = api.get("/consultations?limit=100000", &c.admin).await;
    assert_eq!(code(&big_limit), (400, "invalid_query".into()));
    let bad_time = api.get("/consultations?from=yesterday", &c.admin).await;
    assert_eq!(code(&bad_time), (400, "invalid_time".into()));
    let bad_status = api.get("/consultations?status=' OR 1=1 --", &c.admin).await;
    assert_eq!(code(&bad_status), (400, "invalid_query".into()));
    let unknown_path = api.get("/no/such/thing", &c.admin).await;
    assert_eq!(code(&unknown_path), (404, "not_found".into()));
    let injected_login = api
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "' OR '1'='1' --", "password": "' OR '1'='1"})),
        )
        .await;
    assert_eq!(code(&injected_login), (400, "wrong_credentials".into()));
    let wrong_password = api
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "admin@clinic.test", "password": "nope-nope-nope"})),
        )
        .await;
    assert_eq!(code(&wrong_password), (400, "wrong_credentials".into()));

    // SQL-looking text is stored as text.
    let (_, booked) = api
        .post("/consultations", &c.patient, json!({"slotId": slot}))
        .await;
    let id = booked["id"].as_str().unwrap();
    let reason = "'); DROP TABLE consultations; --";
    let (status, cancelled) = api
        .post(
            &format!("/consultations/{id}/cancel"),
            &c.patient,
            json!({"reason": reason}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["cancelReason"], reason);
    assert!(api.count("SELECT COUNT(*) FROM consultations").await >= 1);

    // Garbage and wrong-kind credentials.
    for auth in ["garbage", "vzs_0000", "vzk_0000", "Bearer"] {
        let r = api.get("/me", auth).await;
        assert_eq!(code(&r), (401, "invalid_credentials".into()), "{auth}");
    }
    // Expired session.
    sqlx::query("UPDATE sessions SET expires_at = 0 WHERE user_id = $1")
        .bind(&c.other_patient_id)
        .execute(&api.state.db.pool)
        .await
        .unwrap();
    assert_eq!(
        code(&api.get("/me", &c.other_patient).await),
        (401, "invalid_credentials".into())
    );
    // Revoked session (logout).
    assert_eq!(
        api.call(Method::POST, "/auth/logout", Some(&c.head), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        code(&api.get("/me", &c.head).await),
        (401, "invalid_credentials".into())
    );
    // Revoked API key.
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/api-keys/{}", c.service_key_id),
            Some(&c.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        code(&api.get("/doctors", &c.service).await),
        (401, "invalid_credentials".into())
    );
}
on_both_databases!(bad_input_gets_problem_documents_never_500, super::bad_input);

on_both_databases!(
    password_guessing_is_locked_out_with_429,
    super::password_guessing
);
async fn password_guessing(backend: vizit_api::Backend) {
    use vizit_api::ApiSettings;
    use vizit_api::people::guard::LoginLimits;
    let clock = vizit_api::Clock::manual(1_800_000_000_000);
    let api = common::TestApi::spawn_clocked(
        backend,
        ApiSettings {
            login_limits: LoginLimits {
                failures_per_account: 3,
                failures_per_address: 5,
                window: std::time::Duration::from_secs(600),
                hashing_slots: 2,
            },
            ..ApiSettings::default()
        },
        clock.clone(),
        |s| s,
    )
    .await;
    api.staff(vizit_api::domain::Role::Admin, "admin@clinic.test")
        .await;
    let attempt = |email: &'static str, password: &'static str| {
        let http = api.http.clone();
        let url = format!("{}/auth/login", api.base);
        async move {
            let res = http
                .post(url)
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap();
            let retry = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            let status = res.status();
            let body: Value = res.json().await.unwrap();
            (
                status,
                body["code"].as_str().unwrap_or("").to_owned(),
                retry,
            )
        }
    };
    let checks = || api.state.logins.checks();

    // Wrong passwords: refused, each after a real check.
    for _ in 0..3 {
        let (status, code, retry) = attempt("admin@clinic.test", "guess-guess-guess").await;
        assert_eq!(
            (status, code.as_str(), retry),
            (StatusCode::BAD_REQUEST, "wrong_credentials", None)
        );
    }
    assert_eq!(checks(), 3);
    // The account is locked: even the right password gets 429, without a check.
    let (status, code, retry) = attempt("admin@clinic.test", "password-123456").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(code, "too_many_attempts");
    assert_eq!(retry, Some(600));
    assert_eq!(checks(), 3, "a locked login checks no password");

    // An unknown e-mail costs the same check as a wrong password (no staff enumeration by time).
    let (status, code, _) = attempt("nobody@clinic.test", "guess-guess-guess").await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "wrong_credentials")
    );
    assert_eq!(checks(), 4);
    // One more failure from this address locks it for every e-mail.
    attempt("someone@clinic.test", "guess-guess-guess").await;
    let (status, _, retry) = attempt("third@clinic.test", "guess").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.is_some_and(|s| s > 0 && s <= 600), "{retry:?}");

    // The window passes: the right password works again.
    clock.advance(601_000);
    let (status, _, _) = attempt("admin@clinic.test", "password-123456").await;
    assert_eq!(status, StatusCode::OK);
    let failed = api
        .count("SELECT COUNT(*) FROM audit_log WHERE action = 'session.login_failed'")
        .await;
    assert_eq!(
        failed, 5,
        "each failure is audited; refusals before a check are not"
    );
}

on_both_databases!(
    behind_a_trusted_proxy_each_client_has_its_own_limit,
    super::behind_a_proxy
);
async fn behind_a_proxy(backend: vizit_api::Backend) {
    use vizit_api::ApiSettings;
    use vizit_api::people::guard::LoginLimits;
    let api = common::TestApi::spawn_with(
        backend,
        ApiSettings {
            login_limits: LoginLimits {
                failures_per_account: 100,
                failures_per_address: 2,
                window: std::time::Duration::from_secs(600),
                hashing_slots: 2,
            },
            trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
            ..ApiSettings::default()
        },
    )
    .await;
    let attempt = |client: &'static str| {
        let http = api.http.clone();
        let url = format!("{}/auth/login", api.base);
        async move {
            http.post(url)
                .header("x-forwarded-for", client)
                .json(&json!({"email": "x@clinic.test", "password": "guess-guess"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(attempt("203.0.113.1").await, StatusCode::BAD_REQUEST);
    assert_eq!(attempt("203.0.113.1").await, StatusCode::BAD_REQUEST);
    assert_eq!(attempt("203.0.113.1").await, StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same proxy is not locked out with the first.
    assert_eq!(attempt("203.0.113.2").await, StatusCode::BAD_REQUEST);
}
