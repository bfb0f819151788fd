//! The time the business layer decides by: the system clock in production, a clock the test
//! moves in tests (`Clock::manual`). Times are UTC milliseconds since the epoch.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the epoch, UTC, by the system clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A source of "now". Cloning shares the same clock.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// `None`: the system clock; `Some`: a manual clock at this time.
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands still at `at_ms` until moved with [`Clock::set`] or [`Clock::advance`].
    pub fn manual(at_ms: i64) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicI64::new(at_ms))),
        }
    }

    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            None => now_ms(),
            Some(t) => t.load(Ordering::Acquire),
        }
    }

    /// Move a manual clock to `at_ms` (no effect on the system clock).
    pub fn set(&self, at_ms: i64) {
        if let Some(t) = &self.manual {
            t.store(at_ms, Ordering::Release);
        }
    }

    /// Move a manual clock forward by `ms` (no effect on the system clock).
    pub fn advance(&self, ms: i64) {
        if let Some(t) = &self.manual {
            t.fetch_add(ms, Ordering::AcqRel);
        }
    }

    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_is_shared_by_clones() {
        let clock = Clock::manual(1_000);
        let other = clock.clone();
        assert_eq!(clock.now_ms(), 1_000);
        other.advance(500);
        assert_eq!(clock.now_ms(), 1_500);
        clock.set(10);
        assert_eq!(other.now_ms(), 10);
        let system = Clock::system();
        let before = now_ms();
        system.set(0);
        assert!(system.now_ms() >= before);
    }
}
