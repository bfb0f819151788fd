//! The browser's side of ESIA sign-in — pages, not JSON, because a browser is sent here by
//! redirects: `/login/esia` (start), `/login/esia/callback` (ESIA's redirect),
//! `/login/esia/consents` (registration: the consents, then a session), `/login/esia/logout`
//! (end the ESIA session too), `/legal/{kind}` (the consent texts). Every failure is a page in
//! Russian with a way back, logged by its reason without personal data.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::person::PersonalData;
use super::service::{self, Callback, Consents, Failure, Finished};
use super::settings::EsiaLogin;
use crate::http::{client_ip, cookie, escape_html as escape, session_cookie, set_cookie};
use crate::state::ApiState;

/// The browser's half of a sign-in in progress: its cookie's name and path (behind TLS
/// `__Host-` prefixed, which wants the path `/`).
fn nonce_cookie(secure: bool) -> (&'static str, &'static str) {
    if secure {
        ("__Host-vizit_esia", "/")
    } else {
        ("vizit_esia", "/login/esia")
    }
}

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex, nofollow">
<title>{title} — Vizit</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/assets/app.css"></head>
<body><div class="portal"><header class="bar portal-bar"><span class="brand">Vizit</span></header>
<main class="portal-main" id="main"><section class="card login">
<h1>{title}</h1>
{body}
</section></main></div></body></html>"#,
        title = escape(title),
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        html,
    )
        .into_response()
}

fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response();
    for c in cookies {
        if let Ok(v) = c.parse() {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        "no-store".parse().expect("a header value"),
    );
    res
}

fn off() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Вход через Госуслуги не настроен",
        r#"<p>Клиника не подключила вход через Госуслуги. Войдите по ссылке из личного кабинета клиники.</p>
<p class="actions"><a class="button secondary" href="/consultations">На главную</a></p>"#,
    )
}

/// The patient's page for a failure; the operator's log line.
fn failed(f: &Failure) -> Response {
    match f {
        Failure::Internal(e) => {
            tracing::error!(reason = f.reason(), error = %e, "ESIA sign-in failed")
        }
        _ => tracing::warn!(reason = f.reason(), detail = %f, "ESIA sign-in refused"),
    }
    let (status, title, text) = match f {
        Failure::State => (
            StatusCode::BAD_REQUEST,
            "Вход не завершён",
            "Ссылка входа устарела или была открыта в другом браузере. Начните вход заново.",
        ),
        Failure::Refused(_) => (
            StatusCode::BAD_REQUEST,
            "Вход отменён",
            "Вы не разрешили передать данные с Госуслуг, поэтому войти не получилось. \
             Без этих данных клиника не может вас идентифицировать.",
        ),
        Failure::TokenRefused(_) => (
            StatusCode::BAD_GATEWAY,
            "Госуслуги не подтвердили вход",
            "Код входа устарел или уже использован. Начните вход заново.",
        ),
        Failure::Unavailable(_) => (
            StatusCode::BAD_GATEWAY,
            "Госуслуги не отвечают",
            "Сервис Госуслуг сейчас недоступен или ответил с ошибкой. Попробуйте войти через несколько минут.",
        ),
        Failure::Token(_) => (
            StatusCode::BAD_GATEWAY,
            "Не удалось проверить ответ Госуслуг",
            "Ответ Госуслуг не прошёл проверку подлинности, поэтому вход отменён. Попробуйте ещё раз; \
             если ошибка повторится, сообщите в клинику.",
        ),
        Failure::Scopes(_) => (
            StatusCode::BAD_REQUEST,
            "Не хватает данных",
            "Госуслуги передали не все данные, нужные для записи к врачу (ФИО и дата рождения). \
             Начните вход заново и разрешите их передачу.",
        ),
        Failure::Unconfirmed => (
            StatusCode::FORBIDDEN,
            "Учётная запись не подтверждена",
            "Войти можно только с подтверждённой учётной записью Госуслуг. Подтвердите её \
             (в МФЦ, банке или онлайн) и войдите снова.",
        ),
        Failure::Signer(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Вход временно недоступен",
            "Не удалось подписать запрос к Госуслугам. Клиника уже видит эту ошибку; попробуйте позже.",
        ),
        Failure::Person(_) => (
            StatusCode::BAD_GATEWAY,
            "Данные Госуслуг не прочитаны",
            "Госуслуги передали данные в неожиданном виде. Попробуйте позже или обратитесь в клинику.",
        ),
        Failure::Disabled => (
            StatusCode::FORBIDDEN,
            "Вход закрыт",
            "Ваша учётная запись в клинике отключена. Обратитесь в клинику.",
        ),
        Failure::Consents => (
            StatusCode::BAD_REQUEST,
            "Нужны согласия",
            "Без этих согласий клиника не может вас зарегистрировать.",
        ),
        Failure::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Что-то пошло не так",
            "Вход не завершён из-за ошибки на нашей стороне. Попробуйте ещё раз.",
        ),
    };
    page(
        status,
        title,
        &format!(
            r#"<p data-testid="login-failed" data-reason="{reason}" role="alert">{text}</p>
<p class="actions"><a class="button primary" href="/login/esia" data-testid="login-again">Войти заново</a>
<a class="button secondary" href="/consultations">На главную</a></p>"#,
            reason = f.reason(),
        ),
    )
}

