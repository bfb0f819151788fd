//! ESIA sign-in as configured (`[esia]`), or in demo mode the sandbox's ESIA: a GOST
//! certificate generated once under `data_dir/esia-demo` and registered with the stand, the
//! stand's token key, OpenSSL's GOST engine as the signer.

use std::sync::Arc;

use anyhow::Context as _;
use tracing::{info, warn};
use vizit_api::identity::EsiaLogin;
use vizit_api::identity::tokens::TokenKey;
use vizit_integrations::esia::cert::{certificate_hash, development_certificate, public_key_pem};
use vizit_integrations::esia::client::{Esia, Settings as ClientSettings};
use vizit_integrations::esia::request::Client;
use vizit_integrations::esia::signer::CommandSigner;

use crate::config::Settings;

/// The sandbox's mnemonic for the demo.
const DEMO_CLIENT_ID: &str = "VIZITDEMO";

fn login(
    settings: &Settings,
    client: Esia,
    issuer: String,
    keys: Vec<TokenKey>,
    public: &str,
) -> EsiaLogin {
    let e = &settings.esia;
    let mut l = EsiaLogin::new(client, issuer, keys);
    l.required_scopes = e.required_scopes.clone();
    l.allow_unconfirmed = e.allow_unconfirmed;
    l.pkce = e.pkce;
    l.logout_with_esia = e.logout_with_esia;
    l.public_url = public.to_owned();
    l.consent_version = e.consent_version.clone();
    l.offer_url = e.offer_url.clone();
    l.policy_url = e.policy_url.clone();
    l
}

/// ESIA sign-in, if configured or (demo) the sandbox is there; `public` is where browsers
/// reach Vizit (the redirect URI is `{public}/login/esia/callback`).
pub async fn esia_login(
    settings: &Settings,
    sandbox: Option<&vizit_sandbox::Sandbox>,
    public: &str,
) -> anyhow::Result<Option<Arc<EsiaLogin>>> {
    let e = &settings.esia;
    let redirect_uri = format!("{public}/login/esia/callback");
    if let Some(client_id) = &e.client_id {
        let certificate = e.certificate.clone().unwrap_or_default();
        let bytes = std::fs::read(&certificate)
            .with_context(|| format!("esia.certificate: cannot read {}", certificate.display()))?;
        let hash =
            certificate_hash(&bytes).context("esia.certificate: not a PEM or DER certificate")?;
        let mut keys = Vec::new();
        let key_dir = settings.data_dir.join("esia-keys");
        for path in &e.token_keys {
            let pem = public_key_pem(path).map_err(|m| anyhow::anyhow!("esia.token_keys: {m}"))?;
            keys.push(
                TokenKey::from_pem(&pem, &key_dir)
                    .map_err(|m| anyhow::anyhow!("esia.token_keys: {}: {m}", path.display()))?,
            );
        }
        let client = Esia::new(
            ClientSettings {
                base_url: e.base_url.clone(),
                client: Client {
                    client_id: client_id.clone(),
                    scope: e.scope.clone(),
                    scope_org: String::new(),
                    redirect_uri,
                    certificate_hash: hash,
                },
                timeout: e.request_timeout,
            },
            settings.esia_signer(),
        );
        info!(client_id = %client_id, esia = %e.base_url, signer = e.signer.kind.as_str(), "patients sign in through ESIA");
        return Ok(Some(Arc::new(login(
            settings,
            client,
            e.issuer.clone(),
            keys,
            public,
        ))));
    }
    let Some(sandbox) = sandbox else {
        return Ok(None);
    };
    let dir = settings.data_dir.join("esia-demo");
    let made = tokio::task::spawn_blocking(move || {
        development_certificate(&dir, "/CN=Vizit demo/O=Demo clinic")
    })
    .await
    .context("generating the demo's GOST certificate")?;
    let (key_file, cert_pem) = match made {
        Ok(k) => k,
        Err(m) => {
            warn!(error = %m, "demo: no GOST certificate (is libengine-gost-openssl installed?): ESIA sign-in is off");
            return Ok(None);
        }
    };
    let stand = sandbox.esia.clone();
    let cert_text = String::from_utf8_lossy(&cert_pem).into_owned();
    let uri = redirect_uri.clone();
    let registered = tokio::task::spawn_blocking(move || {
        stand.register(DEMO_CLIENT_ID, &cert_text, vec![uri])?;
        stand
            .token_key_pem()
            .ok_or_else(|| "the stand has no token key (is OpenSSL installed?)".to_owned())
    })
    .await
    .context("registering with the sandbox's ESIA")?;
    let pem = match registered {
        Ok(p) => p,
        Err(m) => {
            warn!(error = %m, "demo: the sandbox's ESIA is unusable: ESIA sign-in is off");
            return Ok(None);
        }
    };
    let key = TokenKey::from_pem(pem.as_bytes(), &settings.data_dir.join("esia-keys"))
        .map_err(|m| anyhow::anyhow!("the sandbox's token key: {m}"))?;
    let client = Esia::new(
        ClientSettings {
            base_url: sandbox.esia.base_url(),
            client: Client {
                client_id: DEMO_CLIENT_ID.into(),
                scope: e.scope.clone(),
                scope_org: String::new(),
                redirect_uri,
                certificate_hash: certificate_hash(&cert_pem).context("the demo certificate")?,
            },
            timeout: e.request_timeout,
        },
        Arc::new(CommandSigner::openssl_gost(key_file)),
    );
    info!(esia = %sandbox.esia.base_url(), "ESIA: the sandbox (demo mode): «Войти через Госуслуги» signs in test persons");
    let mut l = login(settings, client, sandbox.esia.issuer(), vec![key], public);
    // The stand has unconfirmed test persons: the demo shows how they are turned away.
    l.allow_unconfirmed = e.allow_unconfirmed;
    Ok(Some(Arc::new(l)))
}
