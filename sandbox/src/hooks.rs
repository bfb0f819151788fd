//! Webhooks a stand-in sends (MAX updates, edna status callbacks), with the faults a receiver
//! must survive, switched on through the admin API: each one sent again `duplicates` times,
//! sent `delay_ms` late, held and released newest first (out of order), or forged (the secret
//! header replaced by a wrong one). Every attempt is logged with the answer it got.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the next webhooks go out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HookMode {
    /// Each is sent this many more times.
    pub duplicates: u32,
    /// Each is sent this long after the change.
    pub delay_ms: u64,
    /// Held until released (newest first: out of order).
    pub hold: bool,
    /// Sent with a wrong secret.
    pub forge: bool,
}

/// One attempt, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub url: String,
    pub body: Value,
    pub forged: bool,
    /// The HTTP status the receiver answered (`None`: unreachable).
    pub answer: Option<u16>,
}

#[derive(Debug, Clone)]
struct Hook {
    url: String,
    /// The header that proves the sender, and its value.
    secret: Option<(String, String)>,
    body: Value,
    forged: bool,
}

#[derive(Default)]
struct State {
    mode: HookMode,
    held: Vec<Hook>,
    log: Vec<Attempt>,
}

/// A stand-in's webhook sender. Cheap to clone.
#[derive(Clone)]
pub struct Hooks {
    state: Arc<Mutex<State>>,
    client: reqwest::Client,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            state: Arc::default(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }
}

impl Hooks {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_mode(&self, mode: HookMode) {
        self.lock().mode = mode;
    }

    pub fn mode(&self) -> HookMode {
        self.lock().mode.clone()
    }

    /// Every attempt so far.
    pub fn log(&self) -> Vec<Attempt> {
        self.lock().log.clone()
    }

    /// Send `body` to `url` with `secret` (header, value), as the mode says. Needs a Tokio
    /// runtime.
    pub fn send(&self, url: &str, secret: Option<(&str, &str)>, body: Value) {
        let mut s = self.lock();
        let hook = Hook {
            url: url.to_owned(),
            secret: secret.map(|(h, v)| (h.to_owned(), v.to_owned())),
            body,
            forged: s.mode.forge,
        };
        if s.mode.hold {
            s.held.push(hook);
            return;
        }
        let (copies, delay) = (1 + s.mode.duplicates, s.mode.delay_ms);
        drop(s);
        self.spawn(vec![hook], copies, delay);
    }

    /// Send the held webhooks, newest first. Returns how many.
    pub fn release(&self) -> usize {
        let mut held = std::mem::take(&mut self.lock().held);
        held.reverse();
        let n = held.len();
        let copies = 1 + self.lock().mode.duplicates;
        self.spawn(held, copies, 0);
        n
    }

    fn spawn(&self, hooks: Vec<Hook>, copies: u32, delay_ms: u64) {
        let this = self.clone();
        tokio::spawn(async move {
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            for hook in hooks {
                for _ in 0..copies {
                    let mut req = this.client.post(&hook.url).json(&hook.body);
                    if let Some((header, value)) = &hook.secret {
                        let value = if hook.forged {
                            "forged-secret-0000"
                        } else {
                            value
                        };
                        req = req.header(header.as_str(), value);
                    }
                    let answer = req.send().await.ok().map(|r| r.status().as_u16());
                    this.lock().log.push(Attempt {
                        url: hook.url.clone(),
                        body: hook.body.clone(),
                        forged: hook.forged,
                        answer,
                    });
                }
            }
        });
    }
}
