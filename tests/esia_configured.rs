//! A clinic's configured ESIA, not the demo's: `[esia]` settings name the system's certificate,
//! ESIA's token key and an external-command signer. The command is a stand-in for CryptoPro's
//! `csptest`: it signs with OpenSSL's GOST engine and writes the signature little-endian and in
//! base64, as CryptoPro's tools do, so `output = "base64"` and `reverse = true` must be right for
//! ESIA (here the sandbox, run on its own as a remote ESIA would be) to accept the requests. A
//! patient signs in through the real binary's wiring from start to session.

mod common;

use std::time::Duration;

use common::TestApp;
use vizit_integrations::esia::cert::development_certificate;

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .expect("a redirect")
        .to_str()
        .unwrap()
        .to_owned()
}

fn cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap()[name.len() + 1..].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_esia_with_a_command_signer_signs_patients_in() {
    let dir =
        std::env::temp_dir().join(format!("vizit-esia-conf-{}", uuid::Uuid::new_v4().simple()));
    let (key, cert) = development_certificate(&dir, "/CN=Clinic system/O=Clinic").unwrap();
    let cert_file = dir.join("esia-cert.pem");
    // The stand-in for CryptoPro: the bytes on stdin, the signature reversed, in base64.
    let signer = dir.join("csptest-stand-in.sh");
    std::fs::write(
        &signer,
        "#!/bin/sh\nset -e\nopenssl dgst -engine gost -md_gost12_256 -sign \"$1\" 2>/dev/null \
         | python3 -c 'import sys, base64; d = sys.stdin.buffer.read(); sys.stdout.write(base64.b64encode(d[::-1]).decode())'\n",
    )
    .unwrap();

    let esia = vizit_sandbox::Sandbox::new(vizit_sandbox::Bitrix24Options::default());
    let running = esia.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let token_key = dir.join("esia-token-key.pem");
    std::fs::write(&token_key, esia.esia.token_key_pem().unwrap()).unwrap();

    let (base, issuer) = (esia.esia.base_url(), esia.esia.issuer());
    // ESIA needs the public URL before the start: a free port, taken again by the server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(|s| {
        s.demo = false;
        s.http.listen = format!("127.0.0.1:{port}").parse().unwrap();
        s.http.public_url = format!("http://127.0.0.1:{port}");
        s.esia.client_id = Some("CLINIC01".into());
        s.esia.base_url = base;
        s.esia.issuer = issuer;
        s.esia.certificate = Some(cert_file.clone());
        s.esia.token_keys = vec![token_key.clone()];
        s.esia.signer.kind = "command".into();
        s.esia.signer.command = vec![
            "sh".into(),
            signer.to_string_lossy().into_owned(),
            key.to_string_lossy().into_owned(),
        ];
        s.esia.signer.output = "base64".into();
        s.esia.signer.reverse = true;
    })
    .await;
    let root = format!("http://{}", app.http);
    // The technology portal's registration: the certificate and the exact redirect URI.
    esia.esia
        .register(
            "CLINIC01",
            &String::from_utf8_lossy(&cert),
            vec![format!("{root}/login/esia/callback")],
        )
        .unwrap();

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let res = http.get(format!("{root}/login/esia")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let nonce = cookie(&res, "vizit_esia").unwrap();
    let page = http.get(location(&res)).send().await.unwrap();
    assert_eq!(
        page.status(),
        200,
        "ESIA accepted the authorization request"
    );
    let html = page.text().await.unwrap();
    let request = html
        .split("name=\"request\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let res = http
        .post(format!("{}/aas/oauth2/v2/ac/login", esia.esia.base_url()))
        .form(&[("request", request.as_str()), ("oid", "1000300002")])
        .send()
        .await
        .unwrap();
    let back = location(&res);
    assert!(
        back.starts_with(&format!("{root}/login/esia/callback?code=")),
        "{back}"
    );
    let res = http
        .get(&back)
        .header("cookie", format!("vizit_esia={nonce}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{:?}", res.text().await);
    let consents = location(&res);
    let registration = consents.strip_prefix("/login/esia/consents?r=").unwrap();
    let res = http
        .post(format!("{root}/login/esia/consents"))
        .header("cookie", format!("vizit_esia={nonce}"))
        .form(&[
            ("r", registration),
            ("action", "accept"),
            ("personal_data", "yes"),
            ("health_data", "yes"),
            ("offer", "yes"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/consultations");
    let session = cookie(&res, "vizit_session").unwrap();
    let me: serde_json::Value = http
        .get(format!("{root}/api/v1/me"))
        .header("cookie", format!("vizit_session={session}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["via"], "esia");
    assert_eq!(me["name"], "Петров Сергей Иванович");
    assert!(
        esia.esia.refusals().is_empty(),
        "{:?}",
        esia.esia.refusals()
    );

    app.stop().await;
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
