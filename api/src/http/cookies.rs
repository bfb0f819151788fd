//! Cookies: the session cookie a browser signed in through ESIA holds (`HttpOnly`,
//! `SameSite=Lax`, `Secure` behind TLS), and the check that a request authenticated by a
//! cookie and changing something comes from Vizit's own pages (CSRF).

use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};

/// The session of a browser that signed in through ESIA: behind TLS `__Host-` prefixed, so no
/// other host of the domain (a sibling subdomain) can set or shadow it.
pub fn session_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-vizit_session"
    } else {
        "vizit_session"
    }
}

/// The value of cookie `name` in the request, if it is there exactly once (a second one was
/// planted by someone else: neither is believed).
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned());
    let first = found.next()?;
    if found.next().is_some() || first.is_empty() {
        return None;
    }
    Some(first)
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, for `path`, living `max_age_s` (0: delete).
pub fn set_cookie(name: &str, value: &str, path: &str, max_age_s: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether a request that a cookie authenticates may change something: a safe method, or a
/// browser saying it comes from this site (`Sec-Fetch-Site`, else `Origin` equal to `Host`).
/// `SameSite=Lax` already keeps the cookie off other sites' POSTs; this is the second lock.
pub fn same_origin(parts: &Parts) -> bool {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let h = &parts.headers;
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin" || site == "none";
    }
    match h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            // HTTP/2 carries the host as the URI's authority, not a Host header.
            let host = h
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .or_else(|| parts.uri.authority().map(|a| a.as_str()));
            let origin_host = origin.split_once("://").map(|(_, rest)| rest);
            host.is_some_and(|h| origin_host.is_some_and(|o| o.eq_ignore_ascii_case(h)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_cookie_among_many() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; vizit_session=s-abc".parse().unwrap());
        h.append(header::COOKIE, "b=2".parse().unwrap());
        assert_eq!(cookie(&h, session_cookie(false)).as_deref(), Some("s-abc"));
        assert_eq!(cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
        // A second one, planted: neither is believed.
        h.append(header::COOKIE, "vizit_session=s-planted".parse().unwrap());
        assert_eq!(cookie(&h, session_cookie(false)), None);
    }

    #[test]
    fn cross_site_writes_are_refused() {
        let parts = |method: Method, headers: &[(&str, &str)]| {
            let mut b = axum::http::Request::builder().method(method).uri("/x");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap().into_parts().0
        };
        assert!(same_origin(&parts(
            Method::GET,
            &[("sec-fetch-site", "cross-site")]
        )));
        assert!(!same_origin(&parts(
            Method::POST,
            &[("sec-fetch-site", "cross-site")]
        )));
        assert!(same_origin(&parts(
            Method::POST,
            &[("sec-fetch-site", "same-origin")]
        )));
        assert!(same_origin(&parts(
            Method::POST,
            &[
                ("origin", "http://v.example:8080"),
                ("host", "v.example:8080")
            ]
        )));
        assert!(!same_origin(&parts(
            Method::POST,
            &[
                ("origin", "http://evil.example"),
                ("host", "v.example:8080")
            ]
        )));
    }
}
