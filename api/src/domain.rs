//! Domain types and the consultation state machine: every transition is validated here, in one
//! place, before anything is written.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who a person is to Vizit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Patient,
    Doctor,
    Admin,
    HeadDoctor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Doctor => "doctor",
            Role::Admin => "admin",
            Role::HeadDoctor => "head_doctor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "patient" => Role::Patient,
            "doctor" => Role::Doctor,
            "admin" => Role::Admin,
            "head_doctor" => Role::HeadDoctor,
            _ => return None,
        })
    }

    pub fn is_staff(self) -> bool {
        self != Role::Patient
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SlotStatus {
    Free,
    Held,
    Booked,
    Blocked,
}

impl SlotStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SlotStatus::Free => "free",
            SlotStatus::Held => "held",
            SlotStatus::Booked => "booked",
            SlotStatus::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<SlotStatus> {
        Some(match s {
            "free" => SlotStatus::Free,
            "held" => SlotStatus::Held,
            "booked" => SlotStatus::Booked,
            "blocked" => SlotStatus::Blocked,
            _ => return None,
        })
    }
}

/// Where a consultation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsultationStatus {
    /// Slot held, awaiting payment.
    Booked,
    Paid,
    /// Someone joined the call.
    InProgress,
    /// The doctor closed it with a conclusion.
    Completed,
    Cancelled,
    /// Not paid in time; the slot was released.
    Expired,
}

impl ConsultationStatus {
    pub const ALL: [ConsultationStatus; 6] = [
        ConsultationStatus::Booked,
        ConsultationStatus::Paid,
        ConsultationStatus::InProgress,
        ConsultationStatus::Completed,
        ConsultationStatus::Cancelled,
        ConsultationStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsultationStatus::Booked => "booked",
            ConsultationStatus::Paid => "paid",
            ConsultationStatus::InProgress => "in_progress",
            ConsultationStatus::Completed => "completed",
            ConsultationStatus::Cancelled => "cancelled",
            ConsultationStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<ConsultationStatus> {
        ConsultationStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ConsultationStatus::Completed
                | ConsultationStatus::Cancelled
                | ConsultationStatus::Expired
        )
    }
}

/// Who cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelledBy {
    Patient,
    Doctor,
    Clinic,
}

impl CancelledBy {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelledBy::Patient => "patient",
            CancelledBy::Doctor => "doctor",
            CancelledBy::Clinic => "clinic",
        }
    }
}

/// A change of a consultation's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    MarkPaid,
    Start,
    Complete,
    Cancel(CancelledBy),
    Expire,
}

impl Transition {
    /// The domain event written to the outbox when this transition happens.
    pub fn event(self) -> &'static str {
        match self {
            Transition::MarkPaid => "consultation.paid",
            Transition::Start => "consultation.started",
            Transition::Complete => "consultation.completed",
            Transition::Cancel(_) => "consultation.cancelled",
            Transition::Expire => "consultation.expired",
        }
    }
}

/// Why a transition is refused; each has a stable API code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("a {from} consultation cannot be {action}")]
    NotAllowed {
        from: &'static str,
        action: &'static str,
    },
}

impl TransitionError {
    pub fn code(&self) -> &'static str {
        "invalid_transition"
    }
}

/// The one place that says which transitions are legal.
pub fn next_status(
    from: ConsultationStatus,
    transition: Transition,
) -> Result<ConsultationStatus, TransitionError> {
    use ConsultationStatus as S;
    let to = match (from, transition) {
        (S::Booked, Transition::MarkPaid) => S::Paid,
        (S::Paid, Transition::Start) => S::InProgress,
        // A no-show is closed too: the doctor records that in the conclusion.
        (S::Paid | S::InProgress, Transition::Complete) => S::Completed,
        (S::Booked | S::Paid, Transition::Cancel(_)) => S::Cancelled,
        // A call under way is cancelled only by the clinic (e.g. a technical failure).
        (S::InProgress, Transition::Cancel(CancelledBy::Clinic)) => S::Cancelled,
        (S::Booked, Transition::Expire) => S::Expired,
        _ => {
            return Err(TransitionError::NotAllowed {
                from: from.as_str(),
                action: match transition {
                    Transition::MarkPaid => "marked paid",
                    Transition::Start => "started",
                    Transition::Complete => "completed",
                    Transition::Cancel(_) => "cancelled",
                    Transition::Expire => "expired",
                },
            });
        }
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_and_the_terminal_states() {
        use ConsultationStatus as S;
        assert_eq!(next_status(S::Booked, Transition::MarkPaid), Ok(S::Paid));
        assert_eq!(next_status(S::Paid, Transition::Start), Ok(S::InProgress));
        assert_eq!(
            next_status(S::InProgress, Transition::Complete),
            Ok(S::Completed)
        );
        for terminal in [S::Completed, S::Cancelled, S::Expired] {
            for t in [
                Transition::MarkPaid,
                Transition::Start,
                Transition::Complete,
                Transition::Cancel(CancelledBy::Clinic),
                Transition::Expire,
            ] {
                assert!(next_status(terminal, t).is_err(), "{terminal:?} + {t:?}");
            }
        }
        assert!(next_status(S::InProgress, Transition::Cancel(CancelledBy::Patient)).is_err());
        assert!(next_status(S::Paid, Transition::Expire).is_err());
        assert!(next_status(S::Booked, Transition::Start).is_err());
    }
}
