//! What stands between a password guesser and the staff accounts:
//!
//! - argon2 runs on the blocking pool, at most `hashing_slots` at once, so wrong passwords do
//!   not stall the async workers that serve everyone else;
//! - an unknown e-mail (or an account without a password) is checked against a dummy hash, so
//!   it takes as long as a wrong password and does not tell which e-mails are staff;
//! - failures are counted per account and per client address in a fixed window; past the
//!   limit the login is refused (`429`, `Retry-After`) before any hashing or database work.
//!
//! The counters live in memory: one process serves one clinic, and a restart forgetting them
//! only gives a guesser one more window.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::credentials::{hash_password, verify_password};

/// Limits of password logins.
#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// Failed logins of one account (by e-mail, known or not) within `window`.
    pub failures_per_account: u32,
    /// Failed logins from one client address within `window`.
    pub failures_per_address: u32,
    /// The window the failures are counted in; a locked-out caller waits for its end.
    pub window: Duration,
    /// Password checks running at once (each takes one core for ~20 ms).
    pub hashing_slots: usize,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            failures_per_account: 10,
            failures_per_address: 50,
            window: Duration::from_secs(15 * 60),
            hashing_slots: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Refused before checking: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub retry_after_secs: u64,
}

/// Past this many tracked keys, expired windows are swept (at most once a minute).
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started_ms: i64,
    failures: u32,
}

#[derive(Default)]
struct Counters {
    /// Per account and address.
    pairs: HashMap<String, Window>,
    /// Per account, across addresses.
    accounts: HashMap<String, Window>,
    /// Per address, across accounts.
    addresses: HashMap<String, Window>,
    /// No sweep before this (so a crowd of keys costs a scan a minute, not one per attempt).
    next_sweep_ms: i64,
}

impl Counters {
    /// Forget windows that ended, when there are many.
    fn sweep(&mut self, now_ms: i64, window_ms: i64) {
        let tracked = self.pairs.len() + self.accounts.len() + self.addresses.len();
        if tracked <= SWEEP_ABOVE || now_ms < self.next_sweep_ms {
            return;
        }
        for map in [&mut self.pairs, &mut self.accounts, &mut self.addresses] {
            map.retain(|_, w| now_ms < w.started_ms + window_ms);
        }
        self.next_sweep_ms = now_ms + 60_000;
    }
}

fn pair_key(account: &str, address: Option<&str>) -> String {
    format!("{account}\u{0}{}", address.unwrap_or(""))
}

pub struct LoginGuard {
    limits: LoginLimits,
    slots: Arc<Semaphore>,
    counters: Mutex<Counters>,
    dummy: OnceLock<String>,
    checks: AtomicU64,
}

impl LoginGuard {
    pub fn new(limits: LoginLimits) -> Self {
        LoginGuard {
            slots: Arc::new(Semaphore::new(limits.hashing_slots.max(1))),
            limits,
            counters: Mutex::new(Counters::default()),
            dummy: OnceLock::new(),
            checks: AtomicU64::new(0),
        }
    }

    /// Take one attempt for this account from this address at `now_ms`, or refuse it. The
    /// attempt counts as a failure from the start (so parallel guesses cannot all pass the
    /// check before the first one fails); [`LoginGuard::succeeded`] gives it back.
    ///
    /// Failures are counted per account *and address* (`failures_per_account`), per address
    /// across accounts (`failures_per_address`), and per account across addresses (ten times
    /// `failures_per_account`): a guesser at one address cannot lock the account's owner out,
    /// while guessing one account from many addresses is still bounded.
    pub fn reserve(&self, account: &str, address: Option<&str>, now_ms: i64) -> Result<(), Locked> {
        let mut counters = self.counters.lock().expect("login counters");
        let window_ms = self.window_ms();
        let pair = pair_key(account, address);
        let account_max = self.limits.failures_per_account;
        let overall_max = account_max.saturating_mul(10);
        let address_max = self.limits.failures_per_address;
        let locked = |map: &HashMap<String, Window>, key: &str, max: u32| {
            map.get(key).and_then(|w| {
                let ends = w.started_ms + window_ms;
                (w.failures >= max && now_ms < ends).then(|| Locked {
                    retry_after_secs: ((ends - now_ms) as u64).div_ceil(1000).max(1),
                })
            })
        };
        let refusal = [
            locked(&counters.pairs, &pair, account_max),
            locked(&counters.accounts, account, overall_max),
            address.and_then(|a| locked(&counters.addresses, a, address_max)),
        ]
        .into_iter()
        .flatten()
        .max_by_key(|l| l.retry_after_secs);
        if let Some(locked) = refusal {
            return Err(locked);
        }
        counters.sweep(now_ms, window_ms);
        let Counters {
            pairs,
            accounts,
            addresses,
            ..
        } = &mut *counters;
        let count = |map: &mut HashMap<String, Window>, key: &str| {
            let w = map.entry(key.to_owned()).or_insert(Window {
                started_ms: now_ms,
                failures: 0,
            });
            if now_ms >= w.started_ms + window_ms {
                *w = Window {
                    started_ms: now_ms,
                    failures: 0,
                };
            }
            w.failures += 1;
        };
        count(pairs, &pair);
        count(accounts, account);
        if let Some(a) = address {
            count(addresses, a);
        }
        Ok(())
    }

    /// The reserved attempt was the right password: it is given back to the account and the
    /// address, and the account's failures from this address are forgotten.
    pub fn succeeded(&self, account: &str, address: Option<&str>) {
        let mut counters = self.counters.lock().expect("login counters");
        counters.pairs.remove(&pair_key(account, address));
        let refund = |map: &mut HashMap<String, Window>, key: &str| {
            if let Some(w) = map.get_mut(key) {
                w.failures = w.failures.saturating_sub(1);
            }
        };
        refund(&mut counters.accounts, account);
        if let Some(a) = address {
            refund(&mut counters.addresses, a);
        }
    }

