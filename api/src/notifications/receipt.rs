//! The receipt e-mail: when a receipt's fiscal data arrives (`receipt.registered`), the
//! patient is sent a copy of the receipt — seller, lines with VAT, total, form of payment,
//! ФН, ФД, ФП, date and time, and the FNS QR code with its fields to check it. YooKassa's
//! "Чеки от ЮKassa" send the fiscal original to the same address; this copy says so.
//!
//! No name, diagnosis or anything the patient told the doctor is in it (medical secrecy):
//! only what the fiscal receipt itself holds.

use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::Value;
use sqlx::AnyConnection;

use super::qr::{self, Fields, Operation};
use super::repo::{self, InlineImage, NewEmail};
use super::settings::{EmailSettings, Notifications};
use crate::domain::EventKind;
use crate::payments::receipts;
use crate::payments::repo::ReceiptRow;
use crate::platform::outbox::{Event, Subscriber};
use crate::platform::{BoxFuture, Clock};

/// `1 500,00 ₽` (non-breaking spaces, as Russian money is written).
pub fn roubles(kopecks: i64) -> String {
    let sign = if kopecks < 0 { "-" } else { "" };
    let k = kopecks.unsigned_abs();
    let whole = (k / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push('\u{a0}');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped},{:02}\u{a0}₽", k % 100)
}

/// The VAT of a line as the receipt names it, and its rate in percent if it has one
/// (YooKassa's `vat_code`; amounts include VAT).
fn vat(code: u64) -> (&'static str, Option<i64>) {
    match code {
        1 => ("без НДС", None),
        2 => ("НДС 0 %", Some(0)),
        3 => ("НДС 10 %", Some(10)),
        4 => ("НДС 20 %", Some(20)),
        5 => ("НДС 10/110", Some(10)),
        6 => ("НДС 20/120", Some(20)),
        7 => ("НДС 5 %", Some(5)),
        8 => ("НДС 7 %", Some(7)),
        9 => ("НДС 5/105", Some(5)),
        10 => ("НДС 7/107", Some(7)),
        11 => ("НДС 22 %", Some(22)),
        12 => ("НДС 22/122", Some(22)),
        _ => ("НДС", None),
    }
}

fn tax_system(code: u64) -> Option<&'static str> {
    Some(match code {
        1 => "ОСН",
        2 => "УСН доход",
        3 => "УСН доход минус расход",
        4 => "ЕНВД",
        5 => "ЕСХН",
        6 => "Патентная система",
        _ => return None,
    })
}

pub(crate) use crate::http::escape_html as esc;

/// One line of the receipt, as shown.
struct Line {
    description: String,
    quantity: f64,
    price_kopecks: i64,
    total_kopecks: i64,
    vat_name: &'static str,
    vat_kopecks: Option<i64>,
}

fn lines(r: &ReceiptRow) -> Vec<Line> {
    let items: Vec<Value> = r
        .items
        .as_deref()
        .and_then(|i| serde_json::from_str(i).ok())
        .unwrap_or_default();
    items
        .iter()
        .map(|i| {
            let quantity = i["quantity"].as_f64().unwrap_or(1.0);
            let price = i["amountKopecks"].as_i64().unwrap_or(0);
            let total = (price as f64 * quantity).round() as i64;
            let (vat_name, rate) = vat(i["vatCode"].as_u64().unwrap_or(0));
            Line {
                description: i["description"].as_str().unwrap_or("Услуга").to_owned(),
                quantity,
                price_kopecks: price,
                total_kopecks: total,
                vat_name,
                vat_kopecks: rate.map(|r| (total * r + (100 + r) / 2) / (100 + r)),
            }
        })
        .collect()
}

fn quantity(q: f64) -> String {
    if q.fract() == 0.0 {
        format!("{q:.0}")
    } else {
        format!("{q}").replace('.', ",")
    }
}

/// A receipt e-mail, ready to queue.
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub qr_png: Option<Vec<u8>>,
    /// The FNS QR payload.
    pub check: String,
}

