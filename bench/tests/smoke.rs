//! A short run of the load generator against an in-process Vizit: a few rooms for a few seconds,
//! every frame arrives with its payload intact. Correctness, not timing.

use std::time::Duration;

use secrecy::SecretString;
use vizit::config::Settings;
use vizit::startup::Application;

/// An in-process Vizit on loopback with its own data folder and token secret, stopped by
/// [`Server::stop`].
struct Server {
    base: String,
    secret: String,
    data_dir: std::path::PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn start() -> Server {
        let secret = "bench-smoke-secret-bench-smoke-secret-01".to_owned();
        let data_dir =
            std::env::temp_dir().join(format!("vizit-bench-smoke-{}", uuid::Uuid::new_v4()));
        let mut settings = Settings {
            data_dir: data_dir.clone(),
            demo: false,
            ..Settings::default()
        };
        settings.http.listen = "127.0.0.1:0".parse().unwrap();
        settings.media.udp_bind = "127.0.0.1:0".parse().unwrap();
        settings.auth.token_secret = Some(SecretString::from(secret.clone()));
        let app = Application::build(settings).await.unwrap();
        let base = format!("http://{}", app.http_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Server {
            base,
            secret,
            data_dir,
            stop,
            task,
        }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_rooms_exchange_every_frame_intact() {
    let server = Server::start().await;
    let mut options = vizit_bench::LoadOptions::new(server.base.clone(), server.secret.clone(), 3);
    options.duration = Duration::from_secs(3);
    options.warmup = Duration::from_secs(1);
    options.video_bitrate = 500_000;
    let report = vizit_bench::run(&options).await.unwrap();

    assert_eq!(report.failed_peers, 0, "{report:?}");
    assert_eq!(report.corrupt, 0, "{report:?}");
    // The generator's own SRTP (keys from str0m's DTLS) read every packet the server sent.
    assert_eq!(report.srtp_rejected, 0, "{report:?}");
    assert!(
        report.media_packets_in >= report.frames_received,
        "{report:?}"
    );
    // 6 peers × 3 s × (50 audio + 30 video frames/s) ≈ 1440 sent; most arrive (frames sent before the other side's consumer opened do not count).
    assert!(report.frames_received > 600, "{report:?}");
    assert_eq!(report.frames_lost, 0, "{report:?}");
    // Latency is sampled after the warm-up: the remaining 2 s gave samples.
    assert!(
        report.p50_ms > 0.0 && report.p99_ms >= report.p50_ms,
        "{report:?}"
    );
    server.stop().await;
}

/// The soak tooling against an in-process Vizit, briefly: calls that end with `leave`, with a
/// rejoin after `leave` and with a rejoin after a dropped socket all complete, and once they
/// have ended the server holds no room, participant or signaling socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_leaves_nothing_behind() {
    let server = Server::start().await;
    let base = server.base.clone();
    let options = vizit_bench::soak::SoakOptions {
        base_url: base.clone(),
        token_secret: server.secret.clone(),
        rooms: 3,
        duration: Duration::from_secs(4),
        call_min: Duration::from_secs(4),
        call_max: Duration::from_secs(5),
        video_bitrate: 300_000,
        sample_every: Duration::from_secs(1),
    };
    let mut busiest = 0.0f64;
    let totals = vizit_bench::soak::soak(&options, |_, _| {
        if let Ok([_, participants, _, _]) = vizit_bench::soak::gauges(&base) {
            busiest = busiest.max(participants);
        }
    })
    .await
    .unwrap();
    assert!(totals.calls_started >= 3, "{totals:?}");
    assert_eq!(totals.calls_ended, totals.calls_started, "{totals:?}");
    assert!(totals.rejoins_after_leave >= 1, "{totals:?}");
    assert!(totals.rejoins_after_drop >= 1, "{totals:?}");
    assert_eq!(totals.failed_peers, 0, "{totals:?}");
    assert_eq!(totals.corrupt, 0, "{totals:?}");
    assert!(totals.frames_received > 0, "{totals:?}");
    assert!(busiest >= 2.0, "the calls were seen live: {busiest}");
    // Everything is released: at once for a `leave`, within the signaling's notice of a closed
    // socket for a drop.
    let last = vizit_bench::soak::settled(&base).await.unwrap();
    assert_eq!(last[..3], [0.0; 3], "rooms, participants, sockets left");
    server.stop().await;
}
