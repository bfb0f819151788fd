//! Counters of the Bitrix24 integration, in Prometheus text format on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    /// Per method: calls, failed calls.
    methods: Mutex<BTreeMap<String, (u64, u64)>>,
    retries: AtomicU64,
    rate_limit_waits: AtomicU64,
    rate_limit_wait_micros: AtomicU64,
    portal_limit_hits: AtomicU64,
    syncs: AtomicU64,
    sync_failures: AtomicU64,
    events: AtomicU64,
    events_rejected: AtomicU64,
}

impl Metrics {
    /// One call of `method`; `error_code`: Bitrix24's error code if it refused.
    pub(super) fn call(&self, method: &str, failed: bool, error_code: Option<&str>) {
        let mut m = self.methods.lock().unwrap_or_else(|e| e.into_inner());
        let entry = m.entry(method.to_owned()).or_default();
        entry.0 += 1;
        if failed {
            entry.1 += 1;
        }
        if error_code == Some("QUERY_LIMIT_EXCEEDED") {
            self.portal_limit_hits.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn rate_limit_wait(&self, seconds: f64) {
        self.rate_limit_waits.fetch_add(1, Ordering::Relaxed);
        self.rate_limit_wait_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    pub(super) fn sync(&self, ok: bool) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.sync_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn event(&self, accepted: bool) {
        if accepted {
            self.events.fetch_add(1, Ordering::Relaxed);
        } else {
            self.events_rejected.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Calls and failures so far, per method.
    pub fn calls(&self) -> BTreeMap<String, (u64, u64)> {
        self.methods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Times the client waited for its own rate limiter.
    pub fn rate_limit_waits(&self) -> u64 {
        self.rate_limit_waits.load(Ordering::Relaxed)
    }

    /// Times the portal answered `QUERY_LIMIT_EXCEEDED`.
    pub fn portal_limit_hits(&self) -> u64 {
        self.portal_limit_hits.load(Ordering::Relaxed)
    }

    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let methods = self.calls();
        out.push_str("# HELP vizit_bitrix24_calls_total Bitrix24 REST calls (each HTTP request).\n# TYPE vizit_bitrix24_calls_total counter\n");
        for (method, (calls, _)) in &methods {
            let _ = writeln!(
                out,
                "vizit_bitrix24_calls_total{{method=\"{method}\"}} {calls}"
            );
        }
        out.push_str("# HELP vizit_bitrix24_errors_total Bitrix24 REST calls that failed.\n# TYPE vizit_bitrix24_errors_total counter\n");
        for (method, (_, errors)) in &methods {
            let _ = writeln!(
                out,
                "vizit_bitrix24_errors_total{{method=\"{method}\"}} {errors}"
            );
        }
        let counters = [
            (
                "vizit_bitrix24_retries_total",
                "Bitrix24 calls repeated after a retryable failure.",
                self.retries.load(Ordering::Relaxed),
            ),
            (
                "vizit_bitrix24_rate_limit_waits_total",
                "Times a call waited for the client-side rate limiter.",
                self.rate_limit_waits.load(Ordering::Relaxed),
            ),
            (
                "vizit_bitrix24_portal_limit_hits_total",
                "Times the portal answered QUERY_LIMIT_EXCEEDED.",
                self.portal_limit_hits.load(Ordering::Relaxed),
            ),
            (
                "vizit_bitrix24_syncs_total",
                "Slot synchronisations run.",
                self.syncs.load(Ordering::Relaxed),
            ),
            (
                "vizit_bitrix24_sync_failures_total",
                "Slot synchronisations that failed.",
                self.sync_failures.load(Ordering::Relaxed),
            ),
            (
                "vizit_bitrix24_events_total",
                "ONBOOKING* events accepted.",
                self.events.load(Ordering::Relaxed),
            ),
            (
                "vizit_bitrix24_events_rejected_total",
                "Events refused (bad token or body).",
                self.events_rejected.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            );
        }
        let wait = self.rate_limit_wait_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = write!(
            out,
            "# HELP vizit_bitrix24_rate_limit_wait_seconds_total Time spent waiting for the client-side rate limiter.\n# TYPE vizit_bitrix24_rate_limit_wait_seconds_total counter\nvizit_bitrix24_rate_limit_wait_seconds_total {wait}\n"
        );
        out
    }
}
