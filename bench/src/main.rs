//! `vizit-bench`: start `vizit serve` (and Janus, with `--janus`), load each with rooms of two
//! synthetic WebRTC peers, measure.
//!
//! ```text
//! bench/run.sh --ramp 10:20:250 --seconds 8     # both servers, in a private network namespace
//! target/release/vizit-bench --server target/release/vizit --ramp 10:10:300 --seconds 10
//! ```
//! Each step reports, per server: rooms, frame loss, one-way latency (p50/p99/max), jitter, the
//! server's CPU (% of one core, from `/proc`) and CPU µs per datagram it sent to the participants
//! (counted by the generator, the same for both servers), RSS. A server's ramp stops at its first
//! step over 0.1 % loss or 50 ms p99; the run ends when every server has stopped.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use vizit_bench::{LoadOptions, Report, Target, run};

struct Args {
    server: String,
    janus: Option<String>,
    janus_netns: Option<String>,
    janus_ip: String,
    peer_ip: std::net::IpAddr,
    keep_janus_log: bool,
    only_janus: bool,
    out: Option<std::path::PathBuf>,
    ramp: (usize, usize, usize),
    seconds: u64,
    bitrate: u32,
    threads: usize,
    /// Vizit's `media.threads`.
    media_threads: usize,
    /// A soak run of this long instead of the ramp (Vizit only).
    soak: Option<Duration>,
    call_seconds: (u64, u64),
    sample_seconds: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        server: "target/release/vizit".into(),
        janus: None,
        janus_netns: None,
        janus_ip: "10.99.0.1".into(),
        peer_ip: std::net::Ipv4Addr::new(10, 99, 0, 2).into(),
        keep_janus_log: false,
        only_janus: false,
        out: None,
        ramp: (10, 10, 300),
        seconds: 10,
        bitrate: 1_500_000,
        threads: 1,
        media_threads: 1,
        soak: None,
        call_seconds: (20, 90),
        sample_seconds: 60,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--server" => args.server = value()?,
            "--janus" => args.janus = Some(value()?),
            "--janus-netns" => args.janus_netns = Some(value()?),
            "--janus-ip" => args.janus_ip = value()?,
            "--peer-ip" => args.peer_ip = value()?.parse().context("--peer-ip")?,
            "--keep-janus-log" => args.keep_janus_log = true,
            "--only-janus" => args.only_janus = true,
            "--out" => args.out = Some(value()?.into()),
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
            "--threads" => args.threads = value()?.parse::<usize>()?.max(1),
            "--media-threads" => args.media_threads = value()?.parse::<usize>()?.max(1),
            "--soak" => {
                args.soak = Some(Duration::from_secs(value()?.parse::<u64>()? * 60));
            }
            "--call-seconds" => {
                let v: Vec<u64> = value()?
                    .split(':')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
                let [min, max] = v[..] else {
                    bail!("--call-seconds MIN:MAX")
                };
                args.call_seconds = (min.max(4), max.max(min.max(4)));
            }
            "--sample-seconds" => args.sample_seconds = value()?.parse::<u64>()?.max(1),
            "--help" | "-h" => {
                println!(
                    "vizit-bench [--server PATH] [--janus JANUS_BIN [--janus-netns NS] [--janus-ip IP] \
                     [--peer-ip IP] [--only-janus] [--keep-janus-log]] [--out DIR] \
                     [--rooms N | --ramp START:STEP:MAX] [--seconds S] [--bitrate BPS] [--threads N] [--media-threads N] \
                     [--soak MINUTES [--call-seconds MIN:MAX] [--sample-seconds S]]"
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
    fn start(bin: &str, media_threads: usize) -> anyhow::Result<Server> {
        let data_dir = std::env::temp_dir().join(format!("vizit-bench-{}", uuid::Uuid::new_v4()));
        let secret =
            uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string();
        let mut child = Command::new(bin)
            .arg("serve")
            .env("VIZIT_HTTP__LISTEN", "127.0.0.1:0")
            .env("VIZIT_MEDIA__UDP_BIND", "127.0.0.1:0")
            .env("VIZIT_MEDIA__THREADS", media_threads.to_string())
            .env("VIZIT_DATA_DIR", &data_dir)
            .env("VIZIT_AUTH__TOKEN_SECRET", &secret)
            .env("VIZIT_DEMO", "false")
            .env("VIZIT_LOG__FILTER", "warn")
            // Every simulated participant connects from loopback.
            .env("VIZIT_SIGNALING__MAX_SOCKETS_PER_ADDRESS", "10000")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {bin}"))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut base = None;
        for line in lines.by_ref() {
            let line = line?;
            if let Some(url) = line.strip_prefix("Vizit is listening on ") {
                base = Some(url.trim().to_owned());
                break;
            }
        }
        // Keep reading what the server prints after that, so it never writes to a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let base = base.context("the server printed no listening line")?;
        Ok(Server {
            child,
            base,
            secret,
            data_dir,
        })
    }
}

/// The generator's nice value (the servers run at 0).
const GENERATOR_NICE: i32 = 5;

/// Send `SIGSTOP`/`SIGCONT` (`name`) to `pid`; best effort.
fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// The kernel's count of UDP datagrams dropped for a full receive buffer, in this network
/// namespace (the generator's and Vizit's sockets; not Janus's).
fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of process `pid` (all threads), in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Janus with only the VideoRoom plugin and the HTTP transport on port 8088, ICE on its `v0`
/// interface. Janus gathers no candidates on loopback, and answers nothing sent to an address of
/// its own interface from the same namespace (the replies leave by `v0` and are dropped as
/// martians), so `bench/run.sh` puts it in a network namespace of its own, joined to the
/// generator's by a veth pair (10.99.0.1 on Janus's `v0`, 10.99.0.2 on the generator's `v1`).
struct JanusServer {
    child: Child,
    keep_log: bool,
    url: String,
    config_dir: std::path::PathBuf,
}

impl JanusServer {
    /// Janus `bin`, in network namespace `netns` if given (via `ip netns exec`), its HTTP API and
    /// ICE on `ip`.
    fn start(bin: &str, netns: Option<&str>, ip: &str) -> anyhow::Result<JanusServer> {
        let dir = std::env::temp_dir().join(format!("vizit-bench-janus-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let lib = "/usr/lib/x86_64-linux-gnu/janus";
        std::fs::write(
            dir.join("janus.jcfg"),
            format!(
                r#"general: {{
  configs_folder = "{dir}"
  plugins_folder = "{lib}/plugins"
  transports_folder = "{lib}/transports"
  events_folder = "{lib}/events"
  loggers_folder = "{lib}/loggers"
  debug_level = 5
  session_timeout = 0
  server_name = "vizit-bench"
}}
nat: {{ ice_enforce_list = "v0" }}
media: {{ rtp_port_range = "20000-40000" }}
plugins: {{ disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so" }}
transports: {{ disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so" }}
loggers: {{ disable = "libjanus_jsonlog.so" }}
events: {{ broadcast = false }}
"#,
                dir = dir.display(),
            ),
        )?;
        std::fs::write(
            dir.join("janus.transport.http.jcfg"),
            // Every address of Janus's namespace (binding one named address fails in Janus 1.1).
            "general: { base_path = \"/janus\", http = true, port = 8088, https = false }\n\
             admin: { admin_http = false }\n",
        )?;
        std::fs::write(dir.join("janus.plugin.videoroom.jcfg"), "general: { }\n")?;
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        let child = command
            .arg("-C")
            .arg(dir.join("janus.jcfg"))
            .arg("-F")
            .arg(&dir)
            .arg("--disable-colors")
            .arg("--log-file")
            .arg(dir.join("janus.log"))
            .arg("--disable-stdout")
            .stdout(match std::fs::File::create(dir.join("janus.stdout")) {
                Ok(f) => Stdio::from(f),
                Err(_) => Stdio::null(),
            })
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {bin}"))?;
        let url = format!("http://{ip}:8088/janus");
        let server = JanusServer {
            child,
            keep_log: false,
            url,
            config_dir: dir,
        };
        // Up when its HTTP API answers.
        let http: std::net::SocketAddr = format!("{ip}:8088").parse().context("--janus-ip")?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(http).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("Janus did not open its HTTP API on {http} within 10 s")
    }
}

impl Drop for JanusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.keep_log {
            eprintln!(
                "Janus's log: {}",
                self.config_dir.join("janus.log").display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.config_dir);
        }
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
fn packets_out(base: &str) -> anyhow::Result<u64> {
    let text = vizit_bench::soak::metrics(base)?;
    Ok(vizit_bench::soak::metric(&text, "vizit_packets_out_total")? as u64)
}

/// The highest resident memory of `pid` while a step runs: sampled every 100 ms by a thread of
/// its own (after the step the peers have left and the allocator may have returned memory).
struct PeakRss {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

impl PeakRss {
    fn start(pid: u32) -> PeakRss {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak: f64 = 0.0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_mib(pid));
                std::thread::sleep(Duration::from_millis(100));
            }
            peak.max(rss_mib(pid))
        });
        PeakRss { stop, thread }
    }

    fn finish(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0.0)
    }
}

/// A soak run against Vizit: a table row every sample, then the gauges once every call ended.
fn soak(args: &Args, server: &Server, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let pid = server.child.id();
    let options = vizit_bench::soak::SoakOptions {
        base_url: server.base.clone(),
        token_secret: server.secret.clone(),
        rooms: args.ramp.2,
        duration: args.soak.unwrap_or_default(),
        call_min: Duration::from_secs(args.call_seconds.0),
        call_max: Duration::from_secs(args.call_seconds.1),
        video_bitrate: args.bitrate,
        sample_every: Duration::from_secs(args.sample_seconds),
    };
    let mut table = format!(
        "Soak: {} calls at a time for {} min, calls of {}–{} s, a third with a rejoin after \
         `leave` and a third after a dropped socket.\n\n\
         | minute | calls started | calls ended | rejoins (leave / drop) | failed peers | rooms | participants | sockets | RSS MiB | server CPU % |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        options.rooms,
        options.duration.as_secs() / 60,
        args.call_seconds.0,
        args.call_seconds.1,
    );
    print!("{table}");
    let mut cpu_then = (cpu_seconds(pid)?, Instant::now());
    let mut rows = String::new();
    let mut rss_series = Vec::new();
    let totals = runtime.block_on(vizit_bench::soak::soak(&options, |elapsed, t| {
        let cpu_now = (cpu_seconds(pid).unwrap_or(cpu_then.0), Instant::now());
        let cpu = (cpu_now.0 - cpu_then.0) / cpu_now.1.duration_since(cpu_then.1).as_secs_f64();
        cpu_then = cpu_now;
        let [rooms, participants, sockets, rss] = vizit_bench::soak::gauges(&server.base).unwrap_or([f64::NAN; 4]);
        rss_series.push((elapsed.as_secs_f64() / 60.0, rss));
        let row = format!(
            "| {:.1} | {} | {} | {} / {} | {} | {rooms} | {participants} | {sockets} | {rss:.0} | {:.1} |\n",
            elapsed.as_secs_f64() / 60.0,
            t.calls_started,
            t.calls_ended,
            t.rejoins_after_leave,
            t.rejoins_after_drop,
            t.failed_peers,
            cpu * 100.0,
        );
        print!("{row}");
        rows.push_str(&row);
    }))?;
    table.push_str(&rows);
    // Every call has ended: the server must let go of everything within its timeouts.
    let [rooms, participants, sockets, rss] =
        runtime.block_on(vizit_bench::soak::settled(&server.base))?;
    // Growth while loaded: from the first sample after a tenth of the run to the last one
    // before new calls stopped (after that the calls wind down).
    let loaded_until = options.duration.as_secs_f64() / 60.0;
    let warm = rss_series
        .iter()
        .find(|(minute, _)| *minute >= loaded_until / 10.0)
        .copied();
    let slack = args.sample_seconds as f64 / 120.0;
    let last = rss_series
        .iter()
        .rev()
        .find(|(m, _)| *m <= loaded_until + slack);
    let growth = match (warm, last) {
        (Some((m0, r0)), Some(&(m1, r1))) if m1 > m0 => format!(
            "{:+.0} MiB from minute {m0:.0} to minute {m1:.0} ({:+.1} MiB per hour)",
            r1 - r0,
            (r1 - r0) / (m1 - m0) * 60.0
        ),
        _ => "too short to tell".to_owned(),
    };
    let summary = format!(
        "\nCalls: {} started, {} ended; rejoins: {} after `leave`, {} after a dropped socket; \
         failed peers: {}; frames sent {}, received {}, corrupt {}.\n\
         Loaded RSS growth: {growth}.\n\
         After the last call: rooms {rooms}, participants {participants}, signaling sockets \
         {sockets}, RSS {rss:.0} MiB.\n",
        totals.calls_started,
        totals.calls_ended,
        totals.rejoins_after_leave,
        totals.rejoins_after_drop,
        totals.failed_peers,
        totals.frames_sent,
        totals.frames_received,
        totals.corrupt,
    );
    print!("{summary}");
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("soak.md"), format!("{table}{summary}"))?;
        println!("\nwritten: {}/soak.md", dir.display());
    }
    if rooms != 0.0 || participants != 0.0 || sockets != 0.0 {
        bail!("the server kept rooms, participants or sockets after every call ended");
    }
    Ok(())
}

