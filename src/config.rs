//! Settings: defaults → optional TOML file (`--config`) → `VIZIT_SECTION__KEY` environment
//! variables. The only module that reads the environment. Every key is documented in the README.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The whole configuration tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Folder for Vizit's own files (the generated token secret today; the database later).
    pub data_dir: PathBuf,
    /// Development/demo mode: `GET /demo` mints a room with doctor and patient links.
    pub demo: bool,
    /// Let demo mode listen beyond loopback (anyone who reaches `/demo` gets a clinic-admin
    /// session): refused unless this is set, and loudly logged when it is.
    pub allow_public_demo: bool,
    pub http: HttpSettings,
    pub tls: TlsSettings,
    pub media: MediaSettings,
    pub auth: AuthSettings,
    pub signaling: SignalingSettings,
    pub turn: TurnSettings,
    pub metrics: MetricsSettings,
    pub database: DatabaseSettings,
    pub consultations: ConsultationSettings,
    pub bitrix24: Bitrix24Config,
    pub yookassa: YooKassaConfig,
    pub payments: PaymentsConfig,
    pub email: EmailConfig,
    pub notifications: NotificationsConfig,
    pub max: MaxConfig,
    pub edna: EdnaConfig,
    pub esia: EsiaConfig,
    pub clinic: ClinicConfig,
    pub documents: DocumentsConfig,
    pub chat: ChatConfig,
    pub recordings: RecordingsConfig,
    pub sandbox: SandboxSettings,
    pub log: LogSettings,
}

/// Slots from Bitrix24 (Online Booking) and bookings pushed back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bitrix24Config {
    /// Incoming-webhook URL `https://PORTAL/rest/USER_ID/CODE/` (scope `booking`). Unset: the
    /// built-in sandbox in demo mode, else no integration (slots are published through the API).
    #[serde(serialize_with = "serialize_secret")]
    pub webhook_url: Option<SecretString>,
    /// The outgoing webhook's application token (Bitrix24 sends it with every event).
    #[serde(serialize_with = "serialize_secret")]
    pub application_token: Option<SecretString>,
    /// How often a full synchronisation runs (events trigger one sooner).
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
    /// How far ahead slots are kept.
    #[serde(with = "humantime_serde")]
    pub horizon: Duration,
    /// Only resources of this type are doctors (unset: every resource).
    pub resource_type_id: Option<i64>,
    /// Create a doctor (without a login) for each resource no doctor is linked to.
    pub create_doctors: bool,
    /// Price of a slot from Bitrix24, in kopecks.
    pub price_kopecks: i64,
    /// Requests sent back to back before pacing, and the sustained rate (the portal allows 50
    /// and 2 per second per IP).
    pub burst: f64,
    pub requests_per_second: f64,
    /// Timeout of one request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long a booking request waits for Bitrix24 before answering with `bookingSync: pending`.
    #[serde(with = "humantime_serde")]
    pub booking_wait: Duration,
}

/// The YooKassa shop payments go to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YooKassaConfig {
    /// The API base URL.
    pub api_url: String,
    /// The shop id. Unset (with the secret key): the built-in sandbox in demo mode, else no
    /// online payments (the clinic marks bookings paid itself).
    pub shop_id: Option<String>,
    /// The shop's secret key.
    #[serde(serialize_with = "serialize_secret")]
    pub secret_key: Option<SecretString>,
    /// Timeout of one request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

/// The clinic's rules for taking money online.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsConfig {
    /// The 54-FZ VAT code of a consultation: 1 без НДС (VAT-exempt medical services), 11 22 %,
    /// 12 22/122… — the clinic's accountant decides.
    pub vat_code: u8,
    /// The seller's tax system code (1..6); unset: the shop's default.
    pub tax_system_code: Option<u8>,
    /// The receipt line (the doctor's specialty follows).
    pub item_description: String,
    /// Hold the money and charge it only while the booking waits for it (`true`), or charge at
    /// once.
    pub two_stage: bool,
    /// A patient who cancels at least this long before the consultation is refunded.
    #[serde(with = "humantime_serde")]
    pub patient_refund_notice: Duration,
    /// Payments and refunds whose state has not moved for this long are read back from YooKassa.
    #[serde(with = "humantime_serde")]
    pub reconcile_after: Duration,
    /// Addresses YooKassa sends notifications from (its published ranges).
    pub notification_sources: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// How long a request waits for YooKassa before answering that the payment is on its way.
    #[serde(with = "humantime_serde")]
    pub booking_wait: Duration,
    /// A receipt not registered this long after its payment or refund is flagged to admins.
    #[serde(with = "humantime_serde")]
    pub receipt_deadline: Duration,
}

/// The SMTP server Vizit's e-mail goes through.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtps://user:password@host:465`, `smtp://user:password@host:587?tls=required`, or
    /// `smtp://127.0.0.1:2525` (a local relay). Unset: the sandbox's mail capture in demo mode,
    /// else no e-mail.
    #[serde(serialize_with = "serialize_secret")]
    pub smtp_url: Option<SecretString>,
    /// The sender: `Клиника <noreply@clinic.example>`.
    pub from: String,
    /// Timeout of one SMTP command.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Sign messages with DKIM: only for a relay that does not sign itself (hosted mail signs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkim: Option<DkimSettings>,
}

/// A DKIM key for `email.from`'s domain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimSettings {
    /// The selector: the public key is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// The signing domain; unset: the domain of `email.from`.
    #[serde(default)]
    pub domain: Option<String>,
    /// `rsa` (rsa-sha256, verified everywhere) or `ed25519` (RFC 8463).
    #[serde(default = "default_dkim_algorithm")]
    pub algorithm: String,
    /// The private key's file: `rsa`, a PKCS#1 PEM; `ed25519`, the base64 seed.
    pub key_file: PathBuf,
}

fn default_dkim_algorithm() -> String {
    "rsa".into()
}

/// When notifications about consultations go out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Reminders to the patient and the doctor this long before a paid consultation starts
    /// (`["24h", "15m"]`; `[]`: none).
    pub reminders: Vec<String>,
    /// The patient is asked for a review this long after the consultation is closed.
    #[serde(with = "humantime_serde")]
    pub review_after: Duration,
    /// The doctor is asked to close the consultation this long after its slot ended (the clinic
    /// admins and head doctors are told after `consultations.overdue_after`).
    #[serde(with = "humantime_serde")]
    pub close_after: Duration,
    /// The channels notifications go by, in the order they are tried for a person who has not
    /// chosen: `email`, `max`, `edna` (a channel not configured is skipped).
    pub channels: Vec<String>,
    /// A message that fails on one channel (refused, undeliverable) goes out on the next one
    /// that reaches the person.
    pub fallback: bool,
}

/// The clinic's MAX bot (business.max.ru).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxConfig {
    /// The bot's token. Unset: the sandbox's bot in demo mode, else no MAX.
    #[serde(serialize_with = "serialize_secret")]
    pub token: Option<SecretString>,
    pub api_url: String,
    /// What MAX sends in `X-Max-Bot-Api-Secret` (5–256 of `A-Za-z0-9_-`); required with a
    /// token.
    #[serde(serialize_with = "serialize_secret")]
    pub webhook_secret: Option<SecretString>,
    /// Vizit's webhook as MAX reaches it (`https://…:443/api/v1/integrations/max/webhook`);
    /// set: subscribed at start.
    pub webhook_url: Option<String>,
    /// The bot's username for deep links; unset: read from `GET /me` at start.
    pub bot_name: Option<String>,
    /// Where deep links start the bot.
    pub link_base: String,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

/// The clinic's edna Pulse account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdnaConfig {
    pub api_url: String,
    /// The API key (`X-API-KEY`). Unset: the sandbox in demo mode, else no edna.
    #[serde(serialize_with = "serialize_secret")]
    pub api_key: Option<SecretString>,
    /// The cascade set up in the account, and its stages in order (`whatsapp`, `viber`, `sms`).
    pub cascade_id: Option<i64>,
    pub stages: Vec<String>,
    /// The header edna's webhook key comes in, and its whole expected value (`Token <key>`).
    pub callback_header: String,
    #[serde(serialize_with = "serialize_secret")]
    pub callback_auth: Option<SecretString>,
    /// A message edna reports failed goes to the next channel this long later, unless a later
    /// stage of the cascade (SMS) delivered it meanwhile.
    #[serde(with = "humantime_serde")]
    pub fallback_after: Duration,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

/// Patients' sign-in through ESIA (Gosuslugi); docs/esia.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsiaConfig {
    /// The information system's mnemonic. Unset: ESIA sign-in is off (in demo mode: the
    /// sandbox's ESIA with a generated GOST certificate).
    pub client_id: Option<String>,
    /// `https://esia.gosuslugi.ru` (production) or `https://esia-portal1.test.gosuslugi.ru`.
    pub base_url: String,
    /// `iss` of ESIA's tokens: `http://esia.gosuslugi.ru/` (http, trailing slash).
    pub issuer: String,
    /// The system's certificate registered with ESIA (PEM or DER): `client_certificate_hash`.
    pub certificate: Option<PathBuf>,
    /// ESIA's public keys or certificates (PEM) its RS256 tokens verify with.
    pub token_keys: Vec<PathBuf>,
    /// The scopes asked for: only those the clinic is approved for.
    pub scope: String,
    /// Scopes a sign-in must be granted.
    pub required_scopes: Vec<String>,
    /// Let unconfirmed ESIA accounts register and sign in.
    pub allow_unconfirmed: bool,
    /// Send a PKCE challenge (S256).
    pub pkce: bool,
    /// "Выйти" ends the ESIA session too.
    pub logout_with_esia: bool,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The version of the consent texts (recorded with each consent; change it with the texts).
    pub consent_version: String,
    /// The clinic's public offer and personal data policy (built-in texts when unset).
    pub offer_url: Option<String>,
    pub policy_url: Option<String>,
    pub signer: EsiaSignerConfig,
}

