//! Start-up wiring: binds every listener (port 0 works, for tests), connects media, signaling and
//! HTTP, and shuts them down in order.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tracing::{info, warn};
use vizit_api::slots::bitrix24::Bitrix24;
use vizit_media::{MediaHandle, MediaServer, SfuOptions};
use vizit_signaling::{SignalingState, TokenKeys};

use crate::config::Settings;
use crate::http::{self, HttpState};

/// The address the sandbox's YooKassa sends notifications from (a loopback address of its
/// own, so the address check is real in demo mode too).
const SANDBOX_SOURCE: std::net::IpAddr =
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// How long shutdown waits for open connections after telling them to close.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits for recorders to finish their files.
const RECORDER_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Application {
    settings: Settings,
    http: tokio::net::TcpListener,
    http_addr: SocketAddr,
    https: Option<(tokio::net::TcpListener, tokio_rustls::TlsAcceptor)>,
    limits: std::sync::Arc<crate::serve::ServeLimits>,
    https_addr: Option<SocketAddr>,
    media: MediaServer,
    media_handle: MediaHandle,
    room_events: tokio::sync::mpsc::UnboundedReceiver<vizit_media::RoomEvent>,
    live: std::sync::Arc<vizit_recordings::live::LiveRecorder>,
    app: Router,
    api: vizit_api::ApiState,
    sandbox: Option<(vizit_sandbox::Sandbox, vizit_sandbox::RunningSandbox)>,
    /// The sandbox's SMTP server (demo mode without `email.smtp_url`).
    mail_capture: Option<vizit_sandbox::mail::RunningSmtp>,
    shutdown: watch::Sender<bool>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        // Two TLS crypto providers are linked (aws-lc-rs for serving, ring inside reqwest): name
        // the process default so every TLS config agrees. Already set (tests): fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        keep_data_private(&settings);
        let (max_sockets, max_connections) = fit_connections(
            raise_open_files(),
            settings.signaling.max_sockets,
            settings.http.max_connections,
            settings.tls.cert.is_some(),
        );
        let secret = settings.token_secret()?;
        let keys = TokenKeys::new(&secret).context("auth.token_secret")?;

        let db =
            vizit_api::Db::connect(&settings.database_url()?, settings.database.max_connections)
                .await
                .context("database.url")?;
        info!(backend = ?db.backend, "database ready (migrations applied)");
        let mut api =
            vizit_api::ApiState::new(db, keys.clone(), settings.api_settings()).with_documents();

        // Recordings: the object store and the spool in front of it.
        let store = std::sync::Arc::new(settings.object_store());
        let spool = vizit_recordings::Spool::open(settings.spool_dir(), store.clone())
            .with_context(|| {
                format!(
                    "recordings.spool_dir: cannot use {}",
                    settings.spool_dir().display()
                )
            })?;
        let url_key = {
            use sha2::Digest;
            sha2::Sha256::digest(format!("vizit recording links|{}", secret.expose_secret()))
                .to_vec()
        };
        let retention = (settings.recordings.retention_days > 0)
            .then(|| Duration::from_secs(u64::from(settings.recordings.retention_days) * 86_400));
        api = api.with_recordings(std::sync::Arc::new(vizit_api::recordings::Recordings::new(
            spool,
            settings.recordings.link_ttl,
            retention,
            url_key,
        )));
        info!(store = %store.describe(), "recordings storage ready");

        let options = SfuOptions::new(Vec::new())
            .max_participants(settings.media.max_participants)
            .ice_timeout(settings.media.ice_timeout)
            .connect_timeout(settings.media.connect_timeout)
            .fast_forwarding(settings.media.fast_forwarding)
            .fast_receiving(settings.media.fast_receiving);
        // Recording: the SFU hands each recorded room's frames to the live recorder, which
        // reports finished files to the catalogue.
        let work_dir = settings.recording_work_dir();
        let recorded = vizit_api::recordings::live::recover_interrupted(&api, &work_dir)
            .await
            .context("settling recordings interrupted by the last stop")?;
        if recorded != (0, 0) {
            info!(
                adopted = recorded.0,
                failed = recorded.1,
                "interrupted recordings settled"
            );
        }
        let live = vizit_recordings::live::LiveRecorder::new(
            &work_dir,
            std::sync::Arc::new(crate::calls::RecorderReports(std::sync::Arc::new(
                vizit_api::recordings::CatalogueSink::new(
                    api.clone(),
                    tokio::runtime::Handle::current(),
                    &work_dir,
                ),
            ))),
        )
        .with_context(|| format!("recordings.work_dir: cannot use {}", work_dir.display()))?;
        let options = options.recording(settings.recordings.mode, live.clone());
        let announce_ip = settings.announce_ip();
        if announce_ip.is_loopback() && settings.media.udp_bind.ip().is_unspecified() {
            warn!(
                "no network interface besides loopback: media is announced on {announce_ip}, which \
                 only this machine reaches; set media.public_ip for other devices"
            );
        }
        let (mut media, media_handle) = MediaServer::bind(
            settings.media.udp_bind,
            announce_ip,
            options,
            settings.media.socket_buffer_bytes,
            settings.media.threads,
            settings.media.ice_tcp(),
        )
        .await
        .context("media.udp_bind, media.tcp_port")?;
        let room_events = media.room_events();

        let http = tokio::net::TcpListener::bind(settings.http.listen)
            .await
            .with_context(|| format!("http.listen: cannot listen on {}", settings.http.listen))?;
        let http_addr = http.local_addr()?;
        // This server as the sandbox's webhooks reach it.
        let local = if http_addr.ip().is_unspecified() {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, http_addr.port()))
        } else {
            http_addr
        };

        if settings.demo && settings.allow_public_demo {
            warn!(
                "DEMO MODE IS REACHABLE BEYOND LOOPBACK (allow_public_demo = true): anyone who opens \
                 /demo gets a clinic-admin session. Never do this with real patients' data."
            );
        }

        // The stand-ins of external systems, in demo mode, for what is not configured.
        let mut sandbox = None;
        if settings.demo
            && (settings.bitrix24.webhook_url.is_none()
                || settings.yookassa.shop_id.is_none()
                || settings.email.smtp_url.is_none()
                || settings.max.token.is_none()
                || settings.edna.api_key.is_none()
                || settings.esia.client_id.is_none())
        {
            let stand_in = vizit_sandbox::Sandbox::with(
                vizit_sandbox::Bitrix24Options::default(),
                vizit_sandbox::YooKassaOptions {
                    notification_source: Some(SANDBOX_SOURCE),
                    notification_url: Some(format!(
                        "http://{local}/api/v1/integrations/yookassa/notifications"
                    )),
                    ..Default::default()
                },
            );
            let running = stand_in
                .start(settings.sandbox.listen)
                .await
                .with_context(|| {
                    format!(
                        "sandbox.listen: cannot listen on {}",
                        settings.sandbox.listen
                    )
                })?;
            info!(url = %running.url(), "sandbox of external systems started (demo mode)");
            sandbox = Some((stand_in, running));
        }

        // Bitrix24: the configured portal, or in demo mode the built-in sandbox.
        if let Some(url) = &settings.bitrix24.webhook_url {
            if settings.bitrix24.application_token.is_none() {
                warn!(
                    "bitrix24.application_token is not set: ONBOOKING* events will be refused \
                     and slots follow Bitrix24 only at each bitrix24.sync_interval"
                );
            }
            api = api.with_bitrix24(Bitrix24::new(settings.bitrix24_settings(url.clone(), None)));
        } else if let Some((stand_in, _)) = &sandbox {
            let token = SecretString::from(stand_in.bitrix24.options().application_token.clone());
            let webhook = SecretString::from(stand_in.bitrix24.webhook_url());
            api = api.with_bitrix24(Bitrix24::new(
                settings.bitrix24_settings(webhook, Some(token)),
            ));
            stand_in.bitrix24.set_event_handler(Some(format!(
                "http://{local}/api/v1/integrations/bitrix24/events"
            )));
            info!("Bitrix24: the sandbox (demo mode): slots come from it");
        }

        // Payments: the configured YooKassa shop, or in demo mode the sandbox's.
        let return_base = if settings.http.public_url.is_empty() {
            format!("http://{}", display_addr(local))
        } else {
            settings.http.public_url.trim_end_matches('/').to_owned()
        };
        let yookassa = match (&settings.yookassa.shop_id, &settings.yookassa.secret_key) {
            (Some(id), Some(key)) => Some((
                settings.yookassa_client(
                    settings.yookassa.api_url.clone(),
                    id.clone(),
                    key.clone(),
                ),
                settings.payment_settings(&return_base),
            )),
            _ => sandbox.as_ref().map(|(stand_in, _)| {
                let y = &stand_in.yookassa;
                let mut rules = settings.payment_settings(&return_base);
                rules.notification_sources = vec![SANDBOX_SOURCE.into()];
                (
                    settings.yookassa_client(
                        y.api_url(),
                        y.options().shop_id.clone(),
                        SecretString::from(y.options().secret_key.clone()),
                    ),
                    rules,
                )
            }),
        };
        if let Some((client, rules)) = yookassa {
            if settings.yookassa.shop_id.is_some() {
                info!(shop = %client.shop_id, api = %client.api_url, "online payments through YooKassa");
            } else {
                info!("YooKassa: the sandbox (demo mode): payments are taken on its test page");
            }
            api = api.with_payments(vizit_api::payments::Payments::new(
                vizit_integrations::yookassa::Client::new(client),
                rules,
            ));
        } else {
            info!(
                "no YooKassa shop configured (yookassa.shop_id): bookings are marked paid by the clinic"
            );
        }

        // Patients' sign-in: the configured ESIA, or in demo mode the sandbox's.
        if let Some(esia) =
            crate::esia::esia_login(&settings, sandbox.as_ref().map(|(s, _)| s), &return_base)
                .await?
        {
            api = api.with_esia(esia);
        }

        // E-mail: the configured SMTP server, or in demo mode the sandbox's mail capture.
        let mut mail_capture = None;
        let smtp_url = match (&settings.email.smtp_url, &sandbox) {
            (Some(url), _) => Some(url.clone()),
            (None, Some((stand_in, running))) => {
                let smtp = stand_in
                    .mail
                    .listen(SocketAddr::from((settings.sandbox.listen.ip(), 0)))
                    .await
                    .context("sandbox: cannot start the mail capture")?;
                let url = SecretString::from(smtp.url());
                info!(
                    viewer = %format!("{}/sandbox/mail", running.url()),
                    "e-mail: the sandbox's mail capture (demo mode): messages stay there"
                );
                mail_capture = Some(smtp);
                Some(url)
            }
            (None, None) => None,
        };
        let mailer = match smtp_url {
            Some(url) => {
                let mailer = vizit_integrations::smtp::Mailer::new(&settings.smtp(url)?)
                    .context("email.smtp_url / email.from / email.dkim")?;
                if settings.email.smtp_url.is_some() {
                    info!(server = %mailer.server(), from = %mailer.from(), "e-mail through SMTP");
                }
                Some(mailer)
            }
            None => None,
        };
        let messengers = settings.max.token.is_some() || settings.edna.api_key.is_some();
        if mailer.is_some() || messengers {
            if mailer.is_none() {
                warn!(
                    "no SMTP server configured (email.smtp_url): notifications go by messenger only, receipts are not e-mailed"
                );
            }
            let channels = settings
                .channels(sandbox.as_ref().map(|(s, _)| s), &format!("http://{local}"))
                .await?;
            if settings.max.token.is_some() {
                info!("notifications: MAX bot configured");
            }
            if settings.edna.api_key.is_some() {
                info!("notifications: edna Pulse configured");
            }
            api = api.with_notifications(
                vizit_api::notifications::Notifications::with_optional_email(
                    mailer,
                    settings.email_settings(),
                    settings.notice_rules(&return_base),
                    channels,
                ),
            );
        } else {
            warn!(
                "no SMTP server and no messenger configured (email.smtp_url, max.token, edna.api_key): no receipts or notifications are sent"
            );
        }

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut signaling = SignalingState::new(
            media_handle.clone(),
            keys.clone(),
            settings.signaling.idle_timeout,
            shutdown_rx,
        )
        .with_limits(vizit_signaling::SocketLimits {
            join_timeout: settings.signaling.join_timeout,
            max_sockets,
            max_sockets_per_address: settings.signaling.max_sockets_per_address,
            resume_grace: settings.signaling.resume_grace,
            ..Default::default()
        })
        .with_waiting_room(settings.signaling.waiting_room)
        .with_admission(std::sync::Arc::new(crate::calls::ConsultationAdmission(
            api.clone(),
        )));
        if let (false, Some(secret)) = (settings.turn.urls.is_empty(), &settings.turn.secret) {
            info!(urls = ?settings.turn.urls, ttl = ?settings.turn.ttl, "TURN: each join gets credentials");
            signaling = signaling.with_turn(vizit_signaling::Turn::new(
                settings.turn.urls.clone(),
                secret.clone(),
                settings.turn.ttl,
            ));
        }
        // Cancelled, closed or expired consultations end their live calls.
        if let Err(e) = api
            .outbox
            .subscribe(std::sync::Arc::new(crate::calls::RoomCloser(
                media_handle.clone(),
                signaling.clone(),
            )))
        {
            warn!(error = %e, "the call-ending subscriber is registered already");
        }
        let app = http::router(HttpState {
            media: media_handle.clone(),
            keys,
            demo: settings.demo,
            token_ttl: settings.auth.token_ttl,
            bitrix24: api.bitrix24.as_ref().map(|b| b.metrics.clone()),
            recording: live.stats.clone(),
            api: api.clone(),
            sandbox_url: sandbox.as_ref().map(|(_, running)| running.url()),
            metrics: settings.metrics.clone(),
            public: settings.public_url_is_public(),
            signaling: signaling.clone(),
        })
        .merge(vizit_signaling::router(signaling))
        .merge(vizit_api::router(api.clone()));
        let limits = std::sync::Arc::new(crate::serve::ServeLimits {
            header_read_timeout: settings.http.header_read_timeout,
            body_read_timeout: settings.http.body_read_timeout,
            max_connections,
            max_body_bytes: vizit_api::MAX_BODY_BYTES,
            upload: Some((
                vizit_api::chat::UPLOAD_PATH,
                settings.chat.max_file_mb as usize * 1024 * 1024,
                settings.chat.upload_timeout,
            )),
        });
        let app = crate::serve::guard_bodies(app, limits.clone());

        let (https, https_addr) = match (&settings.tls.cert, &settings.tls.key) {
            (Some(cert), Some(key)) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .context("tls.cert / tls.key: cannot load the certificate and key")?;
                let listener = tokio::net::TcpListener::bind(settings.tls.listen)
                    .await
                    .with_context(|| {
                        format!("tls.listen: cannot listen on {}", settings.tls.listen)
                    })?;
                let addr = listener.local_addr()?;
                let acceptor = tokio_rustls::TlsAcceptor::from(config.get_inner());
                (Some((listener, acceptor)), Some(addr))
            }
            _ => (None, None),
        };

        Ok(Application {
            settings,
            http,
            http_addr,
            https,
            https_addr,
            media,
            media_handle,
            room_events,
            live,
            app,
            limits,
            api,
            sandbox,
            mail_capture,
            shutdown,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// The business layer (database, settings), for tests and tools.
    pub fn api(&self) -> &vizit_api::ApiState {
        &self.api
    }

    pub fn media_addr(&self) -> SocketAddr {
        self.media_handle.local_addr()
    }

    /// The SMTP address of the sandbox's mail capture, when demo mode started it.
    pub fn mail_capture(&self) -> Option<SocketAddr> {
        self.mail_capture.as_ref().map(|m| m.addr())
    }

    /// The built-in sandbox of external systems, when demo mode started it.
    pub fn sandbox(&self) -> Option<(&vizit_sandbox::Sandbox, String)> {
        self.sandbox.as_ref().map(|(s, r)| (s, r.url()))
    }

    /// The media addresses announced to browsers in ICE candidates, one per media thread.
    pub fn media_announced(&self) -> Vec<SocketAddr> {
        self.media_handle.announced_addrs()
    }

    /// Where the media threads listen for ICE-TCP, one per thread (none with `media.tcp` off).
    pub fn media_tcp(&self) -> Vec<SocketAddr> {
        self.media_handle.tcp_local_addrs()
    }

    /// Where people reach the server: `http.public_url`, else HTTPS if on, else plain HTTP.
    pub fn public_url(&self) -> String {
        if !self.settings.http.public_url.is_empty() {
            return self
                .settings
                .http
                .public_url
                .trim_end_matches('/')
                .to_owned();
        }
        match self.https_addr {
            Some(addr) => format!("https://{}", display_addr(addr)),
            None => format!("http://{}", display_addr(self.http_addr)),
        }
    }

    /// Serve until `stop` resolves, then drain: every participant is told, rooms close, the
    /// listeners stop.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let media_task = tokio::spawn(self.media.spawn().await.context("media")?);
        // Media's room events, in the business layer's words, stored by it.
        let (call_events, call_events_rx) = tokio::sync::mpsc::unbounded_channel();
        let forward_task = tokio::spawn(crate::calls::forward_room_events(
            self.room_events,
            call_events,
        ));
        let events_task = tokio::spawn(vizit_api::recordings::run_call_events(
            self.api.clone(),
            call_events_rx,
        ));
        // The outbox dispatcher and the scheduler (expiry, overdue, retention).
        let jobs_task = tokio::spawn(vizit_api::run_workers(
            self.api.clone(),
            self.shutdown.subscribe(),
        ));

        let spool_task = self.api.recordings.clone().map(|r| {
            tokio::spawn(r.spool.clone().run(
                vizit_api::recordings::CatalogueConfirm(self.api.db.clone()),
                self.shutdown.subscribe(),
            ))
        });
        let payments_task = self.api.payments.clone().map(|p| {
            tokio::spawn(vizit_api::payments::worker::run(
                self.api.clone(),
                p,
                self.shutdown.subscribe(),
            ))
        });
        let email_task = self.api.notifications.clone().map(|n| {
            tokio::spawn(vizit_api::notifications::sender::run(
                self.api.clone(),
                n,
                self.shutdown.subscribe(),
            ))
        });
        let bitrix24_task = self.api.bitrix24.clone().map(|b| {
            tokio::spawn(vizit_api::slots::bitrix24::run(
                self.api.clone(),
                b,
                self.shutdown.subscribe(),
            ))
        });

        let http_task = tokio::spawn(crate::serve::serve(
            self.http,
            None,
            self.app.clone(),
            self.limits.clone(),
            self.shutdown.subscribe(),
            DRAIN_TIMEOUT,
        ));
        let https_task = self.https.map(|(listener, acceptor)| {
            tokio::spawn(crate::serve::serve(
                listener,
                Some(acceptor),
                self.app.clone(),
                self.limits.clone(),
                self.shutdown.subscribe(),
                DRAIN_TIMEOUT,
            ))
        });

        stop.await;
        info!("shutting down: closing rooms and connections");
        // Sockets send `roomClosed` and close; then the SFU removes everyone.
        let _ = self.shutdown.send(true);
        self.media_handle.shutdown().await;
        // The listeners wait for their connections up to DRAIN_TIMEOUT themselves.
        let _ = http_task.await;
        if let Some(task) = https_task {
            let _ = task.await;
        }
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, media_task).await;
        // Recordings the shutdown stopped finish their files and enter the spool (which keeps
        // them across the restart); then the room events are all stored.
        let live = self.live.clone();
        let finished = tokio::task::spawn_blocking(move || live.wait_idle(RECORDER_DRAIN_TIMEOUT))
            .await
            .unwrap_or(false);
        if !finished {
            warn!("recordings did not finish in time; they are settled at the next start");
        }
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, forward_task).await;
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, events_task).await;
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, jobs_task).await;
        if let Some(task) = spool_task {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, task).await;
        }
        if let Some(task) = bitrix24_task {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, task).await;
        }
        if let Some(task) = payments_task {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, task).await;
        }
        if let Some(task) = email_task {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, task).await;
        }
        if let Some((_, running)) = self.sandbox {
            running.stop().await;
        }
        if let Some(smtp) = self.mail_capture {
            smtp.stop().await;
        }
        self.api.db.pool.close().await;
        info!("stopped");
        Ok(())
    }
}

