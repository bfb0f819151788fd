//! The upload spool: a finished file waits on local disk, beside a small JSON manifest, until the
//! object store has confirmed it (size and checksum) and the catalogue has recorded that; only then
//! is it removed. An S3 outage delays uploads (retried with backoff, 1 s doubling to 5 min); a
//! restart of Vizit loses nothing — the spool folder is scanned at start and every pending upload
//! resumes.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::store::{ObjectStore, Upload, digests};

/// One pending upload, as kept in `<spool>/<id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub id: String,
    /// Object key in the store.
    pub key: String,
    pub size: u64,
    pub sha256: String,
    pub content_type: String,
    pub created_at_ms: i64,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Whatever the caller needs back when the upload is confirmed (e.g. the recording id).
    pub meta: serde_json::Value,
    /// Where the file was before it entered the spool: if Vizit stopped between writing this
    /// manifest and moving the file, the next attempt moves it.
    #[serde(default)]
    pub source: Option<PathBuf>,
}

/// Told when an upload is confirmed; the spool file is removed only after this succeeds.
pub trait Confirm: Send + Sync + 'static {
    fn stored(&self, manifest: &Manifest) -> impl Future<Output = Result<(), String>> + Send;
}

pub struct Spool {
    dir: PathBuf,
    store: Arc<ObjectStore>,
    wake: Notify,
    /// Earliest next attempt per upload id (in memory: a restart retries at once).
    not_before: std::sync::Mutex<HashMap<String, tokio::time::Instant>>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(300);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Spool {
    /// A spool in `dir` (created if missing).
    pub fn open(dir: impl Into<PathBuf>, store: Arc<ObjectStore>) -> std::io::Result<Arc<Spool>> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Arc::new(Spool {
            dir,
            store,
            wake: Notify::new(),
            not_before: Default::default(),
        }))
    }

    pub fn store(&self) -> &Arc<ObjectStore> {
        &self.store
    }

    /// The spool's folder: files on their way to the store may be staged here (only `*.json`
    /// manifests are read as pending uploads).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn data_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.data"))
    }

    fn manifest_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Take `file` into the spool (moved if on the same file system, else copied) for upload
    /// under `key`. The file is hashed where it is, the manifest written (atomically), and only
    /// then is the file moved: a crash at any point leaves either the untouched file or a
    /// manifest that finds it.
    pub async fn enqueue(
        &self,
        file: &Path,
        key: &str,
        content_type: &str,
        meta: serde_json::Value,
    ) -> std::io::Result<Manifest> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (sha256, size) = digests(file).await?;
        let manifest = Manifest {
            id,
            key: key.to_owned(),
            size,
            sha256,
            content_type: content_type.to_owned(),
            created_at_ms: now_ms(),
            attempts: 0,
            last_error: None,
            meta,
            source: Some(std::path::absolute(file)?),
        };
        self.save(&manifest).await?;
        self.adopt(&manifest).await?;
        self.wake.notify_one();
        Ok(manifest)
    }

    /// Move the manifest's source file into the spool if it is not there yet.
    async fn adopt(&self, m: &Manifest) -> std::io::Result<()> {
        let data = self.data_path(&m.id);
        if tokio::fs::try_exists(&data).await? {
            return Ok(());
        }
        let Some(source) = &m.source else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "spooled file missing",
            ));
        };
        if tokio::fs::rename(source, &data).await.is_err() {
            tokio::fs::copy(source, &data).await?;
            tokio::fs::File::open(&data).await?.sync_all().await?;
            tokio::fs::remove_file(source).await?;
        }
        Ok(())
    }

    async fn save(&self, m: &Manifest) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("{}.json.tmp", m.id));
        tokio::fs::write(
            &tmp,
            serde_json::to_vec_pretty(m).map_err(std::io::Error::other)?,
        )
        .await?;
        tokio::fs::File::open(&tmp).await?.sync_all().await?;
        tokio::fs::rename(&tmp, self.manifest_path(&m.id)).await
    }

    /// Every pending upload, oldest first.
    pub async fn pending(&self) -> std::io::Result<Vec<Manifest>> {
        let mut out = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match tokio::fs::read(&path)
                .await
                .map(|b| serde_json::from_slice::<Manifest>(&b))
            {
                Ok(Ok(m)) => out.push(m),
                Ok(Err(e)) => {
                    tracing::error!(path = %path.display(), error = %e, "unreadable spool manifest left in place")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "spool manifest vanished")
                }
            }
        }
        out.sort_by_key(|m| m.created_at_ms);
        Ok(out)
    }

    /// Try one upload now. `Ok(true)`: stored, confirmed and removed from the spool.
    pub async fn attempt<C: Confirm>(&self, mut m: Manifest, confirm: &C) -> std::io::Result<bool> {
        let data = self.data_path(&m.id);
        if let Err(e) = self.adopt(&m).await {
            tracing::error!(key = %m.key, error = %e, "spooled file is missing; the upload cannot proceed");
        }
        let outcome = self
            .store
            .put(&Upload {
                key: &m.key,
                path: &data,
                size: m.size,
                sha256: &m.sha256,
                content_type: &m.content_type,
            })
            .await
            .map_err(|e| e.to_string());
        let outcome = match outcome {
            Ok(()) => confirm.stored(&m).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {
                tokio::fs::remove_file(self.manifest_path(&m.id)).await?;
                let _ = tokio::fs::remove_file(&data).await;
                self.not_before
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&m.id);
                tracing::info!(key = %m.key, bytes = m.size, attempts = m.attempts + 1, "upload confirmed");
                Ok(true)
            }
            Err(e) => {
                m.attempts += 1;
                m.last_error = Some(e.clone());
                let backoff = Duration::from_secs(1u64 << m.attempts.min(9)).min(MAX_BACKOFF);
                self.not_before
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(m.id.clone(), tokio::time::Instant::now() + backoff);
                tracing::warn!(key = %m.key, attempt = m.attempts, retry_in_s = backoff.as_secs(), error = %e, "upload failed; kept in the spool");
                self.save(&m).await?;
                Ok(false)
            }
        }
    }

    /// One pass over every due upload. Returns how many were confirmed.
    pub async fn run_once<C: Confirm>(&self, confirm: &C) -> std::io::Result<usize> {
        let mut done = 0;
        for m in self.pending().await? {
            let due = self
                .not_before
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&m.id)
                .is_none_or(|t| *t <= tokio::time::Instant::now());
            if due && self.attempt(m, confirm).await? {
                done += 1;
            }
        }
        Ok(done)
    }

    /// Upload until `stop` turns true: at start (resuming whatever a previous run left), when
    /// something is enqueued, and every second for retries.
    pub async fn run<C: Confirm>(
        self: Arc<Self>,
        confirm: C,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if let Err(e) = self.run_once(&confirm).await {
                tracing::error!(error = %e, dir = %self.dir.display(), "spool folder unreadable");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            }
        }
    }

    /// Wake the uploader (something was enqueued elsewhere).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}
