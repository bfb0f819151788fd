//! Booking throughput and latency of `POST /api/v1/consultations`, on SQLite and (when
//! `TEST_POSTGRES_URL` is set) PostgreSQL. A benchmark, not a test:
//!
//! ```sh
//! TEST_POSTGRES_URL=postgres://vizit_test:vizit_test@127.0.0.1:5432/postgres \
//!   cargo run --release -p vizit-api --example booking_bench -- 10 16
//! ```
//! Arguments: seconds (default 10), concurrent clients (default 16). Every booking is of a
//! distinct free slot by one of 100 patients, through the real router over loopback HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use sqlx::Executor;
use vizit_api::domain::Role;
use vizit_api::people::credentials::{SESSION_PREFIX, new_secret, secret_hash};
use vizit_api::{ApiSettings, ApiState, Db, NewStaff, now_ms};
use vizit_signaling::TokenKeys;

const SLOTS: usize = 50_000;
const PATIENTS: usize = 100;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let clients: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(16);
    let mut targets = vec![("SQLite".to_owned(), sqlite_url())];
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(admin) => targets.push(("PostgreSQL".to_owned(), postgres_url(&admin).await?)),
        Err(_) => eprintln!("TEST_POSTGRES_URL is not set: PostgreSQL skipped"),
    }
    println!("| database | clients | bookings/s | p50 ms | p99 ms | max ms | non-201 |");
    println!("|---|---|---|---|---|---|---|");
    for (name, url) in targets {
        let r = run(&url, seconds, clients).await?;
        println!(
            "| {name} | {clients} | {:.0} | {:.1} | {:.1} | {:.1} | {} |",
            r.rate, r.p50, r.p99, r.max, r.failures
        );
    }
    Ok(())
}

fn sqlite_url() -> String {
    let dir = std::env::temp_dir().join(format!("vizit-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    vizit_api::platform::db::sqlite_url(&dir.join("bench.db"))
}

async fn postgres_url(admin: &str) -> anyhow::Result<String> {
    sqlx::any::install_default_drivers();
    let name = format!("vizit_test_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(admin).await?;
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    Ok(format!("{base}/{name}"))
}

struct Report {
    rate: f64,
    p50: f64,
    p99: f64,
    max: f64,
    failures: usize,
}

async fn run(url: &str, seconds: u64, clients: usize) -> anyhow::Result<Report> {
    let db = Db::connect(url, 32).await?;
    let keys = TokenKeys::new(&SecretString::from(
        "bench-secret-bench-secret-bench-0001".to_owned(),
    ))?;
    let state = ApiState::new(db.clone(), keys, ApiSettings::default());
    let doctor = vizit_api::create_staff_user(
        &db,
        NewStaff {
            role: Role::Doctor,
            email: "doctor@bench.test",
            name: "Doctor",
            password: "password-123456",
            specialty: Some("GP"),
            time_zone: Some("Europe/Moscow"),
            bitrix_resource_id: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Fixtures straight into the tables: the benchmark measures booking, not setup.
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let mut sessions = Vec::new();
    for i in 0..PATIENTS {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO users (id, role, name, created_at) VALUES ($1, 'patient', $2, $3)",
        )
        .bind(&id)
        .bind(format!("Patient {i}"))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let token = new_secret(SESSION_PREFIX);
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(secret_hash(&token))
            .bind(&id)
            .bind(now)
            .bind(now + 86_400_000)
            .execute(&mut *tx)
            .await?;
        sessions.push(token);
    }
    let mut slots = Vec::with_capacity(SLOTS);
    for i in 0..SLOTS {
        let id = uuid::Uuid::new_v4().to_string();
        let start = now + 86_400_000 + i as i64 * 60_000;
        sqlx::query(
            "INSERT INTO slots (id, doctor_id, starts_at, ends_at, time_zone, status, price_kopecks, created_at) \
             VALUES ($1, $2, $3, $4, 'Europe/Moscow', 'free', 100000, $5)",
        )
        .bind(&id)
        .bind(doctor.as_str())
        .bind(start)
        .bind(start + 30 * 60_000)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        slots.push(id);
    }
    tx.commit().await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/api/v1/consultations", listener.local_addr()?);
    let app = vizit_api::router(state);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let http = reqwest::Client::new();
    let slots = Arc::new(slots);
    let sessions = Arc::new(sessions);
    let next = Arc::new(AtomicUsize::new(0));
    let end = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..clients {
        let (http, base, slots, sessions, next) = (
            http.clone(),
            base.clone(),
            slots.clone(),
            sessions.clone(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            while Instant::now() < end {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(slot) = slots.get(i) else { break };
                let t = Instant::now();
                let res = http
                    .post(&base)
                    .bearer_auth(&sessions[(i + w) % sessions.len()])
                    .json(&serde_json::json!({"slotId": slot}))
                    .send()
                    .await;
                latencies.push(t.elapsed());
                if !matches!(res, Ok(r) if r.status().as_u16() == 201) {
                    failures += 1;
                }
            }
            (latencies, failures)
        }));
    }
    let mut all = Vec::new();
    let mut failures = 0;
    for w in workers {
        let (l, f) = w.await?;
        all.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .map(ms)
            .unwrap_or(0.0)
    };
    Ok(Report {
        rate: all.len() as f64 / elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        max: all.last().copied().map(ms).unwrap_or(0.0),
        failures,
    })
}
