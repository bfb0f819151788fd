//! The `vizit` binary's library: configuration, telemetry, start-up wiring, CLI.
//!
//! # Layout
//! - `config.rs` — [`config::Settings`]: defaults → TOML file → `VIZIT_SECTION__KEY` env vars.
//! - `startup.rs` — [`startup::Application`]: binds listeners (port 0 works), wires the SFU
//!   (`vizit-media`), signaling (`vizit-signaling`) and HTTP, and drains them on shutdown.
//! - `http.rs` — `/healthz`, `/metrics`, `/call`, `/demo`, the page's assets.
//! - `web.rs` — the call page, embedded at build time from `web-client/dist` (see `build.rs`).
//! - `calls.rs` — the media plane's room events and the recorder's reports, mapped into the
//!   business layer's words (`vizit-api` does not depend on `vizit-media`).
//! - `cli.rs` — `vizit serve`, `vizit token`.
//!
//! Business rules live in the crates, not here.

pub mod calls;
pub mod cli;
pub mod config;
pub mod esia;
pub mod http;
pub mod serve;
pub mod startup;
pub mod telemetry;
pub mod web;
