//! Pages of the mail capture: the list (`/sandbox/mail`), one message (`/sandbox/mail/{n}`:
//! headers, the text part, the HTML part in a sandboxed frame with its inline images), the raw
//! message (`…/raw`) and everything as JSON (`/sandbox/mail.json`).

use crate::html;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::json;

use super::capture::{Captured, MailCapture};

pub fn router(capture: &MailCapture) -> Router {
    Router::new()
        .route("/sandbox/mail", get(list))
        .route("/sandbox/mail.json", get(list_json))
        .route("/sandbox/mail/{n}", get(one))
        .route("/sandbox/mail/{n}/html", get(html_part))
        .route("/sandbox/mail/{n}/raw", get(raw))
        .route("/sandbox/mail/{n}/cid/{id}", get(inline))
        .with_state(capture.clone())
}

/// Subject, text and HTML of a message, as a reader sees them.
struct Read {
    subject: String,
    text: String,
    html: Option<String>,
    date: String,
}

fn read(m: &Captured) -> Read {
    let parsed = MessageParser::default().parse(&m.raw);
    let Some(p) = parsed else {
        return Read {
            subject: "(не удалось разобрать письмо)".into(),
            text: String::from_utf8_lossy(&m.raw).into_owned(),
            html: None,
            date: String::new(),
        };
    };
    Read {
        subject: p.subject().unwrap_or("(без темы)").to_owned(),
        text: p.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        html: (p.html_body_count() > 0)
            .then(|| p.body_html(0).map(|t| t.into_owned()))
            .flatten(),
        date: p.date().map(|d| d.to_rfc3339()).unwrap_or_default(),
    }
}

fn page(title: &str, body: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'unsafe-inline'; frame-src 'self'",
            ),
        ],
        format!(
            "<!doctype html><html lang=\"ru\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{} — почта песочницы Vizit</title><link rel=\"icon\" href=\"data:,\">\
             <style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#1a1a1a}}\
             table{{border-collapse:collapse;width:100%}}td,th{{text-align:left;padding:.4rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}}\
             a{{color:#0b4f94}}pre{{white-space:pre-wrap;background:#f6f8fa;padding:.75rem;border-radius:.25rem}}\
             iframe{{width:100%;height:48rem;border:1px solid #ccc;border-radius:.25rem}}.note{{background:#fff3cd;border:1px solid #b58105;padding:.5rem .75rem;border-radius:.25rem}}</style>\
             </head><body><main>{body}</main></body></html>",
            html::escape(title)
        ),
    )
        .into_response()
}

async fn list(State(c): State<MailCapture>) -> Response {
    let mut rows = String::new();
    for m in c.messages().iter().rev() {
        let r = read(m);
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><a href=\"/sandbox/mail/{}\" data-testid=\"mail-link\">{}</a></td></tr>",
            html::escape(&r.date),
            html::escape(&m.to.join(", ")),
            m.number,
            html::escape(&r.subject)
        ));
    }
    let table = if rows.is_empty() {
        "<p data-testid=\"mail-empty\">Писем пока нет.</p>".to_owned()
    } else {
        format!(
            "<table><caption style=\"caption-side:top;text-align:left;padding:.5rem 0\">Новые сверху</caption>\
             <thead><tr><th scope=\"col\">Получено</th><th scope=\"col\">Кому</th><th scope=\"col\">Тема</th></tr></thead>\
             <tbody>{rows}</tbody></table>"
        )
    };
    page(
        "Письма",
        &format!(
            "<h1>Письма</h1><p class=\"note\" role=\"note\">Почтовый сервер песочницы Vizit: письма, которые Vizit \
             отправил в демонстрационном режиме, остаются здесь и никуда не уходят.</p>{table}"
        ),
    )
}

async fn list_json(State(c): State<MailCapture>) -> Response {
    let items: Vec<_> = c
        .messages()
        .iter()
        .map(|m| {
            let r = read(m);
            json!({"number": m.number, "from": m.from, "to": m.to, "subject": r.subject,
                   "receivedAt": m.received_at, "text": r.text, "html": r.html})
        })
        .collect();
    axum::Json(items).into_response()
}

fn find(c: &MailCapture, n: &str) -> Result<Captured, StatusCode> {
    n.parse::<u64>()
        .ok()
        .and_then(|n| c.message(n))
        .ok_or(StatusCode::NOT_FOUND)
}

async fn one(State(c): State<MailCapture>, Path(n): Path<String>) -> Result<Response, StatusCode> {
    let m = find(&c, &n)?;
    let r = read(&m);
    let html = if r.html.is_some() {
        format!(
            "<h2>Письмо (HTML)</h2><iframe sandbox src=\"/sandbox/mail/{}/html\" title=\"Письмо: {}\"></iframe>",
            m.number,
            html::escape(&r.subject)
        )
    } else {
        String::new()
    };
    Ok(page(
        &r.subject,
        &format!(
            "<p><a href=\"/sandbox/mail\">← Все письма</a></p><h1 data-testid=\"mail-subject\">{}</h1>\
             <table><tbody><tr><th scope=\"row\">От</th><td>{}</td></tr><tr><th scope=\"row\">Кому</th><td>{}</td></tr>\
             <tr><th scope=\"row\">Дата</th><td>{}</td></tr></tbody></table>\
             {html}<h2>Текст</h2><pre data-testid=\"mail-text\">{}</pre>\
             <p><a href=\"/sandbox/mail/{}/raw\">Исходный текст письма (.eml)</a></p>",
            html::escape(&r.subject),
            html::escape(&m.from),
            html::escape(&m.to.join(", ")),
            html::escape(&r.date),
            html::escape(&r.text),
            m.number
        ),
    ))
}

async fn html_part(
    State(c): State<MailCapture>,
    Path(n): Path<String>,
) -> Result<Response, StatusCode> {
    let m = find(&c, &n)?;
    let html = read(&m).html.ok_or(StatusCode::NOT_FOUND)?;
    let html = html.replace("cid:", &format!("/sandbox/mail/{}/cid/", m.number));
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
            ),
        ],
        html,
    )
        .into_response())
}

async fn inline(
    State(c): State<MailCapture>,
    Path((n, id)): Path<(String, String)>,
) -> Result<Response, StatusCode> {
    let m = find(&c, &n)?;
    let parsed = MessageParser::default()
        .parse(&m.raw)
        .ok_or(StatusCode::NOT_FOUND)?;
    let part = parsed
        .parts
        .iter()
        .find(|p| p.content_id().map(|c| c.trim_matches(['<', '>'])) == Some(id.as_str()))
        .ok_or(StatusCode::NOT_FOUND)?;
    let kind = part
        .content_type()
        .map(|t| match &t.c_subtype {
            Some(s) => format!("{}/{}", t.c_type, s),
            None => t.c_type.to_string(),
        })
        // Raster images only: an SVG would run its scripts on the sandbox's origin.
        .filter(|t| matches!(t.as_str(), "image/png" | "image/jpeg" | "image/gif"))
        .unwrap_or_else(|| "application/octet-stream".into());
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::CONTENT_SECURITY_POLICY, "sandbox".to_owned()),
        ],
        part.contents().to_vec(),
    )
        .into_response())
}

async fn raw(State(c): State<MailCapture>, Path(n): Path<String>) -> Result<Response, StatusCode> {
    let m = find(&c, &n)?;
    Ok((
        [
            (header::CONTENT_TYPE, "message/rfc822".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"message-{}.eml\"", m.number),
            ),
        ],
        m.raw,
    )
        .into_response())
}
