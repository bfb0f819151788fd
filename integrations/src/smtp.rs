//! SMTP submission with `lettre`: one [`Mailer`] per configured server, messages as
//! multipart/alternative (plain text and HTML) with inline images, and errors sorted into the
//! ones worth repeating (no answer, `4xx`) and the ones no repeat fixes (`5xx`, a bad address).
//!
//! The server is an URL, as `lettre` reads it (`shared/reference/integrations.md` §5.1):
//!
//! - `smtps://user:password@smtp.example.ru:465` — implicit TLS;
//! - `smtp://user:password@smtp.example.ru:587?tls=required` — STARTTLS, refusing to go on
//!   without it;
//! - `smtp://127.0.0.1:2525` — no TLS and no login: a local relay or a capture only.
//!
//! SMTP has no idempotency key: a message whose answer was lost may arrive twice. Each message
//! carries a stable `Message-ID` (the caller's id of it), so a repeat is the same message to the
//! recipient's mail system, and the caller stores "sent" right after the `250`.

use std::time::Duration;

use std::sync::Arc;

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{ContentType, HeaderName};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

/// How to reach the server.
#[derive(Clone)]
pub struct Settings {
    /// The server as an URL (may carry the password: a secret).
    pub url: SecretString,
    /// The sender: `Клиника <noreply@clinic.example>` or a bare address. Hosted mail (Yandex,
    /// Mail.ru) wants the mailbox that logs in.
    pub from: String,
    /// Timeout of one SMTP command.
    pub timeout: Duration,
    /// Sign each message with DKIM (RFC 6376) — for a relay that does not sign itself; hosted
    /// mail (Yandex 360, VK WorkMail) signs for its domains already.
    pub dkim: Option<Dkim>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &redact(self.url.expose_secret()))
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .field("dkim", &self.dkim)
            .finish()
    }
}

/// A DKIM key: the signing domain (`d=`), the selector (`s=`, the DNS record is
/// `<selector>._domainkey.<domain>`) and the private key.
#[derive(Clone)]
pub struct Dkim {
    pub domain: String,
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// `rsa`: a PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`, e.g. `openssl genrsa
    /// -traditional 2048`); `ed25519`: the 32-byte seed in base64. A secret.
    pub private_key: SecretString,
}

impl std::fmt::Debug for Dkim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dkim")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Dkim {
    /// Whether the key reads and the names are there (before any message is sent).
    pub fn check(&self) -> Result<(), ConfigError> {
        dkim_config(self).map(|_| ())
    }
}

/// The DKIM signature's algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    /// `rsa-sha256`: what every receiver verifies.
    Rsa,
    /// `ed25519-sha256` (RFC 8463): not every receiver verifies it yet.
    Ed25519,
}

/// The headers a signature covers (each message has exactly one of each).
const SIGNED_HEADERS: [&str; 6] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
];

fn dkim_config(d: &Dkim) -> Result<DkimConfig, ConfigError> {
    let algorithm = match d.algorithm {
        DkimAlgorithm::Rsa => DkimSigningAlgorithm::Rsa,
        DkimAlgorithm::Ed25519 => DkimSigningAlgorithm::Ed25519,
    };
    let key = DkimSigningKey::new(d.private_key.expose_secret().trim(), algorithm)
        .map_err(|_| ConfigError::DkimKey)?;
    if d.domain.trim().is_empty() || d.selector.trim().is_empty() {
        return Err(ConfigError::DkimName);
    }
    Ok(DkimConfig::new(
        d.selector.trim().to_owned(),
        d.domain.trim().to_owned(),
        key,
        SIGNED_HEADERS
            .iter()
            .map(|h| HeaderName::new_from_ascii_str(h))
            .collect(),
        DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        },
    ))
}

/// An URL with its user and password removed, for messages.
pub fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://…{}", &url[at..]),
        _ => url.to_owned(),
    }
}

/// Whether `from` is a sender lettre can write (`Name <a@b>` or `a@b`).
pub fn valid_sender(from: &str) -> bool {
    from.parse::<Mailbox>().is_ok()
}

