//! Identifiers: the string ids of rooms and participants (cheap to clone, `Arc<str>`), the
//! SFU's own [`ParticipantKey`] of a session, and the map the SFU keys by them. They compare by
//! value and never mix up.

use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn new(value: impl Into<Arc<str>>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::new(value)
            }
        }
    };
}

string_id!(
    /// One Room: the live call of one Consultation.
    RoomId
);
string_id!(
    /// One joined identity in a Room; stable across reconnects of the same person.
    ParticipantId
);

/// Handle of one participant session inside the SFU. Unlike [`ParticipantId`] it is never reused:
/// a participant that rejoins gets a new key, so late messages for the old session cannot leak
/// into the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantKey(pub(crate) u64);

impl ParticipantKey {
    /// A key for tests of code above the SFU; real keys come from [`crate::Sfu::join`].
    #[doc(hidden)]
    pub fn test(n: u64) -> Self {
        ParticipantKey(n)
    }
}

impl fmt::Display for ParticipantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A hasher for the SFU's per-packet lookups by keys the server made itself (participant keys,
/// room ids from signed join tokens): a multiply-rotate per word (the FxHash scheme) and
/// MurmurHash3's finalizer, several times cheaper than the default SipHash for short keys. Not
/// for keys a remote peer chooses (source addresses keep SipHash, which resists hash flooding).
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(n.into());
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // The multiply leaves the low bits — which pick the bucket — as regular as the input's
        // (participant keys step by the number of media loops): MurmurHash3's finalizer brings
        // every bit into them.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
}

/// A map keyed by server-made keys, with [`FastHasher`].
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash(value: impl Hash) -> u64 {
        BuildHasherDefault::<FastHasher>::default().hash_one(value)
    }

    #[test]
    fn fast_hashes_differ_for_near_keys_and_are_stable() {
        assert_ne!(hash(1u64), hash(2u64));
        assert_ne!(hash(RoomId::new("room-1")), hash(RoomId::new("room-2")));
        // A string's tail beyond the last full word counts, as does its length.
        assert_ne!(hash("abcdefgh1"), hash("abcdefgh2"));
        assert_ne!(hash("abcdefgh"), hash("abcdefgh\0"));
        assert_eq!(hash(RoomId::new("room-1")), hash(RoomId::new("room-1")));
        // Keys that step by a power of two (one media loop's keys) still spread over buckets.
        let low: std::collections::HashSet<u64> =
            (0..64u64).map(|i| hash(1 + i * 4) & 63).collect();
        assert!(low.len() > 32, "{} distinct low bits of 64", low.len());
        let mut map = FastMap::default();
        for i in 0..1000u64 {
            map.insert(i, i * 2);
        }
        assert!((0..1000u64).all(|i| map[&i] == i * 2));
    }
}