fn esia(state: &ApiState) -> Option<&EsiaLogin> {
    state.esia.as_deref()
}

#[derive(Deserialize)]
pub struct StartQuery {
    #[serde(default)]
    hop: Option<String>,
}

/// `GET /login/esia`: a fresh sign-in, the browser sent to ESIA. A browser that came by
/// another name of this server (`localhost` for `127.0.0.1`) is first sent to the name ESIA
/// returns to, so its cookies are there when it comes back.
pub async fn start(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let Some(esia) = esia(&state) else {
        return off();
    };
    let public = esia.public_url.trim_end_matches('/');
    let public_host = public
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next());
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    // Once only: behind a proxy that rewrites Host the names never agree, and a second hop
    // would loop.
    if let (Some(want), Some(have)) = (public_host, host)
        && !want.eq_ignore_ascii_case(have)
        && q.hop.is_none()
    {
        return redirect(&format!("{public}/login/esia?hop=1"), &[]);
    }
    match service::start(&state.core(), esia).await {
        Ok(s) => redirect(
            &s.url,
            &[{
                let secure = state.settings.secure_cookies;
                let (name, path) = nonce_cookie(secure);
                set_cookie(name, &s.nonce, path, esia.flow_ttl.as_secs(), secure)
            }],
        ),
        Err(f) => failed(&f),
    }
}

fn new_session(state: &ApiState, token: &str) -> String {
    let secure = state.settings.secure_cookies;
    set_cookie(
        session_cookie(secure),
        token,
        "/",
        state.settings.session_ttl.as_secs(),
        secure,
    )
}

fn forget_nonce(state: &ApiState) -> String {
    let secure = state.settings.secure_cookies;
    let (name, path) = nonce_cookie(secure);
    set_cookie(name, "", path, 0, secure)
}

fn nonce_of(state: &ApiState, headers: &HeaderMap) -> Option<String> {
    cookie(headers, nonce_cookie(state.settings.secure_cookies).0)
}

/// `GET /login/esia/callback`: ESIA's redirect with `code` and `state` (or `error`).
pub async fn callback(
    State(state): State<ApiState>,
    parts: Parts,
    Query(cb): Query<Callback>,
) -> Response {
    let Some(esia) = esia(&state) else {
        return off();
    };
    let nonce = nonce_of(&state, &parts.headers);
    match service::finish(&state.core(), esia, cb, nonce.as_deref(), client_ip(&parts)).await {
        Ok(Finished::Session { token, .. }) => redirect(
            "/consultations",
            &[new_session(&state, &token), forget_nonce(&state)],
        ),
        Ok(Finished::Consents { registration }) => {
            redirect(&format!("/login/esia/consents?r={registration}"), &[])
        }
        Err(f) => failed(&f),
    }
}

#[derive(Deserialize)]
pub struct RegistrationQuery {
    #[serde(default)]
    r: String,
}

fn row(label: &str, value: Option<&str>) -> String {
    value
        .map(|v| format!("<dt>{}</dt><dd>{}</dd>", escape(label), escape(v)))
        .unwrap_or_default()
}

