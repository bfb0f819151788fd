//! Ids of the business domain: UUIDs, each kind its own type, made by one macro. An id parses
//! from text (a path segment, a JSON field) or is made new; anything that is not a UUID is not
//! an id, so a caller can never reach a row with a malformed one. Stored as the canonical
//! lowercase hyphenated text.

use std::fmt;
use std::str::FromStr;

/// Text that is not an id of this kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {what} id")]
pub struct InvalidId {
    pub what: &'static str,
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// What the id names, for messages ("consultation not found").
            pub const WHAT: &'static str = $what;

            /// A new random id.
            #[allow(clippy::new_without_default)]
            pub fn new() -> $name {
                $name(uuid::Uuid::new_v4().to_string())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// An id read back from the database, which stores only ids it was given.
            pub fn from_stored(s: String) -> $name {
                $name(s)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<$name, InvalidId> {
                uuid::Uuid::parse_str(s)
                    .map(|u| $name(u.to_string()))
                    .map_err(|_| InvalidId { what: $what })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(
    /// A person: patient, doctor, admin or head doctor.
    UserId,
    "user"
);
uuid_id!(
    /// A consultation; also the id of its Room in the call.
    ConsultationId,
    "consultation"
);
uuid_id!(
    /// A doctor's slot.
    SlotId,
    "slot"
);
uuid_id!(
    /// A recording in the catalogue.
    RecordingId,
    "recording"
);
uuid_id!(
    /// An API key of the clinic portal.
    ApiKeyId,
    "API key"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_uuids_and_store_them_canonically() {
        let id: ConsultationId = "6F9619FF-8B86-D011-B42D-00C04FC964FF".parse().unwrap();
        assert_eq!(id.as_str(), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        assert_eq!(
            "42".parse::<SlotId>(),
            Err(InvalidId { what: "slot" }),
            "not a UUID"
        );
        assert!("".parse::<UserId>().is_err());
        let fresh = RecordingId::new();
        assert_eq!(fresh.as_str().parse::<RecordingId>().unwrap(), fresh);
        assert_ne!(RecordingId::new(), fresh);
    }

    #[test]
    fn ids_in_json_are_strings_and_refuse_garbage() {
        let id = UserId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<UserId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<UserId>("\"drop table\"").is_err());
    }
}
