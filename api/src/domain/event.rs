//! What happened in the domain, as written to the outbox in the same transaction as the change.
//! Subscribers (the Bitrix24 slot source, payments, notifications) register by these kinds.

/// The kind of a domain event; its text is what the outbox stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A slot was booked: the consultation awaits payment.
    ConsultationBooked,
    ConsultationPaid,
    /// Someone joined the call.
    ConsultationStarted,
    ConsultationCompleted,
    ConsultationCancelled,
    /// Not paid in time.
    ConsultationExpired,
    /// Moved to another slot (the payload says whether an external slot source refused it).
    ConsultationRescheduled,
    /// Not closed in time after its slot ended.
    ConsultationOverdue,
    /// Its booked time changed in the slot source under it.
    ConsultationSlotConflict,
    /// The payment provider took the money.
    PaymentSucceeded,
    /// A payment attempt was canceled (declined, expired, released).
    PaymentCanceled,
    /// Money went back to the patient.
    RefundSucceeded,
    /// A receipt's fiscal data arrived (ФН, ФД, ФП): the patient is e-mailed it.
    ReceiptRegistered,
    /// A receipt was not registered in time: for the clinic's admins.
    ReceiptOverdue,
    /// An e-mail reached the recipient's mail server (SMTP `250`); the payload says what it was
    /// about (`kind`, `refId`).
    EmailSent,
    /// An e-mail was given up on (refused for good); the payload as for [`EventKind::EmailSent`].
    EmailFailed,
    /// Questionnaires were assigned to a consultation (`questionnaires`: their ids and kinds).
    QuestionnaireAssigned,
    /// A patient asked to delete their medical documents (`requestId`, `dueAt`).
    DeletionRequested,
    /// The clinic answered a deletion request (`outcome`: done or refused).
    DeletionAnswered,
    /// The clinic extended a deletion request's deadline (`dueAt`).
    DeletionExtended,
    /// A deletion request was not answered by its deadline.
    DeletionOverdue,
}

impl EventKind {
    pub const ALL: [EventKind; 21] = [
        EventKind::ConsultationBooked,
        EventKind::ConsultationPaid,
        EventKind::ConsultationStarted,
        EventKind::ConsultationCompleted,
        EventKind::ConsultationCancelled,
        EventKind::ConsultationExpired,
        EventKind::ConsultationRescheduled,
        EventKind::ConsultationOverdue,
        EventKind::ConsultationSlotConflict,
        EventKind::PaymentSucceeded,
        EventKind::PaymentCanceled,
        EventKind::RefundSucceeded,
        EventKind::ReceiptRegistered,
        EventKind::ReceiptOverdue,
        EventKind::EmailSent,
        EventKind::EmailFailed,
        EventKind::QuestionnaireAssigned,
        EventKind::DeletionRequested,
        EventKind::DeletionAnswered,
        EventKind::DeletionExtended,
        EventKind::DeletionOverdue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ConsultationBooked => "consultation.booked",
            EventKind::ConsultationPaid => "consultation.paid",
            EventKind::ConsultationStarted => "consultation.started",
            EventKind::ConsultationCompleted => "consultation.completed",
            EventKind::ConsultationCancelled => "consultation.cancelled",
            EventKind::ConsultationExpired => "consultation.expired",
            EventKind::ConsultationRescheduled => "consultation.rescheduled",
            EventKind::ConsultationOverdue => "consultation.overdue",
            EventKind::ConsultationSlotConflict => "consultation.slot_conflict",
            EventKind::PaymentSucceeded => "payment.succeeded",
            EventKind::PaymentCanceled => "payment.canceled",
            EventKind::RefundSucceeded => "refund.succeeded",
            EventKind::ReceiptRegistered => "receipt.registered",
            EventKind::ReceiptOverdue => "receipt.overdue",
            EventKind::EmailSent => "email.sent",
            EventKind::EmailFailed => "email.failed",
            EventKind::QuestionnaireAssigned => "questionnaire.assigned",
            EventKind::DeletionRequested => "deletion.requested",
            EventKind::DeletionAnswered => "deletion.answered",
            EventKind::DeletionExtended => "deletion.extended",
            EventKind::DeletionOverdue => "deletion.overdue",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_text() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("consultation.unknown"), None);
    }
}
