//! `vizit-bench`: start `vizit serve`, load it with rooms of two synthetic WebRTC peers, measure.
//!
//! ```text
//! cargo build --release -p vizit -p vizit-bench
//! target/release/vizit-bench --server target/release/vizit --ramp 10:10:300 --seconds 10
//! ```
//! Each step reports rooms, frame loss, one-way latency (p50/p99/max), the server's CPU (% of one
//! core) and CPU µs per forwarded packet, from `/proc` and the server's `/metrics`. The ramp stops
//! at the first step over 0.1 % loss or 50 ms p99.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use vizit_bench::{LoadOptions, Report, run};

struct Args {
    server: String,
    ramp: (usize, usize, usize),
    seconds: u64,
    bitrate: u32,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        server: "target/release/vizit".into(),
        ramp: (10, 10, 300),
        seconds: 10,
        bitrate: 1_500_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--server" => args.server = value()?,
            "--rooms" => {
                let n = value()?.parse()?;
                args.ramp = (n, 1, n);
            }
            "--ramp" => {
                let v: Vec<usize> = value()?
                    .split(':')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
                let [start, step, max] = v[..] else {
                    bail!("--ramp START:STEP:MAX")
                };
                args.ramp = (start, step.max(1), max);
            }
            "--seconds" => args.seconds = value()?.parse()?,
            "--bitrate" => args.bitrate = value()?.parse()?,
            "--help" | "-h" => {
                println!(
                    "vizit-bench [--server PATH] [--rooms N | --ramp START:STEP:MAX] [--seconds S] [--bitrate BPS]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

struct Server {
    child: Child,
    base: String,
    secret: String,
    data_dir: std::path::PathBuf,
}

impl Server {
    fn start(bin: &str) -> anyhow::Result<Server> {
        let data_dir = std::env::temp_dir().join(format!("vizit-bench-{}", uuid::Uuid::new_v4()));
        let secret =
            uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string();
        let mut child = Command::new(bin)
            .arg("serve")
            .env("VIZIT_HTTP__LISTEN", "127.0.0.1:0")
            .env("VIZIT_MEDIA__UDP_BIND", "127.0.0.1:0")
            .env("VIZIT_DATA_DIR", &data_dir)
            .env("VIZIT_AUTH__TOKEN_SECRET", &secret)
            .env("VIZIT_DEMO", "false")
            .env("VIZIT_LOG__FILTER", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {bin}"))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut base = None;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(url) = line.strip_prefix("Vizit is listening on ") {
                base = Some(url.trim().to_owned());
                break;
            }
        }
        let base = base.context("the server printed no listening line")?;
        Ok(Server {
            child,
            base,
            secret,
            data_dir,
        })
    }

    /// utime + stime of the server, in seconds.
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .context("stat")?
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        Ok(ticks as f64 / 100.0)
    }

    fn rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The server's total forwarded datagrams, from `/metrics`.
async fn packets_out(base: &str) -> anyhow::Result<u64> {
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    text.lines()
        .find_map(|l| l.strip_prefix("vizit_packets_out_total "))
        .context("no vizit_packets_out_total")?
        .trim()
        .parse()
        .map_err(Into::into)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    // The generator runs on one thread, as the benchmark issue asks: it stays cheap.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let server = Server::start(&args.server)?;
    println!(
        "| rooms | loss % | p50 ms | p99 ms | max ms | jitter ms | server CPU % | CPU µs/packet | packets out/s | RSS MiB | failed peers |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let (start, step, max) = args.ramp;
    let mut rooms = start;
    while rooms <= max {
        let mut options = LoadOptions::new(server.base.clone(), server.secret.clone(), rooms);
        options.duration = Duration::from_secs(args.seconds);
        options.video_bitrate = args.bitrate;
        let cpu0 = server.cpu_seconds()?;
        let out0 = runtime.block_on(packets_out(&server.base))?;
        let t0 = Instant::now();
        let report: Report = runtime.block_on(run(&options))?;
        let elapsed = t0.elapsed().as_secs_f64();
        let cpu = server.cpu_seconds()? - cpu0;
        let out = runtime.block_on(packets_out(&server.base))? - out0;
        println!(
            "| {rooms} | {:.3} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.0} | {:.0} | {} |",
            report.loss_percent(),
            report.p50_ms,
            report.p99_ms,
            report.max_ms,
            report.jitter_ms,
            cpu / elapsed * 100.0,
            if out > 0 { cpu * 1e6 / out as f64 } else { 0.0 },
            out as f64 / elapsed,
            server.rss_mib(),
            report.failed_peers,
        );
        if report.loss_percent() > 0.1 || report.p99_ms > 50.0 || report.failed_peers > 0 {
            println!("\nstopped: over 0.1 % loss or 50 ms p99 at {rooms} rooms");
            break;
        }
        rooms += step;
    }
    Ok(())
}
