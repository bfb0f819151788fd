//! Notifications about consultations and documents: the outbox subscriber that turns their
//! events into messages to the patient, the doctor, the clinic's admins and head doctors
//! (questionnaires to fill in, deletion requests and their answers), and the scheduler jobs for
//! what is due at a time (reminders, "close the consultation", the review request).
//!
//! Each message is one `notifications` row per cause and recipient (`dedup_key`): an event seen
//! twice, a job run twice or by two nodes, makes one message. It is created in the transaction
//! that acknowledges the event (or runs the job), with its e-mail and that e-mail's send call, so
//! a crash loses or doubles nothing. It goes out on the first channel of its recipient's order
//! that reaches them (`channels.rs`); a channel that fails passes it to the next one
//! ([`Notices::fall_back`]). E-mail reports `sent` (the server's `250`, via `email.sent`),
//! `failed` (`email.failed`) and `read` (the message's link opened); MAX and edna are in
//! `messengers.rs`.

use std::sync::Arc;

use anyhow::Context as _;
use serde_json::{Value, json};
use sqlx::AnyConnection;

use super::channels::{self, Channel};
use super::log::{self, NewNotice, Person, Status, Visit};
use super::repo::{self as emails, NewEmail};
use super::settings::Notifications;
use super::texts::{self, Case, Context};
use crate::domain::EventKind;
use crate::platform::BoxFuture;
use crate::platform::outbound::{self, NewCall};
use crate::platform::outbox::{Event, Subscriber};
use crate::platform::scheduler::{Due, Job, Scheduler};
use crate::state::{ApiState, Core};

/// Why a notification went nowhere.
pub const NO_CHANNEL: &str =
    "no channel reaches the recipient (no e-mail, no phone, no linked MAX account)";

pub const REMINDER: &str = "notify.reminder";
pub const MUST_CLOSE: &str = "notify.must_close";
pub const REVIEW: &str = "notify.review";
/// A move is told once it has settled: a slot source may refuse it (and the undo puts it back),
/// and moves in quick succession make one message.
pub const MOVED: &str = "notify.moved";
const MOVED_AFTER_MS: i64 = 30_000;
/// A delivery edna reported failed falls back after `edna.fallback_after` (a later stage of
/// its cascade may still deliver it).
pub const FALLBACK: &str = "notify.fallback";

/// What a notification is about, as its text needs it: a consultation, or a patient's request
/// to delete their documents (which has no consultation).
#[derive(Debug, Clone)]
pub struct About {
    /// The consultation's or the request's id: in the dedup key, its start is the reference.
    pub id: String,
    pub consultation_id: Option<String>,
    /// The time the text names (the consultation's start, the request's deadline…).
    pub at: i64,
    pub time_zone: String,
    pub price_kopecks: i64,
    pub pay_by: i64,
    /// Cancelled for want of payment.
    pub expired: bool,
    /// Booked and still to be paid.
    pub unpaid: bool,
    /// Questionnaires the message asks to fill in.
    pub count: usize,
}

impl About {
    pub fn visit(v: &Visit) -> About {
        About {
            id: v.id.clone(),
            consultation_id: Some(v.id.clone()),
            at: v.starts_at,
            time_zone: v.time_zone.clone(),
            price_kopecks: v.price_kopecks,
            pay_by: v.pay_by,
            expired: false,
            unpaid: v.status == "booked" && v.price_kopecks > 0,
            count: 0,
        }
    }

    fn expired(self) -> About {
        About {
            expired: true,
            ..self
        }
    }

    /// A request (`id`) at time `at` of the clinic's zone.
    fn request(id: &str, at: i64, time_zone: &str) -> About {
        About {
            id: id.to_owned(),
            consultation_id: None,
            at,
            time_zone: time_zone.to_owned(),
            price_kopecks: 0,
            pay_by: 0,
            expired: false,
            unpaid: false,
            count: 0,
        }
    }

    /// What a fallback or a resend needs to write the message again, beyond the consultation.
    fn context(&self) -> Option<String> {
        let mut c = serde_json::Map::new();
        if self.expired {
            c.insert("expired".into(), json!(true));
        }
        if self.count > 0 {
            c.insert("count".into(), json!(self.count));
        }
        if self.consultation_id.is_none() {
            c.insert("request".into(), json!(self.id));
            c.insert("at".into(), json!(self.at));
            c.insert("timeZone".into(), json!(self.time_zone));
        }
        (!c.is_empty()).then(|| Value::Object(c).to_string())
    }