/// Whether the URL would send a login and password without TLS to another machine:
/// `smtp://user:password@host` without `tls=required` (plain, or STARTTLS only if offered — which
/// a man in the middle removes). A loopback relay is exempt: the password never leaves the host.
pub fn exposes_login(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    if u.scheme() != "smtp" || (u.username().is_empty() && u.password().is_none()) {
        return false;
    }
    let required = u.query_pairs().any(|(k, v)| k == "tls" && v == "required");
    let host = u.host_str().unwrap_or("");
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !required && !loopback
}

/// A settings problem, found before any message is sent.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "the SMTP URL {0} is not one lettre understands (smtps://host:465, smtp://host:587?tls=required, smtp://127.0.0.1:2525)"
    )]
    Url(String),
    #[error("the sender {0:?} is not an e-mail address")]
    From(String),
    #[error(
        "the DKIM private key cannot be read (rsa: a PKCS#1 PEM, \"BEGIN RSA PRIVATE KEY\"; ed25519: a base64 32-byte seed)"
    )]
    DkimKey,
    #[error("DKIM needs a domain and a selector")]
    DkimName,
}

/// An image shown inside the HTML part (`<img src="cid:ID">`).
#[derive(Debug, Clone)]
pub struct Inline {
    pub content_id: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// One message.
#[derive(Debug, Clone)]
pub struct Email<'a> {
    /// The caller's id of the message: its `Message-ID` is `<id@sender's domain>`.
    pub id: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
    pub inline: &'a [Inline],
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The recipient's address cannot be written in a message: no repeat fixes it.
    #[error("the recipient is not a valid e-mail address")]
    Address,
    /// The server refused for good (`5xx`).
    #[error("the SMTP server refused the message: {0}")]
    Refused(String),
    /// No answer, a dropped connection, or a temporary refusal (`4xx`): repeat later.
    #[error("the SMTP server is unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

/// Sends messages through one server. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
    server: String,
    dkim: Option<Arc<DkimConfig>>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    /// Within a Tokio runtime (the connection pool runs on it).
    pub fn new(settings: &Settings) -> Result<Mailer, ConfigError> {
        let url = settings.url.expose_secret();
        let server = redact(url);
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|_| ConfigError::Url(server.clone()))?
            .timeout(Some(settings.timeout))
            .build();
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|_| ConfigError::From(settings.from.clone()))?;
        let domain = from.email.domain().to_owned();
        let dkim = settings
            .dkim
            .as_ref()
            .map(dkim_config)
            .transpose()?
            .map(Arc::new);
        Ok(Mailer {
            transport,
            from,
            domain,
            server,
            dkim,
        })
    }

    /// The server without its credentials, for logs and status pages.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The domain of the sender's address (the right side of each `Message-ID`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The sender.
    pub fn from(&self) -> String {
        self.from.to_string()
    }

    /// Send one message; `Ok` once the server took it (`250`).
    pub async fn send(&self, email: &Email<'_>) -> Result<(), Error> {
        let message = self.message(email)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(Error::Refused(describe(&e))),
            Err(e) => Err(Error::Unavailable(describe(&e))),
        }
    }

    /// The message as it goes out (for tests and previews too).
    pub fn message(&self, email: &Email<'_>) -> Result<Message, Error> {
        let to: Mailbox = email.to.parse().map_err(|_| Error::Address)?;
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(email.text.to_owned());
        let body = match email.html {
            None => MultiPart::mixed().singlepart(text),
            Some(html) => {
                let html = SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html.to_owned());
                if email.inline.is_empty() {
                    MultiPart::alternative().singlepart(text).singlepart(html)
                } else {
                    let mut related = MultiPart::related().singlepart(html);
                    for image in email.inline {
                        let kind = ContentType::parse(image.content_type)
                            .map_err(|_| Error::Refused("bad inline content type".into()))?;
                        related = related.singlepart(
                            Attachment::new_inline(image.content_id.clone())
                                .body(image.bytes.clone(), kind),
                        );
                    }
                    MultiPart::alternative().singlepart(text).multipart(related)
                }
            }
        };
        let mut message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject)
            .message_id(Some(format!("<{}@{}>", email.id, self.domain)))
            .multipart(body)
            .map_err(|e| Error::Refused(e.to_string()))?;
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        Ok(message)
    }
}