fn summary(d: &PersonalData) -> String {
    let birth = d.birth_date.as_deref().and_then(|b| {
        jiff::civil::Date::strptime("%Y-%m-%d", b)
            .ok()
            .map(|d| d.strftime("%d.%m.%Y").to_string())
    });
    format!(
        "<dl class=\"person-data\" data-testid=\"esia-data\">{}{}{}{}{}</dl>",
        row("ФИО", d.full_name().as_deref()),
        row("Дата рождения", birth.as_deref()),
        row(
            "СНИЛС",
            d.snils
                .as_deref()
                .filter(|s| s.len() == 11)
                .map(|s| format!("***-***-{} {}", &s[6..9], &s[9..]))
                .as_deref()
        ),
        row("Телефон", d.mobile.as_deref()),
        row("E-mail", d.email.as_deref()),
    )
}

fn consent_form(
    esia: &EsiaLogin,
    id: &str,
    pending: &service::Pending,
    error: Option<&str>,
) -> String {
    let link =
        |url: &Option<String>, kind: &str| url.clone().unwrap_or_else(|| format!("/legal/{kind}"));
    format!(
        r#"<p>Госуслуги подтвердили вашу личность. {known}</p>
{summary}
<form method="post" action="/login/esia/consents" data-testid="consents-form">
<input type="hidden" name="r" value="{id}">
{error}
<label class="choice"><input type="checkbox" name="personal_data" value="yes" data-testid="consent-personal-data" required>
<span>Согласен(на) на обработку моих персональных данных (<a href="{policy}" target="_blank" rel="noopener">текст согласия и политика</a>).</span></label>
<label class="choice"><input type="checkbox" name="health_data" value="yes" data-testid="consent-health-data" required>
<span>Согласен(на) на обработку сведений о моём здоровье для оказания медицинской помощи (<a href="/legal/health_data" target="_blank" rel="noopener">текст согласия</a>).</span></label>
<label class="choice"><input type="checkbox" name="offer" value="yes" data-testid="consent-offer" required>
<span>Принимаю условия договора-оферты на оказание медицинских услуг с применением телемедицинских технологий (<a href="{offer}" target="_blank" rel="noopener">текст оферты</a>).</span></label>
<p class="hint">Каждое согласие записывается отдельно, с версией текста ({version}) и временем. Отозвать согласие можно, написав в клинику.</p>
<div class="actions"><button type="submit" class="button primary" name="action" value="accept" data-testid="consents-accept">Зарегистрироваться</button>
<button type="submit" class="button secondary" name="action" value="decline" formnovalidate data-testid="consents-decline">Отказаться</button></div>
</form>"#,
        known = if pending.known {
            "Мы нашли вашу карту в клинике: после согласий вход будет связан с ней."
        } else {
            "Чтобы записываться к врачам клиники, дайте согласия ниже."
        },
        summary = summary(&pending.data),
        id = escape(id),
        error = error
            .map(|e| format!(
                r#"<p class="form-error" role="alert" data-testid="consents-error">{}</p>"#,
                escape(e)
            ))
            .unwrap_or_default(),
        policy = escape(&link(&esia.policy_url, "personal_data")),
        offer = escape(&link(&esia.offer_url, "offer")),
        version = escape(&esia.consent_version),
    )
}

/// `GET /login/esia/consents?r=…`: the consents a new patient gives.
pub async fn consents_page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<RegistrationQuery>,
) -> Response {
    let Some(esia) = esia(&state) else {
        return off();
    };
    let nonce = nonce_of(&state, &headers);
    match service::pending(&state.core(), esia, &q.r, nonce.as_deref()).await {
        Ok(p) => page(
            StatusCode::OK,
            "Регистрация в клинике",
            &consent_form(esia, &q.r, &p, None),
        ),
        Err(f) => failed(&f),
    }
}

#[derive(Deserialize)]
pub struct ConsentsForm {
    #[serde(default)]
    r: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    personal_data: Option<String>,
    #[serde(default)]
    health_data: Option<String>,
    #[serde(default)]
    offer: Option<String>,
}

