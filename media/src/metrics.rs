//! Counters of the SFU, per room and in total, and their Prometheus text rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::RoomId;

/// Counters of one room. Totals over the process live in [`Metrics::total`], which also keeps
/// the counts of rooms that have ended, so totals never go backwards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomMetrics {
    /// Participants in the room now (a gauge).
    pub participants: u64,
    /// UDP datagrams received from participants (RTP, RTCP, STUN, DTLS).
    pub packets_in: u64,
    pub bytes_in: u64,
    /// UDP datagrams sent to participants.
    pub packets_out: u64,
    pub bytes_out: u64,
    /// RTP packets of the participants' tracks that never arrived (gaps in sequence numbers that
    /// no retransmission filled).
    pub packets_lost: u64,
    /// Keyframe requests (PLI/FIR) sent to producers.
    pub keyframe_requests: u64,
}

impl RoomMetrics {
    pub(crate) fn add(&mut self, other: &RoomMetrics) {
        self.packets_in += other.packets_in;
        self.bytes_in += other.bytes_in;
        self.packets_out += other.packets_out;
        self.bytes_out += other.bytes_out;
        self.packets_lost += other.packets_lost;
        self.keyframe_requests += other.keyframe_requests;
    }
}

/// A snapshot of every counter of the SFU.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Totals since start, including rooms that have ended; `participants` is the current count.
    pub total: RoomMetrics,
    /// Rooms that exist now.
    pub rooms: BTreeMap<RoomId, RoomMetrics>,
    /// Rooms and participants now in each media loop that answered, by loop number
    /// (`media.threads`): how evenly the rooms are spread.
    pub loops: BTreeMap<usize, LoopLoad>,
}

/// What one media loop carries now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopLoad {
    pub rooms: u64,
    pub participants: u64,
}

impl Metrics {
    /// Add the counters of loop `index` of the same node (its rooms are other rooms).
    pub(crate) fn merge(&mut self, index: usize, other: Metrics) {
        self.loops.insert(
            index,
            LoopLoad {
                rooms: other.rooms.len() as u64,
                participants: other.total.participants,
            },
        );
        self.total.add(&other.total);
        self.total.participants += other.total.participants;
        self.rooms.extend(other.rooms);
    }

    /// Prometheus text exposition format (version 0.0.4): totals and per-loop gauges, and with
    /// `per_room` a series per room (labelled with the room id, which is a consultation's id).
    pub fn to_prometheus(&self, per_room: bool) -> String {
        let mut out = String::with_capacity(1024 + self.rooms.len() * 512);
        let _ = writeln!(
            out,
            "# HELP vizit_rooms Rooms with at least one participant."
        );
        let _ = writeln!(out, "# TYPE vizit_rooms gauge");
        let _ = writeln!(out, "vizit_rooms {}", self.rooms.len());
        type LoopField = fn(&LoopLoad) -> u64;
        let loop_families: [(&str, &str, LoopField); 2] = [
            (
                "vizit_media_loop_rooms",
                "Rooms in each media loop (media.threads).",
                |l| l.rooms,
            ),
            (
                "vizit_media_loop_participants",
                "Participants in each media loop (media.threads).",
                |l| l.participants,
            ),
        ];
        for (name, help, field) in loop_families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (index, load) in &self.loops {
                let _ = writeln!(out, "{name}{{loop=\"{index}\"}} {}", field(load));
            }
        }

        type Field = fn(&RoomMetrics) -> u64;
        let families: [(&str, &str, &str, Field); 7] = [
            (
                "vizit_participants",
                "gauge",
                "Participants in rooms.",
                |m| m.participants,
            ),
            (
                "vizit_packets_in_total",
                "counter",
                "UDP datagrams received from participants.",
                |m| m.packets_in,
            ),
            (
                "vizit_bytes_in_total",
                "counter",
                "Bytes received from participants.",
                |m| m.bytes_in,
            ),
            (
                "vizit_packets_out_total",
                "counter",
                "UDP datagrams sent to participants.",
                |m| m.packets_out,
            ),
            (
                "vizit_bytes_out_total",
                "counter",
                "Bytes sent to participants.",
                |m| m.bytes_out,
            ),
            (
                "vizit_packets_lost_total",
                "counter",
                "RTP packets from participants that never arrived.",
                |m| m.packets_lost,
            ),
            (
                "vizit_keyframe_requests_total",
                "counter",
                "Keyframe requests (PLI/FIR) sent to producers.",
                |m| m.keyframe_requests,
            ),
        ];
        for (name, kind, help, field) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", field(&self.total));
            for (room, m) in self.rooms.iter().filter(|_| per_room) {
                let _ = writeln!(
                    out,
                    "{name}{{room=\"{}\"}} {}",
                    escape_label(room.as_str()),
                    field(m)
                );
            }
        }
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_totals_and_rooms_with_escaped_labels() {
        let mut metrics = Metrics::default();
        metrics.total.packets_in = 7;
        metrics.rooms.insert(
            RoomId::new("a\"b"),
            RoomMetrics {
                participants: 2,
                packets_in: 7,
                ..Default::default()
            },
        );
        metrics.loops.insert(
            1,
            LoopLoad {
                rooms: 1,
                participants: 2,
            },
        );
        let text = metrics.to_prometheus(true);
        assert!(text.contains("\nvizit_packets_in_total 7\n"), "{text}");
        assert!(
            text.contains("\nvizit_media_loop_rooms{loop=\"1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("\nvizit_media_loop_participants{loop=\"1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("vizit_packets_in_total{room=\"a\\\"b\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("vizit_participants{room=\"a\\\"b\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("vizit_rooms 1\n"), "{text}");
        // Without per-room series, no room id appears.
        let text = metrics.to_prometheus(false);
        assert!(text.contains("\nvizit_packets_in_total 7\n"), "{text}");
        assert!(!text.contains("room=\""), "{text}");
    }
}
