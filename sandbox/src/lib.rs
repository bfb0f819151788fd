//! Local stand-ins of the external systems Vizit talks to, each speaking its vendor's documented
//! wire format over real HTTP (see `shared/reference/integrations.md`), for development, demos and
//! tests. Today: Bitrix24 (Online Booking, `booking.v1.*`), YooKassa (API v3: payments, refunds,
//! 54-FZ receipts, notifications), the MAX Bot API and edna Pulse (messages, their statuses and
//! the recipient's phone as a page), ESIA (the Gosuslugi login page, GOST-signed token requests
//! checked, the person's data) and a mail capture (an SMTP server on its own port, with pages to
//! read what it got).
//!
//! A [`Sandbox`] is one HTTP listener serving every stand-in; its state lives in memory and
//! survives [`RunningSandbox::stop`] + [`Sandbox::start`] on the same address, so tests can take a
//! system "down" and bring it back. Each stand-in also has a JSON admin surface under
//! `/sandbox/…` (a receptionist editing the schedule, fault injection) that the real system does
//! not have.
//!
//! Never used on a production code path: Vizit reaches it only through the same URLs it would use
//! for the real systems.

pub mod bitrix24;
pub mod edna;
pub mod esia;
pub mod hooks;
mod html;
pub mod mail;
pub mod max;
pub mod php;
pub mod spec;
pub mod yookassa;

use std::net::SocketAddr;

use axum::Router;
use tokio::sync::watch;

pub use bitrix24::{Bitrix24, Bitrix24Options};
pub use edna::{Edna, EdnaOptions};
pub use esia::Esia;
pub use mail::MailCapture;
pub use max::{Max, MaxOptions};
pub use yookassa::{YooKassa, YooKassaOptions};

/// Every stand-in, with its state.
#[derive(Clone)]
pub struct Sandbox {
    pub bitrix24: Bitrix24,
    pub yookassa: YooKassa,
    pub max: Max,
    pub edna: Edna,
    /// ESIA (Gosuslugi): login page, tokens, the person (needs OpenSSL with the GOST engine).
    pub esia: Esia,
    /// What the sandbox's SMTP server got ([`MailCapture::listen`] starts it).
    pub mail: MailCapture,
}

impl Sandbox {
    /// Bitrix24 as given, YooKassa with a fresh shop.
    pub fn new(bitrix24: Bitrix24Options) -> Sandbox {
        Self::with(bitrix24, YooKassaOptions::default())
    }

    pub fn with(bitrix24: Bitrix24Options, yookassa: YooKassaOptions) -> Sandbox {
        Sandbox {
            bitrix24: Bitrix24::new(bitrix24),
            yookassa: YooKassa::new(yookassa),
            max: Max::new(MaxOptions::default()),
            edna: Edna::new(EdnaOptions::default()),
            esia: Esia::new(),
            mail: MailCapture::new(),
        }
    }

    /// The HTTP routes of every stand-in.
    pub fn router(&self) -> Router {
        Router::new()
            .merge(bitrix24::router(&self.bitrix24))
            .merge(yookassa::router(&self.yookassa))
            .merge(max::router(&self.max))
            .merge(edna::router(&self.edna))
            .merge(esia::router(&self.esia))
            .merge(mail::router(&self.mail))
    }

    /// Listen on `addr` (port 0 picks one) and serve until stopped.
    pub async fn start(&self, addr: SocketAddr) -> std::io::Result<RunningSandbox> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        self.bitrix24.set_base_url(format!("http://{addr}"));
        self.yookassa.set_base_url(format!("http://{addr}"));
        self.max.set_base_url(format!("http://{addr}"));
        self.edna.set_base_url(format!("http://{addr}"));
        self.esia.set_base_url(format!("http://{addr}"));
        let (stop, mut stopped) = watch::channel(false);
        let app = self.router();
        let task = tokio::spawn(async move {
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "sandbox listener failed");
            }
        });
        Ok(RunningSandbox { addr, stop, task })
    }
}

/// A listening sandbox.
pub struct RunningSandbox {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSandbox {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop listening (open connections finish); the state stays in the [`Sandbox`].
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
