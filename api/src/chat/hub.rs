//! What the chat keeps in memory: who waits for a consultation's next message, and each
//! sender's allowance (a token bucket). A leaf: the shared state holds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// Largest file a party may send.
    pub max_file_bytes: u64,
    /// Messages and files one party may send per minute, on average…
    pub per_minute: u32,
    /// …and at once.
    pub burst: u32,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            max_file_bytes: 20 * 1024 * 1024,
            per_minute: 30,
            burst: 10,
        }
    }
}

/// What the chat keeps in memory: who waits for a consultation's next message, and each
/// sender's allowance.
pub struct Chat {
    pub settings: ChatSettings,
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
    allowance: Mutex<HashMap<(String, String), Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

impl Chat {
    pub fn new(settings: ChatSettings) -> Chat {
        Chat {
            settings,
            waiting: Mutex::default(),
            allowance: Mutex::default(),
        }
    }

    pub(super) fn room(&self, consultation: &str) -> Arc<Notify> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.len() > 1024 {
            // Rooms nobody waits on any more.
            waiting.retain(|_, n| Arc::strong_count(n) > 1);
        }
        waiting.entry(consultation.to_owned()).or_default().clone()
    }

    pub(super) fn wake(&self, consultation: &str) {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = waiting.get(consultation) {
            n.notify_waiters();
        }
    }

    /// Take one message from the sender's allowance: a token bucket of `burst`, refilled at
    /// `per_minute`. `Err(secs)`: how long until the next one is allowed.
    pub(super) fn spend(&self, consultation: &str, sender: &str, now_ms: i64) -> Result<(), u64> {
        let burst = f64::from(self.settings.burst.max(1));
        let per_ms = f64::from(self.settings.per_minute.max(1)) / 60_000.0;
        let mut all = self.allowance.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() > 10_000 {
            all.retain(|_, b| b.tokens + (now_ms - b.at_ms).max(0) as f64 * per_ms < burst);
        }
        let b = all
            .entry((consultation.to_owned(), sender.to_owned()))
            .or_insert(Bucket {
                tokens: burst,
                at_ms: now_ms,
            });
        b.tokens = (b.tokens + (now_ms - b.at_ms).max(0) as f64 * per_ms).min(burst);
        b.at_ms = now_ms;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - b.tokens) / per_ms) / 1000.0).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_one_per_refill() {
        let chat = Chat::new(ChatSettings {
            max_file_bytes: 1,
            per_minute: 30,
            burst: 3,
        });
        for _ in 0..3 {
            assert_eq!(chat.spend("c", "p", 0), Ok(()));
        }
        // 30 a minute: one every 2 s.
        assert_eq!(chat.spend("c", "p", 0), Err(2));
        assert_eq!(chat.spend("c", "p", 1000), Err(1));
        assert_eq!(chat.spend("c", "p", 2000), Ok(()));
        assert_eq!(chat.spend("c", "p", 2000), Err(2));
        // Another sender, another consultation: their own allowance.
        assert_eq!(chat.spend("c", "d", 2000), Ok(()));
        assert_eq!(chat.spend("c2", "p", 2000), Ok(()));
    }
}
