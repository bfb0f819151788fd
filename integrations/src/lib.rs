//! Wire clients of the external systems Vizit talks to. Each knows HTTP and its vendor's
//! documented format (`shared/reference/integrations.md`), with the vendor's retry rules, and
//! nothing of Vizit's database, state or HTTP API: the capabilities of `vizit-api` decide what to
//! call and store what came back; this crate makes that a compile-time fact.
//!
//! - [`yookassa`] — YooKassa API v3: payments, refunds, receipts (54-FZ).
//! - [`smtp`] — e-mail submission (SMTP, `lettre`).
//! - [`max`] — the MAX Bot API (messages with buttons, callback answers, webhook subscription).
//! - [`edna`] — edna Pulse (cascade messages: a messenger, then SMS; status callbacks).
//! - [`esia`] — ESIA (Gosuslugi): GOST-signed authorization and token requests, the person.
//!
//! Tests run every client against `vizit-sandbox`'s stand-in over real HTTP, and check each
//! request it sends against the vendor's published API document.

pub mod edna;
pub mod esia;
mod http;
pub mod max;
pub mod smtp;
pub mod yookassa;
