//! HTTPS is built in: with `tls.cert` and `tls.key` set, the same routes are served over TLS, and
//! plain HTTP stays available (localhost, reverse proxies).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vizit::config::Settings;
use vizit::startup::Application;

fn self_signed(dir: &Path) {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args([
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A leaf, not a CA: TLS clients refuse a CA certificate as a server identity.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .current_dir(dir)
        .output()
        .expect("the openssl command line tool is installed");
    assert!(
        status.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

#[tokio::test]
async fn serves_https_with_the_configured_certificate_and_plain_http_beside_it() {
    let dir = std::env::temp_dir().join(format!("vizit-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    self_signed(&dir);
    let mut settings = Settings {
        data_dir: dir.join("data"),
        ..Settings::default()
    };
    settings.http.listen = "127.0.0.1:0".parse().unwrap();
    settings.tls.listen = "127.0.0.1:0".parse().unwrap();
    settings.tls.cert = Some(dir.join("cert.pem"));
    settings.tls.key = Some(dir.join("key.pem"));
    settings.media.udp_bind = "127.0.0.1:0".parse().unwrap();
    settings.http.header_read_timeout = std::time::Duration::from_secs(1);
    settings.validate().unwrap();
    let app = Application::build(settings).await.unwrap();
    let https = app.https_addr().expect("an HTTPS listener");
    let http = app.http_addr();
    assert!(
        app.public_url().starts_with("https://"),
        "{}",
        app.public_url()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("cert.pem")).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(https).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the configured certificate");
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok\n"), "{response}");
    // Browsers are told to keep to HTTPS.
    assert!(
        response
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{response}"
    );

    // A connection that never starts its TLS handshake is closed (tls handshakes share the
    // header read timeout).
    let mut silent = tokio::net::TcpStream::connect(https).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("closed by the server");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // Nor one that completes the handshake and then sends no request.
    let tcp = tokio::net::TcpStream::connect(https).await.unwrap();
    let mut quiet = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), quiet.read(&mut buf))
        .await
        .expect("closed by the server");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    let plain = reqwest::get(format!("http://{http}/healthz"))
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 200);
    assert!(
        plain.headers().get("strict-transport-security").is_none(),
        "plain HTTP does not send HSTS"
    );

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_certificate_without_a_key_is_refused_naming_the_key() {
    let mut settings = Settings::default();
    settings.tls.cert = Some("/etc/hostname".into());
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("tls.key"), "{error}");
}
