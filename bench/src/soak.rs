//! A soak run: a steady number of 1:1 calls on Vizit for a long time, each call replaced by a
//! new one when it ends, a third of them with a rejoin, to see what stays behind — server
//! memory that grows, rooms, participants or sockets that are never released.
//!
//! Each room slot runs calls back to back, each of a length between the bounds and a room
//! name of its own. Every call has a doctor and a patient; the patient of every third call hangs
//! up halfway (`leave`) and joins again, of every third other drops its socket halfway (no
//! `leave`, as a phone that loses its network) and joins again on a new one with the same
//! token. When the soak ends no new call starts, the running ones finish, and the caller reads
//! the server's gauges: everything must be back to zero.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use secrecy::SecretString;
use vizit_signaling::{CallRole, TokenKeys};

use crate::{LoadOptions, Target, peer, token};

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub base_url: String,
    pub token_secret: String,
    /// Calls running at once.
    pub rooms: usize,
    /// When no new call starts.
    pub duration: Duration,
    /// The shortest and the longest call.
    pub call_min: Duration,
    pub call_max: Duration,
    pub video_bitrate: u32,
    /// How often `sample` is called.
    pub sample_every: Duration,
}

/// Running counts, shared by the room slots.
#[derive(Debug, Default)]
pub struct SoakCounts {
    pub calls_started: AtomicU64,
    pub calls_ended: AtomicU64,
    /// Patients that hung up halfway and joined again, and those that dropped their socket.
    pub rejoins_after_leave: AtomicU64,
    pub rejoins_after_drop: AtomicU64,
    pub failed_peers: AtomicU64,
    pub frames_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub corrupt: AtomicU64,
}

/// A snapshot of [`SoakCounts`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SoakTotals {
    pub calls_started: u64,
    pub calls_ended: u64,
    pub rejoins_after_leave: u64,
    pub rejoins_after_drop: u64,
    pub failed_peers: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
    pub corrupt: u64,
}

impl SoakCounts {
    pub fn totals(&self) -> SoakTotals {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SoakTotals {
            calls_started: get(&self.calls_started),
            calls_ended: get(&self.calls_ended),
            rejoins_after_leave: get(&self.rejoins_after_leave),
            rejoins_after_drop: get(&self.rejoins_after_drop),
            failed_peers: get(&self.failed_peers),
            frames_sent: get(&self.frames_sent),
            frames_received: get(&self.frames_received),
            corrupt: get(&self.corrupt),
        }
    }
}

/// How a call's patient behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Patient {
    Stays,
    LeavesAndRejoins,
    DropsAndRejoins,
}

