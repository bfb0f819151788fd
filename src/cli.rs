//! Command line: `vizit serve`, `vizit token`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use vizit_signaling::{CallRole, TokenKeys};

use crate::config::Settings;
use crate::startup::{Application, shutdown_signal};

/// Vizit — telemedicine video consultations: a WebRTC SFU, signaling and the call page.
///
/// Configuration: built-in defaults, then the TOML file given with --config, then environment
/// variables VIZIT_SECTION__KEY (e.g. VIZIT_MEDIA__UDP_BIND=0.0.0.0:50000). See the README.
#[derive(Debug, Parser)]
#[command(name = "vizit", version, about, long_about)]
pub struct Cli {
    /// TOML configuration file (optional).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: HTTP(S) with the call page, the WebSocket signaling and the SFU on UDP.
    ///
    /// Stops gracefully on SIGTERM or Ctrl-C: participants are told, rooms are closed.
    Serve,
    /// Print a signed join token for one participant of a room (until the API mints them).
    ///
    /// Open the call as <server>/call#token=<the printed token>.
    Token {
        /// Room id (one per consultation).
        #[arg(long)]
        room: String,
        /// Display name shown to the other party.
        #[arg(long)]
        name: String,
        /// doctor or patient.
        #[arg(long)]
        role: CallRole,
        /// Participant id; default: "<room>-<role>" (a rejoin with the same id replaces the old tab).
        #[arg(long)]
        participant: Option<String>,
        /// Lifetime, e.g. 30m, 2h; default: auth.token_ttl.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
    },
    /// Apply pending database migrations and exit (`serve` also applies them at start).
    Migrate,
    /// Print the REST API's OpenAPI 3.1 document (also served at /api/v1/openapi.json).
    Openapi,
    /// Manage staff accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Run the stand-ins of external systems alone (Bitrix24, YooKassa, a mail capture), for
    /// tests, or to point a staging Vizit at (set the bitrix24.*, yookassa.* and
    /// email.smtp_url keys to what this prints). Bitrix24
    /// is seeded with three doctors, their weekly templates and a few bookings; edit them through
    /// /sandbox/bitrix24; pay, decline and inject faults through /sandbox/yookassa (see the
    /// sandbox crate's docs).
    Sandbox {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
        /// Where ONBOOKING* events go, e.g. http://127.0.0.1:8080/api/v1/integrations/bitrix24/events.
        #[arg(long)]
        events_url: Option<String>,
        /// The outgoing webhook's application token (default: random, printed).
        #[arg(long)]
        application_token: Option<String>,
        /// The secret part of the incoming-webhook URL (default: random, printed).
        #[arg(long)]
        webhook_code: Option<String>,
        /// Start empty: no seeded doctors or bookings.
        #[arg(long)]
        no_seed: bool,
        /// Where YooKassa notifications go, e.g.
        /// http://127.0.0.1:8080/api/v1/integrations/yookassa/notifications.
        #[arg(long)]
        notification_url: Option<String>,
        /// YooKassa's shop id (default: random, printed).
        #[arg(long)]
        shop_id: Option<String>,
        /// YooKassa's secret key (default: random, printed).
        #[arg(long)]
        secret_key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a staff account (doctor, admin, head_doctor). The password is read from standard
    /// input (one line), so it never appears in the shell history or the process list.
    Create {
        /// doctor, admin or head_doctor.
        #[arg(long)]
        role: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Required for doctors.
        #[arg(long)]
        specialty: Option<String>,
        /// The doctor's IANA time zone.
        #[arg(long, default_value = "Europe/Moscow")]
        time_zone: String,
        /// The doctor's resource id in Bitrix24 (Online Booking): their slots come from there.
        #[arg(long)]
        bitrix_resource_id: Option<i64>,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Openapi = cli.command {
        use utoipa::OpenApi;
        println!(
            "{}",
            vizit_api::openapi::ApiDoc::openapi().to_pretty_json()?
        );
        return Ok(());
    }
    if let Command::Sandbox {
        listen,
        events_url,
        application_token,
        webhook_code,
        no_seed,
        notification_url,
        shop_id,
        secret_key,
    } = cli.command
    {
        let mut bitrix24 = vizit_sandbox::Bitrix24Options {
            event_handler: events_url,
            seed: !no_seed,
            ..Default::default()
        };
        if let Some(token) = application_token {
            bitrix24.application_token = token;
        }
        if let Some(code) = webhook_code {
            bitrix24.webhook_code = code;
        }
        let mut yookassa = vizit_sandbox::YooKassaOptions {
            notification_url,
            ..Default::default()
        };
        if let Some(id) = shop_id {
            yookassa.shop_id = id;
        }
        if let Some(key) = secret_key {
            yookassa.secret_key = key;
        }
        return sandbox(listen, bitrix24, yookassa).await;
    }
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Openapi | Command::Sandbox { .. } => unreachable!("handled above"),
        Command::Serve => serve(settings).await,
        Command::Token {
            room,
            name,
            role,
            participant,
            ttl,
        } => {
            let keys = TokenKeys::new(&settings.token_secret()?)?;
            let participant = participant.unwrap_or_else(|| {
                format!(
                    "{room}-{}",
                    match role {
                        CallRole::Doctor => "doctor",
                        CallRole::Patient => "patient",
                    }
                )
            });
            let token = keys.issue(
                &room,
                &participant,
                role,
                &name,
                ttl.unwrap_or(settings.auth.token_ttl),
            );
            println!("{token}");
            Ok(())
        }
        Command::Migrate => {
            let db = vizit_api::Db::connect(&settings.database_url()?, 1).await?;
            println!("migrations applied ({:?})", db.backend);
            Ok(())
        }
        Command::User(UserCommand::Create {
            role,
            email,
            name,
            specialty,
            time_zone,
            bitrix_resource_id,
        }) => {
            let role = vizit_api::domain::Role::parse(&role)
                .filter(|r| r.is_staff())
                .ok_or_else(|| anyhow::anyhow!("--role must be doctor, admin or head_doctor"))?;
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            let db = vizit_api::Db::connect(&settings.database_url()?, 1).await?;
            let id = vizit_api::create_staff_user(
                &db,
                vizit_api::NewStaff {
                    role,
                    email: &email,
                    name: &name,
                    password,
                    specialty: specialty.as_deref(),
                    time_zone: Some(&time_zone),
                    bitrix_resource_id: bitrix_resource_id.map(|r| r.to_string()).as_deref(),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{id}");
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    crate::telemetry::init(&settings.log.filter);
    let demo = settings.demo;
    let app = Application::build(settings).await?;
    let url = format!("http://{}", app.http_addr());
    // Tests and scripts read this exact line from stdout.
    announce(format_args!("Vizit is listening on {url}"));
    if let Some(addr) = app.https_addr() {
        announce(format_args!("HTTPS on https://{addr}"));
    }
    let announced = app.media_announced();
    let ports = match announced.as_slice() {
        [_, _, ..] => {
            let ports: Vec<String> = announced.iter().map(|a| a.port().to_string()).collect();
            format!(", ports {} (one per media thread)", ports.join(", "))
        }
        _ => String::new(),
    };
    announce(format_args!(
        "Media (UDP) on {}, announced to browsers as {} (media.public_ip){ports}",
        app.media_addr(),
        announced
            .first()
            .map_or_else(String::new, |a| a.to_string())
    ));
    let tcp: Vec<String> = app.media_tcp().iter().map(|a| a.to_string()).collect();
    if !tcp.is_empty() {
        announce(format_args!(
            "ICE-TCP on {} (media.tcp, media.tcp_port), for networks without UDP",
            tcp.join(", ")
        ));
    }
    if demo {
        announce(format_args!(
            "Try a call: open {}/demo and follow the doctor and patient links in two tabs",
            app.public_url()
        ));
    }
    app.run_until_stopped(shutdown_signal()).await
}

/// A line for whoever started the server. A reader that went away (`vizit serve | head -1`, a
/// script that read the address it needed) must not stop the server: errors are ignored, where
/// `println!` would panic.
fn announce(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line).and_then(|()| out.write_all(b"\n"));
    let _ = out.flush();
}

async fn sandbox(
    listen: std::net::SocketAddr,
    bitrix24: vizit_sandbox::Bitrix24Options,
    yookassa: vizit_sandbox::YooKassaOptions,
) -> anyhow::Result<()> {
    crate::telemetry::init("info");
    let sandbox = vizit_sandbox::Sandbox::with(bitrix24, yookassa);
    let running = sandbox.start(listen).await?;
    println!("Sandbox listening on {}", running.url());
    println!("Bitrix24 webhook URL: {}", sandbox.bitrix24.webhook_url());
    println!(
        "Bitrix24 application token: {}",
        sandbox.bitrix24.options().application_token
    );
    println!(
        "State and receptionist actions: {}/sandbox/bitrix24",
        running.url()
    );
    let y = &sandbox.yookassa;
    println!("YooKassa API URL: {}", y.api_url());
    println!("YooKassa shop id: {}", y.options().shop_id);
    println!("YooKassa secret key: {}", y.options().secret_key);
    println!(
        "YooKassa state, payments by hand, faults: {}/sandbox/yookassa",
        running.url()
    );
    let (m, e) = (&sandbox.max, &sandbox.edna);
    println!("MAX API URL (max.api_url): {}", m.api_url());
    println!("MAX bot token (max.token): {}", m.options().token);
    println!("MAX deep links (max.link_base): {}", m.link_base());
    println!("MAX chats: {}/sandbox/max", running.url());
    println!("edna API URL (edna.api_url): {}", e.api_url());
    println!("edna API key (edna.api_key): {}", e.options().api_key);
    println!(
        "edna cascade id (edna.cascade_id): {}",
        e.options().cascade_id
    );
    println!(
        "edna webhook header (edna.callback_header / callback_auth): {}: {}",
        e.options().callback_header,
        e.options().callback_value
    );
    println!("edna phones: {}/sandbox/edna", running.url());
    let smtp = sandbox
        .mail
        .listen(std::net::SocketAddr::from((listen.ip(), 0)))
        .await?;
    println!("SMTP (mail capture) URL for email.smtp_url: {}", smtp.url());
    println!("Captured mail: {}/sandbox/mail", running.url());
    shutdown_signal().await;
    running.stop().await;
    smtp.stop().await;
    Ok(())
}
