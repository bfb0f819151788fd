//! [`Throttle`]: at most one log line per interval for something outsiders can trigger at will
//! (a refused webhook), with the count of the ones left out, so a flood of forgeries cannot
//! flood the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a refused inbound call (a forged or misconfigured webhook) is logged at most.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

pub struct Throttle {
    every: Duration,
    state: Mutex<Option<(Instant, u64)>>,
}

impl Throttle {
    pub const fn new(every: Duration) -> Self {
        Throttle {
            every,
            state: Mutex::new(None),
        }
    }

    /// Whether to log this occurrence now: `Some(n)` with the `n` left out since the last line,
    /// `None` to stay quiet (it is counted).
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *state {
            Some((last, skipped)) if now.duration_since(*last) < self.every => {
                *skipped += 1;
                None
            }
            _ => {
                let skipped = state.map_or(0, |(_, s)| s);
                *state = Some((now, 0));
                Some(skipped)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_left_out() {
        let t = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(t.allow_at(start), Some(0));
        for i in 1..=999 {
            assert_eq!(t.allow_at(start + Duration::from_millis(i)), None);
        }
        assert_eq!(t.allow_at(start + Duration::from_secs(10)), Some(999));
        assert_eq!(t.allow_at(start + Duration::from_secs(11)), None);
    }
}
