//! The RTP-time-to-wall-clock mapping of a forwarded stream ([`StreamClock`]): the times
//! packets are written with into str0m, and the RTP time of an egress stream's sender reports.

use std::time::{Duration, Instant};

/// The RTP-time-to-wall-clock mapping of a forwarded stream, as its newest packet set it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StreamClock {
    newest: Option<(u64, u32, Instant)>,
}

impl StreamClock {
    /// The wall-clock time to write a packet with: its arrival if it is newer than any so far;
    /// for a late one (reordered, retransmitted, a duplicate) the time the newest packet's
    /// mapping gives its RTP time, so the sender reports built from the mapping do not jump back
    /// and forth.
    pub fn wallclock(
        &mut self,
        seq: u64,
        rtp_time: u32,
        arrival: Instant,
        clock_rate: u32,
    ) -> Instant {
        match self.newest {
            Some((newest_seq, newest_time, at)) if seq <= newest_seq => {
                let behind = newest_time.wrapping_sub(rtp_time);
                if behind > u32::MAX / 2 || clock_rate == 0 {
                    // Not behind in RTP time after all (a timestamp jump): keep the newest's.
                    return at;
                }
                let behind = Duration::from_secs_f64(behind as f64 / clock_rate as f64);
                at.checked_sub(behind).unwrap_or(at)
            }
            _ => {
                self.newest = Some((seq, rtp_time, arrival));
                arrival
            }
        }
    }

    /// The stream's RTP time at wall-clock time `at`, from the newest packet's mapping; `None`
    /// before the first packet.
    pub fn rtp_time_at(&self, at: Instant, clock_rate: u32) -> Option<u32> {
        let (_, time, wallclock) = self.newest?;
        let ticks = |d: Duration| (d.as_secs_f64() * clock_rate as f64).round() as i64 as u32;
        Some(if at >= wallclock {
            time.wrapping_add(ticks(at - wallclock))
        } else {
            time.wrapping_sub(ticks(wallclock - at))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_packet_maps_onto_the_newest_packets_clock() {
        let t0 = Instant::now();
        let mut clock = StreamClock::default();
        assert_eq!(clock.wallclock(10, 90_000, t0, 90_000), t0);
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(clock.wallclock(12, 135_000, t1, 90_000), t1);
        // Packet 11 (RTP time 0.25 s before 12's) arrives 200 ms after 12: it is written with
        // the time 12's mapping gives it, not its arrival.
        let late = clock.wallclock(11, 112_500, t1 + Duration::from_millis(200), 90_000);
        assert_eq!(late, t1 - Duration::from_millis(250));
        // A duplicate of the newest keeps the newest's time, not its own later arrival.
        let again = t1 + Duration::from_millis(100);
        assert_eq!(clock.wallclock(12, 135_000, again, 90_000), t1);
        assert_eq!(clock.rtp_time_at(t1, 90_000), Some(135_000));
        // The newest still sets the mapping.
        let t2 = t1 + Duration::from_millis(300);
        assert_eq!(clock.wallclock(13, 162_000, t2, 90_000), t2);
    }
}
