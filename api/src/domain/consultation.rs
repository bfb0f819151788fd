//! The consultation state machine: every transition is validated here, in one place, before
//! anything is written; and the window in which its call may be joined.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::event::EventKind;

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
    pub fn event(self) -> EventKind {
        match self {
            Transition::MarkPaid => EventKind::ConsultationPaid,
            Transition::Start => EventKind::ConsultationStarted,
            Transition::Complete => EventKind::ConsultationCompleted,
            Transition::Cancel(_) => EventKind::ConsultationCancelled,
            Transition::Expire => EventKind::ConsultationExpired,
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

/// Why a consultation's call cannot be joined now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefusal {
    #[error("the consultation is not paid yet")]
    NotPaid,
    #[error("the consultation is {}", .0.as_str())]
    Closed(ConsultationStatus),
    #[error("the call opens at {opens} and closes at {closes}")]
    OutsideWindow { opens: i64, closes: i64 },
}

/// When the call of a consultation may be joined: from `before` ahead of its slot until `grace`
/// after it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindow {
    /// UTC milliseconds.
    pub opens: i64,
    pub closes: i64,
}

impl JoinWindow {
    pub fn around(starts_at: i64, ends_at: i64, before: Duration, grace: Duration) -> JoinWindow {
        JoinWindow {
            opens: starts_at - before.as_millis() as i64,
            closes: ends_at + grace.as_millis() as i64,
        }
    }

    /// May a party of a consultation in `status` join at `now`? Only once paid (or under way),
    /// never once closed, only inside the window.
    pub fn admits(&self, status: ConsultationStatus, now: i64) -> Result<(), JoinRefusal> {
        match status {
            ConsultationStatus::Paid | ConsultationStatus::InProgress => {}
            ConsultationStatus::Booked => return Err(JoinRefusal::NotPaid),
            other => return Err(JoinRefusal::Closed(other)),
        }
        if now < self.opens || now > self.closes {
            return Err(JoinRefusal::OutsideWindow {
                opens: self.opens,
                closes: self.closes,
            });
        }
        Ok(())
    }

    /// How long a join token made at `now` lives: until the window closes, at least a minute.
    pub fn token_ttl(&self, now: i64) -> Duration {
        Duration::from_millis((self.closes - now).max(60_000) as u64)
    }
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

    #[test]
    fn the_call_opens_before_the_slot_and_closes_after_the_grace() {
        let min = 60_000;
        let w = JoinWindow::around(
            100 * min,
            130 * min,
            Duration::from_secs(15 * 60),
            Duration::from_secs(30 * 60),
        );
        assert_eq!((w.opens, w.closes), (85 * min, 160 * min));
        use ConsultationStatus as S;
        assert_eq!(w.admits(S::Paid, 85 * min), Ok(()));
        assert_eq!(w.admits(S::InProgress, 160 * min), Ok(()));
        assert_eq!(
            w.admits(S::Paid, 85 * min - 1),
            Err(JoinRefusal::OutsideWindow {
                opens: 85 * min,
                closes: 160 * min
            })
        );
        assert!(w.admits(S::Paid, 160 * min + 1).is_err());
        assert_eq!(w.admits(S::Booked, 100 * min), Err(JoinRefusal::NotPaid));
        assert_eq!(
            w.admits(S::Completed, 100 * min),
            Err(JoinRefusal::Closed(S::Completed))
        );
        assert_eq!(
            w.token_ttl(100 * min),
            Duration::from_millis(60 * min as u64)
        );
        assert_eq!(
            w.token_ttl(160 * min),
            Duration::from_secs(60),
            "at least a minute"
        );
    }
}
