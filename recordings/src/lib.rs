//! Vizit's recordings. Today: the object store (local folder or S3, [`store`]) and the upload
//! spool that survives outages and restarts ([`spool`]). The live recorder (RTP → GStreamer →
//! WebM per participant) and the composite MP4 come next (issue 4).

pub mod spool;
pub mod store;

pub use spool::{Confirm, Manifest, Spool};
pub use store::{ObjectInfo, ObjectStore, S3Settings, StoreError};
