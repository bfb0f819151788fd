//! Who a person is to Vizit.

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