/// Who signs ESIA requests: `command` (CryptoPro or another certified tool; production),
/// `http` (a signing service: DSS, an HSM's gateway), `openssl` (OpenSSL's GOST engine;
/// development and tests only).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsiaSignerConfig {
    pub kind: String,
    /// `command`: the program and its arguments (the bytes on stdin, the signature on stdout).
    pub command: Vec<String>,
    /// `command` and `http`: how the signature is written (`raw`, `base64`, `hex`).
    pub output: String,
    /// Reverse the signature's bytes (CryptoPro writes them little-endian).
    pub reverse: bool,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// `openssl`: the `gost2012_256` private key (PEM).
    pub key_file: Option<PathBuf>,
    /// `http`: the service's URL, what it is sent (`data` or `digest`), the field names.
    pub url: Option<String>,
    pub input: String,
    pub input_field: Option<String>,
    pub signature_field: Option<String>,
    /// `http`: a header that authorizes the request, and its value (a secret).
    pub auth_header: Option<String>,
    #[serde(serialize_with = "serialize_secret")]
    pub auth_value: Option<SecretString>,
}

/// The clinic as patients see it in messages and on receipts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClinicConfig {
    /// The seller on receipts and the signature of messages.
    pub name: String,
    /// The seller's INN on receipts (10 or 12 digits).
    pub inn: Option<String>,
    /// The zone times in messages are written in (IANA name).
    pub time_zone: String,
    /// Where patients get help (a phone, an e-mail, hours), shown on the cabinet and after a
    /// call; unset: nothing is shown.
    #[serde(default)]
    pub help: Option<String>,
}

/// Questionnaires and patients' requests to delete their documents.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentsConfig {
    /// Questionnaires every consultation gets when booked: `symptoms`, `anamnesis` (`[]`: only
    /// those the doctor assigns).
    pub assign_on_booking: Vec<String>,
    /// A deletion request is answered within this many working days (152-FZ: 10)…
    pub answer_within_days: u32,
    /// …extendable once by this many, with a reason (152-FZ: 5).
    pub extension_days: u32,
    /// Extra days off of the clinic's calendar (`YYYY-MM-DD`: the government's transfers of a
    /// year); the Labour Code's holidays and weekends are days off already.
    pub days_off: Vec<String>,
    /// Weekend days that are working days (a transferred Saturday), `YYYY-MM-DD`.
    pub working_days: Vec<String>,
}

/// The consultations' chat (files go to the recordings' store).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// Largest file a party may send, in megabytes (1 to 100).
    pub max_file_mb: u32,
    /// Messages and files one party may send per minute, after a burst of 10 (1 to 600).
    pub messages_per_minute: u32,
    /// How long a file may take to arrive whole (a phone on a slow link sends 20 MB in
    /// minutes; other requests keep `http.body_read_timeout`).
    #[serde(with = "humantime_serde")]
    pub upload_timeout: Duration,
}

/// Where recordings are kept and for how long.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingsConfig {
    /// When calls are recorded: `auto` (as soon as both parties consent in the call page, the
    /// default), `doctor` (both consent and the doctor starts it) or `off`.
    pub mode: vizit_media::RecordingMode,
    /// Files being recorded or composed. Unset: `data_dir/recording`.
    pub work_dir: Option<PathBuf>,
    /// `local` (a folder, the default) or `s3`.
    pub storage: StorageKind,
    /// The folder of the `local` storage. Unset: `data_dir/recordings`.
    pub local_dir: Option<PathBuf>,
    /// Finished files wait here until the store confirms them. Unset: `data_dir/spool`.
    pub spool_dir: Option<PathBuf>,
    /// How long a download link works.
    #[serde(with = "humantime_serde")]
    pub link_ttl: Duration,
    /// Stored recordings older than this many days are deleted, unless on legal hold (0: kept).
    pub retention_days: u32,
    /// Patients may list and download the recordings of their own consultations (off: only
    /// the clinic's admins and head doctors).
    pub patients_may_download: bool,
    pub s3: S3Config,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    Local,
    S3,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// e.g. `https://storage.yandexcloud.net`, `https://s3.ru-1.storage.selcloud.ru`; unset: AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Prepended to every object key.
    pub prefix: String,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible stores want.
    pub path_style: bool,
    pub access_key_id: Option<String>,
    #[serde(serialize_with = "serialize_secret")]
    pub secret_access_key: Option<SecretString>,
    /// `AES256` or `aws:kms` (unset: the bucket's default).
    pub server_side_encryption: Option<String>,
    /// Files above this go up in parts of this size (MiB, 5 to 5120).
    pub part_size_mib: usize,
}

/// The built-in stand-ins of external systems (demo mode).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// Where the sandbox listens when `vizit serve` starts it (port 0: any free port).
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://path` or `postgres://user:pass@host/db`. Empty: `data_dir/vizit.db` (SQLite).
    #[serde(serialize_with = "serialize_secret")]
    pub url: Option<SecretString>,
    /// Connections in the pool (SQLite uses at most 8).
    pub max_connections: u32,
    /// Domain events (the outbox) are kept this long after every subscriber has them.
    #[serde(with = "humantime_serde")]
    pub outbox_retention: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultationSettings {
    /// A booking not paid within this is expired and its slot released.
    #[serde(with = "humantime_serde")]
    pub pay_within: Duration,
    /// The call opens this long before the slot starts.
    #[serde(with = "humantime_serde")]
    pub join_before: Duration,
    /// The call closes this long after the slot ends.
    #[serde(with = "humantime_serde")]
    pub join_grace: Duration,
    /// A consultation the doctor has not closed this long after its slot ended is overdue.
    #[serde(with = "humantime_serde")]
    pub overdue_after: Duration,
    /// Lifetime of a login session.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// How often expiry and overdue checks run.
    #[serde(with = "humantime_serde")]
    pub jobs_interval: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Plain-HTTP listener: for localhost and for running behind a TLS-terminating proxy.
    pub listen: SocketAddr,
    /// The URL people reach Vizit at (used in printed links). Empty: derived from the listener.
    pub public_url: String,
    /// A request's headers (and a TLS handshake) must arrive within this.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A request's body must arrive whole within this (`408`).
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Connections served at once per listener; more wait until one closes. Lowered at start
    /// to fit the open-file limit.
    pub max_connections: usize,
    /// Reverse proxies (addresses or ranges) whose `X-Forwarded-For` names the client: the
    /// login limits per address then count the client's address, not the proxy's.
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// HTTPS listener, started when both `cert` and `key` are set.
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    /// The UDP socket all participants' media goes through (the first, with several threads).
    pub udp_bind: SocketAddr,
    /// The address announced in ICE candidates (a server behind NAT announces its public IP).
    /// Unset: the bind address if it is specific, else the first non-loopback IPv4 address.
    pub public_ip: Option<IpAddr>,
    /// People per room (recorders do not count).
    pub max_participants: usize,
    /// A participant whose media path is silent this long is removed.
    #[serde(with = "humantime_serde")]
    pub ice_timeout: Duration,
    /// A participant whose media never arrives this long after joining is removed.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Kernel buffer (bytes) asked for each direction of the media socket; the kernel caps it
    /// at `net.core.rmem_max` / `wmem_max`, which must then be raised to match.
    pub socket_buffer_bytes: usize,
    /// Media loops, each a thread with its own UDP socket (ports `udp_bind`'s, +1, …); a room
    /// lives in one of them. One loop uses one core.
    pub threads: usize,
    /// The SFU protects and sends forwarded media itself instead of through str0m's send path
    /// (about a quarter less CPU per packet); off falls back to str0m for everything.
    pub fast_forwarding: bool,
    /// With fast forwarding, the SFU also opens received media itself instead of through
    /// str0m's receive path, and sends the congestion control feedback, NACKs and receiver
    /// reports for it; off leaves receiving to str0m.
    pub fast_receiving: bool,
    /// ICE over TCP (RFC 6544): each media loop also listens on TCP and announces a passive TCP
    /// candidate, for networks that let no UDP through.
    pub tcp: bool,
    /// The first loop's ICE-TCP port (+1 per further thread). Unset: each loop's UDP port.
    /// 443 reaches through most firewalls when nothing else on the address uses it.
    pub tcp_port: Option<u16>,
}

