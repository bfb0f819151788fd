//! Patients sign in through ESIA: the browser's whole path (Vizit → the sandbox's ESIA, which
//! checks every signed request with a real GOST signature → Vizit's callback → consents →
//! a session cookie) driven over HTTP as a browser would, without following redirects blindly.
//! Registration vs repeat login vs linking the clinic's record; «Мои данные»; identification
//! per consultation; and every fault the issue names, each ending on a page in Russian with no
//! session and no patient.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestApi;
use reqwest::StatusCode;
use serde_json::{Value, json};
use vizit_api::domain::Role;
use vizit_api::identity::EsiaLogin;
use vizit_api::identity::tokens::TokenKey;
use vizit_api::{ApiSettings, Backend};
use vizit_integrations::esia::cert::{certificate_hash, development_certificate};
use vizit_integrations::esia::client::{Esia, Settings};
use vizit_integrations::esia::request::Client;
use vizit_integrations::esia::signer::{CommandSigner, Output, Signer};
use vizit_sandbox::esia::TokenFault;

const CLIENT_ID: &str = "VIZITTEST";
const REDIRECT: &str = "http://vizit.test/login/esia/callback";
const IVANOVA: &str = "1000300001";
const PETROV: &str = "1000300002";
const SMIRNOV: &str = "1000300003";
const KUZNETSOVA: &str = "1000300004";

struct Stand {
    api: TestApi,
    sandbox: vizit_sandbox::Sandbox,
    _running: vizit_sandbox::RunningSandbox,
    root: String,
    http: reqwest::Client,
    _dir: tempdir::Dir,
    /// The cookies' names: `__Host-` prefixed behind TLS.
    nonce_name: &'static str,
    session_name: &'static str,
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// How the test's Vizit is set up.
#[derive(Default)]
struct Setup {
    signer: Option<Arc<dyn Signer>>,
    allow_unconfirmed: bool,
    esia_url: Option<String>,
    /// ESIA signs its tokens with GOST R 34.10-2012 instead of RS256.
    gost_tokens: bool,
    /// Vizit is reached over HTTPS (`secure_cookies`).
    secure: bool,
}

impl Stand {
    async fn new(backend: Backend) -> Stand {
        Self::with(backend, Setup::default()).await
    }

    async fn with(backend: Backend, setup: Setup) -> Stand {
        let dir =
            std::env::temp_dir().join(format!("vizit-esia-{}", uuid::Uuid::new_v4().simple()));
        let (key, cert) = development_certificate(&dir, "/CN=Vizit test/O=Clinic").unwrap();
        let sandbox = vizit_sandbox::Sandbox::new(vizit_sandbox::Bitrix24Options::default());
        let running = sandbox.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        sandbox
            .esia
            .register(
                CLIENT_ID,
                &String::from_utf8_lossy(&cert),
                vec![REDIRECT.into()],
            )
            .unwrap();
        if setup.gost_tokens {
            sandbox.esia.use_gost_tokens().unwrap();
        }
        let token_key = sandbox.esia.token_key_pem().expect("the stand's key");
        let client = Esia::new(
            Settings {
                base_url: setup.esia_url.unwrap_or_else(|| sandbox.esia.base_url()),
                client: Client {
                    client_id: CLIENT_ID.into(),
                    scope: "openid fullname birthdate gender snils id_doc medical_doc email mobile"
                        .into(),
                    scope_org: String::new(),
                    redirect_uri: REDIRECT.into(),
                    certificate_hash: certificate_hash(&cert).unwrap(),
                },
                timeout: Duration::from_secs(5),
            },
            setup
                .signer
                .unwrap_or_else(|| Arc::new(CommandSigner::openssl_gost(key))),
        );
        let mut login = EsiaLogin::new(
            client,
            sandbox.esia.issuer(),
            vec![TokenKey::from_pem(token_key.as_bytes(), &dir).unwrap()],
        );
        login.allow_unconfirmed = setup.allow_unconfirmed;
        let login = Arc::new(login);
        let api = TestApi::spawn_configured(
            backend,
            ApiSettings {
                demo: true,
                secure_cookies: setup.secure,
                ..ApiSettings::default()
            },
            move |s| s.with_esia(login),
        )
        .await;
        let root = api.base.trim_end_matches("/api/v1").to_owned();
        Stand {
            api,
            sandbox,
            _running: running,
            root,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            _dir: tempdir::Dir(dir),
            nonce_name: if setup.secure {
                "__Host-vizit_esia"
            } else {
                "vizit_esia"
            },
            session_name: if setup.secure {
                "__Host-vizit_session"
            } else {
                "vizit_session"
            },
        }
    }