/// The message for receipt `r` (registered).
pub fn render(s: &EmailSettings, r: &ReceiptRow, tax_system_code: Option<u64>) -> Rendered {
    let refund = r.kind == "refund";
    let tz = TimeZone::get(&s.time_zone).unwrap_or(TimeZone::UTC);
    let at = r
        .registered_at
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map(|t| tz.to_datetime(t));
    let lines = lines(r);
    let total: i64 = if lines.is_empty() {
        r.amount_kopecks
    } else {
        lines.iter().map(|l| l.total_kopecks).sum()
    };
    let (fn_, fd, fp) = (
        r.fiscal_storage_number.as_deref().unwrap_or("—"),
        r.fiscal_document_number.as_deref().unwrap_or("—"),
        r.fiscal_attribute.as_deref().unwrap_or("—"),
    );
    let check = at
        .map(|at| {
            qr::payload(&Fields {
                at,
                total_kopecks: total,
                storage_number: fn_,
                document_number: fd,
                attribute: fp,
                operation: if refund {
                    Operation::IncomeReturn
                } else {
                    Operation::Income
                },
            })
        })
        .unwrap_or_default();
    let when = at
        .map(|at| {
            format!(
                "{:02}.{:02}.{:04} {:02}:{:02}",
                at.day(),
                at.month(),
                at.year(),
                at.hour(),
                at.minute()
            )
        })
        .unwrap_or_else(|| "—".into());
    let kind = if refund {
        "Возврат прихода"
    } else {
        "Приход"
    };
    let seller = match &s.clinic_inn {
        Some(inn) => format!("{}, ИНН {inn}", s.clinic_name),
        None => s.clinic_name.clone(),
    };
    let tax = tax_system_code.and_then(tax_system);
    let subject = if refund {
        format!("Чек возврата оплаты — {}", s.clinic_name)
    } else {
        format!("Чек об оплате консультации — {}", s.clinic_name)
    };
    let opening = if refund {
        "Деньги за консультацию возвращены на карту или счёт, с которых была оплата (банк зачисляет их до нескольких рабочих дней)."
    } else {
        "Оплата консультации получена."
    };
    let copy_note = "Ниже — данные кассового чека. Чек зарегистрирован в ФНС; онлайн-касса отправила его и на этот адрес отдельным письмом.";

    // Plain text.
    let mut text = format!("Здравствуйте!\n\n{opening}\n{copy_note}\n\n");
    text.push_str(&format!("Кассовый чек. {kind}\nПродавец: {seller}\n"));
    if let Some(tax) = tax {
        text.push_str(&format!("Система налогообложения: {tax}\n"));
    }
    text.push('\n');
    for l in &lines {
        text.push_str(&format!(
            "{} — {} × {} = {}\n  {}{}\n",
            l.description,
            quantity(l.quantity),
            roubles(l.price_kopecks),
            roubles(l.total_kopecks),
            l.vat_name,
            l.vat_kopecks
                .map(|v| format!(": {}", roubles(v)))
                .unwrap_or_default()
        ));
    }
    text.push_str(&format!(
        "\nИтого: {}\nБезналичными: {}\nДата и время: {when}\nФН: {fn_}\nФД: {fd}\nФП: {fp}\n",
        roubles(total),
        roubles(total)
    ));
    if !check.is_empty() {
        text.push_str(&format!(
            "\nПроверить чек: отсканируйте QR-код из этого письма в приложении «Проверка чеков ФНС России» \
             или введите данные чека на сайте ФНС России (www.nalog.gov.ru). Данные QR-кода:\n{check}\n"
        ));
    }
    text.push_str(&format!(
        "\n— {}\nПисьмо отправлено автоматически, отвечать на него не нужно.\n",
        s.clinic_name
    ));

    // HTML.
    let qr_png = (!check.is_empty()).then(|| qr::png(&check)).flatten();
    let mut rows = String::new();
    for l in &lines {
        rows.push_str(&format!(
            "<tr><td style=\"padding:4px 8px 4px 0\">{}<br><small>{}{}</small></td>\
             <td style=\"padding:4px 0;text-align:right;white-space:nowrap\">{} × {}<br><b>{}</b></td></tr>",
            esc(&l.description),
            l.vat_name,
            l.vat_kopecks
                .map(|v| format!(": {}", roubles(v)))
                .unwrap_or_default(),
            quantity(l.quantity),
            roubles(l.price_kopecks),
            roubles(l.total_kopecks)
        ));
    }
    let field = |name: &str, value: &str| {
        format!(
            "<tr><td style=\"padding:2px 8px 2px 0;color:#555\">{name}</td><td style=\"padding:2px 0\">{}</td></tr>",
            esc(value)
        )
    };
    let mut html = format!(
        "<!doctype html><html lang=\"ru\"><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body style=\"font-family:Arial,Helvetica,sans-serif;color:#1a1a1a;max-width:560px;margin:0 auto;padding:16px\">\
         <p>Здравствуйте!</p><p>{opening}<br>{copy_note}</p>\
         <h1 style=\"font-size:20px;margin:24px 0 8px\">Кассовый чек. {kind}</h1>\
         <table style=\"border-collapse:collapse;width:100%\">{}",
        esc(&subject),
        field("Продавец", &seller)
    );
    if let Some(tax) = tax {
        html.push_str(&field("Система налогообложения", tax));
    }
    html.push_str("</table><table style=\"border-collapse:collapse;width:100%;margin:12px 0;border-top:1px solid #ccc;border-bottom:1px solid #ccc\">");
    html.push_str(&rows);
    html.push_str(&format!(
        "</table><p style=\"font-size:18px;margin:8px 0\"><b>Итого: {}</b></p>\
         <table style=\"border-collapse:collapse\">{}{}{}{}{}</table>",
        roubles(total),
        field("Безналичными", &roubles(total)),
        field("Дата и время", &when),
        field("ФН", fn_),
        field("ФД", fd),
        field("ФП", fp)
    ));
    if !check.is_empty() {
        if qr_png.is_some() {
            html.push_str(
                "<p><img src=\"cid:receipt-qr\" width=\"164\" height=\"164\" alt=\"QR-код чека для проверки в ФНС\"></p>",
            );
        }
        html.push_str(&format!(
            "<p>Проверить чек: отсканируйте QR-код в приложении «Проверка чеков ФНС России» или введите данные чека \
             на сайте ФНС России (<a href=\"https://www.nalog.gov.ru\">www.nalog.gov.ru</a>).<br>\
             <small style=\"color:#555\">{}</small></p>",
            esc(&check)
        ));
    }
    html.push_str(&format!(
        "<p style=\"color:#555\">— {}<br>Письмо отправлено автоматически, отвечать на него не нужно.</p></body></html>",
        esc(&s.clinic_name)
    ));
    Rendered {
        subject,
        text,
        html,
        qr_png,
        check,
    }
}

