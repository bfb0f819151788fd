//! Who is calling: a person with a role, or the clinic portal through an API key. The HTTP
//! layer authenticates (`people::auth`); the rules of who may do what read this.

use super::ids::{ApiKeyId, UserId};
use super::role::Role;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User {
        id: UserId,
        role: Role,
        name: String,
    },
    /// The clinic portal, through an API key.
    Service { key_id: ApiKeyId },
}

/// How the demo page's sessions are opened (`sessions.via`).
pub const DEMO_SESSION: &str = "demo";

#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The caller's address, for the audit log.
    pub ip: Option<String>,
    /// How the person's session was opened (`password`, `portal`, `esia`, `demo`); None for
    /// API keys and sessions from before this was recorded.
    pub via: Option<String>,
}

/// The caller's role may not do this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(pub &'static str);

impl Caller {
    pub fn user(&self) -> Option<&UserId> {
        match &self.principal {
            Principal::User { id, .. } => Some(id),
            Principal::Service { .. } => None,
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        self.user().map(UserId::as_str)
    }

    pub fn role(&self) -> Option<Role> {
        match &self.principal {
            Principal::User { role, .. } => Some(*role),
            Principal::Service { .. } => None,
        }
    }

    /// The person's name; empty for the portal.
    pub fn name(&self) -> &str {
        match &self.principal {
            Principal::User { name, .. } => name,
            Principal::Service { .. } => "",
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

    /// For the audit log: actor kind, id and role.
    pub fn actor(&self) -> (&'static str, Option<&str>, &'static str) {
        match &self.principal {
            Principal::User { id, role, .. } => ("user", Some(id.as_str()), role.as_str()),
            Principal::Service { key_id } => ("api_key", Some(key_id.as_str()), "service"),
        }
    }

    /// An admin who may manage accounts: create and disable staff, issue and revoke API keys.
    /// The demo page's admin session may not (demo mode hands it to whoever opens `/demo`).
    pub fn require_account_admin(&self) -> Result<(), Forbidden> {
        self.require(self.is(Role::Admin))?;
        if self.via.as_deref() == Some(DEMO_SESSION) {
            return Err(Forbidden(
                "the demo's admin session may not manage staff or API keys",
            ));
        }
        Ok(())
    }

    pub fn require(&self, allowed: bool) -> Result<(), Forbidden> {
        if allowed {
            Ok(())
        } else {
            Err(Forbidden("your role may not do this"))
        }
    }
}