/// Run the soak; `sample` is called every `sample_every` with the time since the start and the
/// counts so far (the caller reads the server's memory and gauges there).
pub async fn soak(
    options: &SoakOptions,
    mut sample: impl FnMut(Duration, SoakTotals),
) -> anyhow::Result<SoakTotals> {
    let keys = Arc::new(
        TokenKeys::new(&SecretString::from(options.token_secret.clone()))
            .context("token secret")?,
    );
    let counts = Arc::new(SoakCounts::default());
    let started = Instant::now();
    let end = started + options.duration;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut slots = tokio::task::JoinSet::new();
    for slot in 0..options.rooms {
        let (options, keys, counts, run_id) = (
            options.clone(),
            keys.clone(),
            counts.clone(),
            run_id.clone(),
        );
        slots.spawn(async move {
            // Slots start spread over the first call's length, not all at once.
            let spread = options
                .call_min
                .mul_f64(slot as f64 / options.rooms.max(1) as f64);
            tokio::time::sleep(spread).await;
            let mut call = 0u64;
            let mut seed = (slot as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            while Instant::now() < end {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let span = options.call_max.saturating_sub(options.call_min);
                let length = options.call_min + span.mul_f64((seed % 1000) as f64 / 1000.0);
                // Each slot starts at another kind, so even a short soak has all three.
                let patient = match (call + slot as u64) % 3 {
                    0 => Patient::Stays,
                    1 => Patient::LeavesAndRejoins,
                    _ => Patient::DropsAndRejoins,
                };
                let room = format!("soak-{run_id}-{slot}-{call}");
                one_call(
                    &options,
                    &keys,
                    &counts,
                    slot as u32,
                    &room,
                    length,
                    patient,
                )
                .await;
                call += 1;
            }
        });
    }
    let mut ticker = tokio::time::interval(options.sample_every);
    ticker.tick().await;
    loop {
        tokio::select! {
            joined = slots.join_next() => match joined {
                Some(result) => result.context("a room slot panicked")?,
                None => break,
            },
            _ = ticker.tick() => sample(started.elapsed(), counts.totals()),
        }
    }
    Ok(counts.totals())
}

/// `GET /metrics` of a Vizit on `base` (blocking; loopback, no TLS): its text.
pub fn metrics(base: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

/// The value of the series `name` (no labels) in a `/metrics` text.
pub fn metric(text: &str, name: &str) -> anyhow::Result<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .with_context(|| format!("no {name} in /metrics"))?
        .trim()
        .parse()
        .map_err(Into::into)
}

/// The server's gauges: rooms, participants, open signaling sockets, and resident memory in
/// MiB.
pub fn gauges(base: &str) -> anyhow::Result<[f64; 4]> {
    let text = metrics(base)?;
    Ok([
        metric(&text, "vizit_rooms")?,
        metric(&text, "vizit_participants")?,
        metric(&text, "vizit_signaling_sockets")?,
        metric(&text, "process_resident_memory_bytes")? / 1024.0 / 1024.0,
    ])
}

/// The gauges once rooms, participants and sockets are all zero, or as they are after 30 s:
/// the server releases a dropped socket's participant within its timeouts, not at once.
pub async fn settled(base: &str) -> anyhow::Result<[f64; 4]> {
    let mut last = gauges(base)?;
    for _ in 0..60 {
        if last[..3] == [0.0; 3] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        last = gauges(base)?;
    }
    Ok(last)
}

/// One call of `length`: the doctor stays throughout, the patient as `patient` says.
async fn one_call(
    options: &SoakOptions,
    keys: &TokenKeys,
    counts: &SoakCounts,
    slot: u32,
    room: &str,
    length: Duration,
    patient: Patient,
) {
    counts.calls_started.fetch_add(1, Ordering::Relaxed);
    let mut load = LoadOptions::for_target(
        Target::Vizit {
            base_url: options.base_url.clone(),
            token_secret: options.token_secret.clone(),
        },
        1,
    );
    load.video_bitrate = options.video_bitrate;
    load.duration = length;
    let doctor = token(keys, room, "p0", CallRole::Doctor);
    let patient_token = token(keys, room, "p1", CallRole::Patient);
    let base = options.base_url.as_str();
    let doctor_side = peer(&load, base, slot, 0, doctor);
    let patient_side = async {
        let mut results = Vec::new();
        if patient == Patient::Stays {
            results.push(peer(&load, base, slot, 1, patient_token.clone()).await);
        } else {
            let first = LoadOptions {
                duration: length / 2,
                hang_up: patient == Patient::LeavesAndRejoins,
                ..load.clone()
            };
            results.push(peer(&first, base, slot, 1, patient_token.clone()).await);
            let counter = if patient == Patient::LeavesAndRejoins {
                &counts.rejoins_after_leave
            } else {
                &counts.rejoins_after_drop
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let second = LoadOptions {
                duration: length / 2,
                ..load.clone()
            };
            results.push(peer(&second, base, slot, 1, patient_token.clone()).await);
        }
        results
    };
    // The doctor's peer is a future of this task, as the patient's: both on the one thread.
    let (doctor_result, patient_results) = tokio::join!(doctor_side, patient_side);
    for result in std::iter::once(doctor_result).chain(patient_results) {
        match result {
            Ok(stats) => {
                counts
                    .frames_sent
                    .fetch_add(stats.frames_sent, Ordering::Relaxed);
                counts
                    .frames_received
                    .fetch_add(stats.frames_received, Ordering::Relaxed);
                counts.corrupt.fetch_add(stats.corrupt, Ordering::Relaxed);
            }
            Err(e) => {
                if counts.failed_peers.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("a soak peer failed: {e:#}");
                }
            }
        }
    }
    counts.calls_ended.fetch_add(1, Ordering::Relaxed);
}
