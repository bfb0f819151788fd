//! Test harness: the real API router on port 0, over a fresh database — a SQLite file or a new
//! PostgreSQL database (from `TEST_POSTGRES_URL`, which `scripts/test.sh` sets up).

#![allow(dead_code)]

pub mod smtp;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::Executor;
use vizit_api::domain::Role;
use vizit_api::{ApiSettings, ApiState, Backend, Db, NewStaff};
use vizit_signaling::TokenKeys;

pub const SECRET: &str = "api-test-secret-api-test-secret-000001";

/// Run a test body on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, $body:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body(vizit_api::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body(vizit_api::Backend::Postgres).await
            }
        }
    };
}

pub struct TestApi {
    pub base: String,
    /// The database's URL (a second node may connect to it).
    pub db_url: String,
    pub http: reqwest::Client,
    pub state: ApiState,
    pub keys: TokenKeys,
    _cleanup: Cleanup,
}

pub struct Cleanup {
    sqlite_dir: Option<std::path::PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dir) = &self.sqlite_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub async fn database(backend: Backend) -> (String, Cleanup) {
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("vizit-api-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            (
                vizit_api::platform::db::sqlite_url(&dir.join("test.db")),
                Cleanup {
                    sqlite_dir: Some(dir),
                },
            )
        }
        Backend::Postgres => {
            let admin = std::env::var("TEST_POSTGRES_URL").expect(
                "TEST_POSTGRES_URL must name a PostgreSQL server whose role may CREATE DATABASE \
                 (scripts/test.sh starts one); the API suite runs on both engines",
            );
            let name = format!("vizit_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                .await
                .expect("connect to PostgreSQL");
            conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .unwrap();
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap();
            (format!("{base}/{name}"), Cleanup { sqlite_dir: None })
        }
    }
}

/// The API router for `state` on a new port; its base URL.
async fn serve(state: ApiState) -> String {
    let app = vizit_api::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    format!("http://{addr}/api/v1")
}

impl TestApi {
    pub async fn spawn(backend: Backend) -> TestApi {
        Self::spawn_with(
            backend,
            ApiSettings {
                demo: true,
                ..ApiSettings::default()
            },
        )
        .await
    }

    pub async fn spawn_with(backend: Backend, settings: ApiSettings) -> TestApi {
        Self::spawn_full(backend, settings, None).await
    }

    pub async fn spawn_full(
        backend: Backend,
        settings: ApiSettings,
        bitrix24: Option<std::sync::Arc<vizit_api::slots::bitrix24::Bitrix24>>,
    ) -> TestApi {
        Self::spawn_configured(backend, settings, |mut state| {
            if let Some(b) = bitrix24 {
                state = state.with_bitrix24(b);
            }
            state
        })
        .await
    }

    /// The API over a fresh database, its state shaped by `configure` (integrations on).
    pub async fn spawn_configured(
        backend: Backend,
        settings: ApiSettings,
        configure: impl FnOnce(ApiState) -> ApiState,
    ) -> TestApi {
        Self::spawn_clocked(backend, settings, vizit_api::Clock::system(), configure).await
    }

    /// As [`TestApi::spawn_configured`], deciding by `clock` (a manual one the test moves).
    pub async fn spawn_clocked(
        backend: Backend,
        settings: ApiSettings,
        clock: vizit_api::Clock,
        configure: impl FnOnce(ApiState) -> ApiState,
    ) -> TestApi {
        let (url, cleanup) = database(backend).await;
        let db = Db::connect(&url, 16)
            .await
            .expect("database connects and migrates");
        assert_eq!(db.backend, backend);
        let keys = TokenKeys::new(&SecretString::from(SECRET.to_owned())).unwrap();
        let state =
            configure(ApiState::with_clock(db, keys.clone(), settings, clock).with_documents());
        let base = serve(state.clone()).await;
        TestApi {
            base,
            db_url: url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            state,
            keys,
            _cleanup: cleanup,
        }
    }

    /// Serve `self.state` anew (after changing it), on a new port.
    pub async fn respawn(&mut self) {
        self.base = serve(self.state.clone()).await;
    }

