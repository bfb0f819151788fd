//! Authentication: staff passwords (argon2), expiring and revocable sessions for people, hashed
//! and revocable API keys for the clinic portal. [`Caller`] is the extractor every handler uses.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::domain::Role;
use crate::error::ApiError;
use crate::{ApiState, now_ms};

/// Prefixes tell a session token from an API key at a glance (and to secret scanners).
pub const SESSION_PREFIX: &str = "vzs_";
pub const API_KEY_PREFIX: &str = "vzk_";

pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("argon2: {e}")))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fresh secret with a prefix; only its SHA-256 is stored.
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User {
        id: String,
        role: Role,
        name: String,
    },
    /// The clinic portal, through an API key.
    Service { key_id: String },
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub ip: Option<String>,
}

impl Caller {
    pub fn user_id(&self) -> Option<&str> {
        match &self.principal {
            Principal::User { id, .. } => Some(id),
            Principal::Service { .. } => None,
        }
    }

    pub fn role(&self) -> Option<Role> {
        match &self.principal {
            Principal::User { role, .. } => Some(*role),
            Principal::Service { .. } => None,
        }
    }

    pub fn is(&self, role: Role) -> bool {
        self.role() == Some(role)
    }

    pub fn is_service(&self) -> bool {
        matches!(self.principal, Principal::Service { .. })
    }

    /// Admins and the portal manage the clinic's data.
    pub fn is_clinic(&self) -> bool {
        self.is_service() || self.is(Role::Admin)
    }

    /// For the audit log.
    pub fn actor(&self) -> (&'static str, Option<&str>, &'static str) {
        match &self.principal {
            Principal::User { id, role, .. } => ("user", Some(id), role.as_str()),
            Principal::Service { key_id } => ("api_key", Some(key_id), "service"),
        }
    }

    pub fn require(&self, allowed: bool) -> Result<(), ApiError> {
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden("your role may not do this"))
        }
    }
}

/// The caller's address, when the server was started with connect info.
pub fn client_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let ip = client_ip(parts);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated)?
            .to_str()
            .map_err(|_| ApiError::InvalidCredentials)?;
        let secret = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .ok_or(ApiError::InvalidCredentials)?;
        let hash = secret_hash(secret);
        let now = now_ms();
        if secret.starts_with(SESSION_PREFIX) {
            let row = sqlx::query(
                "SELECT u.id, u.role, u.name FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 \
                 AND u.disabled_at IS NULL",
            )
            .bind(hash)
            .bind(now)
            .fetch_optional(&state.db.pool)
            .await?
            .ok_or(ApiError::InvalidCredentials)?;
            let role: String = row.try_get("role")?;
            return Ok(Caller {
                principal: Principal::User {
                    id: row.try_get("id")?,
                    role: Role::parse(&role)
                        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("bad role {role}")))?,
                    name: row.try_get("name")?,
                },
                ip,
            });
        }
        if secret.starts_with(API_KEY_PREFIX) {
            let row =
                sqlx::query("SELECT id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
                    .bind(hash)
                    .fetch_optional(&state.db.pool)
                    .await?
                    .ok_or(ApiError::InvalidCredentials)?;
            return Ok(Caller {
                principal: Principal::Service {
                    key_id: row.try_get("id")?,
                },
                ip,
            });
        }
        Err(ApiError::InvalidCredentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse battery staple").unwrap();
        assert!(verify_password("correct horse battery staple", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn secrets_are_prefixed_random_and_stored_hashed() {
        let a = new_secret(SESSION_PREFIX);
        let b = new_secret(SESSION_PREFIX);
        assert!(a.starts_with(SESSION_PREFIX) && a.len() == 4 + 64);
        assert_ne!(a, b);
        assert_ne!(secret_hash(&a), a);
        assert_eq!(secret_hash(&a).len(), 64);
    }
}
