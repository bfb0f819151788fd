//! What the HTTP clients share: how a client is built, and how a request that got no answer is
//! described (never with its URL, which may carry a token).

use std::time::Duration;

/// A client with `timeout` per request and Vizit's user agent.
pub(crate) fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("Vizit/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a TLS backend is compiled in")
}

/// Why a request got no answer: `no answer in time` or `cannot connect`.
pub(crate) fn no_answer(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".into()
    } else {
        "cannot connect".into()
    }
}