    fn location(res: &reqwest::Response) -> String {
        res.headers()
            .get("location")
            .expect("a redirect")
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
        res.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap()[name.len() + 1..].to_owned())
    }

    /// `/login/esia`: the nonce cookie and the ESIA URL.
    async fn start(&self) -> (String, String) {
        let res = self
            .http
            .get(format!("{}/login/esia", self.root))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "{:?}",
            res.text().await
        );
        let nonce = Self::set_cookie(&res, self.nonce_name).expect("the nonce cookie");
        (nonce, Self::location(&res))
    }

    /// On ESIA's page, the person `oid` (or "refuse") signs in: the redirect back to Vizit.
    async fn at_esia(&self, esia_url: &str, oid: &str) -> String {
        assert!(
            esia_url.contains("code_challenge=") && esia_url.contains("code_challenge_method=S256"),
            "PKCE is sent: {esia_url}"
        );
        let page = self.http.get(esia_url).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        let request = html
            .split("name=\"request\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("the stand's login page")
            .to_owned();
        let base = self.sandbox.esia.base_url();
        let res = self
            .http
            .post(format!("{base}/aas/oauth2/v2/ac/login"))
            .form(&[("request", request.as_str()), ("oid", oid)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        Self::location(&res)
    }

    /// Vizit's callback, reached with the browser's `nonce` cookie (or none).
    async fn callback(&self, redirect: &str, nonce: Option<&str>) -> reqwest::Response {
        let path = redirect
            .strip_prefix("http://vizit.test")
            .expect("our redirect_uri");
        let mut req = self.http.get(format!("{}{path}", self.root));
        if let Some(n) = nonce {
            req = req.header("cookie", format!("{}={n}", self.nonce_name));
        }
        req.send().await.unwrap()
    }

    /// The consent page's POST.
    async fn consents(
        &self,
        nonce: &str,
        registration: &str,
        given: &[&str],
        action: &str,
    ) -> reqwest::Response {
        let mut form = vec![
            ("r", registration.to_owned()),
            ("action", action.to_owned()),
        ];
        for g in given {
            form.push((g, "yes".into()));
        }
        self.http
            .post(format!("{}/login/esia/consents", self.root))
            .header("cookie", format!("{}={nonce}", self.nonce_name))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// A person signs in all the way; returns the session cookie and whether consents were asked.
    async fn sign_in(&self, oid: &str) -> (String, bool) {
        let (nonce, url) = self.start().await;
        let back = self.at_esia(&url, oid).await;
        let res = self.callback(&back, Some(&nonce)).await;
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "{:?}",
            res.text().await
        );
        if let Some(session) = Self::set_cookie(&res, self.session_name) {
            assert_eq!(Self::location(&res), "/consultations");
            return (session, false);
        }
        let to = Self::location(&res);
        let registration = to
            .strip_prefix("/login/esia/consents?r=")
            .expect("the consent page")
            .to_owned();
        let page = self
            .http
            .get(format!("{}{to}", self.root))
            .header("cookie", format!("{}={nonce}", self.nonce_name))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains("data-testid=\"consents-form\""), "{html}");
        let res = self
            .consents(
                &nonce,
                &registration,
                &["personal_data", "health_data", "offer"],
                "accept",
            )
            .await;
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "{:?}",
            res.text().await
        );
        assert_eq!(Self::location(&res), "/consultations");
        let cookie = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with(&format!("{}=", self.session_name)))
            .expect("a session cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        (Self::set_cookie(&res, self.session_name).unwrap(), true)
    }

    /// An API call as the browser with its session cookie (same-origin).
    async fn as_browser(
        &self,
        method: reqwest::Method,
        path: &str,
        session: &str,
    ) -> (StatusCode, Value) {
        let res = self
            .http
            .request(method, format!("{}{path}", self.api.base))
            .header("cookie", format!("{}={session}", self.session_name))
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn patients(&self) -> i64 {
        self.api
            .count("SELECT COUNT(*) FROM users WHERE role = 'patient'")
            .await
    }

    async fn sessions(&self) -> i64 {
        self.api.count("SELECT COUNT(*) FROM sessions").await
    }

    /// A failure page: its reason, and nothing was created.
    async fn refused(&self, res: reqwest::Response, reason: &str, before: (i64, i64)) {
        assert!(res.status().is_client_error() || res.status().is_server_error());
        assert!(Self::set_cookie(&res, self.session_name).is_none());
        let html = res.text().await.unwrap();
        assert!(
            html.contains(&format!("data-reason=\"{reason}\"")),
            "expected {reason}: {html}"
        );
        assert!(html.contains("lang=\"ru\"") && html.contains("href=\"/login/esia\""));
        assert_eq!((self.patients().await, self.sessions().await), before);
    }
}

async fn registers_and_signs_in_again(backend: Backend) {
    let s = Stand::new(backend).await;
    let before = s.patients().await;
    let (session, asked) = s.sign_in(IVANOVA).await;
    assert!(asked, "a new person gives consents first");
    assert_eq!(s.patients().await, before + 1);
    let (status, me) = s.as_browser(reqwest::Method::GET, "/me", &session).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["role"], "patient");
    assert_eq!(me["via"], "esia");
    assert_eq!(me["name"], "Иванова Мария Петровна");
    let id = me["id"].as_str().unwrap().to_owned();

    // «Мои данные»: what ESIA gave, the consents each with its version.
    let (status, data) = s
        .as_browser(reqwest::Method::GET, "/me/personal-data", &session)
        .await;
    assert_eq!(status, StatusCode::OK, "{data}");
    assert_eq!(data["esiaOid"], IVANOVA);
    assert_eq!(data["data"]["birthDate"], "1985-03-14");
    assert_eq!(data["data"]["snils"], "11223344595");
    assert_eq!(data["data"]["omsPolicy"], "7755440011223344");
    assert_eq!(data["data"]["passport"]["series"], "4510");
    assert_eq!(data["data"]["mobile"], "+79001112233");
    assert_eq!(data["data"]["trusted"], true);
    let kinds: Vec<&str> = data["consents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 3);
    for k in ["personal_data", "health_data", "offer"] {
        assert!(kinds.contains(&k), "{data}");
    }
    assert!(
        data["consents"][0]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    let first_fetch = data["fetchedAt"].as_str().unwrap().to_owned();

    // Again: straight in, the same patient, the data refreshed, nothing duplicated.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (again, asked) = s.sign_in(IVANOVA).await;
    assert!(!asked, "a known person is not asked again");
    let (_, me) = s.as_browser(reqwest::Method::GET, "/me", &again).await;
    assert_eq!(me["id"], id.as_str());
    assert_eq!(s.patients().await, before + 1);
    let (_, data) = s
        .as_browser(reqwest::Method::GET, "/me/personal-data", &again)
        .await;
    assert_ne!(data["fetchedAt"].as_str().unwrap(), first_fetch);
    assert_eq!(s.api.count("SELECT COUNT(*) FROM consents").await, 3);
    // ESIA's tokens are never stored; the sign-ins left no usable state behind.
    assert_eq!(
        s.api
            .count("SELECT COUNT(*) FROM esia_logins WHERE used_at IS NULL")
            .await,
        0
    );
    // The audit log has the registration and the sign-in, without personal data.
    let registered = s
        .api
        .count("SELECT COUNT(*) FROM audit_log WHERE action = 'patient.register'")
        .await;
    let logged_in = s
        .api
        .count("SELECT COUNT(*) FROM audit_log WHERE action = 'session.esia_login'")
        .await;
    assert_eq!((registered, logged_in), (1, 1));
    assert_eq!(
        s.api
            .count("SELECT COUNT(*) FROM audit_log WHERE details LIKE '%1122334%' OR details LIKE '%Иванова%'")
            .await,
        0
    );

    // The clinic reads the data (audited); a doctor without a consultation cannot.
    s.api.staff(Role::Admin, "admin@clinic.test").await;
    s.api.staff(Role::Doctor, "doctor@clinic.test").await;
    let admin = s.api.login("admin@clinic.test").await;
    let doctor = s.api.login("doctor@clinic.test").await;
    let (status, read) = s
        .api
        .get(&format!("/patients/{id}/personal-data"), &admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["data"]["lastName"], "Иванова");
    let (status, _) = s
        .api
        .get(&format!("/patients/{id}/personal-data"), &doctor)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.api
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'personal_data.read'")
            .await,
        1
    );

    // Logout by cookie: from another site refused, from Vizit's page the session ends.
    let res = s
        .http
        .post(format!("{}/auth/logout", s.api.base))
        .header("cookie", format!("vizit_session={again}"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let (status, _) = s.as_browser(reqwest::Method::GET, "/me", &again).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .as_browser(reqwest::Method::POST, "/auth/logout", &again)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.as_browser(reqwest::Method::GET, "/me", &again).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // …and ESIA's session too, when the clinic wants it.
    let res = s
        .http
        .get(format!("{}/login/esia/logout", s.root))
        .send()
        .await
        .unwrap();
    let to = Stand::location(&res);
    assert!(
        to.starts_with(&format!(
            "{}/idp/ext/Logout?client_id={CLIENT_ID}",
            s.sandbox.esia.base_url()
        )),
        "{to}"
    );
    let res = s.http.get(&to).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(s.sandbox.esia.logouts(), 1);
}
on_both_databases!(registration_then_login, super::registers_and_signs_in_again);

/// The clinic's record is linked on a verified match only: SNILS; or name + birth date + a
/// confirmed phone. A weak match (the same e-mail, another name) makes a new record.
async fn links_on_verified_matches_only(backend: Backend) {
    let s = Stand::new(backend).await;
    s.api.staff(Role::Admin, "admin@clinic.test").await;
    let admin = s.api.login("admin@clinic.test").await;
    let (status, key) = s
        .api
        .post("/api-keys", &admin, json!({"name": "portal"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let portal = key["key"].as_str().unwrap().to_owned();
    let (status, bad) = s
        .api
        .post(
            "/patients",
            &portal,
            json!({"name": "X", "snils": "987-654-321 00"}),
        )
        .await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_field"))
    );
    // SNILS (and the birth date agrees; the name is written otherwise).
    let (kuznetsova, _) = s
        .api
        .register_patient(
            &portal,
            json!({"name": "О. В. Кузнецова", "snils": "987-654-321 83", "birthDate": "1958-01-09"}),
        )
        .await;
    // Name + birth date + the phone ESIA confirmed.
    let (petrov, _) = s
        .api
        .register_patient(
            &portal,
            json!({"name": "Петров Сергей Иванович", "birthDate": "1972-11-02", "phone": "8 911 222-33-44"}),
        )
        .await;
    // Ivanova's SNILS typed into someone else's record (another name and birth date): a SNILS
    // alone hands nobody's record over.
    let (child, _) = s
        .api
        .register_patient(
            &portal,
            json!({"name": "Чужой Ребёнок", "snils": "112-233-445 95", "birthDate": "2015-05-05"}),
        )
        .await;
    // The same e-mail as ESIA's, but another person's name: not linked.
    let (other, _) = s
        .api
        .register_patient(
            &portal,
            json!({"name": "Другой Человек", "email": "ivanova@example.ru"}),
        )
        .await;
    let before = s.patients().await;

    let (session, asked) = s.sign_in(KUZNETSOVA).await;
    assert!(asked);
    let (_, me) = s.as_browser(reqwest::Method::GET, "/me", &session).await;
    assert_eq!(me["id"], kuznetsova.as_str(), "linked by SNILS");

    let (session, _) = s.sign_in(PETROV).await;
    let (_, me) = s.as_browser(reqwest::Method::GET, "/me", &session).await;
    assert_eq!(
        me["id"],
        petrov.as_str(),
        "linked by name, birth date and phone"
    );
    assert_eq!(s.patients().await, before, "nobody new");

    let (session, _) = s.sign_in(IVANOVA).await;
    let (_, me) = s.as_browser(reqwest::Method::GET, "/me", &session).await;
    assert_ne!(me["id"], other.as_str(), "a weak match is never merged");
    assert_ne!(me["id"], child.as_str(), "a SNILS alone is not a match");
    assert_eq!(s.patients().await, before + 1);
    // The e-mail stays with the record that had it.
    assert_eq!(
        s.api
            .count(&format!(
                "SELECT COUNT(*) FROM users WHERE email = 'ivanova@example.ru' AND id = '{other}'"
            ))
            .await,
        1
    );
    let links = s
        .api
        .count("SELECT COUNT(*) FROM audit_log WHERE action = 'identity.link'")
        .await;
    assert_eq!(links, 2);
}
on_both_databases!(linking, super::links_on_verified_matches_only);

/// An unconfirmed account is refused unless the clinic allows it; declining the consents
/// creates nothing; missing consents re-ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfirmed_accounts_and_consents() {
    let s = Stand::new(Backend::Sqlite).await;
    let before = (s.patients().await, s.sessions().await);
    let (nonce, url) = s.start().await;
    let back = s.at_esia(&url, SMIRNOV).await;
    s.refused(s.callback(&back, Some(&nonce)).await, "unconfirmed", before)
        .await;

    // Declining the consents: nothing is kept.
    let (nonce, url) = s.start().await;
    let back = s.at_esia(&url, PETROV).await;
    let res = s.callback(&back, Some(&nonce)).await;
    let to = Stand::location(&res);
    let registration = to.strip_prefix("/login/esia/consents?r=").unwrap();
    // Two of three: asked again, nothing created.
    let res = s
        .consents(&nonce, registration, &["personal_data", "offer"], "accept")
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("consents-error"));
    assert_eq!((s.patients().await, s.sessions().await), before);
    // Another browser cannot finish it.
    s.refused(
        s.consents(
            "someone-else",
            registration,
            &["personal_data", "health_data", "offer"],
            "accept",
        )
        .await,
        "state",
        before,
    )
    .await;
    let res = s.consents(&nonce, registration, &[], "decline").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("consents-declined"));
    assert_eq!(
        s.api.count("SELECT COUNT(*) FROM esia_registrations").await,
        0
    );
    assert_eq!((s.patients().await, s.sessions().await), before);

    let s = Stand::with(
        Backend::Sqlite,
        Setup {
            allow_unconfirmed: true,
            ..Setup::default()
        },
    )
    .await;
    let (session, _) = s.sign_in(SMIRNOV).await;
    let (_, data) = s
        .as_browser(reqwest::Method::GET, "/me/personal-data", &session)
        .await;
    assert_eq!(data["data"]["trusted"], false);
    assert!(data["data"].get("snils").is_none());
}

/// Every way the callback can go wrong ends on a page with its reason, without a session or
/// a patient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_faults() {
    let s = Stand::new(Backend::Sqlite).await;
    let before = (s.patients().await, s.sessions().await);

    // No state / no cookie / another browser's cookie.
    let (nonce, url) = s.start().await;
    let back = s.at_esia(&url, IVANOVA).await;
    let no_state = back.split("&state=").next().unwrap().to_owned();
    s.refused(s.callback(&no_state, Some(&nonce)).await, "state", before)
        .await;
    s.refused(s.callback(&back, None).await, "state", before)
        .await;
    let (other_nonce, _) = s.start().await;
    s.refused(s.callback(&back, Some(&other_nonce)).await, "state", before)
        .await;
    // The first tries used nothing: the right browser still finishes…
    let res = s.callback(&back, Some(&nonce)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // …once: the same redirect again is refused.
    s.refused(
        s.callback(&back, Some(&nonce)).await,
        "state",
        s_counts(&s).await,
    )
    .await;
    let before = s_counts(&s).await;

    // A used code under a fresh state: ESIA refuses it.
    let code = back
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let (nonce, url) = s.start().await;
    let fresh = s.at_esia(&url, IVANOVA).await;
    let state = fresh.split("state=").nth(1).unwrap().to_owned();
    let replay = format!("http://vizit.test/login/esia/callback?code={code}&state={state}");
    s.refused(
        s.callback(&replay, Some(&nonce)).await,
        "token_refused",
        before,
    )
    .await;
    // An expired code.
    let (nonce, url) = s.start().await;
    let back = s.at_esia(&url, IVANOVA).await;
    s.sandbox.esia.expire_codes();
    s.refused(
        s.callback(&back, Some(&nonce)).await,
        "token_refused",
        before,
    )
    .await;
    // The person refuses on ESIA's page.
    let (nonce, url) = s.start().await;
    let back = s.at_esia(&url, "refuse").await;
    assert!(back.contains("error=access_denied"), "{back}");
    s.refused(s.callback(&back, Some(&nonce)).await, "refused", before)
        .await;

    // ESIA's token answer goes wrong.
    for (fault, reason) in [
        (TokenFault::OtherKey, "token"),
        (TokenFault::WrongIssuer, "token"),
        (TokenFault::WrongAudience, "token"),
        (TokenFault::Expired, "token"),
        (TokenFault::NarrowScope, "scopes"),
        (TokenFault::Unavailable, "unavailable"),
        (TokenFault::Garbage, "unavailable"),
    ] {
        let (nonce, url) = s.start().await;
        let back = s.at_esia(&url, KUZNETSOVA).await;
        s.sandbox.esia.fail_next_token(fault);
        s.refused(s.callback(&back, Some(&nonce)).await, reason, before)
            .await;
    }
    // Nothing the sandbox refused was Vizit's request: every signed request was right.
    assert!(
        s.sandbox
            .esia
            .refusals()
            .iter()
            .all(|r| r.starts_with("ESIA-007006")),
        "{:?}",
        s.sandbox.esia.refusals()
    );
}

/// ESIA that signs its tokens with GOST R 34.10-2012 (`GOST3410_2012_256`): Vizit checks them
/// with OpenSSL's GOST engine and ESIA's GOST key, and refuses another key's, another issuer's
/// and expired ones as it does RS256 tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gost_signed_tokens() {
    let s = Stand::with(
        Backend::Sqlite,
        Setup {
            gost_tokens: true,
            ..Setup::default()
        },
    )
    .await;
    let (session, asked) = s.sign_in(IVANOVA).await;
    assert!(asked);
    let (_, me) = s.as_browser(reqwest::Method::GET, "/me", &session).await;
    assert_eq!(me["via"], "esia");
    let before = s_counts(&s).await;
    for fault in [
        TokenFault::OtherKey,
        TokenFault::WrongIssuer,
        TokenFault::WrongAudience,
        TokenFault::Expired,
    ] {
        let (nonce, url) = s.start().await;
        let back = s.at_esia(&url, PETROV).await;
        s.sandbox.esia.fail_next_token(fault);
        s.refused(s.callback(&back, Some(&nonce)).await, "token", before)
            .await;
    }
    // Known again: straight in with a good GOST token.
    let (_, asked) = s.sign_in(IVANOVA).await;
    assert!(!asked);
}

/// Behind TLS the cookies are `__Host-` prefixed and `Secure` (no sibling subdomain can plant
/// or shadow them); the plain name is not believed there, nor is a cookie sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_cookies_are_host_prefixed() {
    let s = Stand::with(
        Backend::Sqlite,
        Setup {
            secure: true,
            ..Setup::default()
        },
    )
    .await;
    let res = s
        .http
        .get(format!("{}/login/esia", s.root))
        .send()
        .await
        .unwrap();
    let set: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        set.iter().any(|c| c.starts_with("__Host-vizit_esia=")
            && c.contains("Path=/;")
            && c.contains("; Secure")),
        "{set:?}"
    );
    let (session, _) = s.sign_in(PETROV).await;
    let (status, _) = s.as_browser(reqwest::Method::GET, "/me", &session).await;
    assert_eq!(status, StatusCode::OK);
    let plain = s
        .http
        .get(format!("{}/me", s.api.base))
        .header("cookie", format!("vizit_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::UNAUTHORIZED);
    let twice = s
        .http
        .get(format!("{}/me", s.api.base))
        .header(
            "cookie",
            format!("__Host-vizit_session={session}; __Host-vizit_session=vzs_planted"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), StatusCode::UNAUTHORIZED);
}

async fn s_counts(s: &Stand) -> (i64, i64) {
    (s.patients().await, s.sessions().await)
}

/// ESIA down altogether, and the signer failing: a missing command, a non-zero exit, a
/// timeout. The patient gets a page; nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esia_down_and_signer_faults() {
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let s = Stand::with(
        Backend::Sqlite,
        Setup {
            esia_url: Some(format!("http://{closed}/esia")),
            ..Setup::default()
        },
    )
    .await;
    let before = s_counts(&s).await;
    let (nonce, url) = s.start().await;
    // The browser is on the (real) stand's page; the server's exchange meets the closed port.
    let real = url.replace(&format!("http://{closed}/esia"), &s.sandbox.esia.base_url());
    let back = s.at_esia(&real, IVANOVA).await;
    s.refused(s.callback(&back, Some(&nonce)).await, "unavailable", before)
        .await;

    for signer in [
        CommandSigner {
            program: "/nonexistent/csptest".into(),
            args: vec![],
            output: Output::Raw,
            reverse: false,
            timeout: Duration::from_secs(5),
        },
        CommandSigner {
            program: "false".into(),
            args: vec![],
            output: Output::Raw,
            reverse: false,
            timeout: Duration::from_secs(5),
        },
        CommandSigner {
            program: "sleep".into(),
            args: vec!["10".into()],
            output: Output::Raw,
            reverse: false,
            timeout: Duration::from_millis(300),
        },
    ] {
        let s = Stand::with(
            Backend::Sqlite,
            Setup {
                signer: Some(Arc::new(signer)),
                ..Setup::default()
            },
        )
        .await;
        let before = s_counts(&s).await;
        let res = s
            .http
            .get(format!("{}/login/esia", s.root))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        s.refused(res, "signer", before).await;
    }
}