/// Hears `receipt.registered` and queues the patient's e-mail.
pub struct ReceiptEmails {
    pub clock: Clock,
    pub notifications: Arc<Notifications>,
}

impl ReceiptEmails {
    async fn handle_event(&self, conn: &mut AnyConnection, event: &Event) -> anyhow::Result<()> {
        let Some(id) = event.payload["receiptId"].as_str() else {
            return Ok(());
        };
        let Some((receipt, recipient)) = receipts::for_email(&mut *conn, id).await? else {
            return Ok(());
        };
        // A phone only: the provider sends the receipt by SMS; nothing to e-mail.
        let Some(recipient) = recipient else {
            return Ok(());
        };
        let m = render(
            &self.notifications.settings,
            &receipt,
            event.payload["taxSystemCode"].as_u64(),
        );
        let inline: Vec<InlineImage> = m
            .qr_png
            .into_iter()
            .map(|bytes| InlineImage {
                content_id: "receipt-qr".into(),
                content_type: "image/png".into(),
                bytes,
            })
            .collect();
        repo::queue(
            conn,
            NewEmail {
                recipient: &recipient,
                subject: &m.subject,
                text: &m.text,
                html: Some(&m.html),
                inline: &inline,
                kind: "receipt",
                ref_id: Some(id),
                dedup_key: &format!("receipt:{id}"),
            },
            self.clock.now_ms(),
        )
        .await?;
        Ok(())
    }
}

impl Subscriber for ReceiptEmails {
    fn name(&self) -> &'static str {
        "notifications.receipts"
    }

    fn wants(&self, kind: &str) -> bool {
        EventKind::parse(kind) == Some(EventKind::ReceiptRegistered)
    }

    fn handle<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.handle_event(conn, event))
    }

    fn delivered(&self, _event: &Event) {
        self.notifications.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(kind: &str, vat_code: u8) -> ReceiptRow {
        ReceiptRow {
            id: "r1".into(),
            payment_id: "p1".into(),
            refund_id: None,
            kind: kind.into(),
            status: "registered".into(),
            amount_kopecks: 150_000,
            provider_receipt_id: Some("x".into()),
            fiscal_document_number: Some("1001".into()),
            fiscal_storage_number: Some("9961440300462123".into()),
            fiscal_attribute: Some("4624051342".into()),
            registered_at: Some("2026-12-06T22:26:06.904Z".into()),
            fiscal_provider_id: None,
            items: Some(format!(
                "[{{\"description\":\"Телемедицинская консультация <Терапевт>\",\"quantity\":1.0,\
                 \"amountKopecks\":150000,\"vatCode\":{vat_code}}}]"
            )),
            attempts: 1,
            flagged_at: None,
            emailed_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn money_is_written_the_russian_way() {
        assert_eq!(roubles(150_000), "1\u{a0}500,00\u{a0}₽");
        assert_eq!(roubles(5), "0,05\u{a0}₽");
        assert_eq!(roubles(12_345_678), "123\u{a0}456,78\u{a0}₽");
    }

    #[test]
    fn the_receipt_has_every_fiscal_field_in_local_time() {
        let s = EmailSettings {
            clinic_name: "ООО «Клиника»".into(),
            clinic_inn: Some("7700000000".into()),
            time_zone: "Europe/Moscow".into(),
        };
        let m = render(&s, &receipt("payment", 11), Some(1));
        for want in [
            "Приход",
            "ООО «Клиника», ИНН 7700000000",
            "ОСН",
            "Телемедицинская консультация <Терапевт>",
            "НДС 22 %: 270,49\u{a0}₽",
            "Итого: 1\u{a0}500,00\u{a0}₽",
            "07.12.2026 01:26",
            "ФН: 9961440300462123",
            "ФД: 1001",
            "ФП: 4624051342",
        ] {
            assert!(m.text.contains(want), "{want:?} not in\n{}", m.text);
        }
        assert_eq!(
            m.check,
            "t=20261207T0126&s=1500.00&fn=9961440300462123&i=1001&fp=4624051342&n=1"
        );
        assert!(m.html.contains("&lt;Терапевт&gt;"), "escaped");
        assert!(m.html.contains("cid:receipt-qr") && m.qr_png.is_some());

        let m = render(&s, &receipt("refund", 1), None);
        assert!(m.text.contains("Возврат прихода") && m.text.contains("без НДС"));
        assert!(!m.text.contains("Система налогообложения"));
        assert!(m.check.ends_with("&n=2"));
    }
}
