//! The sent video packets an egress stream keeps for retransmission ([`ResendBuffer`]): the
//! last [`MAX_RESEND_AGE`] of them, in memory that follows the stream's bitrate.
//!
//! A slot of the largest datagram per packet (512 × 1,500 bytes) was three quarters of a 1:1
//! call's memory, and half of it could never be resent (older than the resend age). Here the
//! protected datagrams are written one after the other into a ring of equal chunks
//! ([`CHUNK`]), one chunk at first; a chunk is added whenever a lap of the ring took less than
//! the resend age, so the ring settles at about a second of the stream (208 KiB at 1.5 Mbit/s),
//! and one is let go when a lap took several. Chunks, not one buffer that doubles: growing
//! never copies, and equal blocks are reused by the allocator as they are freed (a doubling
//! buffer left holes of every size behind: 100–200 MiB more resident memory at 300 calls). A
//! table indexed by sequence number finds a packet; a packet whose bytes were written over by a
//! later lap is gone, never returned with someone else's bytes.

use std::time::{Duration, Instant};

/// A packet is not resent again sooner than this: a receiver repeats its NACK until the packet
/// arrives, and one round trip is the least that takes.
pub(crate) const RESEND_INTERVAL: Duration = Duration::from_millis(10);
/// A packet older than this is not resent: the receiver has given up on it (and asked for a
/// keyframe).
pub(crate) const MAX_RESEND_AGE: Duration = Duration::from_secs(1);
/// Packets findable by sequence number: more than a second of 4 Mbit/s video.
pub(crate) const RESEND_SLOTS: usize = 512;
/// The ring's unit: a datagram never straddles two (a chunk's tail that does not fit the next
/// one is left unused, half a packet per chunk on average).
pub(crate) const CHUNK: usize = 16 * 1024;
/// At most this many chunks (2 MiB: a second of 16 Mbit/s).
pub(crate) const MAX_CHUNKS: usize = 128;
/// A datagram longer than this is not kept (a UDP datagram on a real path is ≤ the MTU).
const MAX_KEPT: usize = 4096;
/// A chunk goes when one lap lasted this many resend ages: the stream slowed down.
const SHRINK_LAPS: u32 = 3;

/// Where a kept packet's bytes are, and what was done with it.
#[derive(Debug, Clone, Copy)]
struct Kept {
    index: u64,
    /// The lap of the ring it was written in, and its place: `chunk * CHUNK + offset`.
    lap: u32,
    at: u32,
    len: u16,
    /// Milliseconds since the buffer's epoch; `resent` is `u32::MAX` until it is resent.
    sent: u32,
    resent: u32,
}

impl Kept {
    /// A slot that holds nothing.
    const NONE: Kept = Kept {
        index: u64::MAX,
        lap: 0,
        at: 0,
        len: 0,
        sent: 0,
        resent: u32::MAX,
    };
}

/// The kept packets of one stream.
pub(crate) struct ResendBuffer {
    slots: Box<[Kept]>,
    chunks: Vec<Box<[u8]>>,
    /// Where the next datagram goes in the current lap: `chunk * CHUNK + offset`.
    head: usize,
    lap: u32,
    lap_started: Instant,
    epoch: Instant,
}

impl std::fmt::Debug for ResendBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResendBuffer")
            .field("chunks", &self.chunks.len())
            .field("lap", &self.lap)
            .finish_non_exhaustive()
    }
}

fn chunk() -> Box<[u8]> {
    vec![0; CHUNK].into_boxed_slice()
}

impl ResendBuffer {
    pub fn new(now: Instant) -> Self {
        ResendBuffer {
            slots: vec![Kept::NONE; RESEND_SLOTS].into_boxed_slice(),
            chunks: vec![chunk()],
            head: 0,
            lap: 0,
            lap_started: now,
            epoch: now,
        }
    }

    /// Bytes of the ring.
    #[cfg(test)]
    fn ring_bytes(&self) -> usize {
        self.chunks.len() * CHUNK
    }