    /// A request; returns status and JSON body (problem documents included).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = auth {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        // Personal and medical data: never kept in a cache.
        assert_eq!(
            res.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{status} {path}"
        );
        let text = res.text().await.unwrap();
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(
                content_type, "application/problem+json",
                "{status} {path}: {text}"
            );
        }
        let value = if text.is_empty() {
            Value::Null
        } else {
            match serde_json::from_str(&text) {
                Ok(value) => {
                    if status.is_success() {
                        assert!(
                            content_type.starts_with("application/json"),
                            "{status} {path}: JSON sent as {content_type}"
                        );
                    }
                    value
                }
                Err(_) => Value::String(text),
            }
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, auth: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(auth), None).await
    }

    pub async fn post(&self, path: &str, auth: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(auth), Some(body)).await
    }

    pub async fn put(&self, path: &str, auth: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(auth), Some(body)).await
    }

    /// The actions of the audit entries `GET /audit?{query}` returns, newest first.
    pub async fn audit_actions(&self, query: &str, auth: &str) -> Vec<String> {
        let (status, log) = self.get(&format!("/audit?{query}"), auth).await;
        assert_eq!(status, StatusCode::OK, "{log}");
        log["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["action"].as_str().expect("action").to_owned())
            .collect()
    }

    pub async fn staff(&self, role: Role, email: &str) -> String {
        vizit_api::create_staff_user(
            &self.state.db,
            NewStaff {
                role,
                email,
                name: email,
                password: "password-123456",
                specialty: (role == Role::Doctor).then_some("Терапевт"),
                time_zone: Some("Europe/Moscow"),
                bitrix_resource_id: None,
            },
        )
        .await
        .unwrap()
        .to_string()
    }

    pub async fn login(&self, email: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"email": email, "password": "password-123456"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// A patient registered by the portal, with a session.
    pub async fn patient(&self, service: &str, name: &str) -> (String, String) {
        self.register_patient(service, json!({"name": name})).await
    }

    /// A patient registered by the portal as `body` says (name, e-mail, phone), with a session.
    pub async fn register_patient(&self, service: &str, body: Value) -> (String, String) {
        let (status, body) = self.post("/patients", service, body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        let (status, session) = self
            .post(&format!("/patients/{id}/sessions"), service, json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        (id, session["token"].as_str().unwrap().to_owned())
    }

    /// The clinic marks a consultation paid (money taken outside Vizit).
    pub async fn mark_paid(&self, service: &str, consultation: &str) {
        let (status, body) = self
            .post(
                &format!("/consultations/{consultation}/payment"),
                service,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    pub async fn slot(&self, auth: &str, doctor: &str, starts_in_minutes: i64) -> String {
        let start = vizit_api::now_ms() + starts_in_minutes * 60_000;
        self.slot_at(auth, doctor, start, 150_000).await
    }

    /// A 30-minute slot of `doctor` at `price`, starting at `start` (UTC milliseconds).
    pub async fn slot_at(&self, auth: &str, doctor: &str, start: i64, price: i64) -> String {
        let fmt = |ms: i64| {
            time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
                .unwrap()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let (status, body) = self
            .post(
                &format!("/doctors/{doctor}/slots"),
                auth,
                json!({"startsAt": fmt(start), "endsAt": fmt(start + 30 * 60_000), "priceKopecks": price}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let row: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.state.db.pool)
            .await
            .unwrap();
        row.0
    }
}

/// A clinic with an admin, a head doctor, two doctors, the portal's API key, two patients.
pub struct Clinic {
    pub api: TestApi,
    pub admin: String,
    pub head: String,
    pub doctor: String,
    pub doctor_id: String,
    pub other_doctor: String,
    pub other_doctor_id: String,
    pub service: String,
    pub service_key_id: String,
    pub patient: String,
    pub patient_id: String,
    pub other_patient: String,
    pub other_patient_id: String,
}

impl Clinic {
    pub async fn new(backend: Backend) -> Clinic {
        let api = TestApi::spawn(backend).await;
        api.staff(Role::Admin, "admin@clinic.test").await;
        api.staff(Role::HeadDoctor, "head@clinic.test").await;
        let doctor_id = api.staff(Role::Doctor, "doctor@clinic.test").await;
        let other_doctor_id = api.staff(Role::Doctor, "other-doctor@clinic.test").await;
        let admin = api.login("admin@clinic.test").await;
        let head = api.login("head@clinic.test").await;
        let doctor = api.login("doctor@clinic.test").await;
        let other_doctor = api.login("other-doctor@clinic.test").await;
        let (status, key) = api
            .post("/api-keys", &admin, json!({"name": "portal"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        let service = key["key"].as_str().unwrap().to_owned();
        let service_key_id = key["id"].as_str().unwrap().to_owned();
        let (patient_id, patient) = api.patient(&service, "Пациент Петров").await;
        let (other_patient_id, other_patient) = api.patient(&service, "Пациент Сидоров").await;
        Clinic {
            api,
            admin,
            head,
            doctor,
            doctor_id,
            other_doctor,
            other_doctor_id,
            service,
            service_key_id,
            patient,
            patient_id,
            other_patient,
            other_patient_id,
        }
    }

    /// A consultation of `patient` with `doctor`, booked on a slot starting in `minutes`.
    pub async fn booked(&self, minutes: i64) -> String {
        let slot = self.api.slot(&self.service, &self.doctor_id, minutes).await;
        let (status, body) = self
            .api
            .post("/consultations", &self.patient, json!({"slotId": slot}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn paid(&self, minutes: i64) -> String {
        let id = self.booked(minutes).await;
        self.api.mark_paid(&self.service, &id).await;
        id
    }
}

/// Wait (bounded, 30 s) until `check` holds; panics with `what` if it never does.
pub async fn until<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

/// An object store on the test SeaweedFS (`scripts/test.sh` starts it and sets `TEST_S3_*`),
/// under its own prefix in the shared test bucket (created if need be).
pub async fn s3_store(prefix: &str) -> vizit_recordings::ObjectStore {
    let env = |n: &str| {
        std::env::var(n)
            .unwrap_or_else(|_| panic!("{n} must be set (scripts/test.sh starts SeaweedFS)"))
    };
    let bucket = std::env::var("TEST_S3_BUCKET").unwrap_or_else(|_| "vizit-test".into());
    let store = vizit_recordings::ObjectStore::s3(vizit_recordings::S3Settings {
        endpoint: Some(env("TEST_S3_ENDPOINT")),
        region: "us-east-1".into(),
        bucket: bucket.clone(),
        prefix: format!("{prefix}-{}/", uuid::Uuid::new_v4().simple()),
        path_style: true,
        access_key_id: env("TEST_S3_ACCESS_KEY"),
        secret_access_key: SecretString::from(env("TEST_S3_SECRET_KEY")),
        server_side_encryption: None,
        part_size: 5 * 1024 * 1024,
    });
    // The shared test bucket (see recordings/tests/s3.rs); it may exist already.
    let _ = store
        .s3_client()
        .unwrap()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await;
    store
}
