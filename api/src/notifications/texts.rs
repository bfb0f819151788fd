//! The texts of notifications, in Russian: a subject, plain text and HTML for e-mail.
//!
//! **No medical content** (323-FZ art. 13, medical secrecy): no diagnosis, no specialty, no
//! doctor's or patient's name, no symptoms, no cancellation reason (a person may write one), no
//! document names — only the time of the consultation, the clinic, money where the patient pays,
//! and a sign-in link to the page where the rest is. Every parameter is HTML-escaped.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::receipt::{esc, roubles};

/// What happened, to whom: the 10 consultation cases, the 2 questionnaire cases and the 4 of
/// deletion requests (the request and its deadline passing to admins; the answer and an
/// extension to the patient).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Case {
    PatientBooked,
    PatientPaid,
    PatientCancelled,
    PatientReminder,
    PatientReview,
    DoctorMustClose,
    DoctorReminder,
    DoctorCancelled,
    AdminNotClosed,
    HeadDoctorNotClosed,
    PatientSymptoms,
    PatientAnamnesis,
    AdminDeletionRequest,
    AdminDeletionOverdue,
    PatientDeletionAnswered,
    PatientDeletionExtended,
    PatientRescheduled,
    DoctorRescheduled,
}

impl Case {
    pub const ALL: [Case; 18] = [
        Case::PatientBooked,
        Case::PatientPaid,
        Case::PatientCancelled,
        Case::PatientReminder,
        Case::PatientReview,
        Case::DoctorMustClose,
        Case::DoctorReminder,
        Case::DoctorCancelled,
        Case::AdminNotClosed,
        Case::HeadDoctorNotClosed,
        Case::PatientSymptoms,
        Case::PatientAnamnesis,
        Case::AdminDeletionRequest,
        Case::AdminDeletionOverdue,
        Case::PatientDeletionAnswered,
        Case::PatientDeletionExtended,
        Case::PatientRescheduled,
        Case::DoctorRescheduled,
    ];

    /// Its name in the log and the API: `recipient.what`.
    pub fn as_str(self) -> &'static str {
        match self {
            Case::PatientBooked => "patient.booked",
            Case::PatientPaid => "patient.paid",
            Case::PatientCancelled => "patient.cancelled",
            Case::PatientReminder => "patient.reminder",
            Case::PatientReview => "patient.review",
            Case::DoctorMustClose => "doctor.must_close",
            Case::DoctorReminder => "doctor.reminder",
            Case::DoctorCancelled => "doctor.cancelled",
            Case::AdminNotClosed => "admin.not_closed",
            Case::HeadDoctorNotClosed => "head_doctor.not_closed",
            Case::PatientSymptoms => "patient.questionnaire_symptoms",
            Case::PatientAnamnesis => "patient.questionnaire_anamnesis",
            Case::AdminDeletionRequest => "admin.deletion_request",
            Case::AdminDeletionOverdue => "admin.deletion_overdue",
            Case::PatientDeletionAnswered => "patient.deletion_answered",
            Case::PatientDeletionExtended => "patient.deletion_extended",
            Case::PatientRescheduled => "patient.rescheduled",
            Case::DoctorRescheduled => "doctor.rescheduled",
        }
    }

    pub fn parse(s: &str) -> Option<Case> {
        Case::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// What a text may say.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub clinic: &'a str,
    /// The consultation's start (a request's deadline, or its time for an answer), UTC
    /// milliseconds, and the zone its times are written in.
    pub starts_at: i64,
    pub time_zone: &'a str,
    /// The patient pays this much (0: free).
    pub price_kopecks: i64,
    /// Unpaid bookings are cancelled at this time.
    pub pay_by: i64,
    /// Cancelled for want of payment (not by a person).
    pub expired: bool,
    /// Booked and still to be paid.
    pub unpaid: bool,
    /// The sign-in link of this message.
    pub link: &'a str,
    /// A short reference of the consultation for staff (the start of its id).
    pub reference: &'a str,
    /// Questionnaires the message asks to fill in.
    pub count: usize,
}

