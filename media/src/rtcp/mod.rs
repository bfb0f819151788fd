//! RTCP the SFU writes and reads itself, past str0m, for the media it receives and sends
//! (`ingress.rs`, `egress.rs`): byte-level writers and readers, no state of a transport.
//!
//! - `twcc.rs` — transport-wide congestion control feedback ([`twcc::TwccWriter`]).
//! - `nack.rs` — generic NACKs for lost video ([`nack::NackWriter`]).
//! - `report.rs` — receiver reports and their statistics ([`report::ReceiveStats`]); str0m's
//!   own reports rewritten with the SFU's numbers (the sender info of egress streams, the
//!   report blocks of streams the ingress opens).
//! - `feedback.rs` — what a participant's RTCP asks of the SFU ([`feedback::Feedback`]).
//!
//! Nothing here knows str0m's transports or the SRTCP keys: the callers open and seal.

pub(crate) mod feedback;
pub(crate) mod nack;
pub(crate) mod report;
pub(crate) mod twcc;

/// Packet type, count/format field and length in bytes of the RTCP packet at the start of
/// `buf`, if a whole one is there.
pub(crate) fn header(buf: &[u8]) -> Option<(u8, u8, usize)> {
    if buf.len() < 4 || buf[0] >> 6 != 2 {
        return None;
    }
    let len = (u16::from_be_bytes([buf[2], buf[3]]) as usize + 1) * 4;
    (len <= buf.len()).then_some((buf[1], buf[0] & 0x1f, len))
}
