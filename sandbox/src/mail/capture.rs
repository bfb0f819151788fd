//! The captured messages, shared by the SMTP server that adds them and the pages that show
//! them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// Messages kept, and their bytes at most; older ones are dropped.
const KEEP: usize = 500;
const KEEP_BYTES: usize = 64 << 20;

/// One message as it arrived.
#[derive(Debug, Clone)]
pub struct Captured {
    /// 1, 2, … in arrival order.
    pub number: u64,
    /// The envelope (`MAIL FROM`, `RCPT TO`).
    pub from: String,
    pub to: Vec<String>,
    pub raw: Vec<u8>,
    /// Unix milliseconds.
    pub received_at: i64,
}

#[derive(Default)]
struct State {
    messages: VecDeque<Captured>,
    next: u64,
    /// Answer new messages with this reply code (451: trouble for now; 550, 535: for good).
    refusing: Option<u16>,
}

/// The captured messages; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct MailCapture {
    state: Arc<Mutex<State>>,
}

impl MailCapture {
    pub fn new() -> MailCapture {
        MailCapture::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn push(&self, from: String, to: Vec<String>, raw: Vec<u8>) {
        let mut s = self.state();
        s.next += 1;
        let number = s.next;
        s.messages.push_back(Captured {
            number,
            from,
            to,
            raw,
            received_at: jiff::Timestamp::now().as_millisecond(),
        });
        let mut bytes: usize = s.messages.iter().map(|m| m.raw.len()).sum();
        while s.messages.len() > KEEP || (bytes > KEEP_BYTES && s.messages.len() > 1) {
            if let Some(old) = s.messages.pop_front() {
                bytes -= old.raw.len();
            }
        }
    }

    /// Every kept message, oldest first.
    pub fn messages(&self) -> Vec<Captured> {
        self.state().messages.iter().cloned().collect()
    }

    pub fn message(&self, number: u64) -> Option<Captured> {
        self.state()
            .messages
            .iter()
            .find(|m| m.number == number)
            .cloned()
    }

    /// Answer new messages with `code` (e.g. `550`: refused for good) until `None`.
    pub fn refuse_with(&self, code: Option<u16>) {
        self.state().refusing = code;
    }

    pub(super) fn refusing(&self) -> Option<u16> {
        self.state().refusing
    }
}