    fn with(self, context: &Value) -> About {
        About {
            expired: context["expired"].as_bool() == Some(true),
            count: context["count"].as_u64().unwrap_or(0) as usize,
            ..self
        }
    }

    fn of_request(context: &Value) -> Option<About> {
        Some(About::request(
            context["request"].as_str()?,
            context["at"].as_i64()?,
            context["timeZone"].as_str()?,
        ))
    }
}

/// The `kind` of notification e-mails in `emails`.
pub const EMAIL_KIND: &str = "notification";

/// Makes and sends notifications; shared by the subscriber and the jobs.
#[derive(Clone)]
pub struct Notices {
    pub core: Core,
    pub scheduler: Arc<Scheduler>,
    pub notifications: Arc<Notifications>,
}

fn reminder_key(consultation: &str, before_secs: u64) -> String {
    format!("{REMINDER}:{consultation}:{before_secs}")
}

fn must_close_key(consultation: &str) -> String {
    format!("{MUST_CLOSE}:{consultation}")
}

fn review_key(consultation: &str) -> String {
    format!("{REVIEW}:{consultation}")
}

fn moved_key(consultation: &str) -> String {
    format!("{MOVED}:{consultation}")
}

impl Notices {
    /// Over `state`'s database, clock and scheduler.
    pub fn of(state: &ApiState, notifications: &Arc<Notifications>) -> Notices {
        Notices {
            core: state.core(),
            scheduler: state.scheduler.clone(),
            notifications: notifications.clone(),
        }
    }

    fn now(&self) -> i64 {
        self.core.now()
    }

    /// Notify `person` of `case` about `about`: once per case, consultation (or request),
    /// person and `occasion` (what a repeat of the case is for, e.g. `:<start>:<offset>` of a
    /// reminder; empty for a case that happens once).
    async fn notify(
        &self,
        conn: &mut AnyConnection,
        case: Case,
        person: &Person,
        about: &About,
        occasion: &str,
    ) -> Result<(), sqlx::Error> {
        let now = self.now();
        let dedup = format!("{}:{}:{}{occasion}", case.as_str(), about.id, person.id);
        let context = about.context();
        let Some(notice) = log::create(
            conn,
            &NewNotice {
                event: case.as_str(),
                recipient_id: &person.id,
                recipient_role: &person.role,
                consultation_id: about.consultation_id.as_deref(),
                dedup_key: &dedup,
                context: context.as_deref(),
            },
            now,
        )
        .await?
        else {
            return Ok(());
        };
        self.dispatch(conn, &notice, case, person, about, &[], None)
            .await?;
        Ok(())
    }

