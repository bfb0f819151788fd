//! The business domain's own words, with no SQL and no HTTP: ids that parse, roles and the
//! caller, the consultation state machine and its join window, slot states, money in kopecks,
//! and the kinds of domain events. Everything above depends on this; it depends on nothing of
//! the crate.

pub mod caller;
pub mod consultation;
pub mod event;
pub mod ids;
pub mod money;
pub mod personal;
pub mod role;
pub mod slot;

pub use caller::{Caller, Forbidden, Principal};
pub use consultation::{
    CancelledBy, ConsultationStatus, JoinRefusal, JoinWindow, Transition, TransitionError,
    next_status,
};
pub use event::EventKind;
pub use ids::{ApiKeyId, ConsultationId, InvalidId, RecordingId, SlotId, UserId};
pub use money::Kopecks;
pub use role::Role;
pub use slot::SlotStatus;
