//! Vizit's recordings: the object store (local folder or S3, [`store`]), the upload spool that
//! survives outages and restarts ([`spool`]), the GStreamer live path of one participant, RTP
//! → WebM without transcoding ([`pipeline`]), and the composite of a consultation, both parties
//! side by side in one MP4 ([`composite`]). Feeding the live path from the SFU comes next (issue 4).

pub mod composite;
pub mod live;
pub mod pipeline;
pub mod spool;
pub mod store;

pub use spool::{Confirm, Manifest, Spool};
pub use store::{ObjectInfo, ObjectStore, S3Settings, StoreError};