    /// The channels tried for `person`, in order: their choice among the clinic's channels,
    /// else the clinic's order.
    pub fn order_for(&self, person: &Person) -> Vec<Channel> {
        let enabled = self.notifications.enabled();
        let chosen: Vec<Channel> = person
            .channels
            .as_deref()
            .map(channels::parse_list)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| enabled.contains(c))
            .collect();
        if chosen.is_empty() { enabled } else { chosen }
    }

    /// Send notification `notice` on the first channel of `person`'s order that is not in
    /// `tried` and reaches them (or on `only`). Returns the channel, if one did.
    #[allow(clippy::too_many_arguments)]
    async fn dispatch(
        &self,
        conn: &mut AnyConnection,
        notice: &str,
        case: Case,
        person: &Person,
        about: &About,
        tried: &[Channel],
        only: Option<Channel>,
    ) -> Result<Option<Channel>, sqlx::Error> {
        let now = self.now();
        let order = match only {
            Some(c) => vec![c],
            None => self.order_for(person),
        };
        let next = order
            .iter()
            .filter(|c| !tried.contains(c))
            .find_map(|c| address(person, *c).map(|a| (*c, a)));
        let Some((channel, address)) = next else {
            if tried.is_empty() {
                let channel = order.first().copied().unwrap_or(Channel::Email);
                log::add_delivery(conn, notice, channel.as_str(), None, Some(NO_CHANNEL), now)
                    .await?;
                tracing::warn!(notification = %notice, event = case.as_str(),
                               "a notification has no channel that reaches its recipient");
            }
            return Ok(None);
        };
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let delivery =
            log::add_delivery(conn, notice, channel.as_str(), Some(&token), None, now).await?;
        let rules = &self.notifications.rules;
        let link = format!(
            "{}/api/v1/notifications/open/{token}",
            rules.public_url.trim_end_matches('/')
        );
        let reference: String = about.id.chars().take(8).collect();
        let m = texts::render(
            case,
            &Context {
                clinic: &self.notifications.settings.clinic_name,
                starts_at: about.at,
                time_zone: &about.time_zone,
                price_kopecks: about.price_kopecks,
                pay_by: about.pay_by,
                expired: about.expired,
                unpaid: about.unpaid,
                count: about.count,
                link: &link,
                reference: &reference,
            },
        );
        match channel {
            Channel::Email => {
                // The e-mail's key is the new delivery's: it is always queued.
                emails::queue(
                    conn,
                    NewEmail {
                        recipient: &address,
                        subject: &m.subject,
                        text: &m.text,
                        html: Some(&m.html),
                        inline: &[],
                        kind: EMAIL_KIND,
                        ref_id: Some(&delivery),
                        dedup_key: &format!("{EMAIL_KIND}:{delivery}"),
                    },
                    now,
                )
                .await?;
            }
            Channel::Max | Channel::Edna => {
                let body = json!({"text": m.chat, "action": m.action, "link": link,
                                  "sms": m.chat_with_link(&link), "read": token});
                log::set_payload(conn, &delivery, &address, &body.to_string()).await?;
                outbound::enqueue(
                    conn,
                    NewCall {
                        system: channel.system(),
                        operation: "send",
                        consultation_id: &format!("{}:{delivery}", channel.as_str()),
                        payload: Some(json!({"delivery": delivery})),
                    },
                    now,
                )
                .await?;
            }
        }
        Ok(Some(channel))
    }

    /// Delivery `delivery` failed: its notification goes out on the next channel that reaches
    /// its recipient — if the clinic falls back, and no other delivery of it is under way or
    /// through.
    pub async fn fall_back(
        &self,
        conn: &mut AnyConnection,
        delivery: &str,
    ) -> Result<Option<Channel>, sqlx::Error> {
        if !self.notifications.channels.fallback {
            return Ok(None);
        }
        let Some(d) = log::outgoing(conn, delivery).await? else {
            return Ok(None);
        };
        let all = log::deliveries_of(conn, &d.notification_id).await?;
        if all
            .iter()
            .any(|(_, status)| status != Status::Failed.as_str())
        {
            return Ok(None);
        }
        let tried: Vec<Channel> = all.iter().filter_map(|(c, _)| Channel::parse(c)).collect();
        self.again(conn, &d.notification_id, &tried, None).await
    }

    /// Send notification `id` again: on `only`, or on the first channel not in `tried`.
    pub async fn again(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        tried: &[Channel],
        only: Option<Channel>,
    ) -> Result<Option<Channel>, sqlx::Error> {
        let Some(n) = log::notice(conn, id).await? else {
            return Ok(None);
        };
        let Some(case) = Case::parse(&n.event) else {
            return Ok(None);
        };
        let Some(person) = log::person(conn, &n.recipient_id).await? else {
            return Ok(None);
        };
        let context = n
            .context
            .as_deref()
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
            .unwrap_or(Value::Null);
        let about = match n.consultation_id {
            Some(consultation) => match log::visit(conn, &consultation).await? {
                Some(visit) => About::visit(&visit).with(&context),
                None => return Ok(None),
            },
            None => match About::of_request(&context) {
                Some(about) => about,
                None => return Ok(None),
            },
        };
        self.dispatch(conn, id, case, &person, &about, tried, only)
            .await
    }

    async fn notify_id(
        &self,
        conn: &mut AnyConnection,
        case: Case,
        person: &str,
        about: &About,
        occasion: &str,
    ) -> Result<(), sqlx::Error> {
        match log::person(conn, person).await? {
            Some(p) => self.notify(conn, case, &p, about, occasion).await,
            None => Ok(()),
        }
    }

    /// Reminders and "close it" for a paid consultation at its (current) time; offsets
    /// already past are dropped (a reminder 24 h before a consultation booked 2 h ahead would
    /// only confuse).
    async fn plan(&self, conn: &mut AnyConnection, visit: &Visit) -> Result<(), sqlx::Error> {
        let now = self.now();
        let rules = &self.notifications.rules;
        for before in &rules.reminders {
            let key = reminder_key(&visit.id, before.as_secs());
            let at = visit.starts_at - before.as_millis() as i64;
            if at > now {
                self.scheduler
                    .schedule(
                        conn,
                        REMINDER,
                        &key,
                        at,
                        Some(
                            json!({"consultationId": visit.id, "startsAt": visit.starts_at,
                                    "beforeSecs": before.as_secs()}),
                        ),
                    )
                    .await?;
            } else {
                self.scheduler.cancel(conn, &key).await?;
            }
        }
        self.scheduler
            .schedule(
                conn,
                MUST_CLOSE,
                &must_close_key(&visit.id),
                visit.ends_at + rules.close_after.as_millis() as i64,
                Some(json!({"consultationId": visit.id, "endsAt": visit.ends_at})),
            )
            .await?;
        Ok(())
    }

    async fn unplan(&self, conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
        for before in &self.notifications.rules.reminders {
            self.scheduler
                .cancel(conn, &reminder_key(id, before.as_secs()))
                .await?;
        }
        self.scheduler.cancel(conn, &must_close_key(id)).await?;
        Ok(())
    }

    async fn on_event(&self, conn: &mut AnyConnection, event: &Event) -> anyhow::Result<()> {
        let Some(kind) = EventKind::parse(&event.kind) else {
            return Ok(());
        };
        if matches!(kind, EventKind::EmailSent | EventKind::EmailFailed) {
            return self.on_email(conn, kind, &event.payload).await;
        }
        if matches!(
            kind,
            EventKind::DeletionRequested
                | EventKind::DeletionAnswered
                | EventKind::DeletionExtended
                | EventKind::DeletionOverdue
        ) {
            return self.on_request(conn, kind, &event.payload).await;
        }
        let Some(id) = event.consultation_id.as_deref() else {
            return Ok(());
        };
        let Some(visit) = log::visit(conn, id).await? else {
            return Ok(());
        };
        let (patient, doctor) = (visit.patient_id.clone(), visit.doctor_id.clone());
        match kind {
            EventKind::ConsultationBooked => {
                self.notify_id(
                    conn,
                    Case::PatientBooked,
                    &patient,
                    &About::visit(&visit),
                    "",
                )
                .await?;
            }
            EventKind::ConsultationPaid => {
                self.notify_id(conn, Case::PatientPaid, &patient, &About::visit(&visit), "")
                    .await?;
                if visit.status == "paid" {
                    self.plan(conn, &visit).await?;
                }
            }
            EventKind::ConsultationRescheduled => {
                if visit.status == "paid" {
                    self.plan(conn, &visit).await?;
                }
                // Both are told the new time once the move has settled (`on_job`). `since`: the
                // time they knew before this run of moves (an undone or reversed move is no news).
                let key = moved_key(id);
                let since = self
                    .scheduler
                    .pending_payload(conn, &key)
                    .await?
                    .and_then(|p| p["since"].as_i64())
                    .or(event.payload["fromStartsAt"].as_i64());
                self.scheduler
                    .schedule(
                        conn,
                        MOVED,
                        &key,
                        self.now() + MOVED_AFTER_MS,
                        Some(json!({"consultationId": id, "since": since,
                                    "startsAt": visit.starts_at, "event": event.id})),
                    )
                    .await?;
            }
            EventKind::ConsultationCancelled => {
                self.unplan(conn, id).await?;
                self.notify_id(
                    conn,
                    Case::PatientCancelled,
                    &patient,
                    &About::visit(&visit),
                    "",
                )
                .await?;
                self.notify_id(
                    conn,
                    Case::DoctorCancelled,
                    &doctor,
                    &About::visit(&visit),
                    "",
                )
                .await?;
            }
            EventKind::ConsultationExpired => {
                self.unplan(conn, id).await?;
                self.notify_id(
                    conn,
                    Case::PatientCancelled,
                    &patient,
                    &About::visit(&visit).expired(),
                    "",
                )
                .await?;
            }
            EventKind::ConsultationCompleted => {
                self.unplan(conn, id).await?;
                let at = visit.completed_at.unwrap_or(self.now())
                    + self.notifications.rules.review_after.as_millis() as i64;
                self.scheduler
                    .schedule(
                        conn,
                        REVIEW,
                        &review_key(id),
                        at,
                        Some(json!({"consultationId": id})),
                    )
                    .await?;
            }
            EventKind::QuestionnaireAssigned
                if matches!(visit.status.as_str(), "booked" | "paid" | "in_progress") =>
            {
                // One message for the questionnaires assigned together; its case is the
                // symptoms one if it is among them. The text names no document.
                let list = event.payload["questionnaires"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let Some(first) = list.first().and_then(|q| q["id"].as_str()) else {
                    return Ok(());
                };
                let case = if list.iter().any(|q| q["kind"] == "symptoms") {
                    Case::PatientSymptoms
                } else {
                    Case::PatientAnamnesis
                };
                let about = About {
                    count: list.len(),
                    ..About::visit(&visit)
                };
                self.notify_id(conn, case, &patient, &about, &format!(":{first}"))
                    .await?;
            }
            EventKind::ConsultationOverdue => {
                for (role, case) in [
                    ("admin", Case::AdminNotClosed),
                    ("head_doctor", Case::HeadDoctorNotClosed),
                ] {
                    for person in log::people_with_role(conn, role).await? {
                        self.notify(conn, case, &person, &About::visit(&visit), "")
                            .await?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A patient's request to delete their documents: the clinic's admins are told of it and of
    /// its deadline passing, the patient of the answer and of an extension.
    async fn on_request(
        &self,
        conn: &mut AnyConnection,
        kind: EventKind,
        payload: &Value,
    ) -> anyhow::Result<()> {
        let (Some(request), Some(at)) = (
            payload["requestId"].as_str(),
            payload["dueAt"]
                .as_i64()
                .or_else(|| payload["createdAt"].as_i64()),
        ) else {
            return Ok(());
        };
        let about = About::request(request, at, &self.notifications.settings.time_zone);
        let (case, to_admins) = match kind {
            EventKind::DeletionRequested => (Case::AdminDeletionRequest, true),
            EventKind::DeletionOverdue => (Case::AdminDeletionOverdue, true),
            EventKind::DeletionAnswered => (Case::PatientDeletionAnswered, false),
            _ => (Case::PatientDeletionExtended, false),
        };
        // An extension repeats per deadline; the rest happen once per request.
        let occasion = match kind {
            EventKind::DeletionExtended | EventKind::DeletionOverdue => format!(":{at}"),
            _ => String::new(),
        };
        if to_admins {
            for person in log::people_with_role(conn, "admin").await? {
                self.notify(conn, case, &person, &about, &occasion).await?;
            }
        } else if let Some(patient) = payload["patientId"].as_str() {
            self.notify_id(conn, case, patient, &about, &occasion)
                .await?;
        }
        Ok(())
    }

    /// The e-mail channel's report on a notification's e-mail.
    async fn on_email(
        &self,
        conn: &mut AnyConnection,
        kind: EventKind,
        payload: &Value,
    ) -> anyhow::Result<()> {
        if payload["kind"].as_str() != Some(EMAIL_KIND) {
            return Ok(());
        }
        let Some(delivery) = payload["refId"].as_str() else {
            return Ok(());
        };
        let (status, detail) = if kind == EventKind::EmailSent {
            (Status::Sent, None)
        } else {
            (Status::Failed, payload["error"].as_str())
        };
        if log::apply(conn, delivery, status, "smtp", detail, self.now()).await?
            && status == Status::Failed
        {
            self.fall_back(conn, delivery).await?;
        }
        Ok(())
    }

    /// A timed notification, in its own transaction.
    async fn on_job(&self, job: &Due) -> anyhow::Result<()> {
        let payload = job.payload.clone().unwrap_or(Value::Null);
        if job.kind == FALLBACK {
            let delivery = payload["delivery"]
                .as_str()
                .context("a fallback job without a delivery")?;
            let mut tx = self.core.db.begin_write().await?;
            self.fall_back(&mut tx, delivery).await?;
            tx.commit().await?;
            self.notifications.wake();
            return Ok(());
        }
        let id = payload["consultationId"]
            .as_str()
            .context("a notification job without a consultation")?
            .to_owned();
        let core = &self.core;
        let mut tx = core.db.begin_write().await?;
        let Some(visit) = log::visit(&mut tx, &id).await? else {
            return Ok(());
        };
        let now = self.now();
        match job.kind.as_str() {
            REMINDER => {
                // Dropped if the consultation moved, started, or is no longer going ahead.
                let planned = payload["startsAt"].as_i64();
                if visit.status == "paid"
                    && now < visit.starts_at
                    && planned == Some(visit.starts_at)
                {
                    let before = payload["beforeSecs"].as_u64().unwrap_or(0);
                    for (case, who) in [
                        (Case::PatientReminder, &visit.patient_id),
                        (Case::DoctorReminder, &visit.doctor_id),
                    ] {
                        let occasion = format!(":{}:{before}", visit.starts_at);
                        self.notify_id(&mut tx, case, who, &About::visit(&visit), &occasion)
                            .await?;
                    }
                }
            }
            MUST_CLOSE
                if matches!(visit.status.as_str(), "paid" | "in_progress")
                    && payload["endsAt"].as_i64() == Some(visit.ends_at) =>
            {
                self.notify_id(
                    &mut tx,
                    Case::DoctorMustClose,
                    &visit.doctor_id,
                    &About::visit(&visit),
                    &format!(":{}", visit.ends_at),
                )
                .await?;
            }
            MOVED
                if matches!(visit.status.as_str(), "booked" | "paid")
                    && payload["startsAt"].as_i64() == Some(visit.starts_at)
                    && payload["since"].as_i64() != Some(visit.starts_at) =>
            {
                let occasion = format!(":{}", payload["event"].as_i64().unwrap_or(0));
                let about = About::visit(&visit);
                for (case, who) in [
                    (Case::PatientRescheduled, &visit.patient_id),
                    (Case::DoctorRescheduled, &visit.doctor_id),
                ] {
                    self.notify_id(&mut tx, case, who, &about, &occasion)
                        .await?;
                }
            }
            REVIEW if visit.status == "completed" => {
                self.notify_id(
                    &mut tx,
                    Case::PatientReview,
                    &visit.patient_id,
                    &About::visit(&visit),
                    "",
                )
                .await?;
            }
            _ => {}
        }
        tx.commit().await?;
        self.notifications.wake();
        Ok(())
    }
}

/// The outbox side.
pub struct ConsultationNotices(pub Notices);

impl Subscriber for ConsultationNotices {
    fn name(&self) -> &'static str {
        "notifications.consultations"
    }

    fn wants(&self, kind: &str) -> bool {
        matches!(
            EventKind::parse(kind),
            Some(
                EventKind::ConsultationBooked
                    | EventKind::ConsultationPaid
                    | EventKind::ConsultationRescheduled
                    | EventKind::ConsultationCancelled
                    | EventKind::ConsultationExpired
                    | EventKind::ConsultationCompleted
                    | EventKind::ConsultationOverdue
                    | EventKind::QuestionnaireAssigned
                    | EventKind::DeletionRequested
                    | EventKind::DeletionAnswered
                    | EventKind::DeletionExtended
                    | EventKind::DeletionOverdue
                    | EventKind::EmailSent
                    | EventKind::EmailFailed
            )
        )
    }

    fn handle<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.0.on_event(conn, event))
    }

    fn delivered(&self, _event: &Event) {
        self.0.notifications.wake();
    }
}

/// The scheduler side: one per job kind.
pub struct NoticeJob {
    pub kind: &'static str,
    pub notices: Notices,
}

impl Job for NoticeJob {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn run<'a>(&'a self, job: &'a Due) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.notices.on_job(job))
    }
}

/// Where `person` is reached on `channel`, if they are.
pub fn address(person: &Person, channel: Channel) -> Option<String> {
    match channel {
        Channel::Email => person.email.clone(),
        Channel::Max => person.max_id.clone(),
        Channel::Edna => person.phone.as_deref().and_then(channels::phone_digits),
    }
}
