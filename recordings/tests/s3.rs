//! The object store against a real S3-compatible server (SeaweedFS, started by `scripts/test.sh`;
//! `TEST_S3_ENDPOINT`, `TEST_S3_ACCESS_KEY`, `TEST_S3_SECRET_KEY`), and the local folder.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use vizit_recordings::{Confirm, Manifest, ObjectStore, S3Settings, Spool, StoreError};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} must be set: scripts/test.sh starts SeaweedFS and sets TEST_S3_ENDPOINT, TEST_S3_ACCESS_KEY, TEST_S3_SECRET_KEY")
    })
}

/// The shared test bucket and this test's own key prefix.
#[derive(Clone)]
struct Place {
    bucket: String,
    prefix: String,
}

fn settings(endpoint: &str, place: &Place) -> S3Settings {
    S3Settings {
        endpoint: Some(endpoint.to_owned()),
        region: "us-east-1".into(),
        bucket: place.bucket.clone(),
        prefix: place.prefix.clone(),
        path_style: true,
        access_key_id: env("TEST_S3_ACCESS_KEY"),
        secret_access_key: SecretString::from(env("TEST_S3_SECRET_KEY")),
        server_side_encryption: None,
        part_size: 5 * 1024 * 1024,
    }
}

/// One bucket for every test (a bucket is a SeaweedFS collection with volumes of its own; a few
/// dozen would exhaust a small disk), and a fresh key prefix per test.
async fn bucket() -> Place {
    let place = Place {
        bucket: std::env::var("TEST_S3_BUCKET").unwrap_or_else(|_| "vizit-test".into()),
        prefix: format!("t-{}/", uuid::Uuid::new_v4().simple()),
    };
    let store = ObjectStore::s3(settings(&env("TEST_S3_ENDPOINT"), &place));
    let created = store
        .s3_client()
        .unwrap()
        .create_bucket()
        .bucket(&place.bucket)
        .send()
        .await;
    if let Err(e) = created {
        let code = e
            .as_service_error()
            .and_then(|s| s.meta().code())
            .unwrap_or("")
            .to_owned();
        assert!(
            code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists",
            "create bucket: {}",
            aws_sdk_s3::error::DisplayErrorContext(&e)
        );
    }
    place
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vizit-rec-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Pseudo-random bytes (not compressible, not repeating per part).
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[derive(Default, Clone)]
struct Confirmed(Arc<std::sync::Mutex<Vec<Manifest>>>);

impl Confirm for Confirmed {
    async fn stored(&self, m: &Manifest) -> Result<(), String> {
        self.0.lock().unwrap().push(m.clone());
        Ok(())
    }
}

async fn get(store: &ObjectStore, place: &Place, key: &str) -> Vec<u8> {
    let out = store
        .s3_client()
        .unwrap()
        .get_object()
        .bucket(&place.bucket)
        .key(format!("{}{key}", place.prefix))
        .send()
        .await
        .expect("object exists");
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

// One SeaweedFS for the whole binary: tests that cut the connection run one at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_is_byte_identical_and_presigned_urls_expire() {
    let _one = SERIAL.lock().await;
    let place = bucket().await;
    let store = Arc::new(ObjectStore::s3(settings(&env("TEST_S3_ENDPOINT"), &place)));
    let dir = temp_dir();
    let spool = Spool::open(dir.join("spool"), store.clone()).unwrap();
    let data = bytes(12 * 1024 * 1024 + 12345, 7);
    let file = dir.join("call.webm");
    std::fs::write(&file, &data).unwrap();
    let m = spool
        .enqueue(
            &file,
            "recordings/c1/a.webm",
            "video/webm",
            serde_json::json!({"recording": "r1"}),
        )
        .await
        .unwrap();
    assert!(!file.exists(), "the file moved into the spool");
    assert_eq!(m.size, data.len() as u64);
    let confirmed = Confirmed::default();
    assert_eq!(spool.run_once(&confirmed).await.unwrap(), 1);
    assert_eq!(confirmed.0.lock().unwrap()[0].meta["recording"], "r1");
    assert!(
        spool.pending().await.unwrap().is_empty(),
        "spool emptied after confirmation"
    );
    assert_eq!(
        get(&store, &place, "recordings/c1/a.webm").await,
        data,
        "byte-identical"
    );
    let info = store.head("recordings/c1/a.webm").await.unwrap().unwrap();
    assert_eq!(
        (info.size, info.sha256.as_deref()),
        (data.len() as u64, Some(m.sha256.as_str()))
    );

    // A presigned URL downloads it, then expires.
    let url = store
        .presigned_url(
            "recordings/c1/a.webm",
            Duration::from_secs(2),
            "consultation c1.webm",
        )
        .await
        .unwrap()
        .unwrap();
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("consultationc1.webm")
    );
    assert_eq!(r.bytes().await.unwrap().len(), data.len());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status().as_u16(), 403, "expired URL refused");

    store.delete("recordings/c1/a.webm").await.unwrap();
    assert_eq!(store.head("recordings/c1/a.webm").await.unwrap(), None);
    store.delete("recordings/c1/a.webm").await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused() {
    let _one = SERIAL.lock().await;
    let place = bucket().await;
    let mut s = settings(&env("TEST_S3_ENDPOINT"), &place);
    s.secret_access_key = SecretString::from("not-the-secret".to_owned());
    let store = ObjectStore::s3(s);
    let dir = temp_dir();
    std::fs::write(dir.join("f"), b"hello").unwrap();
    let (sha, size) = vizit_recordings::store::digests(&dir.join("f"))
        .await
        .unwrap();
    let err = store
        .put(&vizit_recordings::store::Upload {
            key: "x/f",
            path: &dir.join("f"),
            size,
            sha256: &sha,
            content_type: "application/octet-stream",
        })
        .await
        .expect_err("SigV4 is checked");
    assert!(matches!(err, StoreError::S3(_)), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A TCP proxy in front of S3 that can cut every connection (an outage as the client sees it)
/// once it has carried `cut_after` bytes, and refuse new ones until restarted.
struct Proxy {
    addr: SocketAddr,
    carried: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(addr: SocketAddr, upstream: SocketAddr, cut_after: u64) -> Proxy {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let carried = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let (c, d) = (carried.clone(), down.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if d.load(Ordering::SeqCst) {
                    return; // the listener closes: new connections are refused
                }
                let (c, d) = (c.clone(), d.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if c.fetch_add(n as u64, Ordering::SeqCst) + n as u64 > cut_after {
                                d.store(true, Ordering::SeqCst);
                                return;
                            }
                            if sw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let down_stream = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match sr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if cw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    // Whichever side ends (or the cut) drops both connections.
                    tokio::select! { _ = up => {}, _ = down_stream => {} }
                });
            }
        });
        Proxy {
            addr,
            carried,
            down,
            task,
        }
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    fn stop(self) -> SocketAddr {
        self.task.abort();
        self.addr
    }
}

