//! The clinic's rules for documents (the binary maps its `documents` config onto these).

use super::days::Calendar;
use super::forms::Kind;

/// The clinic's rules for documents.
#[derive(Debug, Clone)]
pub struct DocumentSettings {
    /// Questionnaires every consultation gets when it is booked.
    pub assign_on_booking: Vec<Kind>,
    /// A deletion request is answered within this many working days…
    pub answer_within_days: u32,
    /// …extendable once by this many, with a reason.
    pub extension_days: u32,
    pub calendar: Calendar,
}

impl Default for DocumentSettings {
    fn default() -> Self {
        DocumentSettings {
            assign_on_booking: vec![Kind::Symptoms],
            answer_within_days: 10,
            extension_days: 5,
            calendar: Calendar::default(),
        }
    }
}
