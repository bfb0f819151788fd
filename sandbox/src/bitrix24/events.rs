//! Outbound `ONBOOKING*` events: form-encoded POSTs with PHP-style keys, in order, never retried
//! (Bitrix24's documented behaviour), optionally delayed like its queue servers.

use super::Bitrix24;

#[derive(Debug)]
pub(super) struct Event {
    pub name: &'static str,
    pub id: i64,
    pub ts: i64,
}

/// The handler ids Bitrix24 would assign to the three subscriptions.
fn handler_id(event: &str) -> u32 {
    match event {
        "ONBOOKINGADD" => 7,
        "ONBOOKINGUPDATE" => 8,
        _ => 9,
    }
}

pub(super) async fn deliver(b: Bitrix24, mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>) {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    while let Some(event) = rx.recv().await {
        if !b.options.event_delay.is_zero() {
            tokio::time::sleep(b.options.event_delay).await;
        }
        let (handler, base) = {
            let s = b.store();
            (s.event_handler.clone(), s.base_url.clone())
        };
        let Some(handler) = handler else { continue };
        let domain = base
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned();
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("event", event.name)
            .append_pair("event_handler_id", &handler_id(event.name).to_string())
            .append_pair("data[ID]", &event.id.to_string())
            .append_pair("ts", &event.ts.to_string())
            .append_pair("auth[domain]", &domain)
            .append_pair("auth[client_endpoint]", &format!("{base}/rest/"))
            .append_pair("auth[server_endpoint]", "https://oauth.bitrix24.tech/rest/")
            .append_pair("auth[member_id]", "0b3a4c5d6e7f8091a2b3c4d5e6f70819")
            .append_pair("auth[application_token]", &b.options.application_token)
            .finish();
        let sent = http
            .post(&handler)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::debug!(status = %r.status(), event = event.name, "event handler refused; not retried")
            }
            Err(e) => {
                tracing::debug!(error = %e, event = event.name, "event handler unreachable; not retried")
            }
        }
    }
}