/// A message, ready for e-mail (`subject`, `text`, `html`) and messengers (`chat`, with
/// `action` as the label of its link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The clinic and what happened, without the link (a messenger puts it in a button).
    pub chat: String,
    pub action: String,
}

impl Message {
    /// The messenger text with the link written out (SMS has no buttons).
    pub fn chat_with_link(&self, link: &str) -> String {
        format!("{}\n\n{}: {link}", self.chat, self.action)
    }
}

const MONTHS: [&str; 12] = [
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
];

/// `18 декабря 2026 г. в 17:30 по московскому времени`.
pub fn when(ms: i64, zone: &str) -> String {
    let tz = TimeZone::get(zone).unwrap_or(TimeZone::UTC);
    let Ok(t) = Timestamp::from_millisecond(ms) else {
        return "—".into();
    };
    let at = tz.to_datetime(t);
    let place = if zone == "Europe/Moscow" {
        "по московскому времени".to_owned()
    } else {
        format!("({zone})")
    };
    format!(
        "{} {} {} г. в {:02}:{:02} {place}",
        at.day(),
        MONTHS[(at.month() - 1) as usize],
        at.year(),
        at.hour(),
        at.minute()
    )
}

/// The message of `case` in `ctx`.
pub fn render(case: Case, ctx: &Context<'_>) -> Message {
    let at = when(ctx.starts_at, ctx.time_zone);
    let (subject, lines, action): (String, Vec<String>, &str) = match case {
        Case::PatientBooked => {
            let mut lines = vec![format!("Вы записаны на онлайн-консультацию {at}.")];
            if ctx.price_kopecks > 0 {
                lines.push(format!(
                    "Стоимость: {}. Оплатите её до {}, иначе запись отменится.",
                    roubles(ctx.price_kopecks),
                    when(ctx.pay_by, ctx.time_zone)
                ));
            }
            (
                "Вы записаны на онлайн-консультацию".into(),
                lines,
                if ctx.price_kopecks > 0 {
                    "Оплатить в личном кабинете"
                } else {
                    "Открыть личный кабинет"
                },
            )
        }
        Case::PatientPaid if ctx.price_kopecks > 0 => (
            "Оплата консультации получена".into(),
            vec![
                format!("Оплата онлайн-консультации {at} получена, запись подтверждена."),
                "Кассовый чек придёт отдельным письмом.".into(),
            ],
            "Открыть личный кабинет",
        ),
        Case::PatientPaid => (
            "Запись на консультацию подтверждена".into(),
            vec![format!("Онлайн-консультация {at} подтверждена.")],
            "Открыть личный кабинет",
        ),
        Case::PatientCancelled if ctx.expired => (
            "Запись на консультацию отменена".into(),
            vec![format!(
                "Запись на онлайн-консультацию {at} отменена: оплата не поступила вовремя. \
                 Вы можете записаться снова."
            )],
            "Записаться снова",
        ),
        Case::PatientCancelled => (
            "Консультация отменена".into(),
            vec![
                format!("Онлайн-консультация {at} отменена."),
                "Если она была оплачена, сведения о возврате денег — в личном кабинете.".into(),
            ],
            "Открыть личный кабинет",
        ),
        Case::PatientReminder => (
            "Напоминание об онлайн-консультации".into(),
            vec![
                format!("Онлайн-консультация начнётся {at}."),
                "Войдите в неё из личного кабинета: проверьте камеру и микрофон заранее.".into(),
            ],
            "Войти в консультацию",
        ),
        Case::PatientReview => (
            "Как прошла консультация?".into(),
            vec![format!(
                "Спасибо, что обратились в «{}». Оцените, пожалуйста, онлайн-консультацию {at}: \
                 это займёт минуту.",
                ctx.clinic
            )],
            "Оставить отзыв",
        ),
        Case::DoctorMustClose => (
            "Завершите консультацию".into(),
            vec![format!(
                "Время консультации {at} (№ {}) закончилось, а она не завершена. Внесите \
                 заключение и завершите её.",
                ctx.reference
            )],
            "Открыть консультации",
        ),
        Case::DoctorReminder => (
            "Напоминание о консультации".into(),
            vec![format!(
                "Консультация {at} (№ {}) скоро начнётся.",
                ctx.reference
            )],
            "Открыть консультации",
        ),
        Case::PatientRescheduled => (
            "Консультация перенесена".into(),
            vec![
                format!("Онлайн-консультация перенесена на {at}."),
                if ctx.unpaid {
                    format!(
                        "Оплатите её до {}, иначе запись отменится.",
                        when(ctx.pay_by, ctx.time_zone)
                    )
                } else {
                    "Оплата и анкеты сохраняются; напоминание придёт к новому времени.".into()
                },
            ],
            if ctx.unpaid {
                "Оплатить в личном кабинете"
            } else {
                "Открыть личный кабинет"
            },
        ),
        Case::DoctorRescheduled => (
            "Консультация перенесена".into(),
            vec![format!(
                "Консультация № {} перенесена на {at}.",
                ctx.reference
            )],
            "Открыть консультации",
        ),
        Case::DoctorCancelled => (
            "Консультация отменена".into(),
            vec![format!(
                "Консультация {at} (№ {}) отменена, время освобождено.",
                ctx.reference
            )],
            "Открыть консультации",
        ),
        Case::PatientSymptoms | Case::PatientAnamnesis => (
            "Заполните анкету перед консультацией".into(),
            vec![if ctx.count > 1 {
                format!(
                    "Перед онлайн-консультацией {at} заполните, пожалуйста, анкеты в личном \
                     кабинете ({}): врач прочитает их заранее.",
                    ctx.count
                )
            } else {
                format!(
                    "Перед онлайн-консультацией {at} заполните, пожалуйста, анкету в личном \
                     кабинете: врач прочитает её заранее."
                )
            }],
            "Заполнить анкету",
        ),
        Case::AdminDeletionRequest => (
            "Запрос пациента на удаление документов".into(),
            vec![format!(
                "Поступил запрос пациента на удаление медицинских документов (№ {}). Ответ \
                 нужно дать до {at}.",
                ctx.reference
            )],
            "Открыть запросы",
        ),
        Case::AdminDeletionOverdue => (
            "Срок ответа на запрос истёк".into(),
            vec![format!(
                "Срок ответа на запрос пациента об удалении документов (№ {}) истёк {at}, \
                 а ответа нет.",
                ctx.reference
            )],
            "Открыть запросы",
        ),
        Case::PatientDeletionAnswered => (
            "Ответ на ваш запрос".into(),
            vec![format!(
                "Клиника ответила на ваш запрос от {at} (№ {}). Ответ — в личном кабинете.",
                ctx.reference
            )],
            "Открыть личный кабинет",
        ),
        Case::PatientDeletionExtended => (
            "Срок ответа на ваш запрос продлён".into(),
            vec![format!(
                "Срок ответа на ваш запрос (№ {}) продлён до {at}. Причина — в личном кабинете.",
                ctx.reference
            )],
            "Открыть личный кабинет",
        ),
        Case::AdminNotClosed | Case::HeadDoctorNotClosed => (
            "Консультация не закрыта вовремя".into(),
            vec![format!(
                "Консультация {at} (№ {}) не закрыта врачом в срок.",
                ctx.reference
            )],
            "Открыть список",
        ),
    };
    let mut text = String::from("Здравствуйте!\n\n");
    for l in &lines {
        text.push_str(l);
        text.push_str("\n\n");
    }
    text.push_str(&format!("{action}: {}\n\n", ctx.link));
    text.push_str(&format!(
        "С уважением,\n{}\n\nЭто письмо отправлено автоматически, отвечать на него не нужно.\n",
        ctx.clinic
    ));

    let mut html = String::from(
        "<!DOCTYPE html><html lang=\"ru\"><head><meta charset=\"utf-8\"></head>\
         <body style=\"font-family:Arial,sans-serif;color:#111;line-height:1.5\"><p>Здравствуйте!</p>",
    );
    for l in &lines {
        html.push_str(&format!("<p>{}</p>", esc(l)));
    }
    html.push_str(&format!(
        "<p><a href=\"{}\" style=\"display:inline-block;padding:10px 18px;background:#1f6fdc;\
         color:#fff;text-decoration:none;border-radius:6px\">{}</a></p>",
        esc(ctx.link),
        esc(action)
    ));
    html.push_str(&format!(
        "<p>С уважением,<br>{}</p><p style=\"color:#555;font-size:12px\">Это письмо отправлено \
         автоматически, отвечать на него не нужно.</p></body></html>",
        esc(ctx.clinic)
    ));
    let chat = format!("{}\n\n{}", ctx.clinic, lines.join("\n"));
    let subject = format!("{subject} — {}", ctx.clinic);
    Message {
        subject,
        text,
        html,
        chat,
        action: action.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>() -> Context<'a> {
        Context {
            clinic: "Клиника <b>«Здоровье»</b> & Co",
            // 2026-12-18T14:30:00Z = 17:30 in Moscow.
            starts_at: 1_797_604_200_000,
            time_zone: "Europe/Moscow",
            price_kopecks: 150_000,
            pay_by: 1_797_604_200_000 - 3_600_000,
            expired: false,
            unpaid: false,
            link: "https://clinic.example/api/v1/notifications/open/t?x=1&y=<2>",
            reference: "abcd1234",
            count: 1,
        }
    }

    #[test]
    fn times_are_written_in_the_zone_in_russian() {
        assert_eq!(
            when(1_797_604_200_000, "Europe/Moscow"),
            "18 декабря 2026 г. в 17:30 по московскому времени"
        );
        assert_eq!(
            when(1_797_604_200_000, "Asia/Yekaterinburg"),
            "18 декабря 2026 г. в 19:30 (Asia/Yekaterinburg)"
        );
    }

    #[test]
    fn every_case_names_the_time_and_link_and_escapes_its_parameters() {
        for case in Case::ALL {
            let m = render(case, &ctx());
            assert!(m.text.contains("18 декабря 2026 г. в 17:30"), "{case:?}");
            assert!(m.text.contains(ctx().link), "{case:?}");
            assert!(!m.html.contains("<b>«Здоровье»</b>"), "{case:?}: raw HTML");
            assert!(
                m.html.contains("&lt;b&gt;«Здоровье»&lt;/b&gt; &amp; Co"),
                "{case:?}"
            );
            assert!(m.html.contains("y=&lt;2&gt;"), "{case:?}: link escaped");
            assert_eq!(Case::parse(case.as_str()), Some(case));
            assert!(m.chat.contains("18 декабря 2026 г. в 17:30"), "{case:?}");
            assert!(!m.chat.contains("open/t"), "{case:?}: the link is a button");
            assert!(m.chat_with_link("L").ends_with(": L"), "{case:?}");
        }
        let booked = render(Case::PatientBooked, &ctx());
        assert!(booked.text.contains("1\u{a0}500,00\u{a0}₽"));
        assert!(booked.text.contains("до 18 декабря 2026 г. в 16:30"));
        let free = render(
            Case::PatientBooked,
            &Context {
                price_kopecks: 0,
                ..ctx()
            },
        );
        assert!(!free.text.contains("Оплатите"));
        let expired = render(
            Case::PatientCancelled,
            &Context {
                expired: true,
                ..ctx()
            },
        );
        assert!(expired.text.contains("оплата не поступила"));
        let moved = |unpaid| render(Case::PatientRescheduled, &Context { unpaid, ..ctx() });
        assert!(
            moved(true)
                .text
                .contains("Оплатите её до 18 декабря 2026 г. в 16:30")
        );
        assert!(moved(false).text.contains("Оплата и анкеты сохраняются"));
    }
}