impl MediaSettings {
    /// Whether and where the media loops listen for ICE-TCP.
    pub fn ice_tcp(&self) -> vizit_media::IceTcp {
        match (self.tcp, self.tcp_port) {
            (false, _) => vizit_media::IceTcp::Off,
            (true, None) => vizit_media::IceTcp::UdpPorts,
            (true, Some(port)) => vizit_media::IceTcp::From(port),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret of join tokens, ≥ 32 bytes. Unset: generated once into `data_dir/token-secret`.
    #[serde(serialize_with = "serialize_secret")]
    pub token_secret: Option<SecretString>,
    /// Lifetime of tokens minted by `vizit token` and the demo page.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Failed password logins of one account (e-mail) within `login_window`, then `429`.
    pub login_failures_per_account: u32,
    /// Failed password logins from one client address within `login_window`, then `429`.
    pub login_failures_per_address: u32,
    /// The window failed logins are counted in; a locked-out caller waits for its end.
    #[serde(with = "humantime_serde")]
    pub login_window: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Bearer token `GET /metrics` requires. Unset: only clients on loopback may read it.
    #[serde(serialize_with = "serialize_secret")]
    pub token: Option<SecretString>,
    /// A series per live room, labelled with its id (a consultation's id). Off: totals only.
    pub per_room: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalingSettings {
    /// A WebSocket silent this long is closed (clients ping every 10 s).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A WebSocket that has not joined a room this long after opening is closed.
    #[serde(with = "humantime_serde")]
    pub join_timeout: Duration,
    /// Open WebSockets in total; more get `503`.
    pub max_sockets: usize,
    /// Open WebSockets per client address; more get `429`.
    pub max_sockets_per_address: usize,
    /// A call's WebSocket lost without `leave` keeps its participant in the call this long,
    /// for the page to `resume` on a new socket (media goes on meanwhile).
    #[serde(with = "humantime_serde")]
    pub resume_grace: Duration,
    /// A patient's join waits in a waiting room until the doctor admits them (once per
    /// consultation); off: patients go straight into the call.
    pub waiting_room: bool,
}

/// A TURN server (coturn) for networks that let no UDP through, or only a web proxy or TLS:
/// every join gets short-lived credentials for it (the TURN REST API scheme: docs/turn.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnSettings {
    /// The server's URLs as the browser uses them, e.g.
    /// `["turn:turn.clinic.ru:3478?transport=udp", "turns:turn.clinic.ru:443?transport=tcp"]`.
    /// Empty: no TURN (calls go to the SFU directly).
    pub urls: Vec<String>,
    /// coturn's `static-auth-secret` (`use-auth-secret`).
    #[serde(serialize_with = "serialize_secret")]
    pub secret: Option<SecretString>,
    /// How long the credentials of one join are good: long enough for a consultation (coturn
    /// checks them again when the browser refreshes its allocation), short enough that leaked
    /// ones soon die.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `tracing` filter directives, e.g. `info` or `info,vizit_media=debug`.
    pub filter: String,
}

fn serialize_secret<S: serde::Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(s) => serializer.serialize_some(s.expose_secret()),
        None => serializer.serialize_none(),
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("data"),
            demo: true,
            allow_public_demo: false,
            http: HttpSettings {
                listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
                public_url: String::new(),
                header_read_timeout: Duration::from_secs(10),
                body_read_timeout: Duration::from_secs(30),
                max_connections: 10_000,
                trusted_proxies: Vec::new(),
            },
            tls: TlsSettings {
                listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8443)),
                cert: None,
                key: None,
            },
            media: MediaSettings {
                udp_bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 50000)),
                public_ip: None,
                max_participants: 2,
                ice_timeout: Duration::from_secs(15),
                connect_timeout: Duration::from_secs(30),
                socket_buffer_bytes: vizit_media::DEFAULT_SOCKET_BUFFER,
                threads: 1,
                fast_forwarding: true,
                fast_receiving: true,
                tcp: true,
                tcp_port: None,
            },
            auth: AuthSettings {
                token_secret: None,
                token_ttl: Duration::from_secs(2 * 3600),
                login_failures_per_account: 10,
                login_failures_per_address: 50,
                login_window: Duration::from_secs(15 * 60),
            },
            metrics: MetricsSettings {
                token: None,
                per_room: false,
            },
            signaling: SignalingSettings {
                idle_timeout: Duration::from_secs(30),
                join_timeout: Duration::from_secs(10),
                max_sockets: 10_000,
                max_sockets_per_address: 100,
                resume_grace: Duration::from_secs(15),
                waiting_room: true,
            },
            turn: TurnSettings {
                urls: Vec::new(),
                secret: None,
                ttl: Duration::from_secs(3 * 3600),
            },
            database: DatabaseSettings {
                url: None,
                max_connections: 16,
                outbox_retention: Duration::from_secs(7 * 86_400),
            },
            consultations: ConsultationSettings {
                pay_within: Duration::from_secs(30 * 60),
                join_before: Duration::from_secs(15 * 60),
                join_grace: Duration::from_secs(30 * 60),
                overdue_after: Duration::from_secs(24 * 3600),
                session_ttl: Duration::from_secs(12 * 3600),
                jobs_interval: Duration::from_secs(30),
            },
            bitrix24: Bitrix24Config {
                webhook_url: None,
                application_token: None,
                sync_interval: Duration::from_secs(60),
                horizon: Duration::from_secs(14 * 86_400),
                resource_type_id: None,
                create_doctors: true,
                price_kopecks: 150_000,
                burst: 40.0,
                requests_per_second: 1.8,
                request_timeout: Duration::from_secs(15),
                booking_wait: Duration::from_secs(5),
            },
            yookassa: YooKassaConfig {
                api_url: "https://api.yookassa.ru/v3".into(),
                shop_id: None,
                secret_key: None,
                request_timeout: Duration::from_secs(30),
            },
            payments: PaymentsConfig {
                vat_code: 1,
                tax_system_code: None,
                item_description: "Телемедицинская консультация".into(),
                two_stage: true,
                patient_refund_notice: Duration::from_secs(24 * 3600),
                reconcile_after: Duration::from_secs(3 * 60),
                notification_sources: vizit_api::payments::YOOKASSA_SOURCES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
                trusted_proxies: Vec::new(),
                booking_wait: Duration::from_secs(10),
                receipt_deadline: Duration::from_secs(2 * 3600),
            },
            email: EmailConfig {
                smtp_url: None,
                from: "Vizit <noreply@vizit.localhost>".into(),
                timeout: Duration::from_secs(30),
                dkim: None,
            },
            notifications: NotificationsConfig {
                reminders: vec!["24h".into(), "15m".into()],
                review_after: Duration::from_secs(2 * 3600),
                close_after: Duration::ZERO,
                channels: vec!["max".into(), "edna".into(), "email".into()],
                fallback: true,
            },
            max: MaxConfig {
                token: None,
                api_url: "https://platform-api2.max.ru".into(),
                webhook_secret: None,
                webhook_url: None,
                bot_name: None,
                link_base: "https://max.ru".into(),
                request_timeout: Duration::from_secs(15),
            },
            edna: EdnaConfig {
                api_url: "https://app.edna.ru".into(),
                api_key: None,
                cascade_id: None,
                stages: vec!["whatsapp".into(), "sms".into()],
                callback_header: "Authorization".into(),
                callback_auth: None,
                fallback_after: Duration::from_secs(10 * 60),
                request_timeout: Duration::from_secs(15),
            },
            esia: EsiaConfig {
                client_id: None,
                base_url: "https://esia.gosuslugi.ru".into(),
                issuer: "http://esia.gosuslugi.ru/".into(),
                certificate: None,
                token_keys: Vec::new(),
                scope: "openid fullname birthdate gender snils id_doc medical_doc email mobile"
                    .into(),
                required_scopes: vec!["openid".into(), "fullname".into(), "birthdate".into()],
                allow_unconfirmed: false,
                pkce: true,
                logout_with_esia: true,
                request_timeout: Duration::from_secs(15),
                consent_version: "2026-12-01".into(),
                offer_url: None,
                policy_url: None,
                signer: EsiaSignerConfig {
                    kind: "command".into(),
                    command: Vec::new(),
                    output: "raw".into(),
                    reverse: false,
                    timeout: Duration::from_secs(10),
                    key_file: None,
                    url: None,
                    input: "data".into(),
                    input_field: None,
                    signature_field: None,
                    auth_header: None,
                    auth_value: None,
                },
            },
            clinic: ClinicConfig {
                name: "Клиника".into(),
                inn: None,
                time_zone: "Europe/Moscow".into(),
                help: None,
            },
            documents: DocumentsConfig {
                assign_on_booking: vec!["symptoms".into()],
                answer_within_days: 10,
                extension_days: 5,
                days_off: Vec::new(),
                working_days: Vec::new(),
            },
            chat: ChatConfig {
                max_file_mb: 20,
                messages_per_minute: 30,
                upload_timeout: Duration::from_secs(300),
            },
            recordings: RecordingsConfig {
                mode: vizit_media::RecordingMode::Auto,
                work_dir: None,
                storage: StorageKind::Local,
                local_dir: None,
                spool_dir: None,
                link_ttl: Duration::from_secs(300),
                retention_days: 0,
                patients_may_download: false,
                s3: S3Config {
                    endpoint: None,
                    region: "us-east-1".into(),
                    bucket: String::new(),
                    prefix: String::new(),
                    path_style: true,
                    access_key_id: None,
                    secret_access_key: None,
                    server_side_encryption: None,
                    part_size_mib: 16,
                },
            },
            sandbox: SandboxSettings {
                listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            },
            log: LogSettings {
                filter: "info,str0m=warn".into(),
            },
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration key `{key}`: {message}{source_hint}")]
    Load {
        key: String,
        message: String,
        source_hint: String,
    },
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("cannot read or create {path}: {source}")]
    Secret {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Settings {
    /// Load from defaults, the optional file, and the environment, then validate.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid {
                    key: "--config",
                    message: format!("file {} does not exist", file.display()),
                });
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(Env::prefixed("VIZIT_").split("__"));
        let settings: Settings = figment.extract().map_err(load_error)?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        if self.media.max_participants < 2 {
            return invalid(
                "media.max_participants",
                "must be at least 2 (a doctor and a patient)",
            );
        }
        if self.media.ice_timeout < Duration::from_secs(2) {
            return invalid(
                "media.ice_timeout",
                "must be at least 2s: browsers check the path every ~1-2 s",
            );
        }
        if self.media.connect_timeout < Duration::from_secs(5) {
            return invalid("media.connect_timeout", "must be at least 5s");
        }
        if !(256 * 1024..=1 << 30).contains(&self.media.socket_buffer_bytes) {
            return invalid(
                "media.socket_buffer_bytes",
                "must be between 262144 (256 KiB) and 1073741824 (1 GiB)",
            );
        }
        if !(1..=64).contains(&self.media.threads) {
            return invalid("media.threads", "must be between 1 and 64");
        }
        if self.media.udp_bind.port() != 0
            && self.media.udp_bind.port() as usize + self.media.threads - 1 > u16::MAX as usize
        {
            return invalid(
                "media.threads",
                "the media ports (media.udp_bind's and one more per thread) run past 65535",
            );
        }
        if let Some(port) = self.media.tcp_port.filter(|&p| p != 0)
            && port as usize + self.media.threads - 1 > u16::MAX as usize
        {
            return invalid(
                "media.tcp_port",
                "the ICE-TCP ports (this one and one more per thread) run past 65535",
            );
        }
        if self.auth.token_ttl.is_zero() {
            return invalid("auth.token_ttl", "must be positive, e.g. \"2h\"");
        }
        if self.http.header_read_timeout < Duration::from_secs(1) {
            return invalid(
                "http.header_read_timeout",
                "must be at least 1s, e.g. \"10s\"",
            );
        }
        if self.http.body_read_timeout < Duration::from_secs(1) {
            return invalid(
                "http.body_read_timeout",
                "must be at least 1s, e.g. \"30s\"",
            );
        }
        if self.http.max_connections == 0 {
            return invalid("http.max_connections", "must be at least 1");
        }
        if self.auth.login_failures_per_account == 0 {
            return invalid("auth.login_failures_per_account", "must be at least 1");
        }
        if self.auth.login_failures_per_address == 0 {
            return invalid("auth.login_failures_per_address", "must be at least 1");
        }
        if self.auth.login_window < Duration::from_secs(1) {
            return invalid("auth.login_window", "must be at least 1s, e.g. \"15m\"");
        }
        if self.signaling.idle_timeout < Duration::from_secs(15) {
            return invalid(
                "signaling.idle_timeout",
                "must be at least 15s (clients ping every 10 s)",
            );
        }
        if let Some(token) = &self.metrics.token
            && token.expose_secret().len() < 16
        {
            return invalid(
                "metrics.token",
                "must be at least 16 characters; generate one with `openssl rand -hex 16`",
            );
        }
        if self.signaling.join_timeout < Duration::from_secs(1) {
            return invalid(
                "signaling.join_timeout",
                "must be at least 1s, e.g. \"10s\"",
            );
        }
        if self.signaling.resume_grace < Duration::from_secs(1)
            || self.signaling.resume_grace > Duration::from_secs(300)
        {
            return invalid(
                "signaling.resume_grace",
                "must be between 1s and 5m, e.g. \"15s\"",
            );
        }
        if let Some(bad) = self.turn.urls.iter().find(|u| {
            !(u.starts_with("turn:") || u.starts_with("turns:") || u.starts_with("stun:"))
        }) {
            return invalid(
                "turn.urls",
                &format!(
                    "{bad:?} is not a TURN URL; e.g. \"turns:turn.clinic.ru:443?transport=tcp\""
                ),
            );
        }
        match (&self.turn.secret, self.turn.urls.is_empty()) {
            (None, false) => {
                return invalid(
                    "turn.secret",
                    "is needed with turn.urls: coturn's static-auth-secret (use-auth-secret)",
                );
            }
            (Some(secret), _) if secret.expose_secret().len() < 16 => {
                return invalid(
                    "turn.secret",
                    "must be at least 16 characters; generate one with `openssl rand -hex 32`",
                );
            }
            _ => {}
        }
        if self.turn.ttl < Duration::from_secs(60) {
            return invalid("turn.ttl", "must be at least 1m, e.g. \"3h\"");
        }
        if self.signaling.max_sockets == 0 {
            return invalid("signaling.max_sockets", "must be at least 1");
        }
        if self.signaling.max_sockets_per_address == 0 {
            return invalid("signaling.max_sockets_per_address", "must be at least 1");
        }
        if let Some(secret) = &self.auth.token_secret
            && secret.expose_secret().len() < vizit_signaling::MIN_SECRET_BYTES
        {
            return invalid(
                "auth.token_secret",
                "must be at least 32 bytes; generate one with `openssl rand -hex 32`",
            );
        }
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => return invalid("tls.key", "is required when tls.cert is set"),
            (None, Some(_)) => return invalid("tls.cert", "is required when tls.key is set"),
            (Some(cert), Some(key)) => {
                if !cert.is_file() {
                    return invalid(
                        "tls.cert",
                        &format!("{} is not a readable file", cert.display()),
                    );
                }
                if !key.is_file() {
                    return invalid(
                        "tls.key",
                        &format!("{} is not a readable file", key.display()),
                    );
                }
            }
            (None, None) => {}
        }
        let url = &self.http.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return invalid("http.public_url", "must start with http:// or https://");
        }
        if let Some(url) = &self.database.url {
            let url = url.expose_secret();
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres:")
                || url.starts_with("postgresql:"))
            {
                return invalid("database.url", "must start with sqlite: or postgres://");
            }
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if self.database.outbox_retention < Duration::from_secs(3600) {
            return invalid(
                "database.outbox_retention",
                "must be at least 1h (delivered events are kept this long for inspection)",
            );
        }
        if self.consultations.jobs_interval < Duration::from_secs(1) {
            return invalid("consultations.jobs_interval", "must be at least 1s");
        }
        if self.consultations.session_ttl < Duration::from_secs(60) {
            return invalid("consultations.session_ttl", "must be at least 1m");
        }
        if self.demo && !self.allow_public_demo {
            let public_http = !self.http.listen.ip().is_loopback();
            let public_tls = self.tls.cert.is_some() && !self.tls.listen.ip().is_loopback();
            if public_http || public_tls || !url_is_loopback(&self.http.public_url) {
                return invalid(
                    "demo",
                    "demo mode hands anyone who opens /demo a clinic-admin session, so it serves \
                     loopback only (http.listen, tls.listen with tls.cert, http.public_url): set \
                     demo = false for a real deployment, or allow_public_demo = true to expose \
                     the demo on purpose",
                );
            }
        }
        self.validate_esia()?;
        let y = &self.yookassa;
        if y.shop_id.is_some() != y.secret_key.is_some() {
            return invalid(
                "yookassa.shop_id",
                "set both yookassa.shop_id and yookassa.secret_key, or neither",
            );
        }
        if !(y.api_url.starts_with("https://") || y.api_url.starts_with("http://")) {
            return invalid(
                "yookassa.api_url",
                "must be an http(s) URL, e.g. https://api.yookassa.ru/v3",
            );
        }
        let p = &self.payments;
        if !(1..=12).contains(&p.vat_code) {
            return invalid("payments.vat_code", "must be 1 to 12 (YooKassa's vat_code)");
        }
        if p.tax_system_code.is_some_and(|t| !(1..=6).contains(&t)) {
            return invalid("payments.tax_system_code", "must be 1 to 6");
        }
        if p.item_description.trim().is_empty() || p.item_description.chars().count() > 100 {
            return invalid("payments.item_description", "must be 1 to 100 characters");
        }
        for (key, list) in [
            ("payments.notification_sources", &p.notification_sources),
            ("payments.trusted_proxies", &p.trusted_proxies),
            ("http.trusted_proxies", &self.http.trusted_proxies),
        ] {
            for net in list {
                if net.parse::<vizit_api::platform::net::IpNet>().is_err() {
                    return invalid(
                        key,
                        &format!("{net:?} is not an address or a range like 185.71.76.0/27"),
                    );
                }
            }
        }
        if p.reconcile_after < Duration::from_secs(10) {
            return invalid("payments.reconcile_after", "must be at least 10s");
        }
        let e = &self.email;
        if let Some(url) = &e.smtp_url {
            let url = url.expose_secret();
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return invalid(
                    "email.smtp_url",
                    "must be smtps://host:465, smtp://host:587?tls=required or smtp://host:port",
                );
            }
            if vizit_integrations::smtp::exposes_login(url) {
                return invalid(
                    "email.smtp_url",
                    "carries a login for another host without TLS: use smtps://…:465 or add ?tls=required",
                );
            }
        }
        if let Some(d) = &e.dkim {
            if d.selector.trim().is_empty()
                || !d
                    .selector
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return invalid("email.dkim.selector", "must be a DNS label, e.g. vizit2026");
            }
            if !matches!(d.algorithm.as_str(), "rsa" | "ed25519") {
                return invalid("email.dkim.algorithm", "must be rsa or ed25519");
            }
            let smtp = self.smtp(SecretString::from(String::new()))?;
            if let Some(Err(err)) = smtp.dkim.as_ref().map(|k| k.check()) {
                return invalid("email.dkim.key_file", &err.to_string());
            }
        }
        if let Err(e) = self.reminders() {
            return invalid("notifications.reminders", &e);
        }
        let n = &self.notifications;
        if n.channels.is_empty() {
            return invalid(
                "notifications.channels",
                "name at least one of email, max, edna",
            );
        }
        if let Some(c) = n
            .channels
            .iter()
            .find(|c| vizit_api::notifications::channels::Channel::parse(c).is_none())
        {
            return invalid(
                "notifications.channels",
                &format!("{c:?} is not a channel: email, max or edna"),
            );
        }
        let m = &self.max;
        if m.token.is_some() {
            let ok = m.webhook_secret.as_ref().is_some_and(|s| {
                let s = s.expose_secret();
                (5..=256).contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
            if !ok {
                return invalid(
                    "max.webhook_secret",
                    "is required with max.token: 5 to 256 of A-Z a-z 0-9 _ -",
                );
            }
            if m.webhook_url
                .as_ref()
                .is_some_and(|u| !u.starts_with("https://"))
            {
                return invalid(
                    "max.webhook_url",
                    "must be an https:// URL on port 443 (MAX delivers nowhere else)",
                );
            }
        }
        let d = &self.edna;
        if d.api_key.is_some() {
            if d.cascade_id.is_none() {
                return invalid("edna.cascade_id", "is required with edna.api_key");
            }
            if d.callback_auth.is_none() {
                return invalid(
                    "edna.callback_auth",
                    "is required with edna.api_key (the webhook key header's value, e.g. \"Token …\"): unauthenticated status callbacks are refused",
                );
            }
        }
        if d.stages.is_empty()
            || d.stages
                .iter()
                .any(|s| vizit_integrations::edna::Stage::parse(s).is_none())
        {
            return invalid(
                "edna.stages",
                "must list the cascade's stages: whatsapp, viber, sms",
            );
        }
        if !vizit_integrations::smtp::valid_sender(&e.from) {
            return invalid(
                "email.from",
                "must be an e-mail address, e.g. Клиника <noreply@clinic.example>",
            );
        }
        let c = &self.clinic;
        if c.name.trim().is_empty() || c.name.chars().count() > 200 {
            return invalid("clinic.name", "must be 1 to 200 characters");
        }
        if c.inn.as_ref().is_some_and(|inn| {
            !matches!(inn.len(), 10 | 12) || !inn.bytes().all(|b| b.is_ascii_digit())
        }) {
            return invalid("clinic.inn", "must be 10 or 12 digits");
        }
        if jiff::tz::TimeZone::get(&c.time_zone).is_err() {
            return invalid(
                "clinic.time_zone",
                "must be an IANA time zone, e.g. Europe/Moscow",
            );
        }
        if !(1..=100).contains(&self.chat.max_file_mb) {
            return invalid("chat.max_file_mb", "must be 1 to 100");
        }
        if !(1..=600).contains(&self.chat.messages_per_minute) {
            return invalid("chat.messages_per_minute", "must be 1 to 600");
        }
        if self.chat.upload_timeout < Duration::from_secs(10) {
            return invalid("chat.upload_timeout", "must be at least 10s");
        }
        let d = &self.documents;
        if d.assign_on_booking
            .iter()
            .any(|k| vizit_api::documents::Kind::parse(k).is_none())
        {
            return invalid(
                "documents.assign_on_booking",
                "must list symptoms and/or anamnesis",
            );
        }
        if !(1..=30).contains(&d.answer_within_days) {
            return invalid("documents.answer_within_days", "must be 1 to 30");
        }
        if d.extension_days > 30 {
            return invalid("documents.extension_days", "must be 0 to 30");
        }
        for (key, days) in [
            ("documents.days_off", &d.days_off),
            ("documents.working_days", &d.working_days),
        ] {
            if days.iter().any(|s| s.parse::<jiff::civil::Date>().is_err()) {
                return invalid(key, "must be dates, YYYY-MM-DD");
            }
        }
        let b = &self.bitrix24;
        if let Some(url) = &b.webhook_url {
            let url = url.expose_secret();
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || !url.contains("/rest/")
            {
                return invalid(
                    "bitrix24.webhook_url",
                    "must be the incoming-webhook URL, https://PORTAL/rest/USER_ID/CODE/",
                );
            }
        }
        if b.sync_interval < Duration::from_secs(5) {
            return invalid("bitrix24.sync_interval", "must be at least 5s");
        }
        if b.horizon < Duration::from_secs(86_400) || b.horizon > Duration::from_secs(180 * 86_400)
        {
            return invalid("bitrix24.horizon", "must be between 1 day and 180 days");
        }
        if !(0..=100_000_000).contains(&b.price_kopecks) {
            return invalid("bitrix24.price_kopecks", "must be between 0 and 100000000");
        }
        if !(b.burst >= 1.0 && b.burst <= 250.0) {
            return invalid("bitrix24.burst", "must be between 1 and 250");
        }
        if !(b.requests_per_second > 0.0 && b.requests_per_second <= 5.0) {
            return invalid(
                "bitrix24.requests_per_second",
                "must be above 0 and at most 5",
            );
        }
        if b.request_timeout < Duration::from_secs(1) {
            return invalid("bitrix24.request_timeout", "must be at least 1s");
        }
        let r = &self.recordings;
        if r.link_ttl < Duration::from_secs(10) || r.link_ttl > Duration::from_secs(7 * 86_400) {
            return invalid(
                "recordings.link_ttl",
                "must be between 10s and 7 days (S3's limit)",
            );
        }
        if r.storage == StorageKind::S3 {
            if r.s3.bucket.trim().is_empty() {
                return invalid(
                    "recordings.s3.bucket",
                    "is required when recordings.storage = \"s3\"",
                );
            }
            if r.s3.access_key_id.is_none() || r.s3.secret_access_key.is_none() {
                return invalid(
                    "recordings.s3.access_key_id",
                    "recordings.s3.access_key_id and recordings.s3.secret_access_key are required for S3",
                );
            }
            if let Some(e) = &r.s3.endpoint
                && !(e.starts_with("https://") || e.starts_with("http://"))
            {
                return invalid(
                    "recordings.s3.endpoint",
                    "must start with https:// or http://",
                );
            }
        }
        if let Some(sse) = &r.s3.server_side_encryption
            && sse != "AES256"
            && sse != "aws:kms"
        {
            return invalid(
                "recordings.s3.server_side_encryption",
                "must be AES256 or aws:kms",
            );
        }
        if !(5..=5120).contains(&r.s3.part_size_mib) {
            return invalid("recordings.s3.part_size_mib", "must be between 5 and 5120");
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            return invalid("log.filter", &e.to_string());
        }
        Ok(())
    }

    /// The join-token secret: configured, or generated once and kept in the data folder so that
    /// `vizit token` and `vizit serve` agree without any setup.
    pub fn token_secret(&self) -> Result<SecretString, ConfigError> {
        if let Some(secret) = &self.auth.token_secret {
            return Ok(secret.clone());
        }
        let path = self.data_dir.join("token-secret");
        let err = |source| ConfigError::Secret {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) if text.trim().len() >= vizit_signaling::MIN_SECRET_BYTES => {
                return Ok(SecretString::from(text.trim().to_owned()));
            }
            Ok(_) => {
                return Err(ConfigError::Invalid {
                    key: "auth.token_secret",
                    message: format!("{} holds fewer than 32 characters", path.display()),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        std::fs::create_dir_all(&self.data_dir).map_err(err)?;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = hex::encode(bytes);
        write_private(&path, &secret).map_err(err)?;
        Ok(SecretString::from(secret))
    }

    /// `http.public_url` names a host beyond loopback.
    pub fn public_url_is_public(&self) -> bool {
        !url_is_loopback(&self.http.public_url)
    }

    /// The database URL: configured, or a SQLite file in the data folder.
    pub fn database_url(&self) -> Result<String, ConfigError> {
        if let Some(url) = &self.database.url {
            return Ok(url.expose_secret().to_owned());
        }
        std::fs::create_dir_all(&self.data_dir).map_err(|source| ConfigError::Secret {
            path: self.data_dir.clone(),
            source,
        })?;
        Ok(vizit_api::platform::db::sqlite_url(
            &self.data_dir.join("vizit.db"),
        ))
    }

    /// The business settings of the API.
    fn validate_esia(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        let e = &self.esia;
        if e.client_id.is_none() {
            return Ok(());
        }
        if self.http.public_url.is_empty() {
            return invalid(
                "http.public_url",
                "is required with esia.client_id: ESIA sends patients back to \
                 PUBLIC_URL/login/esia/callback, registered exactly so (use https)"
                    .into(),
            );
        }
        for (key, url) in [("esia.base_url", &e.base_url), ("esia.issuer", &e.issuer)] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return invalid(key, "must be an http(s) URL".into());
            }
        }
        match &e.certificate {
            None => {
                return invalid(
                    "esia.certificate",
                    "is required with esia.client_id: the certificate registered with ESIA".into(),
                );
            }
            Some(p) if !p.is_file() => {
                return invalid(
                    "esia.certificate",
                    format!("{} is not a readable file", p.display()),
                );
            }
            _ => {}
        }
        if e.token_keys.is_empty() {
            return invalid(
                "esia.token_keys",
                "name ESIA's public key or certificate (PEM) its tokens are checked with".into(),
            );
        }
        if let Some(p) = e.token_keys.iter().find(|p| !p.is_file()) {
            return invalid(
                "esia.token_keys",
                format!("{} is not a readable file", p.display()),
            );
        }
        if !e.scope.split_whitespace().any(|s| s == "openid") {
            return invalid("esia.scope", "must include openid".into());
        }
        if let Some(s) = e
            .required_scopes
            .iter()
            .find(|r| !e.scope.split_whitespace().any(|s| s == r.as_str()))
        {
            return invalid("esia.required_scopes", format!("{s} is not in esia.scope"));
        }
        let s = &e.signer;
        if !matches!(s.output.as_str(), "raw" | "base64" | "hex") {
            return invalid("esia.signer.output", "must be raw, base64 or hex".into());
        }
        if s.timeout.is_zero() {
            return invalid("esia.signer.timeout", "must be positive".into());
        }
        match s.kind.as_str() {
            "command" if s.command.is_empty() => invalid(
                "esia.signer.command",
                "name the signing program and its arguments (e.g. CryptoPro's csptest)".into(),
            ),
            "openssl" if s.key_file.as_ref().is_none_or(|p| !p.is_file()) => invalid(
                "esia.signer.key_file",
                "must be a readable gost2012_256 private key (PEM)".into(),
            ),
            "http" if s.url.as_ref().is_none_or(|u| !u.starts_with("http")) => invalid(
                "esia.signer.url",
                "must be the signing service's http(s) URL".into(),
            ),
            "http" if !matches!(s.input.as_str(), "data" | "digest") => {
                invalid("esia.signer.input", "must be data or digest".into())
            }
            "command" | "openssl" | "http" => Ok(()),
            _ => invalid(
                "esia.signer.kind",
                "must be command, http or openssl".into(),
            ),
        }
    }

    /// The signer of ESIA requests as configured.
    pub fn esia_signer(&self) -> std::sync::Arc<dyn vizit_integrations::esia::signer::Signer> {
        use vizit_integrations::esia::signer::{CommandSigner, HttpInput, HttpSigner, Output};
        let s = &self.esia.signer;
        let output = match s.output.as_str() {
            "base64" => Output::Base64,
            "hex" => Output::Hex,
            _ => Output::Raw,
        };
        match s.kind.as_str() {
            "openssl" => {
                let mut c = CommandSigner::openssl_gost(s.key_file.clone().unwrap_or_default());
                c.timeout = s.timeout;
                std::sync::Arc::new(c)
            }
            "http" => {
                let mut h = HttpSigner::new(
                    s.url.clone().unwrap_or_default(),
                    s.auth_header.clone().zip(s.auth_value.clone()),
                    if s.input == "digest" {
                        HttpInput::Digest
                    } else {
                        HttpInput::Data
                    },
                    s.reverse,
                    s.timeout,
                );
                if let Some(f) = &s.input_field {
                    h.input_field = f.clone();
                }
                if let Some(f) = &s.signature_field {
                    h.signature_field = f.clone();
                }
                std::sync::Arc::new(h)
            }
            _ => std::sync::Arc::new(CommandSigner {
                program: s.command.first().cloned().unwrap_or_default().into(),
                args: s.command.iter().skip(1).cloned().collect(),
                output,
                reverse: s.reverse,
                timeout: s.timeout,
            }),
        }
    }

    pub fn api_settings(&self) -> vizit_api::ApiSettings {
        let c = &self.consultations;
        vizit_api::ApiSettings {
            pay_within: c.pay_within,
            join_before: c.join_before,
            join_grace: c.join_grace,
            overdue_after: c.overdue_after,
            session_ttl: c.session_ttl,
            secure_cookies: self.http.public_url.starts_with("https://"),
            demo: self.demo,
            jobs_interval: c.jobs_interval,
            outbox_retention: self.database.outbox_retention,
            documents: self.document_settings(),
            patient_recordings: self.recordings.patients_may_download,
            help: self.clinic.help.clone().or_else(|| {
                self.demo.then(|| {
                    "Демо-клиника: +7 000 000-00-00, help@clinic.example (пн–пт, 9:00–18:00)"
                        .to_owned()
                })
            }),
            chat: vizit_api::chat::ChatSettings {
                max_file_bytes: u64::from(self.chat.max_file_mb) * 1024 * 1024,
                per_minute: self.chat.messages_per_minute,
                ..Default::default()
            },
            login_limits: vizit_api::people::guard::LoginLimits {
                failures_per_account: self.auth.login_failures_per_account,
                failures_per_address: self.auth.login_failures_per_address,
                window: self.auth.login_window,
                ..Default::default()
            },
            trusted_proxies: self
                .http
                .trusted_proxies
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
        }
    }

    /// The rules of questionnaires and deletion requests (lists checked by `validate`).
    pub fn document_settings(&self) -> vizit_api::documents::DocumentSettings {
        let d = &self.documents;
        let dates = |list: &[String]| list.iter().filter_map(|s| s.parse().ok()).collect();
        vizit_api::documents::DocumentSettings {
            assign_on_booking: d
                .assign_on_booking
                .iter()
                .filter_map(|k| vizit_api::documents::Kind::parse(k))
                .collect(),
            answer_within_days: d.answer_within_days,
            extension_days: d.extension_days,
            calendar: vizit_api::documents::Calendar {
                time_zone: self.clinic.time_zone.clone(),
                days_off: dates(&d.days_off),
                working: dates(&d.working_days),
            },
        }
    }

    /// The object store recordings go to.
    pub fn object_store(&self) -> vizit_recordings::ObjectStore {
        let r = &self.recordings;
        match r.storage {
            StorageKind::Local => vizit_recordings::ObjectStore::local(
                r.local_dir
                    .clone()
                    .unwrap_or_else(|| self.data_dir.join("recordings")),
            ),
            StorageKind::S3 => vizit_recordings::ObjectStore::s3(vizit_recordings::S3Settings {
                endpoint: r.s3.endpoint.clone(),
                region: r.s3.region.clone(),
                bucket: r.s3.bucket.clone(),
                prefix: r.s3.prefix.clone(),
                path_style: r.s3.path_style,
                access_key_id: r.s3.access_key_id.clone().unwrap_or_default(),
                secret_access_key: r
                    .s3
                    .secret_access_key
                    .clone()
                    .unwrap_or_else(|| SecretString::from(String::new())),
                server_side_encryption: r.s3.server_side_encryption.clone(),
                part_size: r.s3.part_size_mib * 1024 * 1024,
            }),
        }
    }

    /// The folder of files being recorded or composed.
    pub fn recording_work_dir(&self) -> PathBuf {
        self.recordings
            .work_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("recording"))
    }

    /// The spool folder of finished recordings.
    pub fn spool_dir(&self) -> PathBuf {
        self.recordings
            .spool_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("spool"))
    }

    /// The Bitrix24 integration for `webhook_url` (the configured one, or the sandbox's).
    pub fn bitrix24_settings(
        &self,
        webhook_url: SecretString,
        application_token: Option<SecretString>,
    ) -> vizit_api::slots::bitrix24::Bitrix24Settings {
        let b = &self.bitrix24;
        let mut s = vizit_api::slots::bitrix24::Bitrix24Settings::new(webhook_url);
        s.client.burst = b.burst;
        s.client.per_second = b.requests_per_second;
        s.client.request_timeout = b.request_timeout;
        s.application_token = application_token.or_else(|| b.application_token.clone());
        s.sync_interval = b.sync_interval;
        s.horizon = b.horizon;
        s.resource_type_id = b.resource_type_id;
        s.create_doctors = b.create_doctors;
        s.price_kopecks = b.price_kopecks;
        s.inline_timeout = b.booking_wait;
        s
    }

    /// The client settings of the configured YooKassa shop, if any.
    pub fn yookassa_client(
        &self,
        api_url: String,
        shop_id: String,
        secret_key: SecretString,
    ) -> vizit_integrations::yookassa::Settings {
        let mut s = vizit_integrations::yookassa::Settings::new(shop_id, secret_key);
        s.api_url = api_url;
        s.request_timeout = self.yookassa.request_timeout;
        s
    }

    /// The SMTP client settings for `url`.
    pub fn smtp(
        &self,
        url: SecretString,
    ) -> Result<vizit_integrations::smtp::Settings, ConfigError> {
        use vizit_integrations::smtp::{Dkim, DkimAlgorithm};
        let dkim = match &self.email.dkim {
            None => None,
            Some(d) => {
                let key =
                    std::fs::read_to_string(&d.key_file).map_err(|e| ConfigError::Invalid {
                        key: "email.dkim.key_file",
                        message: format!("cannot read {}: {e}", d.key_file.display()),
                    })?;
                let domain = match &d.domain {
                    Some(domain) => domain.clone(),
                    None => self
                        .email
                        .from
                        .rsplit_once('@')
                        .map(|(_, rest)| rest.trim_end_matches('>').trim().to_owned())
                        .unwrap_or_default(),
                };
                Some(Dkim {
                    domain,
                    selector: d.selector.clone(),
                    algorithm: if d.algorithm == "ed25519" {
                        DkimAlgorithm::Ed25519
                    } else {
                        DkimAlgorithm::Rsa
                    },
                    private_key: SecretString::from(key),
                })
            }
        };
        Ok(vizit_integrations::smtp::Settings {
            url,
            from: self.email.from.clone(),
            timeout: self.email.timeout,
            dkim,
        })
    }

    /// `notifications.reminders` as durations.
    fn reminders(&self) -> Result<Vec<Duration>, String> {
        self.notifications
            .reminders
            .iter()
            .map(|r| {
                let d = humantime_serde::re::humantime::parse_duration(r)
                    .map_err(|_| format!("{r:?} is not a duration (e.g. \"24h\", \"15m\")"))?;
                if d < Duration::from_secs(60) || d > Duration::from_secs(30 * 86_400) {
                    return Err(format!("{r:?} must be between 1m and 30d"));
                }
                Ok(d)
            })
            .collect()
    }

    /// When notifications go out; `public_url`: where people reach Vizit (links).
    pub fn notice_rules(&self, public_url: &str) -> vizit_api::notifications::NoticeRules {
        vizit_api::notifications::NoticeRules {
            public_url: public_url.trim_end_matches('/').to_owned(),
            reminders: self.reminders().unwrap_or_default(),
            review_after: self.notifications.review_after,
            close_after: self.notifications.close_after,
        }
    }

    /// The messenger channels: the configured MAX bot and edna account, or the sandbox's
    /// (`sandbox`: the running stand-in, in demo mode, for what is not configured).
    pub async fn channels(
        &self,
        sandbox: Option<&vizit_sandbox::Sandbox>,
        local: &str,
    ) -> anyhow::Result<vizit_api::notifications::Channels> {
        use vizit_integrations::{edna, max};
        let order =
            vizit_api::notifications::channels::parse_list(&self.notifications.channels.join(","));
        let mut channels = vizit_api::notifications::Channels {
            order,
            fallback: self.notifications.fallback,
            max: None,
            edna: None,
        };
        let m = &self.max;
        let max_setup = match (&m.token, sandbox) {
            (Some(token), _) => Some((
                m.api_url.clone(),
                token.clone(),
                m.webhook_secret
                    .clone()
                    .unwrap_or_else(|| SecretString::from(String::new())),
                m.link_base.clone(),
                m.webhook_url.clone(),
            )),
            (None, Some(s)) => Some((
                s.max.api_url(),
                SecretString::from(s.max.options().token.clone()),
                SecretString::from(format!("vz_{}", uuid::Uuid::new_v4().simple())),
                s.max.link_base(),
                Some(format!("{local}/api/v1/integrations/max/webhook")),
            )),
            (None, None) => None,
        };
        if let Some((api_url, token, secret, link_base, webhook)) = max_setup {
            let mut settings = max::Settings::new(token);
            settings.api_url = api_url;
            settings.request_timeout = m.request_timeout;
            let client = max::Client::new(settings);
            let bot_name = match &m.bot_name {
                Some(b) if m.token.is_some() => b.clone(),
                _ => client
                    .username()
                    .await
                    .context("max.token: cannot read the bot (GET /me); set max.bot_name to start without it")?,
            };
            if let Some(url) = &webhook {
                match client
                    .subscribe(
                        url,
                        &["bot_started", "bot_stopped", "message_callback"],
                        secret.expose_secret(),
                    )
                    .await
                {
                    Ok(()) => tracing::info!(bot = %bot_name, "MAX: webhook subscribed"),
                    Err(e) => {
                        tracing::warn!(error = %e, "MAX: cannot subscribe the webhook; MAX links and «Прочитано» wait for it")
                    }
                }
            }
            channels.max = Some(vizit_api::notifications::MaxChannel {
                client,
                webhook_secret: secret,
                bot_name,
                link_base,
            });
        }
        let d = &self.edna;
        let stages: Vec<edna::Stage> = d
            .stages
            .iter()
            .filter_map(|s| edna::Stage::parse(s))
            .collect();
        let edna_setup = match (&d.api_key, sandbox) {
            (Some(key), _) => Some((
                d.api_url.clone(),
                key.clone(),
                d.cascade_id.unwrap_or_default(),
                stages,
                d.callback_header.clone(),
                d.callback_auth
                    .clone()
                    .unwrap_or_else(|| SecretString::from(String::new())),
            )),
            (None, Some(s)) => {
                let o = s.edna.options();
                s.edna
                    .set_callback_url(Some(format!("{local}/api/v1/integrations/edna/status")));
                Some((
                    s.edna.api_url(),
                    SecretString::from(o.api_key.clone()),
                    o.cascade_id,
                    o.stages
                        .iter()
                        .filter_map(|s| edna::Stage::parse(s))
                        .collect(),
                    o.callback_header.clone(),
                    SecretString::from(o.callback_value.clone()),
                ))
            }
            (None, None) => None,
        };
        if let Some((api_url, api_key, cascade_id, stages, header, auth)) = edna_setup {
            channels.edna = Some(vizit_api::notifications::EdnaChannel {
                client: edna::Client::new(edna::Settings {
                    api_url,
                    api_key,
                    cascade_id,
                    stages,
                    request_timeout: d.request_timeout,
                }),
                callback_header: header,
                callback_value: auth,
                fallback_after: d.fallback_after,
            });
        }
        Ok(channels)
    }

    /// The clinic as messages present it.
    pub fn email_settings(&self) -> vizit_api::notifications::EmailSettings {
        vizit_api::notifications::EmailSettings {
            clinic_name: self.clinic.name.clone(),
            clinic_inn: self.clinic.inn.clone(),
            time_zone: self.clinic.time_zone.clone(),
        }
    }

    /// The clinic's payment rules; `return_base`: where people reach Vizit.
    pub fn payment_settings(&self, return_base: &str) -> vizit_api::payments::PaymentSettings {
        let p = &self.payments;
        let mut s = vizit_api::payments::PaymentSettings::new(return_base);
        s.vat_code = p.vat_code;
        s.tax_system_code = p.tax_system_code;
        s.item_description = p.item_description.clone();
        s.two_stage = p.two_stage;
        s.patient_refund_notice = p.patient_refund_notice;
        s.reconcile_after = p.reconcile_after;
        s.notification_sources = p
            .notification_sources
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        s.trusted_proxies = p
            .trusted_proxies
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        s.inline_timeout = p.booking_wait;
        s.receipt_deadline = p.receipt_deadline;
        s
    }

    /// The address announced in ICE candidates.
    pub fn announce_ip(&self) -> IpAddr {
        if let Some(ip) = self.media.public_ip {
            return ip;
        }
        let bind = self.media.udp_bind.ip();
        if !bind.is_unspecified() {
            return bind;
        }
        // Container and VM bridges are not reachable from other machines' browsers.
        let virtual_bridge = |name: &str| {
            ["docker", "br-", "veth", "virbr", "lxc", "cni", "podman"]
                .iter()
                .any(|p| name.starts_with(p))
        };
        if_addrs::get_if_addrs()
            .ok()
            .and_then(|addrs| {
                addrs
                    .into_iter()
                    .filter(|a| !virtual_bridge(&a.name))
                    .map(|a| a.ip())
                    .find(|ip| match ip {
                        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
                        IpAddr::V6(_) => false,
                    })
            })
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }
}

