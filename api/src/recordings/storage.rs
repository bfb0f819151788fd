//! Where recordings are kept: the upload spool in front of the object store (local folder or
//! S3), how long download links work and recordings are kept, and the key that signs links to
//! local files.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use vizit_recordings::{ObjectStore, Spool};

/// Storage of recordings and the rules around it.
pub struct Recordings {
    pub spool: Arc<Spool>,
    /// How long a download link works.
    pub link_ttl: Duration,
    /// Stored recordings older than this are deleted (unless on legal hold); `None`: kept.
    pub retention: Option<Duration>,
    /// Signs local-folder download links.
    url_key: Vec<u8>,
}

impl Recordings {
    pub fn new(
        spool: Arc<Spool>,
        link_ttl: Duration,
        retention: Option<Duration>,
        url_key: Vec<u8>,
    ) -> Recordings {
        Recordings {
            spool,
            link_ttl,
            retention,
            url_key,
        }
    }

    pub fn store(&self) -> &ObjectStore {
        self.spool.store()
    }

    /// The signature of a link to `recording` that works until `expires` (Unix seconds).
    pub fn sign(&self, recording: &str, expires: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.url_key).expect("any key length");
        mac.update(format!("{recording}|{expires}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn verify(&self, recording: &str, expires: i64, signature: &str) -> bool {
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.url_key).expect("any key length");
        mac.update(format!("{recording}|{expires}").as_bytes());
        mac.verify_slice(&given).is_ok()
    }
}
