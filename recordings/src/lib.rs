//! Vizit's recordings: the object store (local folder or S3, [`store`]), the upload spool that
//! survives outages and restarts ([`spool`]), and the GStreamer live path of one participant, RTP
//! → WebM without transcoding ([`pipeline`]). Feeding it from the SFU and the composite MP4 come
//! next (issue 4).

pub mod pipeline;
pub mod spool;
pub mod store;

pub use spool::{Confirm, Manifest, Spool};
pub use store::{ObjectInfo, ObjectStore, S3Settings, StoreError};
