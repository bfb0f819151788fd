//! The pre-call checks' limits: a few per address in ten minutes, a cap on those running at
//! once. A leaf: the shared state holds it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// How long a check's tokens admit their holders: the check runs ~10 s.
pub const TOKEN_TTL: Duration = Duration::from_secs(120);
/// Checks one address may run in [`WINDOW`].
pub const PER_ADDRESS: usize = 10;
pub const WINDOW: Duration = Duration::from_secs(600);
/// Checks that may be under way at once (issued within [`TOKEN_TTL`]).
pub const AT_ONCE: usize = 50;

/// Who checked when (in memory: a restart forgets, which errs on the side of the user).
#[derive(Default)]
pub struct Checks {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_address: HashMap<String, VecDeque<i64>>,
    recent: VecDeque<i64>,
}

impl Checks {
    /// Count a check from `address` at `now_ms`; `Err(secs)` until the next one is allowed.
    pub fn admit(&self, address: &str, now_ms: i64) -> Result<(), u64> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let window = WINDOW.as_millis() as i64;
        let ttl = TOKEN_TTL.as_millis() as i64;
        while inner.recent.front().is_some_and(|t| now_ms - t >= ttl) {
            inner.recent.pop_front();
        }
        if inner.recent.len() >= AT_ONCE {
            let oldest = inner.recent.front().copied().unwrap_or(now_ms);
            return Err(((oldest + ttl - now_ms).max(1000) / 1000) as u64);
        }
        if inner.by_address.len() > 10_000 {
            inner
                .by_address
                .retain(|_, times| times.back().is_some_and(|t| now_ms - t < window));
        }
        let times = inner.by_address.entry(address.to_owned()).or_default();
        while times.front().is_some_and(|t| now_ms - t >= window) {
            times.pop_front();
        }
        if times.len() >= PER_ADDRESS {
            let oldest = times.front().copied().unwrap_or(now_ms);
            return Err(((oldest + window - now_ms).max(1000) / 1000) as u64);
        }
        times.push_back(now_ms);
        inner.recent.push_back(now_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_ten_checks_in_ten_minutes() {
        let checks = Checks::default();
        for i in 0..PER_ADDRESS as i64 {
            assert_eq!(checks.admit("a", i * 1000), Ok(()));
        }
        assert_eq!(checks.admit("a", 10_000), Err(590));
        assert_eq!(checks.admit("b", 10_000), Ok(()), "another address");
        assert_eq!(
            checks.admit("a", 600_000),
            Ok(()),
            "the first one left the window"
        );
    }

    #[test]
    fn at_most_fifty_run_at_once() {
        let checks = Checks::default();
        for i in 0..AT_ONCE {
            assert_eq!(checks.admit(&format!("10.0.0.{i}"), 0), Ok(()));
        }
        assert_eq!(checks.admit("10.0.1.1", 1000), Err(119));
        assert_eq!(checks.admit("10.0.1.1", 120_000), Ok(()));
    }
}
