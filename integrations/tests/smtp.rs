//! Vizit's SMTP client against an SMTP server over real TCP (the sandbox's mail capture): what
//! it sends is a well-formed MIME message a mail reader decodes (Cyrillic subject, text and
//! HTML, the inline image), with a stable Message-ID; a server refusing for now, or down, is an
//! error worth retrying; an address no server takes is not.

use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use secrecy::SecretString;
use vizit_integrations::smtp::{Email, Error, Inline, Mailer, Settings};
use vizit_sandbox::MailCapture;

fn mailer(url: String) -> Mailer {
    Mailer::new(&Settings {
        url: SecretString::from(url),
        from: "Клиника «Здоровье» <noreply@clinic.example>".into(),
        timeout: Duration::from_secs(5),
        dkim: None,
    })
    .unwrap()
}

fn email<'a>(inline: &'a [Inline]) -> Email<'a> {
    Email {
        id: "0b6f0f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
        to: "patient@example.ru",
        subject: "Чек об оплате консультации — Клиника «Здоровье»",
        text: "Здравствуйте!\n.Строка с точкой в начале\nИтого: 1\u{a0}500,00\u{a0}₽\n",
        html: Some("<p>Здравствуйте!</p><img src=\"cid:receipt-qr\" alt=\"QR\">"),
        inline,
    }
}

#[tokio::test]
async fn a_message_arrives_whole_and_decodes() {
    let capture = MailCapture::new();
    let smtp = capture
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let m = mailer(smtp.url());
    let image = Inline {
        content_id: "receipt-qr".into(),
        content_type: "image/png",
        bytes: (0..=255u8).collect(),
    };
    m.send(&email(std::slice::from_ref(&image))).await.unwrap();

    let got = capture.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, vec!["patient@example.ru"]);
    assert_eq!(got[0].from, "noreply@clinic.example");
    let parsed = MessageParser::default().parse(&got[0].raw).unwrap();
    assert_eq!(
        parsed.subject(),
        Some("Чек об оплате консультации — Клиника «Здоровье»")
    );
    assert_eq!(
        parsed.message_id(),
        Some("0b6f0f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b@clinic.example")
    );
    let text = parsed.body_text(0).unwrap();
    // SMTP's dot-stuffing is undone: the line keeps its leading dot.
    assert!(
        text.lines()
            .any(|l| l.trim_end() == ".Строка с точкой в начале"),
        "{text:?}"
    );
    assert!(text.contains("1\u{a0}500,00\u{a0}₽"), "{text:?}");
    assert!(parsed.body_html(0).unwrap().contains("cid:receipt-qr"));
    let part = parsed
        .parts
        .iter()
        .find(|p| p.content_id() == Some("receipt-qr"))
        .expect("the inline image");
    assert_eq!(part.contents(), image.bytes.as_slice());
    smtp.stop().await;
}

#[tokio::test]
async fn a_server_refusing_or_down_is_worth_retrying() {
    let capture = MailCapture::new();
    let smtp = capture
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = smtp.url();
    let m = mailer(url.clone());
    capture.refuse_with(Some(451));
    let e = m.send(&email(&[])).await.unwrap_err();
    assert!(
        matches!(e, Error::Unavailable(_)) && e.is_retryable(),
        "{e}"
    );
    assert!(e.to_string().contains("451"), "{e}");
    capture.refuse_with(None);

    smtp.stop().await;
    let e = mailer(url).send(&email(&[])).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(capture.messages().is_empty());
}

#[tokio::test]
async fn an_address_no_server_takes_is_refused_for_good() {
    let m = mailer("smtp://127.0.0.1:9".into());
    let e = m
        .send(&Email {
            to: "patient at example.ru",
            ..email(&[])
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Address) && !e.is_retryable(), "{e}");
    // The address itself is personal data: it is not in the error.
    assert!(!e.to_string().contains("patient"));
}

/// A DKIM-signed message verifies with dkimpy (an independent implementation) against the key's
/// DNS record; the same message with its subject changed does not.
#[tokio::test]
async fn dkim_signatures_verify_and_tampering_breaks_them() {
    let python = std::env::var("TEST_PYTHON")
        .expect("TEST_PYTHON must name a Python with dkimpy (scripts/test.sh sets it up)");
    let dir = std::env::temp_dir().join(format!("vizit-dkim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key.pem");
    let ok = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let public = std::process::Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(public.status.success());
    // The DNS record carries the PEM's base64 body.
    let body: String = String::from_utf8_lossy(&public.stdout)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let record = format!("v=DKIM1; k=rsa; p={body}");

    let capture = MailCapture::new();
    let smtp = capture
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let m = Mailer::new(&Settings {
        url: SecretString::from(smtp.url()),
        from: "Клиника «Здоровье» <noreply@clinic.example>".into(),
        timeout: Duration::from_secs(5),
        dkim: Some(vizit_integrations::smtp::Dkim {
            domain: "clinic.example".into(),
            selector: "vizit2026".into(),
            algorithm: vizit_integrations::smtp::DkimAlgorithm::Rsa,
            private_key: SecretString::from(std::fs::read_to_string(&key).unwrap()),
        }),
    })
    .unwrap();
    m.send(&email(&[])).await.unwrap();
    let raw = capture.messages()[0].raw.clone();
    assert!(
        String::from_utf8_lossy(&raw).contains("d=clinic.example"),
        "the message is signed"
    );

    let verify = |message: &[u8]| {
        let file = dir.join("message.eml");
        std::fs::write(&file, message).unwrap();
        let out = std::process::Command::new(&python)
            .arg("-c")
            .arg(
                "import dkim, sys\n\
                 record = sys.argv[2].encode()\n\
                 def dns(name, timeout=5):\n\
                 \x20   return record if name == b'vizit2026._domainkey.clinic.example.' else None\n\
                 print(dkim.verify(open(sys.argv[1], 'rb').read(), dnsfunc=dns))",
            )
            .arg(&file)
            .arg(&record)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(verify(&raw), "True");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let tampered = text.replacen("Subject: ", "Subject: Re: ", 1);
    assert_ne!(tampered, text);
    assert_eq!(verify(tampered.as_bytes()), "False");
    let _ = std::fs::remove_dir_all(&dir);

    // A key that is not a key is refused before anything is sent.
    let bad = vizit_integrations::smtp::Dkim {
        domain: "clinic.example".into(),
        selector: "vizit2026".into(),
        algorithm: vizit_integrations::smtp::DkimAlgorithm::Rsa,
        private_key: SecretString::from("not a key".to_owned()),
    };
    assert!(bad.check().is_err());
}