/// The ESIA sign-in is the patient's whole way in: book, join (the identification is
/// recorded with the ESIA oid and trust), and the doctor reads the patient's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identification_per_consultation() {
    let s = Stand::new(Backend::Sqlite).await;
    s.api.staff(Role::Admin, "admin@clinic.test").await;
    let doctor_id = s.api.staff(Role::Doctor, "doctor@clinic.test").await;
    let admin = s.api.login("admin@clinic.test").await;
    let doctor = s.api.login("doctor@clinic.test").await;
    let (session, _) = s.sign_in(IVANOVA).await;
    let slot = s.api.slot(&admin, &doctor_id, 5).await;
    let res = s
        .http
        .post(format!("{}/consultations", s.api.base))
        .header("cookie", format!("vizit_session={session}"))
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"slotId": slot}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let booked: Value = res.json().await.unwrap();
    let id = booked["id"].as_str().unwrap().to_owned();
    // A booking from another site with the cookie is refused.
    let res = s
        .http
        .post(format!("{}/consultations", s.api.base))
        .header("cookie", format!("vizit_session={session}"))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"slotId": slot}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    s.api.mark_paid(&admin, &id).await;
    let (status, _) = s
        .as_browser(
            reqwest::Method::POST,
            &format!("/consultations/{id}/join"),
            &session,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .api
        .post(&format!("/consultations/{id}/join"), &doctor, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, ids) = s
        .api
        .get(&format!("/consultations/{id}/identifications"), &doctor)
        .await;
    assert_eq!(status, StatusCode::OK, "{ids}");
    let ids = ids.as_array().unwrap();
    assert_eq!(ids.len(), 2);
    // Both joined within the same millisecond, perhaps: find each by role.
    let of = |role: &str| ids.iter().find(|i| i["role"] == role).unwrap().clone();
    let (patient, doc) = (of("patient"), of("doctor"));
    assert_eq!(patient["method"], "esia");
    assert_eq!(patient["esiaOid"], IVANOVA);
    assert_eq!(patient["trusted"], true);
    assert_eq!(doc["method"], "password");
    assert!(doc.get("esiaOid").is_none());
    // The patient does not read the list; the doctor reads the patient's data (audited).
    let (status, _) = s
        .as_browser(
            reqwest::Method::GET,
            &format!("/consultations/{id}/identifications"),
            &session,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, data) = s
        .api
        .get(&format!("/consultations/{id}/patient-data"), &doctor)
        .await;
    assert_eq!(status, StatusCode::OK, "{data}");
    assert_eq!(data["data"]["omsPolicy"], "7755440011223344");
    let other = s.api.staff(Role::Doctor, "other@clinic.test").await;
    let _ = other;
    let other = s.api.login("other@clinic.test").await;
    let (status, _) = s
        .api
        .get(&format!("/consultations/{id}/patient-data"), &other)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