/// One server under test, and whether its ramp goes on.
struct Contender {
    name: &'static str,
    pid: u32,
    target: Target,
    /// Vizit's own /metrics (forwarded datagrams), as a cross-check.
    metrics: Option<String>,
    running: bool,
}

/// mimalloc instead of the system allocator: str0m allocates per packet, and glibc's malloc
/// and free were ~5 % of the media loop's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let vizit = if args.only_janus {
        None
    } else {
        Some(Server::start(&args.server, args.media_threads)?)
    };
    let janus = args
        .janus
        .as_deref()
        .map(|bin| JanusServer::start(bin, args.janus_netns.as_deref(), &args.janus_ip))
        .transpose()?
        .map(|mut j| {
            j.keep_log = args.keep_janus_log;
            j
        });
    // The servers keep the default priority; the generator (this thread, and the runtime's
    // threads created from it below) yields to them. Sharing two cores, a generator at the same
    // priority starved the server for tens of milliseconds at a time, and the server's socket
    // overflowed — loss that belongs to the benchmark, not to the server (both servers alike).
    // `renice` of the process id changes this (main) thread; threads made later inherit it.
    let reniced = Command::new("renice")
        .args(["-n", &GENERATOR_NICE.to_string(), "-p"])
        .arg(std::process::id().to_string())
        .stdout(Stdio::null())
        .status();
    if !reniced.is_ok_and(|s| s.success()) {
        eprintln!("could not lower the generator's priority (renice); measuring anyway");
    }
    // The generator's peers share one thread by default, as the benchmark issue asks; with
    // `--threads N` they are spread over N (a busy generator thread delays what it receives,
    // which then counts as forwarding latency).
    let runtime = if args.threads > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    if args.soak.is_some() {
        let server = vizit
            .as_ref()
            .context("a soak runs against Vizit, not --only-janus")?;
        return soak(&args, server, &runtime);
    }
    let mut contenders = Vec::new();
    if let Some(v) = &vizit {
        contenders.push(Contender {
            name: "Vizit",
            pid: v.child.id(),
            target: Target::Vizit {
                base_url: v.base.clone(),
                token_secret: v.secret.clone(),
            },
            metrics: Some(v.base.clone()),
            running: true,
        });
    }
    if let Some(j) = &janus {
        contenders.push(Contender {
            name: "Janus",
            pid: j.child.id(),
            target: Target::Janus {
                url: j.url.clone(),
                peer_ip: args.peer_ip,
            },
            metrics: None,
            running: true,
        });
    }
    let mut table = String::from(
        "| rooms | server | loss % | p50 ms | p99 ms | max ms | jitter ms | server CPU % | CPU µs/media packet | media packets/s | RSS MiB | failed peers | generator CPU % |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    print!("{table}");
    let mut raw = String::new();
    let mut held = std::collections::BTreeMap::new();
    let (start, step, max) = args.ramp;
    let mut rooms = start;
    while rooms <= max && contenders.iter().any(|c| c.running) {
        let pids: Vec<u32> = contenders.iter().map(|c| c.pid).collect();
        for c in contenders.iter_mut().filter(|c| c.running) {
            // Only the server under test runs: the other is frozen (SIGSTOP) for the step, so
            // its idle loops and its clean-up of the previous step take no CPU from this one.
            for &pid in &pids {
                signal(pid, if pid == c.pid { "CONT" } else { "STOP" });
            }
            let mut options = LoadOptions::for_target(c.target.clone(), rooms);
            options.duration = Duration::from_secs(args.seconds);
            options.video_bitrate = args.bitrate;
            let cpu0 = cpu_seconds(c.pid)?;
            let own0 = cpu_seconds(std::process::id())?;
            let drops0 = udp_rcvbuf_errors();
            let out0 = match &c.metrics {
                Some(base) => Some(packets_out(base)?),
                None => None,
            };
            let t0 = Instant::now();
            let peak = PeakRss::start(c.pid);
            let report: Report = runtime.block_on(run(&options))?;
            let rss = peak.finish();
            let elapsed = t0.elapsed().as_secs_f64();
            let cpu = cpu_seconds(c.pid)? - cpu0;
            let own = cpu_seconds(std::process::id())? - own0;
            let drops = udp_rcvbuf_errors() - drops0;
            let metrics_out = match (&c.metrics, out0) {
                (Some(base), Some(out0)) => Some(packets_out(base)? - out0),
                _ => None,
            };
            let datagrams = report.datagrams_in;
            let media = report.media_packets_in;
            let row = format!(
                "| {rooms} | {} | {:.3} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.0} | {:.0} | {} | {:.0} |\n",
                c.name,
                report.loss_percent(),
                report.p50_ms,
                report.p99_ms,
                report.max_ms,
                report.jitter_ms,
                cpu / elapsed * 100.0,
                if media > 0 {
                    cpu * 1e6 / media as f64
                } else {
                    0.0
                },
                media as f64 / elapsed,
                rss,
                report.failed_peers,
                own / elapsed * 100.0,
            );
            print!("{row}");
            table.push_str(&row);
            raw.push_str(&format!(
                "{{\"server\":\"{}\",\"rooms\":{rooms},\"seconds\":{elapsed:.3},\"cpu_seconds\":{cpu:.3},\"datagrams_in\":{datagrams},\"media_packets_in\":{media},\"server_packets_out\":{},\"frames_sent\":{},\"frames_received\":{},\"frames_lost\":{},\"corrupt\":{},\"srtp_rejected\":{},\"send_errors\":{},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"jitter_ms\":{:.3},\"rss_mib\":{:.1},\"failed_peers\":{},\"generator_cpu_seconds\":{own:.3},\"udp_rcvbuf_errors\":{drops}}}\n",
                c.name,
                metrics_out.map_or("null".to_owned(), |n| n.to_string()),
                report.frames_sent,
                report.frames_received,
                report.frames_lost,
                report.corrupt,
                report.srtp_rejected,
                report.send_errors,
                report.p50_ms,
                report.p99_ms,
                report.max_ms,
                report.jitter_ms,
                rss,
                report.failed_peers,
            ));
            if report.loss_percent() > 0.1 || report.p99_ms > 50.0 || report.failed_peers > 0 {
                c.running = false;
                let line = format!(
                    "\n{}: stopped at {rooms} rooms (over 0.1 % loss, 50 ms p99, or failed peers)\n",
                    c.name
                );
                print!("{line}");
            } else {
                held.insert(c.name, rooms);
            }
        }
        rooms += step;
    }
    for c in &contenders {
        signal(c.pid, "CONT");
    }
    let mut summary =
        String::from("\nLargest room count held (≤ 0.1 % loss, p99 ≤ 50 ms, no failed peers):\n");
    for c in &contenders {
        summary.push_str(&format!(
            "- {}: {}\n",
            c.name,
            held.get(c.name)
                .map_or("none".to_owned(), |n| format!("{n} rooms"))
        ));
    }
    print!("{summary}");
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("results.md"), format!("{table}{summary}"))?;
        std::fs::write(dir.join("raw.jsonl"), raw)?;
        println!("\nwritten: {0}/results.md, {0}/raw.jsonl", dir.display());
    }
    Ok(())
}