/// Name the key in lower case (as the file and the README write it) and where the value came from.
fn load_error(e: figment::Error) -> ConfigError {
    let key = e.path.join(".").to_lowercase();
    let source_hint = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    ConfigError::Load {
        key: if key.is_empty() {
            "(top level)".into()
        } else {
            key
        },
        message: e.kind.to_string(),
        source_hint,
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Whether `url` (empty: none) names this machine's loopback.
fn url_is_loopback(url: &str) -> bool {
    if url.is_empty() {
        return true;
    }
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults changed by `f`, validated: the error in words.
    fn check(f: &dyn Fn(&mut Settings)) -> Result<(), String> {
        let mut s = Settings::default();
        f(&mut s);
        s.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn ice_tcp_is_on_by_default_on_the_udp_ports_and_its_port_range_is_checked() {
        let s = Settings::default();
        assert_eq!(s.media.ice_tcp(), vizit_media::IceTcp::UdpPorts);
        let mut off = s.clone();
        off.media.tcp = false;
        off.media.tcp_port = Some(443);
        assert_eq!(off.media.ice_tcp(), vizit_media::IceTcp::Off);
        check(&|s| s.media.tcp_port = Some(443)).expect("443");
        let e = check(&|s| {
            s.media.tcp_port = Some(65535);
            s.media.threads = 2;
        })
        .unwrap_err();
        assert!(e.contains("media.tcp_port"), "{e}");
    }

    #[test]
    fn demo_mode_stays_on_loopback_unless_allowed() {
        check(&|s| s.http.public_url = "http://localhost:8080".into()).expect("loopback");
        check(&|s| s.http.public_url = "http://[::1]:8080".into()).expect("loopback v6");
        for case in [
            &(|s: &mut Settings| s.http.listen = "0.0.0.0:8080".parse().unwrap())
                as &dyn Fn(&mut Settings),
            &|s: &mut Settings| s.http.public_url = "https://vizit.clinic.example".into(),
            &|s: &mut Settings| {
                s.tls.cert = Some("/etc/hostname".into());
                s.tls.key = Some("/etc/hostname".into());
            },
        ] {
            let e = check(case).unwrap_err();
            assert!(
                e.contains("`demo`") && e.contains("allow_public_demo"),
                "{e}"
            );
            check(&|s| {
                case(s);
                s.allow_public_demo = true;
            })
            .expect("allowed on purpose");
            check(&|s| {
                case(s);
                s.demo = false;
            })
            .expect("not a demo");
        }
    }

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
    }

    #[test]
    fn turn_settings_are_checked_and_name_the_key() {
        let urls = || vec!["turns:turn.clinic.ru:443?transport=tcp".to_owned()];
        let e = check(&|s| s.turn.urls = urls()).unwrap_err();
        assert!(e.contains("turn.secret"), "{e}");
        let e = check(&|s| {
            s.turn.urls = urls();
            s.turn.secret = Some(SecretString::from("short".to_owned()));
        })
        .unwrap_err();
        assert!(e.contains("turn.secret") && e.contains("16"), "{e}");
        let e = check(&|s| {
            s.turn.urls = vec!["turn.clinic.ru:443".into()];
            s.turn.secret = Some(SecretString::from("0123456789abcdef".to_owned()));
        })
        .unwrap_err();
        assert!(
            e.contains("turn.urls") && e.contains("turn.clinic.ru:443"),
            "{e}"
        );
        check(&|s| {
            s.turn.urls = urls();
            s.turn.secret = Some(SecretString::from("0123456789abcdef".to_owned()));
        })
        .expect("a TURN server with its secret");
    }

    #[test]
    fn payment_settings_are_checked_and_name_the_key() {
        let e = check(&|s| s.yookassa.shop_id = Some("1".into())).unwrap_err();
        assert!(
            e.contains("yookassa.shop_id") && e.contains("secret_key"),
            "{e}"
        );
        check(&|s| {
            s.yookassa.shop_id = Some("1".into());
            s.yookassa.secret_key = Some(SecretString::from("test_x".to_owned()));
        })
        .expect("both set");
        let e = check(&|s| s.yookassa.api_url = "api.yookassa.ru".into()).unwrap_err();
        assert!(e.contains("yookassa.api_url"), "{e}");
        let e = check(&|s| s.payments.vat_code = 13).unwrap_err();
        assert!(e.contains("payments.vat_code"), "{e}");
        let e = check(&|s| s.payments.tax_system_code = Some(0)).unwrap_err();
        assert!(e.contains("payments.tax_system_code"), "{e}");
        let e = check(&|s| s.payments.item_description = " ".into()).unwrap_err();
        assert!(e.contains("payments.item_description"), "{e}");
        let e = check(&|s| s.payments.trusted_proxies = vec!["10.0.0.0/33".into()]).unwrap_err();
        assert!(
            e.contains("payments.trusted_proxies") && e.contains("10.0.0.0/33"),
            "{e}"
        );
        let e = check(&|s| {
            s.email.smtp_url = Some(SecretString::from("http://mail.example".to_owned()))
        })
        .unwrap_err();
        assert!(e.contains("email.smtp_url"), "{e}");
        let e = check(&|s| {
            s.email.smtp_url = Some(SecretString::from(
                "smtp://u:secret@smtp.example.ru:587".to_owned(),
            ))
        })
        .unwrap_err();
        assert!(
            e.contains("email.smtp_url") && e.contains("tls=required") && !e.contains("secret"),
            "{e}"
        );
        let dkim = |algorithm: &str, key_file: &str| DkimSettings {
            selector: "vizit2026".into(),
            domain: None,
            algorithm: algorithm.into(),
            key_file: key_file.into(),
        };
        let e = check(&|s| s.email.dkim = Some(dkim("rsa", "/nonexistent/dkim.pem"))).unwrap_err();
        assert!(e.contains("email.dkim.key_file"), "{e}");
        let e = check(&|s| s.email.dkim = Some(dkim("dsa", "/nonexistent/dkim.pem"))).unwrap_err();
        assert!(e.contains("email.dkim.algorithm"), "{e}");
        let not_a_key = std::env::temp_dir().join(format!("vizit-dkim-{}.pem", std::process::id()));
        std::fs::write(&not_a_key, "not a key").unwrap();
        let path = not_a_key.to_string_lossy().into_owned();
        let e = check(&|s| s.email.dkim = Some(dkim("rsa", &path))).unwrap_err();
        assert!(
            e.contains("email.dkim.key_file") && e.contains("PKCS#1"),
            "{e}"
        );
        let _ = std::fs::remove_file(&not_a_key);
        let e = check(&|s| s.notifications.reminders = vec!["soon".into()]).unwrap_err();
        assert!(
            e.contains("notifications.reminders") && e.contains("soon"),
            "{e}"
        );
        let e = check(&|s| s.notifications.reminders = vec!["10s".into()]).unwrap_err();
        assert!(e.contains("notifications.reminders"), "{e}");
        let e = check(&|s| s.email.from = "noreply".into()).unwrap_err();
        assert!(e.contains("email.from"), "{e}");
        let e = check(&|s| s.clinic.inn = Some("77000".into())).unwrap_err();
        assert!(e.contains("clinic.inn"), "{e}");
        let e = check(&|s| s.clinic.time_zone = "Moscow".into()).unwrap_err();
        assert!(e.contains("clinic.time_zone"), "{e}");
        check(&|s| {
            s.email.smtp_url = Some(SecretString::from(
                "smtp://u:p@smtp.example.ru:587?tls=required".to_owned(),
            ));
            s.email.from = "Клиника <noreply@clinic.example>".into();
            s.clinic.inn = Some("7700000000".into());
        })
        .expect("valid e-mail settings");
        let rules = Settings::default().payment_settings("https://clinic.example");
        assert_eq!(
            rules.notification_sources.len(),
            vizit_api::payments::YOOKASSA_SOURCES.len(),
            "every published range parses"
        );
    }

    // figment's Jail returns its own large error type.
    #[allow(clippy::result_large_err)]
    #[test]
    fn file_then_environment_override_defaults_and_errors_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "vizit.toml",
                "demo = false\n[media]\nmax_participants = 3\nice_timeout = \"5s\"\n",
            )?;
            jail.set_env("VIZIT_MEDIA__MAX_PARTICIPANTS", "4");
            let s = Settings::load(Some(Path::new("vizit.toml"))).expect("valid");
            assert!(!s.demo);
            assert_eq!(s.media.max_participants, 4, "env beats file");
            assert_eq!(
                s.media.ice_timeout,
                Duration::from_secs(5),
                "file beats default"
            );

            jail.set_env("VIZIT_MEDIA__MAX_PARTICIPANTS", "many");
            let e = Settings::load(None).unwrap_err().to_string();
            assert!(e.contains("max_participants"), "{e}");

            jail.set_env("VIZIT_MEDIA__MAX_PARTICIPANTS", "1");
            let e = Settings::load(None).unwrap_err().to_string();
            assert!(e.contains("media.max_participants"), "{e}");

            jail.clear_env();
            jail.set_env("VIZIT_MEDIA__SOCKET_BUFFER_BYTES", "16777216");
            let s = Settings::load(None).expect("valid");
            assert_eq!(s.media.socket_buffer_bytes, 16 << 20);
            jail.set_env("VIZIT_MEDIA__SOCKET_BUFFER_BYTES", "1024");
            let e = Settings::load(None).unwrap_err().to_string();
            assert!(e.contains("media.socket_buffer_bytes"), "{e}");

            jail.clear_env();
            jail.set_env("VIZIT_MEDIA__THREADS", "2");
            assert_eq!(Settings::load(None).expect("valid").media.threads, 2);
            jail.set_env("VIZIT_MEDIA__THREADS", "0");
            let e = Settings::load(None).unwrap_err().to_string();
            assert!(e.contains("media.threads"), "{e}");
            jail.set_env("VIZIT_MEDIA__THREADS", "2");
            jail.set_env("VIZIT_MEDIA__UDP_BIND", "0.0.0.0:65535");
            let e = Settings::load(None).unwrap_err().to_string();
            assert!(e.contains("65535"), "{e}");

            jail.clear_env();
            jail.set_env("VIZIT_MEDIA__NO_SUCH_KEY", "1");
            let e = Settings::load(None).unwrap_err().to_string();
            assert!(e.contains("no_such_key"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn generated_secret_is_kept_and_reused() {
        let dir = std::env::temp_dir().join(format!("vizit-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let settings = Settings {
            data_dir: dir.clone(),
            ..Settings::default()
        };
        let first = settings.token_secret().unwrap();
        let second = settings.token_secret().unwrap();
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert_eq!(first.expose_secret().len(), 64);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
