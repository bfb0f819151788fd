//! Join tokens: HS256 JWTs naming the room, the participant, the role and a display name.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use vizit_media::Role;

/// The audience of every join token, so a token minted for something else is refused.
pub const AUDIENCE: &str = "vizit-call";
/// A shorter secret would make HS256 guessable.
pub const MIN_SECRET_BYTES: usize = 32;

/// The role a person joins a call as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CallRole {
    Doctor,
    Patient,
}

impl CallRole {
    pub fn to_media(self) -> Role {
        match self {
            CallRole::Doctor => Role::Doctor,
            CallRole::Patient => Role::Patient,
        }
    }

    pub fn from_media(role: Role) -> Option<CallRole> {
        match role {
            Role::Doctor => Some(CallRole::Doctor),
            Role::Patient => Some(CallRole::Patient),
            Role::Recorder => None,
        }
    }
}

impl std::str::FromStr for CallRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "doctor" => Ok(CallRole::Doctor),
            "patient" => Ok(CallRole::Patient),
            other => Err(format!(
                "role must be \"doctor\" or \"patient\", not {other:?}"
            )),
        }
    }
}

/// The claims of a join token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinClaims {
    pub aud: String,
    /// Participant id.
    pub sub: String,
    pub room: String,
    pub role: CallRole,
    /// Display name: personal data, redacted in `Debug`.
    pub name: String,
    pub iat: u64,
    pub exp: u64,
    /// The room is a consultation, which may be recorded with both parties' consent. Tokens made
    /// for other rooms (`vizit token`) leave it out: their calls are never recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rec: bool,
    /// When the consultation is booked to start, Unix milliseconds: the waiting room counts
    /// down to it. Consultations' tokens only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts: Option<u64>,
}

impl fmt::Debug for JoinClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinClaims")
            .field("sub", &self.sub)
            .field("room", &self.room)
            .field("role", &self.role)
            .field("name", &"<redacted>")
            .field("exp", &self.exp)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the join token has expired")]
    Expired,
    #[error("the join token is invalid: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the token secret must be at least {MIN_SECRET_BYTES} bytes, it is {0}")]
    TooShort(usize),
}

/// Signs and verifies join tokens with one shared secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKeys(<secret>)")
    }
}

impl TokenKeys {
    pub fn new(secret: &SecretString) -> Result<Self, KeyError> {
        let bytes = secret.expose_secret().as_bytes();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(KeyError::TooShort(bytes.len()));
        }
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
        })
    }

    /// Mint a token valid for `ttl` from now.
    pub fn issue(
        &self,
        room: &str,
        participant: &str,
        role: CallRole,
        name: &str,
        ttl: Duration,
    ) -> String {
        self.issue_with(room, participant, role, name, ttl, None)
    }

    /// A token for a consultation's room, booked to start at `starts` (Unix milliseconds): its
    /// call may be recorded (with consent).
    pub fn issue_for_consultation(
        &self,
        consultation: &str,
        participant: &str,
        role: CallRole,
        name: &str,
        ttl: Duration,
        starts: u64,
    ) -> String {
        self.issue_with(consultation, participant, role, name, ttl, Some(starts))
    }

    /// `starts`: a consultation's (recordable) room.
    fn issue_with(
        &self,
        room: &str,
        participant: &str,
        role: CallRole,
        name: &str,
        ttl: Duration,
        starts: Option<u64>,
    ) -> String {
        let iat = unix_now();
        let claims = JoinClaims {
            aud: AUDIENCE.to_owned(),
            sub: participant.to_owned(),
            room: room.to_owned(),
            role,
            name: name.to_owned(),
            iat,
            exp: iat + ttl.as_secs(),
            rec: starts.is_some(),
            starts,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// Check signature, audience and expiry (no leeway) and the claims' contents.
    pub fn verify(&self, token: &str) -> Result<JoinClaims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        let data = jsonwebtoken::decode::<JoinClaims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::Invalid("bad signature".into()),
                ErrorKind::InvalidAudience => TokenError::Invalid("wrong audience".into()),
                _ => TokenError::Invalid("malformed token".into()),
            },
        )?;
        let claims = data.claims;
        if claims.room.is_empty() || claims.room.len() > 128 {
            return Err(TokenError::Invalid(
                "room must be 1 to 128 characters".into(),
            ));
        }
        if claims.sub.is_empty() || claims.sub.len() > 128 {
            return Err(TokenError::Invalid(
                "participant id must be 1 to 128 characters".into(),
            ));
        }
        if claims.name.chars().count() > 200 {
            return Err(TokenError::Invalid(
                "name is longer than 200 characters".into(),
            ));
        }
        Ok(claims)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::new(&SecretString::from(secret.to_owned())).unwrap()
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trips_claims() {
        let k = keys(SECRET);
        let token = k.issue(
            "room-1",
            "p-1",
            CallRole::Patient,
            "Пациент",
            Duration::from_secs(60),
        );
        let claims = k.verify(&token).unwrap();
        assert_eq!(claims.room, "room-1");
        assert_eq!(claims.sub, "p-1");
        assert_eq!(claims.role, CallRole::Patient);
        assert_eq!(claims.name, "Пациент");
        assert_eq!(claims.exp - claims.iat, 60);
    }

    #[test]
    fn refuses_expired_forged_and_garbage_tokens() {
        let k = keys(SECRET);
        let expired = k.issue("r", "p", CallRole::Doctor, "D", Duration::ZERO);
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(k.verify(&expired), Err(TokenError::Expired));

        let other = keys("another-secret-another-secret-xx");
        let forged = other.issue("r", "p", CallRole::Doctor, "D", Duration::from_secs(60));
        assert_eq!(
            k.verify(&forged),
            Err(TokenError::Invalid("bad signature".into()))
        );

        assert!(matches!(
            k.verify("not.a.token"),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(k.verify(""), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn refuses_short_secrets() {
        let short = SecretString::from("short".to_owned());
        assert_eq!(TokenKeys::new(&short).unwrap_err(), KeyError::TooShort(5));
    }

    #[test]
    fn debug_never_shows_the_name() {
        let k = keys(SECRET);
        let token = k.issue(
            "r",
            "p",
            CallRole::Doctor,
            "Иванова",
            Duration::from_secs(60),
        );
        let shown = format!("{:?}", k.verify(&token).unwrap());
        assert!(!shown.contains("Иванова"), "{shown}");
    }
}