fn upstream() -> SocketAddr {
    let endpoint = env("TEST_S3_ENDPOINT");
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    hostport
        .parse()
        .expect("TEST_S3_ENDPOINT is http://IP:PORT")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_outage_mid_upload_then_the_upload_completes() {
    let _one = SERIAL.lock().await;
    let place = bucket().await;
    // The connection is cut after ~7 MiB: the first part went up, the second did not.
    let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), upstream(), 7 * 1024 * 1024).await;
    let endpoint = format!("http://{}", proxy.addr);
    let store = Arc::new(ObjectStore::s3(settings(&endpoint, &place)));
    let dir = temp_dir();
    let spool = Spool::open(dir.join("spool"), store.clone()).unwrap();
    let data = bytes(16 * 1024 * 1024, 11);
    std::fs::write(dir.join("f.webm"), &data).unwrap();
    spool
        .enqueue(
            &dir.join("f.webm"),
            "recordings/c2/a.webm",
            "video/webm",
            serde_json::Value::Null,
        )
        .await
        .unwrap();
    let confirmed = Confirmed::default();
    assert_eq!(
        spool.run_once(&confirmed).await.unwrap(),
        0,
        "the outage fails this attempt"
    );
    assert!(
        proxy.is_down() && proxy.carried.load(Ordering::SeqCst) > 5 * 1024 * 1024,
        "cut mid-upload"
    );
    let pending = spool.pending().await.unwrap();
    assert_eq!(pending.len(), 1, "kept in the spool");
    assert_eq!(pending[0].attempts, 1);
    assert!(pending[0].last_error.is_some());
    assert!(
        store.head("recordings/c2/a.webm").await.is_err(),
        "still down"
    );

    // S3 comes back (same address): the next due attempt completes it.
    let addr = proxy.stop();
    let _back = Proxy::start(addr, upstream(), u64::MAX).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while spool.run_once(&confirmed).await.unwrap() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not uploaded after S3 returned"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(get(&store, &place, "recordings/c2/a.webm").await, data);
    assert!(spool.pending().await.unwrap().is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_pending_uploads() {
    let _one = SERIAL.lock().await;
    let place = bucket().await;
    let dir = temp_dir();
    let data = bytes(6 * 1024 * 1024, 3);
    std::fs::write(dir.join("f.webm"), &data).unwrap();
    {
        // The first process: S3 unreachable (nothing listens), the upload waits in the spool.
        let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", dead.local_addr().unwrap());
        drop(dead);
        let store = Arc::new(ObjectStore::s3(settings(&endpoint, &place)));
        let spool = Spool::open(dir.join("spool"), store).unwrap();
        spool
            .enqueue(
                &dir.join("f.webm"),
                "recordings/c3/a.webm",
                "video/webm",
                serde_json::json!({"n": 3}),
            )
            .await
            .unwrap();
        assert_eq!(spool.run_once(&Confirmed::default()).await.unwrap(), 0);
    } // "killed"
    // The next process, with S3 reachable, resumes it from the folder alone.
    let store = Arc::new(ObjectStore::s3(settings(&env("TEST_S3_ENDPOINT"), &place)));
    let spool = Spool::open(dir.join("spool"), store.clone()).unwrap();
    let pending = spool.pending().await.unwrap();
    assert_eq!((pending.len(), pending[0].meta["n"].as_i64()), (1, Some(3)));
    let confirmed = Confirmed::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(spool.clone().run(confirmed.clone(), stopped));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while confirmed.0.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "not resumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true).unwrap();
    runner.await.unwrap();
    assert_eq!(get(&store, &place, "recordings/c3/a.webm").await, data);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn local_folder_store_and_key_checks() {
    let dir = temp_dir();
    let store = Arc::new(ObjectStore::local(dir.join("objects")));
    let spool = Spool::open(dir.join("spool"), store.clone()).unwrap();
    std::fs::write(dir.join("f"), b"webm bytes").unwrap();
    let m = spool
        .enqueue(
            &dir.join("f"),
            "recordings/c/x.webm",
            "video/webm",
            serde_json::Value::Null,
        )
        .await
        .unwrap();
    assert_eq!(spool.run_once(&Confirmed::default()).await.unwrap(), 1);
    let path = store.local_path("recordings/c/x.webm").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"webm bytes");
    assert_eq!(
        store
            .head("recordings/c/x.webm")
            .await
            .unwrap()
            .unwrap()
            .sha256
            .unwrap(),
        m.sha256
    );
    assert_eq!(
        store
            .presigned_url("recordings/c/x.webm", Duration::from_secs(60), "x")
            .await
            .unwrap(),
        None
    );
    for bad in ["../etc/passwd", "/abs", "a//b", "a/./b", ""] {
        assert!(
            matches!(store.head(bad).await, Err(StoreError::BadKey(_))),
            "{bad}"
        );
        assert!(store.local_path(bad).is_none());
    }
    store.delete("recordings/c/x.webm").await.unwrap();
    assert!(!path.exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_manifest_whose_file_was_not_moved_yet_still_uploads() {
    // Vizit stopped between writing the manifest and moving the file into the spool.
    let dir = temp_dir();
    let store = Arc::new(ObjectStore::local(dir.join("objects")));
    std::fs::create_dir_all(dir.join("spool")).unwrap();
    std::fs::write(dir.join("left.webm"), b"finished recording").unwrap();
    let (sha256, size) = vizit_recordings::store::digests(&dir.join("left.webm"))
        .await
        .unwrap();
    let manifest = Manifest {
        id: "m1".into(),
        key: "recordings/c/left.webm".into(),
        size,
        sha256,
        content_type: "video/webm".into(),
        created_at_ms: 1,
        attempts: 0,
        last_error: None,
        meta: serde_json::Value::Null,
        source: Some(dir.join("left.webm")),
    };
    std::fs::write(
        dir.join("spool/m1.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let spool = Spool::open(dir.join("spool"), store.clone()).unwrap();
    assert_eq!(spool.run_once(&Confirmed::default()).await.unwrap(), 1);
    assert_eq!(
        std::fs::read(store.local_path("recordings/c/left.webm").unwrap()).unwrap(),
        b"finished recording"
    );
    assert!(!dir.join("left.webm").exists());
    let _ = std::fs::remove_dir_all(dir);
}