    /// Check `password` against `hash`, or against a dummy hash when there is none (the same
    /// work, always false). Runs on the blocking pool within the hashing slots.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let password = password.to_owned();
        let hash = match hash {
            Some(h) => Some(h.to_owned()),
            None => self.dummy.get().cloned(),
        };
        let outcome = self
            .off_thread(move || match hash {
                Some(hash) => (verify_password(&password, &hash), None),
                None => {
                    // The first unknown account pays for making the dummy (as long as a check).
                    let dummy =
                        hash_password(&hex::encode(rand::random::<[u8; 16]>())).unwrap_or_default();
                    let _ = verify_password(&password, &dummy);
                    (false, Some(dummy))
                }
            })
            .await;
        match outcome {
            Some((ok, dummy)) => {
                if let Some(dummy) = dummy {
                    let _ = self.dummy.set(dummy);
                }
                ok
            }
            None => false,
        }
    }

    /// Run `work` on the blocking pool within a hashing slot; `None` if it panicked.
    async fn off_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _slot = self.slots.clone().acquire_owned().await.ok()?;
        self.checks.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(work).await.ok()
    }

    /// Password checks performed so far (a known account's and an unknown one's alike).
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.limits.window.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Hash a new password on the blocking pool.
pub async fn hash_password_off_thread(password: &str) -> anyhow::Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| anyhow::anyhow!("password hashing task: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(per_account: u32, per_address: u32) -> LoginGuard {
        LoginGuard::new(LoginLimits {
            failures_per_account: per_account,
            failures_per_address: per_address,
            window: Duration::from_secs(60),
            hashing_slots: 1,
        })
    }

    #[test]
    fn an_account_locks_for_its_guesser_until_the_window_ends() {
        let g = guard(3, 100);
        for i in 0..3 {
            assert_eq!(g.reserve("a@x", Some("1.1.1.1"), i), Ok(()));
        }
        // Locked for that address, until the window of the first attempt ends…
        assert_eq!(
            g.reserve("a@x", Some("1.1.1.1"), 10_000),
            Err(Locked {
                retry_after_secs: 50
            })
        );
        assert_eq!(
            g.reserve("a@x", Some("1.1.1.1"), 59_001),
            Err(Locked {
                retry_after_secs: 1
            })
        );
        // …not for the owner at another address, nor for another account.
        assert_eq!(g.reserve("a@x", Some("2.2.2.2"), 10_000), Ok(()));
        assert_eq!(g.reserve("b@x", Some("1.1.1.1"), 10_000), Ok(()));
        // The window ends: a fresh start.
        assert_eq!(g.reserve("a@x", Some("1.1.1.1"), 60_000), Ok(()));
    }

    #[test]
    fn parallel_attempts_cannot_all_pass_the_check() {
        // Reserved before the password is checked: the fourth of four at once is refused.
        let g = guard(3, 100);
        let outcomes: Vec<_> = (0..4)
            .map(|_| g.reserve("a@x", Some("1.1.1.1"), 0))
            .collect();
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 3);
    }

    #[test]
    fn an_account_guessed_from_many_addresses_locks_at_ten_times_the_limit() {
        let g = guard(2, 100);
        for i in 0..20 {
            assert_eq!(g.reserve("a@x", Some(&format!("10.0.0.{i}")), 0), Ok(()));
        }
        assert!(g.reserve("a@x", Some("10.0.1.1"), 0).is_err());
    }

    #[test]
    fn an_address_locks_across_accounts_and_success_gives_the_attempt_back() {
        let g = guard(100, 3);
        for account in ["a@x", "b@x", "c@x"] {
            g.reserve(account, Some("9.9.9.9"), 0).unwrap();
        }
        assert!(g.reserve("d@x", Some("9.9.9.9"), 1).is_err());
        assert_eq!(g.reserve("d@x", Some("8.8.8.8"), 1), Ok(()));
        g.succeeded("c@x", Some("9.9.9.9"));
        assert_eq!(g.reserve("d@x", Some("9.9.9.9"), 1), Ok(()));
    }

    #[test]
    fn expired_windows_are_swept_when_many_keys_are_tracked() {
        let g = guard(5, 5);
        for i in 0..=SWEEP_ABOVE {
            g.reserve(&format!("{i}@x"), None, 0).unwrap();
        }
        g.reserve("late@x", None, 120_000).unwrap();
        let c = g.counters.lock().unwrap();
        assert_eq!((c.pairs.len(), c.accounts.len()), (1, 1));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn checks_run_off_the_async_thread_and_unknown_accounts_cost_a_check() {
        let g = LoginGuard::new(LoginLimits {
            hashing_slots: 1,
            ..LoginLimits::default()
        });
        let hash = hash_password("correct horse battery").unwrap();
        assert!(g.verify("correct horse battery", Some(&hash)).await);
        assert!(!g.verify("wrong", Some(&hash)).await);
        assert!(!g.verify("correct horse battery", None).await);
        assert!(!g.verify("anything", None).await);
        assert_eq!(
            g.checks(),
            4,
            "an unknown account is checked like a known one"
        );

        // On a single-threaded runtime, the other branch below runs while a check is in
        // flight only if the check is off this thread; the "check" here waits for it.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (answered, ()) = tokio::join!(
            g.off_thread(move || rx.recv_timeout(Duration::from_secs(5)).is_ok()),
            async {
                tokio::task::yield_now().await;
                tx.send(()).unwrap();
            }
        );
        assert_eq!(answered, Some(true), "the check blocked the async thread");
    }
}