/// `POST /login/esia/consents`: register (or link) and sign in, or decline.
pub async fn consents_submit(
    State(state): State<ApiState>,
    parts: Parts,
    Form(f): Form<ConsentsForm>,
) -> Response {
    let Some(esia) = esia(&state) else {
        return off();
    };
    let nonce = nonce_of(&state, &parts.headers);
    let core = state.core();
    if f.action == "decline" {
        return match service::decline(&core, esia, &f.r, nonce.as_deref()).await {
            Ok(()) => redirect_page_declined(&state),
            Err(e) => failed(&e),
        };
    }
    let given = |v: &Option<String>| v.as_deref() == Some("yes");
    let consents = Consents {
        personal_data: given(&f.personal_data),
        health_data: given(&f.health_data),
        offer: given(&f.offer),
    };
    match service::register(
        &core,
        esia,
        &f.r,
        nonce.as_deref(),
        consents,
        client_ip(&parts),
    )
    .await
    {
        Ok((token, _)) => redirect(
            "/consultations",
            &[new_session(&state, &token), forget_nonce(&state)],
        ),
        Err(Failure::Consents) => match service::pending(&core, esia, &f.r, nonce.as_deref()).await
        {
            Ok(p) => page(
                StatusCode::BAD_REQUEST,
                "Регистрация в клинике",
                &consent_form(
                    esia,
                    &f.r,
                    &p,
                    Some(
                        "Отметьте все три согласия: без них клиника не может вас зарегистрировать.",
                    ),
                ),
            ),
            Err(e) => failed(&e),
        },
        Err(e) => failed(&e),
    }
}

fn redirect_page_declined(state: &ApiState) -> Response {
    let mut res = page(
        StatusCode::OK,
        "Регистрация отменена",
        r#"<p data-testid="consents-declined">Вы отказались от регистрации. Данные, полученные с Госуслуг, удалены.</p>
<p class="actions"><a class="button secondary" href="/consultations">На главную</a></p>"#,
    );
    if let Ok(v) = forget_nonce(state).parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// `GET /login/esia/logout`: after Vizit's own logout, end the ESIA session too.
pub async fn logout(State(state): State<ApiState>) -> Response {
    let Some(esia) = esia(&state) else {
        return redirect("/consultations", &[]);
    };
    let back = format!("{}/consultations", esia.public_url.trim_end_matches('/'));
    if esia.logout_with_esia {
        redirect(&esia.client.logout_url(&back), &[])
    } else {
        redirect("/consultations", &[])
    }
}

/// `GET /legal/{kind}`: the built-in consent texts (a clinic links its own with
/// `identity.offer_url` / `identity.policy_url`).
pub async fn legal(State(state): State<ApiState>, Path(kind): Path<String>) -> Response {
    let version = state
        .esia
        .as_deref()
        .map(|e| e.consent_version.clone())
        .unwrap_or_default();
    let (title, text) = match kind.as_str() {
        "personal_data" => (
            "Согласие на обработку персональных данных",
            "Я даю клинике согласие на обработку моих персональных данных — фамилии, имени, отчества, \
             даты рождения, пола, СНИЛС, паспортных данных, номера полиса ОМС, адреса, телефона и \
             электронной почты, полученных с Госуслуг (ЕСИА) или сообщённых мной, — в целях записи на \
             консультации, идентификации при телемедицинской консультации, оплаты и направления \
             уведомлений (ст. 9 Федерального закона № 152-ФЗ). Согласие действует до его отзыва; \
             отозвать его можно письменным заявлением в клинику.",
        ),
        "health_data" => (
            "Согласие на обработку сведений о состоянии здоровья",
            "Я даю клинике согласие на обработку сведений о состоянии моего здоровья (анкеты, жалобы, \
             заключения, записи консультаций) в целях оказания мне медицинской помощи с применением \
             телемедицинских технологий лицами, обязанными хранить врачебную тайну (ст. 10 \
             Федерального закона № 152-ФЗ, ст. 13 Федерального закона № 323-ФЗ).",
        ),
        "offer" => (
            "Договор-оферта",
            "Клиника оказывает платные медицинские услуги — консультации врача с применением \
             телемедицинских технологий — на условиях публичной оферты, размещённой клиникой. \
             Запись оплачивается заранее; отмена и возврат — по правилам, указанным при записи.",
        ),
        _ => {
            return page(
                StatusCode::NOT_FOUND,
                "Документ не найден",
                r#"<p class="actions"><a class="button secondary" href="/consultations">На главную</a></p>"#,
            );
        }
    };
    page(
        StatusCode::OK,
        title,
        &format!(
            "<p>{}</p><p class=\"hint\">Версия текста: {}</p>",
            escape(text),
            escape(&version)
        ),
    )
}