/// An SMTP error without the message it was about (it may carry an address).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    match e.status() {
        Some(code) => format!("SMTP {code}"),
        None if e.is_timeout() => "timed out".into(),
        None if e.is_tls() => "TLS failed".into(),
        None => "connection failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The connection pool needs a Tokio runtime.
    #[tokio::test]
    async fn credentials_never_reach_a_message() {
        assert_eq!(
            redact("smtps://user:p%40ss@smtp.yandex.ru:465"),
            "smtps://…@smtp.yandex.ru:465"
        );
        assert_eq!(redact("smtp://127.0.0.1:2525"), "smtp://127.0.0.1:2525");
        let s = Settings {
            url: SecretString::from("smtps://user:hunter2@smtp.example.ru".to_owned()),
            from: "noreply@clinic.example".into(),
            timeout: Duration::from_secs(5),
            dkim: None,
        };
        assert!(!format!("{s:?}").contains("hunter2"));
        let m = Mailer::new(&s).unwrap();
        assert!(!format!("{m:?}").contains("hunter2"));
    }

    #[test]
    fn a_password_goes_to_another_host_only_over_tls() {
        for url in [
            "smtp://u:p@smtp.example.ru:587",
            "smtp://u:p@smtp.example.ru:587?tls=opportunistic",
            "smtp://u@10.0.0.5:25",
        ] {
            assert!(exposes_login(url), "{url}");
        }
        for url in [
            "smtp://u:p@smtp.example.ru:587?tls=required",
            "smtps://u:p@smtp.example.ru:465",
            "smtp://smtp.example.ru:25",
            "smtp://u:p@127.0.0.1:2525",
            "smtp://u:p@[::1]:2525",
            "smtp://u:p@localhost:2525",
        ] {
            assert!(!exposes_login(url), "{url}");
        }
    }

    // The connection pool needs a Tokio runtime.
    #[tokio::test]
    async fn bad_settings_are_named() {
        let mut s = Settings {
            url: SecretString::from("http://x".to_owned()),
            from: "noreply@clinic.example".into(),
            timeout: Duration::from_secs(5),
            dkim: None,
        };
        assert!(matches!(Mailer::new(&s), Err(ConfigError::Url(_))));
        s.url = SecretString::from("smtp://127.0.0.1:2525".to_owned());
        s.from = "not an address".into();
        assert!(matches!(Mailer::new(&s), Err(ConfigError::From(_))));
    }

    // The connection pool needs a Tokio runtime.
    #[tokio::test]
    async fn a_message_has_a_stable_id_and_both_parts() {
        let m = Mailer::new(&Settings {
            url: SecretString::from("smtp://127.0.0.1:2525".to_owned()),
            from: "Клиника <noreply@clinic.example>".into(),
            timeout: Duration::from_secs(5),
            dkim: None,
        })
        .unwrap();
        let email = Email {
            id: "e1",
            to: "patient@example.ru",
            subject: "Кассовый чек",
            text: "Текст",
            html: Some("<p><img src=\"cid:qr\"></p>"),
            inline: &[Inline {
                content_id: "qr".into(),
                content_type: "image/png",
                bytes: vec![1, 2, 3],
            }],
        };
        let raw = String::from_utf8(m.message(&email).unwrap().formatted()).unwrap();
        assert!(raw.contains("Message-ID: <e1@clinic.example>"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("multipart/related"), "{raw}");
        assert!(raw.contains("Content-ID: <qr>"), "{raw}");
        let bad = Email {
            to: "nobody",
            ..email
        };
        assert!(matches!(m.message(&bad), Err(Error::Address)));
    }
}
