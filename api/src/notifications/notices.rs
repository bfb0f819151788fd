//! Notifications about consultations: the outbox subscriber that turns consultation events into
//! messages to the patient, the doctor, the clinic's admins and head doctors, and the scheduler
//! jobs for what is due at a time (reminders, "close the consultation", the review request).
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
/// A delivery edna reported failed falls back after `edna.fallback_after` (a later stage of
/// its cascade may still deliver it).
pub const FALLBACK: &str = "notify.fallback";

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

    /// Notify `person` of `case` about `visit`: once per case, consultation, person and
    /// `occasion` (what a repeat of the case is for, e.g. `:<start>:<offset>` of a reminder;
    /// empty for a case that happens once).
    async fn notify(
        &self,
        conn: &mut AnyConnection,
        case: Case,
        person: &Person,
        visit: &Visit,
        expired: bool,
        occasion: &str,
    ) -> Result<(), sqlx::Error> {
        let now = self.now();
        let dedup = format!("{}:{}:{}{occasion}", case.as_str(), visit.id, person.id);
        let context = expired.then(|| json!({"expired": true}).to_string());
        let Some(notice) = log::create(
            conn,
            &NewNotice {
                event: case.as_str(),
                recipient_id: &person.id,
                recipient_role: &person.role,
                consultation_id: Some(&visit.id),
                dedup_key: &dedup,
                context: context.as_deref(),
            },
            now,
        )
        .await?
        else {
            return Ok(());
        };
        self.dispatch(conn, &notice, case, person, visit, expired, &[], None)
            .await?;
        Ok(())
    }

    /// The channels tried for `person`, in order: their choice among the clinic's channels,
    /// else the clinic's order.
    pub fn order_for(&self, person: &Person) -> Vec<Channel> {
        let enabled = self.notifications.channels.enabled();
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
        visit: &Visit,
        expired: bool,
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
        let reference: String = visit.id.chars().take(8).collect();
        let m = texts::render(
            case,
            &Context {
                clinic: &self.notifications.settings.clinic_name,
                starts_at: visit.starts_at,
                time_zone: &visit.time_zone,
                price_kopecks: visit.price_kopecks,
                pay_by: visit.pay_by,
                expired,
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
        let (Some(case), Some(consultation)) = (Case::parse(&n.event), n.consultation_id) else {
            return Ok(None);
        };
        let (Some(person), Some(visit)) = (
            log::person(conn, &n.recipient_id).await?,
            log::visit(conn, &consultation).await?,
        ) else {
            return Ok(None);
        };
        let expired = n
            .context
            .as_deref()
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
            .is_some_and(|c| c["expired"].as_bool() == Some(true));
        self.dispatch(conn, id, case, &person, &visit, expired, tried, only)
            .await
    }

    async fn notify_id(
        &self,
        conn: &mut AnyConnection,
        case: Case,
        person: &str,
        visit: &Visit,
        expired: bool,
        occasion: &str,
    ) -> Result<(), sqlx::Error> {
        match log::person(conn, person).await? {
            Some(p) => self.notify(conn, case, &p, visit, expired, occasion).await,
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
        let Some(id) = event.consultation_id.as_deref() else {
            return Ok(());
        };
        let Some(visit) = log::visit(conn, id).await? else {
            return Ok(());
        };
        let (patient, doctor) = (visit.patient_id.clone(), visit.doctor_id.clone());
        match kind {
            EventKind::ConsultationBooked => {
                self.notify_id(conn, Case::PatientBooked, &patient, &visit, false, "")
                    .await?;
            }
            EventKind::ConsultationPaid => {
                self.notify_id(conn, Case::PatientPaid, &patient, &visit, false, "")
                    .await?;
                if visit.status == "paid" {
                    self.plan(conn, &visit).await?;
                }
            }
            EventKind::ConsultationRescheduled if visit.status == "paid" => {
                self.plan(conn, &visit).await?;
            }
            EventKind::ConsultationCancelled => {
                self.unplan(conn, id).await?;
                self.notify_id(conn, Case::PatientCancelled, &patient, &visit, false, "")
                    .await?;
                self.notify_id(conn, Case::DoctorCancelled, &doctor, &visit, false, "")
                    .await?;
            }
            EventKind::ConsultationExpired => {
                self.unplan(conn, id).await?;
                self.notify_id(conn, Case::PatientCancelled, &patient, &visit, true, "")
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
            EventKind::ConsultationOverdue => {
                for (role, case) in [
                    ("admin", Case::AdminNotClosed),
                    ("head_doctor", Case::HeadDoctorNotClosed),
                ] {
                    for person in log::people_with_role(conn, role).await? {
                        self.notify(conn, case, &person, &visit, false, "").await?;
                    }
                }
            }
            _ => {}
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
                        self.notify_id(&mut tx, case, who, &visit, false, &occasion)
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
                    &visit,
                    false,
                    &format!(":{}", visit.ends_at),
                )
                .await?;
            }
            REVIEW if visit.status == "completed" => {
                self.notify_id(
                    &mut tx,
                    Case::PatientReview,
                    &visit.patient_id,
                    &visit,
                    false,
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
