//! A real SMTP server for the tests: aiosmtpd (Python) storing what it gets in a Maildir,
//! started and stopped by the test (so a test can have the server down and bring it back).
//! `scripts/test.sh` installs it (in `.venv-test`) and names it in `TEST_AIOSMTPD`.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Smtp {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// `TEST_AIOSMTPD`, else the one `scripts/test.sh` installs, else `aiosmtpd` on the PATH.
fn program() -> String {
    if let Ok(p) = std::env::var("TEST_AIOSMTPD") {
        return p;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv-test/bin/aiosmtpd");
    if std::path::Path::new(venv).exists() {
        return venv.into();
    }
    "aiosmtpd".into()
}

impl Smtp {
    /// A server not started yet, on a free port (the mail server is down).
    ///
    /// The port is below Linux's ephemeral range (32768–60999): while the server is down,
    /// Vizit's connection attempts to an ephemeral port can be given that same port as their
    /// own and connect to themselves (TCP self-connect), talking to nobody and keeping the port
    /// from the server when it comes up.
    pub fn down() -> Smtp {
        let port = (0..1000)
            .map(|_| 20_000 + (uuid::Uuid::new_v4().as_u128() % 12_000) as u16)
            .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
            .expect("a free port below the ephemeral range");
        let dir = std::env::temp_dir().join(format!("vizit-smtp-{}", uuid::Uuid::new_v4()));
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        Smtp {
            port,
            dir,
            child: None,
        }
    }

    /// A running server.
    pub async fn start() -> Smtp {
        let mut s = Smtp::down();
        s.up().await;
        s
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Start the server (again), on the same port and Maildir.
    pub async fn up(&mut self) {
        assert!(self.child.is_none(), "already up");
        let child = Command::new(program())
            .args(["-n", "-l", &format!("127.0.0.1:{}", self.port)])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): the e-mail tests need a real SMTP server — \
                     `pip install aiosmtpd`, or run scripts/test.sh, which installs it",
                    program()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not listen in 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stop the server; what it got stays readable.
    pub fn down_now(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every message received so far, raw.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.dir.join(sub)) else {
                continue;
            };
            let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                if let Ok(bytes) = std::fs::read(f) {
                    out.push(bytes);
                }
            }
        }
        out
    }
}

impl Smtp {
    /// Every message received so far, as a mail reader decodes them.
    pub fn mails(&self) -> Vec<Mail> {
        self.messages()
            .iter()
            .filter_map(|raw| Mail::parse(raw))
            .collect()
    }

    /// The e-mails to `to` whose subject starts with `subject`, once there are `n` of them
    /// (bounded wait); panics if they never arrive.
    pub async fn wait_for(&self, to: &str, subject: &str, n: usize) -> Vec<Mail> {
        let read = || {
            self.mails()
                .into_iter()
                .filter(|m| m.to == to && m.subject.starts_with(subject))
                .collect::<Vec<_>>()
        };
        for _ in 0..300 {
            let got = read();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{n} e-mail(s) «{subject}…» to {to} never arrived; got {}",
            read().len()
        );
    }
}

/// Vizit's mailer for the tests' SMTP server at `url`, sending as the test clinic.
pub fn mailer(url: String) -> vizit_integrations::smtp::Mailer {
    vizit_integrations::smtp::Mailer::new(&vizit_integrations::smtp::Settings {
        url: secrecy::SecretString::from(url),
        from: "Клиника «Здоровье» <noreply@clinic.test>".into(),
        timeout: Duration::from_secs(5),
        dkim: None,
    })
    .unwrap()
}

/// An e-mail as its reader sees it.
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Inline parts by content id.
    inline: Vec<(String, Vec<u8>)>,
}

impl Mail {
    pub fn parse(raw: &[u8]) -> Option<Mail> {
        use mail_parser::MimeHeaders;
        let m = mail_parser::MessageParser::default().parse(raw)?;
        let to = m.to()?.first()?.address()?.to_owned();
        Some(Mail {
            to,
            subject: m.subject()?.to_owned(),
            text: m.body_text(0)?.into_owned(),
            html: m.body_html(0).map(|h| h.into_owned()).unwrap_or_default(),
            inline: m
                .parts
                .iter()
                .filter_map(|p| Some((p.content_id()?.to_owned(), p.contents().to_vec())))
                .collect(),
        })
    }

    /// The inline part `cid:<id>`.
    pub fn inline(&self, id: &str) -> Option<&[u8]> {
        self.inline
            .iter()
            .find(|(cid, _)| cid == id)
            .map(|(_, b)| b.as_slice())
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.down_now();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
