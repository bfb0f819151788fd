//! A mail capture for the demo: an SMTP server (`smtp.rs`) that keeps every message it gets
//! in memory (the latest 500), and pages to read them (`viewer.rs`: `/sandbox/mail`, one
//! message with its HTML and inline images, the raw `.eml`, and `/sandbox/mail.json`). A new
//! user of `vizit serve` sees the receipt e-mail there without a mail server of their own.

mod capture;
mod smtp;
mod viewer;

use std::net::SocketAddr;

pub use capture::{Captured, MailCapture};
pub use smtp::RunningSmtp;
pub use viewer::router;

impl MailCapture {
    /// Serve SMTP on `addr` (port 0 picks one).
    pub async fn listen(&self, addr: SocketAddr) -> std::io::Result<RunningSmtp> {
        smtp::listen(self.clone(), addr).await
    }
}
