//! How the clinic signs patients in through ESIA: the client (who Vizit is to ESIA, its
//! signer), ESIA's token keys and issuer, the scopes the clinic is approved for, whether
//! unconfirmed accounts may register, and the versions of the consent texts.

use std::time::Duration;

use vizit_integrations::esia::client::Esia;

use super::tokens::TokenKey;

/// The consents registration asks for, each recorded separately with its text's version.
pub const CONSENT_KINDS: [&str; 3] = ["personal_data", "health_data", "offer"];

/// ESIA login, on when configured (or the sandbox's in demo mode).
pub struct EsiaLogin {
    pub client: Esia,
    /// `iss` of ESIA's tokens (`http://esia.gosuslugi.ru/`: http, trailing slash).
    pub issuer: String,
    /// ESIA's public keys, RSA or GOST (more than one during a rotation).
    pub token_keys: Vec<TokenKey>,
    /// Scopes a sign-in must be granted (the rest of the configured scope is optional).
    pub required_scopes: Vec<String>,
    /// Let unconfirmed (`trusted: false`) accounts register and sign in.
    pub allow_unconfirmed: bool,
    /// Send a PKCE challenge (S256) with the authorization.
    pub pkce: bool,
    /// "Выйти" ends the ESIA session too.
    pub logout_with_esia: bool,
    /// Where people reach Vizit (`https://clinic.example`), for ESIA's logout redirect.
    pub public_url: String,
    /// The version of the consent texts shown at registration (recorded with each consent).
    pub consent_version: String,
    /// The clinic's public offer and personal data policy, linked from the consents.
    pub offer_url: Option<String>,
    pub policy_url: Option<String>,
    /// A sign-in or a registration must be finished within this.
    pub flow_ttl: Duration,
}

impl EsiaLogin {
    pub fn new(client: Esia, issuer: String, token_keys: Vec<TokenKey>) -> EsiaLogin {
        EsiaLogin {
            client,
            issuer,
            token_keys,
            required_scopes: vec!["openid".into(), "fullname".into(), "birthdate".into()],
            allow_unconfirmed: false,
            pkce: true,
            logout_with_esia: true,
            public_url: String::new(),
            consent_version: "2026-12-01".into(),
            offer_url: None,
            policy_url: None,
            flow_ttl: Duration::from_secs(15 * 60),
        }
    }
}
