//! ESIA (Gosuslugi) as the provider of a patient's identity (`shared/reference/integrations.md`
//! §3): the signed requests of `/aas/oauth2/v2/ac` and `/aas/oauth2/v3/te`, who signs them, the
//! person's data, and logout.
//!
//! - [`signer`] — [`signer::Signer`]: an external command (CryptoPro: the production path), a
//!   signing service over HTTP, or OpenSSL's GOST engine (development and tests).
//! - [`cert`] — `client_certificate_hash` (GOST R 34.11-2012 of the certificate's DER bytes).
//! - [`request`] — the parameters, the timestamp, and the strings `client_secret` signs.
//! - [`client`] — [`client::Esia`]: the authorization URL, the token exchange, the person, the
//!   logout URL.

pub mod cert;
pub mod client;
pub mod request;
pub mod signer;
