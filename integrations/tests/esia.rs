//! ESIA's request signing against the sandbox's independent checks, with real GOST R 34.10-2012
//! signatures (OpenSSL and Debian's GOST engine): a token request Vizit's client builds and its
//! signer signs is accepted; the mistakes seen in the field are refused as ESIA refuses them —
//! the signed string in another order, the certificate's PEM text hashed instead of its DER
//! bytes, a signature in the wrong byte order, a missing parameter, a malformed timestamp, a
//! used code. The signer's own failures (no command, an error exit, no answer, garbage) are
//! errors that say which.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vizit_integrations::esia::cert::{certificate_hash, development_certificate, streebog256_hex};
use vizit_integrations::esia::client::{Esia, Settings};
use vizit_integrations::esia::request::{self, Client};
use vizit_integrations::esia::signer::{CommandSigner, Output, SignError, Signer};
use vizit_sandbox::esia::{Registered, check_token_request, verify_gost};

struct Keys {
    dir: PathBuf,
    key: PathBuf,
    cert_pem: Vec<u8>,
    registered: Registered,
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A GOST R 34.10-2012 (256) key and a self-signed certificate for it (ESIA's test stand
/// accepts self-signed ones).
fn keys() -> Keys {
    let dir =
        std::env::temp_dir().join(format!("vizit-esia-keys-{}", uuid::Uuid::new_v4().simple()));
    let (key, _) = development_certificate(&dir, "/CN=Vizit test/O=Clinic").unwrap();
    openssl(
        &[
            "x509",
            "-engine",
            "gost",
            "-in",
            "esia-cert.pem",
            "-pubkey",
            "-noout",
            "-out",
            "pub.pem",
        ],
        &dir,
    );
    openssl(
        &[
            "x509",
            "-in",
            "esia-cert.pem",
            "-outform",
            "DER",
            "-out",
            "cert.der",
        ],
        &dir,
    );
    let cert_pem = std::fs::read(dir.join("esia-cert.pem")).unwrap();
    let registered = Registered {
        client_id: "VIZIT01".into(),
        certificate_der: std::fs::read(dir.join("cert.der")).unwrap(),
        public_key_file: dir.join("pub.pem"),
        redirect_uris: vec!["https://clinic.example/esia/callback".into()],
    };
    Keys {
        key,
        dir,
        cert_pem,
        registered,
    }
}

fn client(k: &Keys) -> Client {
    Client {
        client_id: "VIZIT01".into(),
        scope: "openid fullname birthdate snils".into(),
        scope_org: String::new(),
        redirect_uri: "https://clinic.example/esia/callback".into(),
        certificate_hash: certificate_hash(&k.cert_pem).unwrap(),
    }
}

/// The token form for `code`, signed over `signed` (the right string unless a test says).
async fn form(
    k: &Keys,
    c: &Client,
    signer: &dyn Signer,
    code: &str,
    signed: Option<String>,
) -> HashMap<String, String> {
    let ts = request::timestamp(vizit_api_free_now());
    let state = uuid::Uuid::new_v4().to_string();
    let data = signed.unwrap_or_else(|| request::token_string(c, &ts, &state, code));
    let sig = signer.sign(data.as_bytes()).await.unwrap();
    let _ = k;
    request::token_form(c, code, &ts, &state, &request::secret(&sig))
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// A person picks `oid` on the stand's login page at `url`: where ESIA sends the browser back,
/// and that address's query.
async fn choose_on_stand(
    http: &reqwest::Client,
    stand: &str,
    url: &str,
    oid: &str,
) -> (reqwest::Url, HashMap<String, String>) {
    let login = http.get(url).send().await.unwrap();
    assert_eq!(login.status(), 200);
    let html = login.text().await.unwrap();
    assert!(html.contains("Тестовый стенд ЕСИА"), "{html}");
    let request = html
        .split("name=\"request\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let chosen = http
        .post(format!("{stand}/aas/oauth2/v2/ac/login"))
        .form(&[("request", request.as_str()), ("oid", oid)])
        .send()
        .await
        .unwrap();
    assert!(chosen.status().is_redirection());
    let back = reqwest::Url::parse(chosen.headers()["location"].to_str().unwrap()).unwrap();
    let q = back.query_pairs().into_owned().collect();
    (back, q)
}

fn vizit_api_free_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn a_signed_token_request_passes_and_field_mistakes_are_refused() {
    let k = keys();
    let c = client(&k);
    let signer = CommandSigner::openssl_gost(k.key.clone());

    // The certificate hash is GOST R 34.11-2012 of the DER bytes, as OpenSSL computes it.
    let out = Command::new("openssl")
        .args(["dgst", "-engine", "gost", "-md_gost12_256", "cert.der"])
        .current_dir(&k.dir)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    let openssl_hash = printed.rsplit("= ").next().unwrap().trim().to_uppercase();
    assert_eq!(c.certificate_hash, openssl_hash);
    assert_eq!(
        c.certificate_hash,
        streebog256_hex(&k.registered.certificate_der)
    );

    // The signature verifies with the certificate's key; 64 raw bytes.
    let sig = signer.sign(b"VIZIT01").await.unwrap();
    assert_eq!(sig.len(), 64);
    assert!(verify_gost(&k.registered.public_key_file, b"VIZIT01", &sig).unwrap());
    assert!(!verify_gost(&k.registered.public_key_file, b"VIZIT02", &sig).unwrap());

    // Right: accepted, once.
    let good = form(&k, &c, &signer, "code-1", None).await;
    assert_eq!(
        check_token_request(&good, &k.registered, |code| code == "code-1"),
        Ok(())
    );
    let used = check_token_request(&good, &k.registered, |_| false).unwrap_err();
    assert_eq!(used.code, "ESIA-007006");

    // The string in the old v1 order (scope + timestamp + client_id + state), the rest of the
    // form as it was: clientSecretWrong.
    let v1 = format!(
        "{}{}{}{}",
        c.scope, good["timestamp"], c.client_id, good["state"]
    );
    let mut wrong_order = good.clone();
    let sig = signer.sign(v1.as_bytes()).await.unwrap();
    wrong_order.insert("client_secret".into(), request::secret(&sig));
    let e = check_token_request(&wrong_order, &k.registered, |_| true).unwrap_err();
    assert_eq!(
        (e.code, e.error),
        ("ESIA-007053", "invalid_client"),
        "{e:?}"
    );

    // The PEM text hashed instead of the DER bytes.
    let mut pem_hash = good.clone();
    pem_hash.insert(
        "client_certificate_hash".into(),
        streebog256_hex(&k.cert_pem),
    );
    let e = check_token_request(&pem_hash, &k.registered, |_| true).unwrap_err();
    assert_eq!(e.code, "ESIA-007053");

    // A signature in the wrong byte order (a CryptoPro output not reversed, or reversed twice).
    let reversed = CommandSigner {
        reverse: true,
        ..CommandSigner::openssl_gost(k.key.clone())
    };
    let backwards = form(&k, &c, &reversed, "code-1", None).await;
    let e = check_token_request(&backwards, &k.registered, |_| true).unwrap_err();
    assert_eq!(e.code, "ESIA-007053");

    // A missing parameter, a timestamp with a colon in its offset.
    let mut missing = good.clone();
    missing.remove("client_certificate_hash");
    let e = check_token_request(&missing, &k.registered, |_| true).unwrap_err();
    assert_eq!(e.code, "ESIA-007014");
    assert!(e.description().contains("[client_certificate_hash]"));
    let mut colon = good.clone();
    colon.insert(
        "timestamp".into(),
        colon["timestamp"].replace("+0300", "+03:00"),
    );
    let e = check_token_request(&colon, &k.registered, |_| true).unwrap_err();
    assert_eq!(e.code, "ESIA-007011");
}

#[tokio::test]
async fn a_failing_signer_says_how() {
    let missing = CommandSigner {
        program: "/nonexistent/cryptcp".into(),
        args: vec![],
        output: Output::Raw,
        reverse: true,
        timeout: Duration::from_secs(5),
    };
    assert!(matches!(
        missing.sign(b"x").await,
        Err(SignError::Start { .. })
    ));

    let failing = CommandSigner {
        program: "sh".into(),
        args: vec!["-c".into(), "echo 'no key container' >&2; exit 3".into()],
        ..missing.clone()
    };
    match failing.sign(b"x").await {
        Err(SignError::Failed { code, stderr }) => {
            assert_eq!(code, "3");
            assert_eq!(stderr, "no key container");
        }
        other => panic!("{other:?}"),
    }

    let slow = CommandSigner {
        program: "sleep".into(),
        args: vec!["5".into()],
        timeout: Duration::from_millis(200),
        ..missing.clone()
    };
    assert!(matches!(slow.sign(b"x").await, Err(SignError::TimedOut(_))));

    let garbage = CommandSigner {
        program: "sh".into(),
        args: vec!["-c".into(), "cat >/dev/null; echo not-a-signature".into()],
        ..missing.clone()
    };
    assert!(matches!(
        garbage.sign(b"x").await,
        Err(SignError::Output(_))
    ));

    // A tool that writes base64 (and reverses): decoded, reversed back.
    let b64 = CommandSigner {
        program: "sh".into(),
        args: vec![
            "-c".into(),
            "cat >/dev/null; printf '%s' AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==".into(),
        ],
        output: Output::Base64,
        ..missing.clone()
    };
    let sig = b64.sign(b"x").await.unwrap();
    assert_eq!(sig, (0..64u8).rev().collect::<Vec<_>>());
}

/// The whole exchange against the sandbox's ESIA over HTTP: the signed authorization URL opens
/// its login page, a person is chosen, the code comes back with the state, the signed token
/// request gets tokens with the person's oid, and the person's data is what the scopes allow.
/// The code works once; a person who refuses comes back with `access_denied`.
#[tokio::test]
async fn the_client_signs_in_a_person_at_the_sandbox() {
    let k = keys();
    let sandbox = vizit_sandbox::Sandbox::new(vizit_sandbox::Bitrix24Options::default());
    let running = sandbox.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let redirect = "https://clinic.example/esia/callback".to_owned();
    sandbox
        .esia
        .register(
            "VIZIT01",
            &String::from_utf8_lossy(&k.cert_pem),
            vec![redirect.clone()],
        )
        .unwrap();
    let esia = Esia::new(
        Settings {
            base_url: sandbox.esia.base_url(),
            client: client(&k),
            timeout: Duration::from_secs(10),
        },
        std::sync::Arc::new(CommandSigner::openssl_gost(k.key.clone())),
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let state = uuid::Uuid::new_v4().to_string();
    let url = esia
        .authorize_url(&state, None, vizit_api_free_now())
        .await
        .unwrap();
    assert!(
        url.contains("timestamp=") && url.contains("client_certificate_hash="),
        "{url}"
    );
    let (back, q) = choose_on_stand(&http, &sandbox.esia.base_url(), &url, "1000300001").await;
    assert!(back.as_str().starts_with(&redirect));
    assert_eq!(q["state"], state);
    let code = q["code"].clone();

    let tokens = esia
        .exchange(&code, None, vizit_api_free_now())
        .await
        .unwrap();
    let claims: serde_json::Value = {
        use base64::Engine as _;
        let payload = tokens.access_token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(claims["urn:esia:sbj_id"], 1_000_300_001u64);
    assert!(tokens.id_token.is_some());
    let person = esia
        .person("1000300001", &tokens.access_token)
        .await
        .unwrap();
    assert_eq!(person["lastName"], "Иванова");
    assert_eq!(person["birthDate"], "14.03.1985");
    assert_eq!(person["snils"], "112-233-445 95");
    assert!(
        person.get("documents").is_none(),
        "id_doc was not asked for"
    );

    // The code is used: ESIA-007006. Someone else's oid with this token: refused.
    let again = esia
        .exchange(&code, None, vizit_api_free_now())
        .await
        .unwrap_err();
    assert_eq!(again.esia_code(), Some("ESIA-007006"), "{again}");
    assert!(
        esia.person("1000300002", &tokens.access_token)
            .await
            .is_err()
    );

    // A person who refuses: access_denied with the state.
    let state = uuid::Uuid::new_v4().to_string();
    let url = esia
        .authorize_url(&state, None, vizit_api_free_now())
        .await
        .unwrap();
    let (_, q) = choose_on_stand(&http, &sandbox.esia.base_url(), &url, "refuse").await;
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], state);

    // An authorization URL signed by another key: the stand refuses with clientSecretWrong.
    let other = keys();
    let forged = Esia::new(
        Settings {
            base_url: sandbox.esia.base_url(),
            client: client(&k),
            timeout: Duration::from_secs(10),
        },
        std::sync::Arc::new(CommandSigner::openssl_gost(other.key.clone())),
    );
    let url = forged
        .authorize_url("s", None, vizit_api_free_now())
        .await
        .unwrap();
    let r = http.get(&url).send().await.unwrap();
    let back = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q: HashMap<String, String> = back.query_pairs().into_owned().collect();
    assert!(q["error_description"].starts_with("ESIA-007053"), "{q:?}");
    running.stop().await;
}

/// A signing service over HTTP (as a DSS or an HSM gateway): the signer sends the bytes (or
/// their digest) with its key header and gets the signature back; a wrong key is a refusal, a
/// service down is "unavailable".
#[tokio::test]
async fn a_signing_service_signs_over_http() {
    use axum::Json;
    use axum::http::{HeaderMap, StatusCode};
    use base64::Engine as _;
    use vizit_integrations::esia::signer::{HttpInput, HttpSigner};

    let k = keys();
    let key = k.key.clone();
    let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let is_down = down.clone();
    let app = axum::Router::new().route(
        "/sign",
        axum::routing::post(
            move |headers: HeaderMap, Json(body): Json<serde_json::Value>| {
                let key = key.clone();
                let is_down = is_down.clone();
                async move {
                    if is_down.load(std::sync::atomic::Ordering::SeqCst) {
                        return (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({})));
                    }
                    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("dss-key") {
                        return (StatusCode::UNAUTHORIZED, Json(serde_json::json!({})));
                    }
                    let b64 = base64::engine::general_purpose::STANDARD;
                    let data = b64.decode(body["data"].as_str().unwrap()).unwrap();
                    let dir = std::env::temp_dir()
                        .join(format!("vizit-dss-{}", uuid::Uuid::new_v4().simple()));
                    std::fs::create_dir_all(&dir).unwrap();
                    std::fs::write(dir.join("data"), &data).unwrap();
                    let out = Command::new("openssl")
                        .args(["dgst", "-engine", "gost", "-md_gost12_256", "-sign"])
                        .arg(&key)
                        .arg(dir.join("data"))
                        .output()
                        .unwrap();
                    let _ = std::fs::remove_dir_all(&dir);
                    (
                        StatusCode::OK,
                        Json(serde_json::json!({"signature": b64.encode(out.stdout)})),
                    )
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let signer = |key: &str| {
        HttpSigner::new(
            format!("http://{addr}/sign"),
            Some(("X-Api-Key".into(), key.to_owned().into())),
            HttpInput::Data,
            false,
            Duration::from_secs(5),
        )
    };

    let sig = signer("dss-key").sign(b"VIZIT01").await.unwrap();
    assert!(verify_gost(&k.registered.public_key_file, b"VIZIT01", &sig).unwrap());
    assert!(matches!(
        signer("wrong").sign(b"x").await,
        Err(SignError::Refused(401))
    ));
    down.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        signer("dss-key").sign(b"x").await,
        Err(SignError::Unavailable(_))
    ));
}

/// The stand as a standalone `vizit sandbox` serves it: a client registers its certificate over
/// HTTP (as on the technology portal), signs in a person with contacts and documents in scope,
/// and reads the collections without `embed` (links, followed one by one) and with it.
#[tokio::test]
async fn the_stand_registers_clients_over_http_and_serves_collections() {
    let k = keys();
    let sandbox = vizit_sandbox::Sandbox::new(vizit_sandbox::Bitrix24Options::default());
    let running = sandbox.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = "https://clinic.example/esia/callback".to_owned();
    let register = |pem: String| {
        http.post(format!("{}/sandbox/esia/clients", running.url()))
            .json(&serde_json::json!({"clientId": "VIZIT01", "certificatePem": pem, "redirectUris": [redirect.clone()]}))
            .send()
    };
    let bad = register("not a certificate".into()).await.unwrap();
    assert_eq!(bad.status(), 400);
    let ok = register(String::from_utf8_lossy(&k.cert_pem).into_owned())
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);

    let mut c = client(&k);
    c.scope = "openid fullname email mobile id_doc medical_doc addresses".into();
    let esia = Esia::new(
        Settings {
            base_url: sandbox.esia.base_url(),
            client: c,
            timeout: Duration::from_secs(10),
        },
        std::sync::Arc::new(CommandSigner::openssl_gost(k.key.clone())),
    );
    let url = esia
        .authorize_url("s-1", None, vizit_api_free_now())
        .await
        .unwrap();
    let (_, q) = choose_on_stand(&http, &sandbox.esia.base_url(), &url, "1000300001").await;
    let tokens = esia
        .exchange(&q["code"], None, vizit_api_free_now())
        .await
        .unwrap();
    let get = |path: String| {
        http.get(format!("{}{path}", sandbox.esia.base_url()))
            .bearer_auth(&tokens.access_token)
            .send()
    };
    // Links without embed, each one readable.
    let ctts: serde_json::Value = get("/rs/prns/1000300001/ctts".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ctts["size"], 2);
    let link = ctts["elements"][0].as_str().unwrap().to_owned();
    assert!(link.starts_with(&format!(
        "{}/rs/prns/1000300001/ctts/",
        sandbox.esia.base_url()
    )));
    let one: serde_json::Value = http
        .get(&link)
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["type"], "EML");
    assert_eq!(one["value"], "ivanova@example.ru");
    // The elements inline with embed.
    let docs: serde_json::Value = get("/rs/prns/1000300001/docs?embed=(elements)".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = docs["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["RF_PASSPORT", "MDCL_PLCY"]);
    let addrs: serde_json::Value = get("/rs/prns/1000300001/addrs?embed=(elements)".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(addrs["elements"][0]["type"], "PRG");
    // Someone else's collection, an unknown collection, an unknown element.
    assert_eq!(
        get("/rs/prns/1000300002/ctts".into())
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        get("/rs/prns/1000300001/vhls".into())
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        get("/rs/prns/1000300001/ctts/1".into())
            .await
            .unwrap()
            .status(),
        404
    );
    running.stop().await;
}
