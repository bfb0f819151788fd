//! Short-lived TURN credentials for each join, in the TURN REST API scheme
//! (draft-uberti-behave-turn-rest, as coturn's `use-auth-secret` checks them): the username is
//! `<expiry, Unix seconds>:<participant id>` and the password base64(HMAC-SHA1(secret,
//! username)). The TURN server needs nothing but the shared secret; the credentials die at
//! their expiry whatever happens to the call.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// A configured TURN server.
#[derive(Clone)]
pub struct Turn {
    urls: Vec<String>,
    secret: SecretString,
    ttl: Duration,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// An `RTCIceServer` for the browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

impl Turn {
    /// `urls` as the browser uses them (`turn:` / `turns:`), coturn's `static-auth-secret`, and
    /// how long each join's credentials are good.
    pub fn new(urls: Vec<String>, secret: SecretString, ttl: Duration) -> Self {
        Turn { urls, secret, ttl }
    }

    /// Credentials for `participant`, good until `now + ttl`.
    pub fn credentials(&self, participant: &str, now: SystemTime) -> IceServer {
        let expiry = (now + self.ttl)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let username = format!("{expiry}:{participant}");
        IceServer {
            urls: self.urls.clone(),
            credential: password(&self.secret, &username),
            username,
        }
    }
}

/// base64(HMAC-SHA1(secret, username)).
fn password(secret: &SecretString, username: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_turn_rest_scheme() {
        let turn = Turn::new(
            vec!["turns:turn.example:443?transport=tcp".into()],
            SecretString::from("north".to_owned()),
            Duration::from_secs(3600),
        );
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let server = turn.credentials("p-1", now);
        assert_eq!(server.username, "1700003600:p-1");
        assert_eq!(server.urls, vec!["turns:turn.example:443?transport=tcp"]);
        // Computed independently: `printf %s 1700003600:p-1 | openssl dgst -sha1 -hmac north
        // -binary | base64`.
        assert_eq!(server.credential, "+TLOT+gklalCRiy/oNb+9AYUlAs=");
        // Another participant or another expiry: another password.
        assert_ne!(turn.credentials("p-2", now).credential, server.credential);
    }
}
