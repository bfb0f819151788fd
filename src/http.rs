//! HTTP routes of the binary: health, metrics, the call page, the demo page.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use vizit_media::MediaHandle;
use vizit_signaling::{CallRole, TokenKeys};

use crate::web;

#[derive(Clone)]
pub struct HttpState {
    pub media: MediaHandle,
    pub keys: TokenKeys,
    pub demo: bool,
    pub token_ttl: Duration,
    /// Counters of the Bitrix24 integration, when it is on.
    pub bitrix24: Option<std::sync::Arc<vizit_api::slots::bitrix24::Metrics>>,
    /// Counters of the live recorders.
    pub recording: std::sync::Arc<vizit_recordings::live::LiveStats>,
    /// The business layer: the demo page books a demo consultation through it.
    pub api: vizit_api::ApiState,
    /// The built-in sandbox's URL, when demo mode started it: the demo page links its pages
    /// (where the demo's notifications arrive).
    pub sandbox_url: Option<String>,
    /// Who may read `/metrics`, and whether it has per-room series.
    pub metrics: crate::config::MetricsSettings,
    /// `http.public_url` names a host beyond loopback (Vizit is reached through a proxy or
    /// from outside): `/metrics` then always needs its token.
    pub public: bool,
    /// The signaling endpoint's state, for its open sockets.
    pub signaling: vizit_signaling::SignalingState,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/call", get(call))
        // The pre-call check on its own: the call page without a call.
        .route("/check", get(call))
        .route("/demo", get(demo))
        .route(
            "/consultations",
            get(|| async { web::html(web::CONSULTATIONS_HTML) }),
        )
        // Where YooKassa's page sends the patient back: the same page, which shows the
        // payment's result as the API has it.
        .route(
            "/pay/return",
            get(|| async { web::html(web::CONSULTATIONS_HTML) }),
        )
        .route(
            "/assets/consultations.js",
            get(|| async { web::asset("text/javascript; charset=utf-8", web::CONSULTATIONS_JS) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { web::asset("text/javascript; charset=utf-8", web::APP_JS) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { web::asset("text/css; charset=utf-8", web::APP_CSS) }),
        )
        .with_state(state)
}

async fn root(State(state): State<HttpState>) -> Response {
    if state.demo {
        Redirect::to("/demo").into_response()
    } else {
        (
            StatusCode::OK,
            "Vizit video consultations. Open the call link you were given.\n",
        )
            .into_response()
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// `/metrics`: with `metrics.token`, for its bearer only; without, for loopback clients only
/// (a Prometheus on the same host) while `http.public_url` is not public, and never for a
/// request a proxy forwarded; nobody else learns the load or, with `metrics.per_room`, the ids
/// of live consultations.
async fn metrics(
    State(state): State<HttpState>,
    headers: axum::http::HeaderMap,
    connect: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
) -> Response {
    let allowed = match &state.metrics.token {
        Some(token) => {
            use secrecy::ExposeSecret;
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            vizit_api::platform::inbound::same_secret(token.expose_secret(), given)
        }
        // Loopback, and not a request a reverse proxy on this host passed on: behind one every
        // request comes from loopback, so a forwarded one, or any while `http.public_url` is
        // public, needs the token.
        None => {
            let forwarded = ["x-forwarded-for", "forwarded", "x-real-ip"]
                .iter()
                .any(|h| headers.contains_key(*h));
            let local = connect.is_some_and(|axum::Extension(axum::extract::ConnectInfo(a))| {
                a.ip().to_canonical().is_loopback()
            });
            local && !forwarded && !state.public
        }
    };
    if !allowed {
        let (status, text) = if state.metrics.token.is_some() {
            (
                StatusCode::UNAUTHORIZED,
                "metrics need the bearer token of metrics.token\n",
            )
        } else {
            (
                StatusCode::FORBIDDEN,
                "metrics are for local clients; set metrics.token to read them from elsewhere\n",
            )
        };
        return (status, [(header::WWW_AUTHENTICATE, "Bearer")], text).into_response();
    }
    let Some(metrics) = state.media.metrics().await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "media server is not running\n",
        )
            .into_response();
    };
    let mut body = metrics.to_prometheus(state.metrics.per_room);
    if let Some(b) = &state.bitrix24 {
        body.push_str(&b.to_prometheus());
    }
    body.push_str(&state.recording.to_prometheus());
    body.push_str(&format!(
        "# HELP vizit_signaling_sockets Open signaling WebSockets, joined or not.\n\
         # TYPE vizit_signaling_sockets gauge\n\
         vizit_signaling_sockets {}\n",
        state.signaling.open_sockets()
    ));
    body.push_str(&process_metrics());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// CPU time and resident memory of this process, from `/proc` (Linux; empty elsewhere).
fn process_metrics() -> String {
    let mut out = String::new();
    // utime and stime are fields 14 and 15 of the line, in clock ticks (100 Hz on Linux); the
    // command name before them is in parentheses and may contain spaces.
    let cpu_ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let fields: Vec<u64> = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .skip(11)
                .take(2)
                .map(|f| f.parse().ok())
                .collect::<Option<_>>()?;
            Some(fields.iter().sum::<u64>())
        });
    if let Some(ticks) = cpu_ticks {
        out.push_str("# HELP process_cpu_seconds_total User and system CPU time spent.\n");
        out.push_str("# TYPE process_cpu_seconds_total counter\n");
        out.push_str(&format!(
            "process_cpu_seconds_total {:.2}\n",
            ticks as f64 / 100.0
        ));
    }
    let rss_kb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
    if let Some(kb) = rss_kb {
        out.push_str("# HELP process_resident_memory_bytes Resident memory size.\n");
        out.push_str("# TYPE process_resident_memory_bytes gauge\n");
        out.push_str(&format!("process_resident_memory_bytes {}\n", kb * 1024));
    }
    out
}

async fn call() -> Response {
    web::html(web::CALL_HTML)
}

/// A fresh room with a doctor link and a patient link — only in demo mode.
async fn demo(State(state): State<HttpState>) -> Response {
    if !state.demo {
        return (StatusCode::NOT_FOUND, "demo mode is off\n").into_response();
    }
    // A real (demo) consultation, paid and about to start: its call is recorded when both
    // consent, and its recordings appear on the admin page.
    let call = match vizit_api::demo::demo_call(&state.api).await {
        Ok(call) => call,
        Err(e) => {
            tracing::error!(error = %e, "the demo consultation could not be created");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the demo consultation could not be created; see the server log\n",
            )
                .into_response();
        }
    };
    let doctor = state.keys.issue_for_consultation(
        call.consultation_id.as_str(),
        call.doctor_id.as_str(),
        CallRole::Doctor,
        &call.doctor_name,
        state.token_ttl,
        call.starts_at.max(0) as u64,
    );
    let patient = state.keys.issue_for_consultation(
        call.consultation_id.as_str(),
        call.patient_id.as_str(),
        CallRole::Patient,
        &call.patient_name,
        state.token_ttl,
        call.starts_at.max(0) as u64,
    );
    web::html(format!(
        r#"<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex, nofollow">
<title>Демо-консультация — Vizit</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/app.css"></head>
<body class="portal"><header class="bar portal-bar"><span class="brand">Vizit</span></header>
<main class="portal-main demo-page">
<section class="card"><h1>Демо-консультация</h1>
<p>Мы создали консультацию с демо-врачом: она оплачена и начинается через минуту. Откройте звонок
врача и звонок пациента в двух вкладках или на двух устройствах — они увидят и услышат друг друга.
Если оба дадут согласие на запись, звонок запишется, и запись появится у администратора.</p></section>
<div class="demo-roles">
<section class="card demo-role" aria-labelledby="demo-doctor-title"><h2 id="demo-doctor-title">Врач</h2>
<p>{doctor_name}. Принимает пациента, после звонка пишет заключение в своём кабинете.</p>
<div class="actions"><a class="button primary" data-testid="demo-doctor" href="/call#token={doctor}" target="_blank" rel="noopener noreferrer">Войти в звонок</a>
<a class="button secondary" data-testid="demo-doctor-cabinet" href="/consultations#session={doctor_session}" target="_blank" rel="noopener noreferrer">Кабинет врача</a></div></section>
<section class="card demo-role" aria-labelledby="demo-patient-title"><h2 id="demo-patient-title">Пациент</h2>
<p>{patient_name}. Видит свои консультации, заключение врача и переписку.</p>
<div class="actions"><a class="button primary" data-testid="demo-patient" href="/call#token={patient}" target="_blank" rel="noopener noreferrer">Войти в звонок</a>
<a class="button secondary" data-testid="demo-patient-cabinet" href="/consultations#session={patient_session}" target="_blank" rel="noopener noreferrer">Кабинет пациента</a></div></section>
<section class="card demo-role" aria-labelledby="demo-admin-title"><h2 id="demo-admin-title">Администратор клиники</h2>
<p>Видит все консультации клиники и записи звонков.</p>
<div class="actions"><a class="button primary" data-testid="demo-admin" href="/consultations#session={admin}" target="_blank" rel="noopener noreferrer">Консультации и записи</a></div></section>
</div>
{notices}<p class="hint">Ссылки действуют {ttl}. <a href="/check">Проверить камеру и связь</a> · <a href="/demo">Создать новую консультацию</a></p>
</main></body></html>"#,
        doctor_name = vizit_api::http::escape_html(&call.doctor_name),
        patient_name = vizit_api::http::escape_html(&call.patient_name),
        admin = call.admin_session,
        doctor_session = call.doctor_session,
        patient_session = call.patient_session,
        ttl = russian_duration(state.token_ttl),
        notices = state.sandbox_url.as_deref().map(|s| format!(
            r#"<section class="card"><h2>Уведомления</h2><p>Уведомления о консультации приходят на тестовые стенды: пациенту — на телефон
(<a data-testid="demo-edna" href="{s}/sandbox/edna">SMS и мессенджеры, edna</a>; после подключения MAX —
<a data-testid="demo-max" href="{s}/sandbox/max">чаты MAX</a>), врачу и администраторам —
<a data-testid="demo-mail" href="{s}/sandbox/mail">письма</a>.</p></section>
"#
        )).unwrap_or_default(),
    ))
}

/// «2 ч», «1 ч 30 мин», «45 мин», as people read it.
fn russian_duration(d: std::time::Duration) -> String {
    let minutes = d.as_secs().div_ceil(60);
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} мин"),
        (h, 0) => format!("{h} ч"),
        (h, m) => format!("{h} ч {m} мин"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        use std::time::Duration;
        assert_eq!(russian_duration(Duration::from_secs(7200)), "2 ч");
        assert_eq!(russian_duration(Duration::from_secs(5400)), "1 ч 30 мин");
        assert_eq!(russian_duration(Duration::from_secs(45 * 60)), "45 мин");
        assert_eq!(russian_duration(Duration::from_secs(61)), "2 мин");
    }
}
