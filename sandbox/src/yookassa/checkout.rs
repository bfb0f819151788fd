//! The `confirmation_url` page: where a person pays or is declined, in Russian, clearly marked
//! as a test stand. Both buttons lead back to the shop's `return_url`, as YooKassa's page does.

use crate::html;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use super::shop::YooKassa;
use super::validate::value_from_kopecks;

pub fn router(y: YooKassa) -> Router {
    Router::new()
        .route("/yookassa/checkout/{id}", get(page))
        .route("/yookassa/checkout/{id}/pay", post(pay))
        .route("/yookassa/checkout/{id}/decline", post(decline))
        .with_state(y)
}

/// `1500.00` as a person reads it: `1 500,00 ₽`.
fn roubles(kopecks: i64) -> String {
    let v = value_from_kopecks(kopecks);
    let (whole, frac) = v.split_once('.').unwrap_or((&v, "00"));
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push('\u{a0}');
        }
        grouped.push(c);
    }
    format!("{grouped},{frac}\u{a0}₽")
}

async fn page(State(y): State<YooKassa>, Path(id): Path<String>) -> Response {
    let Some(p) = y.payment(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Html(shell(
                "Платёж не найден",
                "<p>Такого платежа нет.</p>".into(),
            )),
        )
            .into_response();
    };
    let description = p.description.as_deref().unwrap_or("Оплата заказа");
    let body = if p.status == "pending" {
        format!(
            r#"<p class="amount" data-testid="amount">{amount}</p>
<p>{description}</p>
<form method="post" action="/yookassa/checkout/{id}/pay"><button type="submit" class="pay" data-testid="pay">Оплатить {amount}</button></form>
<form method="post" action="/yookassa/checkout/{id}/decline"><button type="submit" class="decline" data-testid="decline">Банк отклонил оплату</button></form>
<p><a href="{back}">Вернуться в магазин, не оплачивая</a></p>"#,
            amount = roubles(p.amount),
            description = html::escape(description),
            id = html::escape(&p.id),
            back = html::escape(&p.return_url),
        )
    } else {
        let state = match p.status.as_str() {
            "succeeded" | "waiting_for_capture" => "Оплата прошла.",
            _ => "Платёж отменён.",
        };
        format!(
            r#"<p data-testid="state">{state}</p><p><a href="{back}">Вернуться в магазин</a></p>"#,
            back = html::escape(&p.return_url)
        )
    };
    Html(shell("Оплата — ЮKassa (тестовый стенд)", body)).into_response()
}

fn shell(title: &str, body: String) -> String {
    format!(
        r#"<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="icon" href="data:,">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 28rem; margin: 2rem auto; padding: 0 1rem; color: #1a1a1a; }}
.test {{ background: #fff3cd; border: 1px solid #b58105; padding: .5rem .75rem; border-radius: .25rem; }}
.amount {{ font-size: 2rem; font-weight: 600; margin: 1rem 0 .25rem; }}
button {{ display: block; width: 100%; font-size: 1.1rem; padding: .75rem; margin: .5rem 0; border-radius: .375rem; border: 1px solid #333; cursor: pointer; }}
.pay {{ background: #0b5cad; color: #fff; border-color: #0b5cad; }}
.decline {{ background: #fff; color: #1a1a1a; }}
a {{ color: #0b4f94; }}
</style></head>
<body><main>
<h1>Оплата</h1>
<p class="test" role="note">Тестовый стенд ЮKassa (песочница Vizit): деньги не списываются.</p>
{body}
</main></body></html>"#
    )
}

fn back_to(url: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_owned())]).into_response()
}

async fn pay(State(y): State<YooKassa>, Path(id): Path<String>) -> Response {
    match y.pay(&id) {
        Ok(p) => back_to(&p.return_url),
        Err(_) => match y.payment(&id) {
            Some(p) => back_to(&p.return_url),
            None => (StatusCode::NOT_FOUND, "no such payment").into_response(),
        },
    }
}

async fn decline(State(y): State<YooKassa>, Path(id): Path<String>) -> Response {
    match y.decline(&id, "payment_network", "insufficient_funds") {
        Ok(p) => back_to(&p.return_url),
        Err(_) => match y.payment(&id) {
            Some(p) => back_to(&p.return_url),
            None => (StatusCode::NOT_FOUND, "no such payment").into_response(),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn amounts_read_as_roubles() {
        assert_eq!(super::roubles(150_000), "1\u{a0}500,00\u{a0}₽");
        assert_eq!(super::roubles(5), "0,05\u{a0}₽");
        assert_eq!(super::roubles(12_345_678), "123\u{a0}456,78\u{a0}₽");
    }
}
