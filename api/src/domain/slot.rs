//! A doctor's slot: where it stands (free to book, held by an unpaid booking, booked, or
//! blocked: the time is taken elsewhere).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