/// Vizit's files hold medical data and secrets: whatever the umask it was started with, what
/// it creates from now on is readable by its own user only (umask 077), and the data folder and
/// the folders of recordings, made by an earlier version perhaps, are closed to others (0700).
fn keep_data_private(settings: &Settings) {
    use std::os::unix::fs::PermissionsExt;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let mut folders = vec![settings.data_dir.clone()];
    folders.extend(settings.recordings.local_dir.clone());
    folders.extend(settings.recordings.work_dir.clone());
    folders.extend(settings.recordings.spool_dir.clone());
    for folder in folders {
        if let Err(e) = std::fs::create_dir_all(&folder).and_then(|()| {
            std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700))
        }) {
            warn!(folder = %folder.display(), error = %e, "cannot make the folder private (0700)");
        }
    }
}

/// Raise the open-file limit to the hard limit; returns the limit in force.
fn raise_open_files() -> u64 {
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    if soft >= hard {
        return soft;
    }
    match rlimit::Resource::NOFILE.set(hard, hard) {
        Ok(()) => hard,
        Err(e) => {
            warn!(error = %e, soft, hard, "cannot raise the open-file limit");
            soft
        }
    }
}

/// Open connections that fit in the open-file `limit`: a quarter is kept for everything else
/// (database, recordings, listeners), the rest shared half and half by the WebSockets and the
/// HTTP listeners. Returns (WebSockets, connections per listener), each lowered with a warning
/// when the configured number does not fit.
fn fit_connections(limit: u64, sockets: usize, per_listener: usize, tls: bool) -> (usize, usize) {
    let budget = usize::try_from(limit).unwrap_or(usize::MAX) / 4 * 3 / 2;
    let listeners = if tls { 2 } else { 1 };
    let fit = |wanted: usize, fits: usize, key: &str| {
        if wanted > fits {
            warn!(
                wanted,
                fits,
                open_files = limit,
                "{key} lowered to fit the open-file limit; raise it (ulimit -n, LimitNOFILE=) for more"
            );
            fits.max(16)
        } else {
            wanted
        }
    };
    (
        fit(sockets, budget, "signaling.max_sockets"),
        fit(per_listener, budget / listeners, "http.max_connections"),
    )
}

fn display_addr(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_raised_and_connections_fit_in_it() {
        let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
        rlimit::Resource::NOFILE.set(hard.min(512), hard).unwrap();
        assert_eq!(raise_open_files(), hard);
        let (soft, _) = rlimit::Resource::NOFILE.get().unwrap();
        assert_eq!(soft, hard, "raised to the hard limit");
        // 1,024 open files: 384 for WebSockets, 192 per listener with two.
        assert_eq!(fit_connections(1024, 10_000, 10_000, true), (384, 192));
        assert_eq!(fit_connections(1024, 100, 100, false), (100, 100));
        assert_eq!(fit_connections(8, 100, 100, false), (16, 16));
    }
}