    /// Bytes held.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.ring_bytes() + self.slots.len() * size_of::<Kept>()
    }

    fn millis(&self, at: Instant) -> u32 {
        u32::try_from(at.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u32::MAX - 1)
            .min(u32::MAX - 1)
    }

    /// Keep `datagram`, sent at `now` under packet index `index`.
    pub fn keep(&mut self, index: u64, datagram: &[u8], now: Instant) {
        let len = datagram.len();
        if len == 0 || len > MAX_KEPT {
            return;
        }
        if self.head % CHUNK + len > CHUNK {
            // To the next chunk…
            self.head = (self.head / CHUNK + 1) * CHUNK;
        }
        if self.head / CHUNK == self.chunks.len() {
            // …and past the last one the lap ends.
            self.end_lap(now);
        }
        let (chunk, offset) = (self.head / CHUNK, self.head % CHUNK);
        self.chunks[chunk][offset..offset + len].copy_from_slice(datagram);
        let kept = Kept {
            index,
            lap: self.lap,
            at: self.head as u32,
            len: len as u16,
            sent: self.millis(now),
            resent: u32::MAX,
        };
        self.head += len;
        self.slots[index as usize % RESEND_SLOTS] = kept;
    }

    /// Every chunk is written in this lap: add one if the lap took less than the resend age
    /// (the lap goes on into it), else start the next lap at the first chunk (letting the last
    /// one go if the lap took several resend ages).
    fn end_lap(&mut self, now: Instant) {
        let lasted = now.saturating_duration_since(self.lap_started);
        if lasted < MAX_RESEND_AGE && self.chunks.len() < MAX_CHUNKS {
            self.chunks.push(chunk());
            return;
        }
        self.head = 0;
        self.lap_started = now;
        if lasted >= MAX_RESEND_AGE * SHRINK_LAPS && self.chunks.len() > 1 {
            self.chunks.pop();
            // What the previous lap wrote there is gone, and a chunk added later in this lap
            // would hold other bytes at its places: forget the previous lap (the stream is
            // slow; that lap is seconds old anyway).
            self.lap = self.lap.wrapping_add(2);
        } else {
            self.lap = self.lap.wrapping_add(1);
        }
    }

    /// Whether the bytes of `kept` are still in the ring: written in this lap, or in the
    /// previous one past where this lap has got to.
    fn intact(&self, kept: &Kept) -> bool {
        let at = kept.at as usize;
        at / CHUNK < self.chunks.len()
            && (kept.lap == self.lap || kept.lap == self.lap.wrapping_sub(1) && at >= self.head)
    }

    /// The kept datagram of sequence number `seq`, if it may be sent again at `now`: not older
    /// than [`MAX_RESEND_AGE`], not resent within [`RESEND_INTERVAL`], and no longer than what
    /// is left of `budget` (which it is taken from).
    pub fn resend(&mut self, seq: u16, now: Instant, budget: &mut u64) -> Option<&[u8]> {
        let at = self.millis(now);
        let slot = seq as usize % RESEND_SLOTS;
        let kept = self.slots[slot];
        if kept.len == 0 || kept.index as u16 != seq {
            return None;
        }
        let len = kept.len as u64;
        let interval = RESEND_INTERVAL.as_millis() as u32;
        if !self.intact(&kept)
            || at.saturating_sub(kept.sent) > MAX_RESEND_AGE.as_millis() as u32
            || kept.resent != u32::MAX && at.saturating_sub(kept.resent) < interval
            || *budget < len
        {
            return None;
        }
        *budget -= len;
        self.slots[slot].resent = at;
        let (chunk, offset) = (kept.at as usize / CHUNK, kept.at as usize % CHUNK);
        Some(&self.chunks[chunk][offset..offset + kept.len as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram whose bytes say which packet it is.
    fn datagram(index: u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (index as usize * 31 + i * 7) as u8)
            .collect()
    }

    /// Packets of `len` bytes at `per_second`, for `seconds` from `t0`; returns the last time.
    fn stream(
        buffer: &mut ResendBuffer,
        t0: Instant,
        first: u64,
        per_second: u64,
        seconds: u64,
        len: usize,
    ) -> (u64, Instant) {
        let step = Duration::from_secs(1) / per_second as u32;
        let mut at = t0;
        let mut index = first;
        for _ in 0..per_second * seconds {
            buffer.keep(index, &datagram(index, len), at);
            index += 1;
            at += step;
        }
        (index, at - step)
    }

    /// At 1.5 Mbit/s (~230 packets of ~850 bytes a second) the ring settles at the chunks a
    /// second takes (13 of 16 KiB: 19 packets a chunk), and every packet of the last resend age
    /// comes back byte for byte.
    #[test]
    fn the_last_second_is_kept_in_memory_that_fits_the_bitrate() {
        let t0 = Instant::now();
        let mut buffer = ResendBuffer::new(t0);
        let (next, last) = stream(&mut buffer, t0, 70_000, 230, 10, 850);
        assert_eq!(buffer.chunks.len(), 13, "the ring fits the bitrate");
        let mut budget = u64::MAX;
        // Every packet sent within the resend age of `last` is there (230 of them).
        for index in next - 230..next {
            let got = buffer.resend(index as u16, last, &mut budget);
            assert_eq!(got, Some(&datagram(index, 850)[..]), "packet {index}");
        }
        // An audio-rate stream stays at the first size.
        let mut slow = ResendBuffer::new(t0);
        stream(&mut slow, t0, 0, 50, 10, 200);
        assert_eq!(slow.chunks.len(), 1);
    }

    /// Whatever sizes and rates, a datagram comes back with its own bytes or not at all, and
    /// the ring grows and shrinks with the rate within its bounds.
    #[test]
    fn a_packet_comes_back_intact_or_not_at_all() {
        let t0 = Instant::now();
        let mut buffer = ResendBuffer::new(t0);
        let mut at = t0;
        let mut returned = 0;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut largest = 0;
        for index in 0..40_000u64 {
            // Phases of different rates: fast (a ring that grows), slow (one that shrinks).
            let fast = (index / 5000) % 2 == 0;
            at += Duration::from_micros(if fast { 400 } else { 30_000 });
            let len = 1 + (rand() % 1400) as usize;
            buffer.keep(index, &datagram(index, len), at);
            largest = largest.max(buffer.chunks.len());
            let asked = index.saturating_sub(rand() % 600);
            let mut budget = u64::MAX;
            if let Some(got) = buffer.resend(asked as u16, at, &mut budget) {
                assert_eq!(got, &datagram(asked, got.len())[..], "packet {asked}");
                returned += 1;
            }
        }
        assert!(returned > 10_000, "{returned} returned");
        assert!(largest > 1 && largest <= MAX_CHUNKS, "{largest}");
        assert!(buffer.chunks.len() < largest, "shrunk when slow");
    }

    /// A packet is resent at most once per resend interval, not past the resend age, and not
    /// past the budget.
    #[test]
    fn resends_follow_interval_age_and_budget() {
        let t0 = Instant::now();
        let mut buffer = ResendBuffer::new(t0);
        buffer.keep(5, &datagram(5, 1000), t0);
        let mut budget = 2500;
        assert!(buffer.resend(5, t0, &mut budget).is_some());
        assert_eq!(budget, 1500);
        assert!(
            buffer
                .resend(5, t0 + RESEND_INTERVAL / 2, &mut budget)
                .is_none()
        );
        assert!(
            buffer
                .resend(5, t0 + RESEND_INTERVAL, &mut budget)
                .is_some()
        );
        assert!(
            buffer
                .resend(5, t0 + RESEND_INTERVAL * 2, &mut budget)
                .is_none(),
            "500 bytes of budget left"
        );
        let mut budget = u64::MAX;
        assert!(buffer.resend(6, t0, &mut budget).is_none(), "never sent");
        assert!(
            buffer
                .resend(5, t0 + MAX_RESEND_AGE + RESEND_INTERVAL * 4, &mut budget)
                .is_none(),
            "too old"
        );
        assert!(buffer.capacity() <= CHUNK + RESEND_SLOTS * 32);
    }
}
