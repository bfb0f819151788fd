//! What an [`Sfu`](crate::Sfu) is made with: [`SfuOptions`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::recording::{RecordingMode, TapFactory};

/// Options of an [`Sfu`](crate::Sfu).
#[derive(Clone)]
pub struct SfuOptions {
    /// Addresses announced as ICE host candidates (the UDP socket's public addresses).
    pub candidates: Vec<SocketAddr>,
    /// Addresses announced as passive ICE-TCP host candidates (RFC 6544): browsers whose
    /// network lets no UDP through connect there, datagrams framed as RFC 4571 says.
    pub tcp_candidates: Vec<SocketAddr>,
    /// People per room; recorders do not count.
    pub max_participants: usize,
    /// A connected participant whose media path is silent this long is removed.
    pub ice_timeout: Duration,
    /// A participant whose first datagram has not arrived this long after joining is removed.
    pub connect_timeout: Duration,
    /// When rooms are recorded; without a recorder ([`SfuOptions::recorder`]) never.
    pub recording: RecordingMode,
    /// Opens the recorder of a room whose recording starts.
    pub recorder: Option<Arc<dyn TapFactory>>,
    /// Media is protected and sent by the SFU itself, past str0m's send path (`egress.rs`).
    pub fast_forwarding: bool,
    /// Media is opened by the SFU itself, past str0m's receive path (`ingress.rs`); only with
    /// fast forwarding.
    pub fast_receiving: bool,
}

impl std::fmt::Debug for SfuOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SfuOptions")
            .field("candidates", &self.candidates)
            .field("tcp_candidates", &self.tcp_candidates)
            .field("max_participants", &self.max_participants)
            .field("ice_timeout", &self.ice_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("recording", &self.recording)
            .field("recorder", &self.recorder.is_some())
            .field("fast_forwarding", &self.fast_forwarding)
            .field("fast_receiving", &self.fast_receiving)
            .finish()
    }
}

impl SfuOptions {
    pub fn new(candidates: Vec<SocketAddr>) -> Self {
        SfuOptions {
            candidates,
            tcp_candidates: Vec::new(),
            max_participants: 2,
            ice_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(30),
            recording: RecordingMode::Off,
            recorder: None,
            fast_forwarding: true,
            fast_receiving: true,
        }
    }

    /// Whether media is sent past str0m's send path (on by default).
    pub fn fast_forwarding(mut self, on: bool) -> Self {
        self.fast_forwarding = on;
        self
    }

    /// Whether media is received past str0m's receive path (on by default; needs fast
    /// forwarding).
    pub fn fast_receiving(mut self, on: bool) -> Self {
        self.fast_receiving = on;
        self
    }

    /// Record rooms in `mode` through `recorder`.
    pub fn recording(mut self, mode: RecordingMode, recorder: Arc<dyn TapFactory>) -> Self {
        self.recording = mode;
        self.recorder = Some(recorder);
        self
    }

    /// The mode in effect: `Off` without a recorder.
    pub fn recording_mode(&self) -> RecordingMode {
        if self.recorder.is_some() {
            self.recording
        } else {
            RecordingMode::Off
        }
    }

    pub fn max_participants(mut self, n: usize) -> Self {
        self.max_participants = n;
        self
    }

    pub fn ice_timeout(mut self, t: Duration) -> Self {
        self.ice_timeout = t;
        self
    }

    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }
}
