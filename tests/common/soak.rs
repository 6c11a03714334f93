//! The soak harness shared by `benches/soak.rs` (10 minutes, 1,000 paths, a markdown report)
//! and `tests/soak.rs` (a short version in CI that asserts the same invariants).
//!
//! Setup, and why:
//! - The **emulator runs as a child process** (`lagwatch emulate` with a generated scenario),
//!   so its memory (ground truth of every sentinel, replicated rows) and its sockets are not
//!   counted: this process's RSS and file descriptors are the monitor's plus a small, constant
//!   harness.
//! - The **monitor runs in this process** (`App::build` + `App::run`, as the binary does):
//!   that is what lets the harness subscribe to every `ProbeRecord` and check per sentinel
//!   and per path that each written sentinel ends in exactly one outcome. The binary only
//!   exports counters, which cannot tell a lost outcome from a duplicated one. Records go to a
//!   file as they arrive (constant memory), and are read back after the run.
//! - Everything is on 127.0.0.1; request volume is bounded by the interval and each system's
//!   `limits:`; the run is bounded in time.
//!
//! Timeline: life 1 (faults injected at random from shortly after the start), a graceful
//! restart mid-run (stopped while a fault may be active: sentinels in flight stay in the
//! ledger), life 2 (faults until `recover` before the end, then none), a graceful stop, then a
//! short clean life 3 that resumes what life 2 left and is stopped once that is done.
//!
//! What is checked exactly (see [`Report::violations`]):
//! - per sentinel written (`lagwatch_sentinel_writes_total{outcome="ok"}` per source and
//!   life, compared with the distinct sentinels seen), every path of its source ends in
//!   exactly one outcome: a record in the life that wrote it, or an entry in the ledger at
//!   that life's shutdown that the next life resumes (exactly once), never both, never twice;
//! - no write skipped for lack of a slot (otherwise a sentinel's fan-out would not be known);
//! - no record lost by the subscriber (broadcast lag), no sentinel counted as lost by a sweep;
//! - each graceful stop returns within the promised 20 s;
//! - after each stop, the sources hold only sentinels the ledger knows, and every sentinel the
//!   ledger holds in flight is in its source; after life 3, nothing of lives 1 and 2 is left
//!   in a source or the ledger;
//! - memory: no growth after warm-up beyond a stated tolerance; sockets: never more open at
//!   once than every system's concurrency cap allows (plus one token fetch each), no growth
//!   from warm-up to the last quarter (long soaks only: see
//!   [`Options::socket_growth_tolerance`]), and none left open once a monitor has stopped.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::{BufRead, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "entra.rs"]
mod entra;

use lagwatch::app::App;
use lagwatch::ledger::{Entry, Health, Ledger};
use lagwatch::metrics::Metrics;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

const INSTANCE: &str = "soak";
/// Every system's `limits.max_concurrency`.
const MAX_CONCURRENCY: u32 = 8;
const SECRET: &str = "soak-secret";
const SEARCH_KEY: &str = "soak-search-key";
const ES_PASSWORD: &str = "soak-password";
/// USER_HZ, the unit of utime and stime in /proc.
const CLOCK_TICKS: f64 = 100.0;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Paths: `sources × targets` (targets shared by every source).
    pub sources: usize,
    pub targets: usize,
    /// Lives 1 and 2 together.
    pub soak: Duration,
    pub interval: Duration,
    pub timeout: Duration,
    /// Memory and sockets are compared with their level at this point of the soak.
    pub warmup: Duration,
    /// No fault is injected during this last part of the soak.
    pub recover: Duration,
    /// Fault windows and gaps between them (seconds, uniform).
    pub window: (f64, f64),
    pub gap: (f64, f64),
    pub sample_every: Duration,
    /// Allowed RSS growth from the end of warm-up to the end of the soak.
    pub rss_tolerance_mib: f64,
    /// Allowed growth of the most sockets open at once, last quarter against warm-up; `None`
    /// when the soak is too short for the check to mean anything: the client keeps an idle
    /// connection for 90 s, so a burst (a throttled system resuming with all its slots) just
    /// before the last quarter is still counted there without anything having leaked.
    pub socket_growth_tolerance: Option<usize>,
    /// The `lagwatch` binary (for `lagwatch emulate`).
    pub binary: PathBuf,
    /// Seeds the fault sequence (prefixes, modes, windows, gaps): `LAGWATCH_SOAK_SEED` or a
    /// random one, printed in the report so a failing run's faults can be replayed (their
    /// timing against the monitor's own rounds still varies).
    pub seed: u64,
}

impl Options {
    /// `paths` split into sources of up to 100 targets each.
    pub fn for_paths(paths: usize, soak: Duration, binary: PathBuf) -> Options {
        let targets = paths.clamp(1, 100);
        let sources = paths.div_ceil(targets).max(1);
        let interval = Duration::from_secs(15);
        Options {
            sources,
            targets,
            soak,
            interval,
            timeout: Duration::from_secs(45),
            warmup: soak / 5,
            recover: Duration::from_secs(60),
            window: (3.0, 15.0),
            gap: (1.0, 6.0),
            sample_every: Duration::from_secs(5),
            rss_tolerance_mib: 32.0,
            socket_growth_tolerance: Some(32),
            binary,
            seed: std::env::var("LAGWATCH_SOAK_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(rand::random),
        }
    }

    pub fn paths(&self) -> usize {
        self.sources * self.targets
    }

    /// The most sockets the monitor can need at once: every system's `max_concurrency`
    /// requests in flight, plus one token fetch per system. The pool may hold that many
    /// (idle ones for 90 s), never more; a socket leak grows past it.
    pub fn socket_ceiling(&self) -> usize {
        (self.sources + self.targets) * (MAX_CONCURRENCY as usize + 1)
    }

    fn max_in_flight(&self) -> u64 {
        self.timeout
            .as_secs()
            .div_ceil(self.interval.as_secs().max(1))
            + 4
    }
}

/// The kind of each target system, by index: 40 % Dataverse environments, 20 % F&O
/// companies, 20 % Azure AI Search indexes, 20 % Elasticsearch indexes.
fn target_kind(i: usize) -> &'static str {
    match i % 5 {
        0 | 1 => "dv",
        2 => "fno",
        3 => "search",
        _ => "es",
    }
}

fn target_name(i: usize) -> String {
    format!("{}{i:03}", target_kind(i))
}

/// The F&O company (`dataAreaId`, at most 4 characters) a target reads.
fn company(i: usize) -> String {
    format!("c{i:03}")
}

fn source_name(s: usize) -> String {
    format!("src{s:02}")
}

/// The emulator's scenario: every source replicated into every target.
fn scenario(o: &Options) -> String {
    let mut y = format!(
        "seed: 7\ncredentials:\n  - {{ tenant: contoso, client_id: lagwatch-soak, client_secret: {SECRET} }}\n\
         search:\n  srch: {{ api_keys: [{SEARCH_KEY}] }}\n\
         elasticsearch:\n  logs:\n    users: {{ elastic: {ES_PASSWORD} }}\n    refresh_interval: 1s\n\
         fno:\n  fin: {{ default_company: dat }}\ndataverse:\n"
    );
    let table = "    tables:\n      accounts: { id: accountid, columns: { name: string, description: string } }\n";
    for s in 0..o.sources {
        let _ = write!(y, "  {}:\n{table}", source_name(s));
    }
    for t in (0..o.targets).filter(|t| target_kind(*t) == "dv") {
        let _ = write!(y, "  {}:\n{table}", target_name(t));
    }
    y.push_str("replicas:\n");
    for s in 0..o.sources {
        for t in 0..o.targets {
            let name = target_name(t);
            let (target, lag) = match target_kind(t) {
                "dv" => (
                    format!("{{ kind: dataverse, env: {name}, table: accounts }}"),
                    "{ distribution: log_normal, median: 2s, p99: 8s }",
                ),
                "fno" => (
                    format!(
                        "{{ kind: fno, env: fin, entity: CustomersV3, company: {} }}",
                        company(t)
                    ),
                    "{ distribution: log_normal, median: 300ms, p99: 1s }",
                ),
                "search" => (
                    format!("{{ kind: search, service: srch, index: {name} }}"),
                    "{ distribution: log_normal, median: 3s, p99: 10s }",
                ),
                _ => (
                    format!("{{ kind: elasticsearch, cluster: logs, index: {name} }}"),
                    "{ distribution: log_normal, median: 1s, p99: 4s }",
                ),
            };
            let map = if target_kind(t) == "fno" {
                "\n    map: { name: OrganizationName }"
            } else {
                ""
            };
            let _ = write!(
                y,
                "  {src}-{name}:\n    source: {src}/accounts\n    target: {target}\n    key: name{map}\n    lag: {lag}\n",
                src = source_name(s)
            );
        }
    }
    y
}

/// The monitor's configuration for the emulator at `base`.
fn monitor_yaml(o: &Options, base: &str, dir: &Path) -> String {
    let secret = |f: &str| format!("file:{}", dir.join(f).display());
    let entra = format!(
        "auth: {{ method: client_secret, tenant_id: contoso, client_id: lagwatch-soak, \
         client_secret: \"{}\", authority: \"{base}/entra\" }}",
        secret("client_secret")
    );
    // Generous enough that budgets never bind without faults (each target is read by every
    // source), small enough to bound what a runaway would send.
    let limits = format!(
        "limits: {{ max_concurrency: {MAX_CONCURRENCY}, requests: 3000, per: 5m, default_retry_after: 10s }}"
    );
    let mut y = format!(
        "instance: {INSTANCE}\nstate_dir: {state}\ndefaults:\n  interval: {i}s\n  timeout: {t}s\n  \
         objective: {obj}s\n  request_timeout: 5s\n  max_in_flight: {mif}\nsystems:\n",
        state = dir.join("state").display(),
        i = o.interval.as_secs(),
        t = o.timeout.as_secs(),
        obj = o.timeout.as_secs() / 2,
        mif = o.max_in_flight(),
    );
    for s in 0..o.sources {
        let n = source_name(s);
        let _ = write!(
            y,
            "  {n}:\n    kind: dataverse\n    url: {base}/{n}\n    table: accounts\n    id_column: accountid\n    \
             key_column: name\n    payload_column: description\n    scope: https://{n}.crm.dynamics.com/.default\n    \
             {entra}\n    {limits}\n"
        );
    }
    for t in 0..o.targets {
        let n = target_name(t);
        let _ = match target_kind(t) {
            "dv" => write!(
                y,
                "  {n}:\n    kind: dataverse\n    url: {base}/{n}\n    table: accounts\n    id_column: accountid\n    \
                 key_column: name\n    payload_column: description\n    scope: https://{n}.crm.dynamics.com/.default\n    \
                 {entra}\n    {limits}\n"
            ),
            "fno" => write!(
                y,
                "  {n}:\n    kind: fo_odata\n    url: {base}/fno/fin\n    entity_set: CustomersV3\n    \
                 key_field: OrganizationName\n    data_area_id: {c}\n    sync_grace: 10s\n    \
                 scope: https://fin.operations.dynamics.com/.default\n    {entra}\n    {limits}\n",
                c = company(t)
            ),
            "search" => write!(
                y,
                "  {n}:\n    kind: azure_search\n    endpoint: {base}/search/srch\n    index: {n}\n    \
                 mode: lookup\n    key_field: name\n    payload_field: description\n    \
                 auth: {{ method: api_key, key: \"{}\" }}\n    {limits}\n",
                secret("search_key")
            ),
            _ => write!(
                y,
                "  {n}:\n    kind: elasticsearch\n    url: {base}/es/logs\n    index: {n}\n    \
                 mode: searchable\n    key_field: name\n    payload_field: description\n    \
                 auth: {{ method: basic, username: elastic, password: \"{}\" }}\n    {limits}\n",
                secret("es_password")
            ),
        };
    }
    y.push_str("paths:\n");
    for s in 0..o.sources {
        for t in 0..o.targets {
            let _ = writeln!(
                y,
                "  - {{ source: {}, target: {} }}",
                source_name(s),
                target_name(t)
            );
        }
    }
    y
}

/// `lagwatch emulate` as a child process, killed when dropped.
struct EmulatorProcess {
    child: Child,
    base: String,
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_emulator(binary: &Path, scenario: &Path) -> EmulatorProcess {
    let mut child = Command::new(binary)
        .args(["emulate", "--listen", "127.0.0.1:0", "--scenario"])
        .arg(scenario)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lagwatch emulate");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the emulator says where it listens")
            .expect("readable stdout");
        if let Some((_, url)) = line.split_once(" listening on ") {
            break url.trim().to_string();
        }
    };
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    EmulatorProcess { child, base }
}

/// One sample of this process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: f64,
    pub rss_mib: f64,
    pub fds: usize,
    pub sockets: usize,
    pub cpu_s: f64,
}

fn sample(start: Instant) -> Sample {
    let rss_mib = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let v = l.strip_prefix("VmRSS:")?;
            v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0);
    let (mut fds, mut sockets) = (0, 0);
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for e in dir.flatten() {
            fds += 1;
            if std::fs::read_link(e.path())
                .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
            {
                sockets += 1;
            }
        }
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    Sample {
        at: start.elapsed().as_secs_f64(),
        rss_mib,
        fds,
        sockets,
        cpu_s: (tick(14) + tick(15)) / CLOCK_TICKS,
    }
}

/// A running monitor and its subscriber.
struct Life {
    number: u8,
    app: Arc<App>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    sub_stop: CancellationToken,
    sub: tokio::task::JoinHandle<()>,
    resumed: Arc<AtomicUsize>,
}

/// What a life left behind.
#[derive(Debug, Default, Clone)]
pub struct LifeEnd {
    pub number: u8,
    pub writes_ok: BTreeMap<String, u64>,
    pub writes_failed: u64,
    pub skipped: u64,
    pub lost: u64,
    pub stop_seconds: f64,
    /// Ledger entries after the stop.
    pub ledger: Vec<Entry>,
    /// Sentinels in the sources after the stop (with faults cleared).
    pub in_source: BTreeSet<String>,
}

type Sink = Arc<Mutex<BufWriter<std::fs::File>>>;

async fn start_life(number: u8, yaml: &str, sink: &Sink, lagged: &Arc<AtomicU64>) -> Life {
    let config = lagwatch_emulator::REGISTRY
        .from_yaml("soak.yaml", yaml)
        .unwrap_or_else(|e| panic!("{e}"));
    let app = Arc::new(App::build(config).unwrap_or_else(|e| panic!("{e}")));
    let mut rx = app.engine.subscribe();
    let sub_stop = CancellationToken::new();
    let resumed = Arc::new(AtomicUsize::new(0));
    let sub = {
        let (sink, lagged, stop, resumed) = (
            sink.clone(),
            lagged.clone(),
            sub_stop.clone(),
            resumed.clone(),
        );
        tokio::spawn(async move {
            let write = |r: &lagwatch::probe::ProbeRecord| {
                if r.resumed {
                    resumed.fetch_add(1, Ordering::Relaxed);
                }
                let mut w = sink.lock().unwrap();
                let _ = writeln!(
                    w,
                    "{number}\t{}\t{}\t{}\t{:?}\t{}",
                    r.source,
                    r.target,
                    r.sentinel.key(),
                    r.outcome,
                    u8::from(r.resumed)
                );
            };
            loop {
                tokio::select! {
                    biased;
                    r = rx.recv() => match r {
                        Ok(r) => write(&r),
                        Err(RecvError::Lagged(n)) => { lagged.fetch_add(n, Ordering::Relaxed); }
                        Err(RecvError::Closed) => break,
                    },
                    _ = stop.cancelled() => {
                        loop {
                            match rx.try_recv() {
                                Ok(r) => write(&r),
                                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => {
                                    lagged.fetch_add(n, Ordering::Relaxed);
                                }
                                Err(_) => break,
                            }
                        }
                        break;
                    }
                }
            }
            let _ = sink.lock().unwrap().flush();
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let stop = CancellationToken::new();
    let task = {
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move { app.run(listener, stop).await })
    };
    Life {
        number,
        app,
        stop,
        task,
        sub_stop,
        sub,
        resumed,
    }
}

/// Stops a life gracefully (as SIGTERM does) and reads its counters; the app is dropped.
async fn stop_life(life: Life, o: &Options) -> LifeEnd {
    let t0 = Instant::now();
    life.stop.cancel();
    life.task
        .await
        .expect("the monitor did not panic")
        .expect("the monitor stopped cleanly");
    let stop_seconds = t0.elapsed().as_secs_f64();
    life.sub_stop.cancel();
    life.sub.await.expect("subscriber");
    let m = life.app.engine.metrics();
    let mut end = LifeEnd {
        number: life.number,
        stop_seconds,
        ..LifeEnd::default()
    };
    for s in 0..o.sources {
        let src = source_name(s);
        end.writes_ok
            .insert(src.clone(), m.writes.with_label_values(&[&src, "ok"]).get());
        end.writes_failed += m.writes.with_label_values(&[&src, "error"]).get()
            + m.writes.with_label_values(&[&src, "throttled"]).get();
        end.lost += m.sentinels_lost.with_label_values(&[&src]).get();
    }
    for p in life.app.engine.paths() {
        end.skipped += m
            .paths
            .get(&p.spec.source, &p.spec.target)
            .map_or(0, |s| s.skipped.get());
    }
    drop(life.app);
    end
}

/// The faults the driver picks from, at random.
fn random_fault(o: &Options, rng: &mut StdRng) -> Value {
    let single = |rng: &mut StdRng| -> String {
        if rng.random_bool(0.5) {
            format!("/{}/", source_name(rng.random_range(0..o.sources)))
        } else {
            let dv: Vec<usize> = (0..o.targets).filter(|t| target_kind(*t) == "dv").collect();
            format!("/{}/", target_name(dv[rng.random_range(0..dv.len())]))
        }
    };
    let prefix = match rng.random_range(0..10) {
        0 => "/entra/".to_string(),
        1 => "/fno/".to_string(),
        2 => "/search/".to_string(),
        3 => "/es/".to_string(),
        4 => "/".to_string(),
        _ => single(rng),
    };
    let status = [500, 502, 503, 504][rng.random_range(0..4)];
    match rng.random_range(0..10) {
        0 => json!({"prefix": prefix, "mode": "down"}),
        1 => json!({"prefix": prefix, "mode": "slow", "delay_seconds": rng.random_range(1.0..8.0)}),
        2 => json!({"prefix": prefix, "mode": "status",
                    "status": status,
                    "probability": rng.random_range(0.3..=1.0)}),
        3 => {
            json!({"prefix": prefix, "mode": "throttle", "retry_after_seconds": rng.random_range(1..30)})
        }
        4 => json!({"prefix": prefix, "mode": "garbage",
                    "body": if rng.random_bool(0.5) { "html" } else { "wrong_shape" }}),
        5 => json!({"prefix": prefix, "mode": "reset", "probability": rng.random_range(0.3..=1.0)}),
        6 => json!({"prefix": prefix, "mode": "truncated"}),
        // Over the 4 MiB cap; only on one environment, so loopback is not flooded.
        7 => json!({"prefix": single(rng), "mode": "huge", "bytes": 6 * 1024 * 1024}),
        _ => {
            let step = rng.random_range(60..3600) * if rng.random_bool(0.5) { 1 } else { -1 };
            json!({"mode": "clock", "offset_seconds": step})
        }
    }
}

/// Injects faults until `until` (while not paused); returns the count per mode.
async fn drive_faults(
    o: Options,
    base: String,
    start: Instant,
    until: Instant,
    gate: Arc<tokio::sync::Mutex<bool>>,
) -> (BTreeMap<String, u64>, Vec<String>) {
    let http = reqwest::Client::new();
    let mut counts = BTreeMap::new();
    let mut log = Vec::new();
    let mut rng = StdRng::seed_from_u64(o.seed);
    // One interval of calm first, so every path starts.
    tokio::time::sleep(o.interval).await;
    while Instant::now() < until {
        let gap = rng.random_range(o.gap.0..=o.gap.1);
        tokio::time::sleep(Duration::from_secs_f64(gap)).await;
        let fault = random_fault(&o, &mut rng);
        let window = Duration::from_secs_f64(rng.random_range(o.window.0..=o.window.1));
        {
            let paused = gate.lock().await;
            if *paused || Instant::now() >= until {
                continue;
            }
            let r = http
                .post(format!("{base}/_faults"))
                .json(&fault)
                .send()
                .await
                .expect("post fault");
            assert_eq!(r.status(), 201, "{fault}");
        }
        *counts
            .entry(fault["mode"].as_str().unwrap_or("?").to_string())
            .or_insert(0) += 1;
        log.push(format!(
            "{:.1}–{:.1} s {fault}",
            start.elapsed().as_secs_f64(),
            (start.elapsed() + window).as_secs_f64()
        ));
        tokio::time::sleep(window.min(until.saturating_duration_since(Instant::now()))).await;
        let _g = gate.lock().await;
        clear_faults(&http, &base).await;
    }
    clear_faults(&http, &base).await;
    (counts, log)
}

async fn clear_faults(http: &reqwest::Client, base: &str) {
    let r = http
        .delete(format!("{base}/_faults"))
        .send()
        .await
        .expect("clear faults");
    assert_eq!(r.status(), 200);
}

/// This instance's sentinels in every source, through the emulated Web API.
async fn sentinels_in_sources(http: &reqwest::Client, o: &Options, base: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in 0..o.sources {
        let src = source_name(s);
        out.extend(
            entra::sentinels_in(http, base, &src, ("lagwatch-soak", SECRET), INSTANCE).await,
        );
    }
    out
}

fn ledger_entries(state: &Path) -> Vec<Entry> {
    let ledger = Ledger::open(state, &Metrics::new());
    assert_eq!(ledger.health(), Health::Up, "the ledger opens");
    ledger.take_snapshot().entries
}

/// A record read back from the file.
struct Rec {
    life: u8,
    source: String,
    target: String,
    id: String,
    outcome: String,
    resumed: bool,
}

/// Everything measured, and the invariants checked.
#[derive(Debug, Default)]
pub struct Report {
    pub paths: usize,
    pub sources: usize,
    pub targets: usize,
    pub interval_s: u64,
    pub timeout_s: u64,
    pub soak_s: f64,
    pub total_s: f64,
    pub warmup_s: f64,
    pub faults: BTreeMap<String, u64>,
    pub seed: u64,
    /// Each fault injected: its window (seconds since the start) and the fault as posted.
    pub fault_log: Vec<String>,
    pub samples: Vec<Sample>,
    /// Before the first monitor started, and after the last one stopped.
    pub idle_before: Option<Sample>,
    pub idle_after: Option<Sample>,
    pub lives: Vec<LifeEnd>,
    pub outcomes: BTreeMap<String, u64>,
    /// Outcomes other than converged by target kind, resumed or not, and life.
    pub unconverged: BTreeMap<String, u64>,
    pub resumed: u64,
    pub records: u64,
    pub probes_expected: u64,
    pub lagged: u64,
    pub rss_tolerance_mib: f64,
    pub socket_growth_tolerance: Option<usize>,
    pub socket_ceiling: usize,
    pub violations: Vec<String>,
    /// Timeouts of sentinels the ground truth shows visible before the deadline.
    pub false_timeouts: Vec<String>,
}

impl Report {
    fn at(&self, t: f64) -> Option<Sample> {
        self.samples
            .iter()
            .min_by(|a, b| (a.at - t).abs().total_cmp(&(b.at - t).abs()))
            .copied()
    }

    fn soak_samples(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| s.at <= self.soak_s)
    }

    /// Least-squares slope of RSS after warm-up, MiB per minute.
    pub fn rss_slope(&self) -> f64 {
        let pts: Vec<(f64, f64)> = self
            .soak_samples()
            .filter(|s| s.at >= self.warmup_s)
            .map(|s| (s.at, s.rss_mib))
            .collect();
        let n = pts.len() as f64;
        if n < 2.0 {
            return f64::NAN;
        }
        let (mx, my) = (
            pts.iter().map(|p| p.0).sum::<f64>() / n,
            pts.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let cov: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let var: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        60.0 * cov / var
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let warm = self.at(self.warmup_s);
        let end = self
            .soak_samples()
            .last()
            .copied()
            .or_else(|| self.samples.last().copied());
        let max_after = self
            .soak_samples()
            .filter(|x| x.at >= self.warmup_s)
            .map(|x| x.rss_mib)
            .fold(f64::NAN, f64::max);
        let sockets_max = |from: f64, to: f64| {
            self.samples
                .iter()
                .filter(|x| x.at >= from && x.at < to)
                .map(|x| x.sockets)
                .max()
                .unwrap_or(0)
        };
        let _ = writeln!(
            s,
            "{} paths ({} Dataverse sources × {} targets: 40 % Dataverse environments, 20 % F&O companies, 20 % AI Search indexes, 20 % Elasticsearch indexes), interval {} s, timeout {} s; emulator in a child process, monitor in this process; {:.0} s of soak (lives 1 and 2, one graceful restart mid-way), {:.0} s in all with the clean life 3.\n",
            self.paths,
            self.sources,
            self.targets,
            self.interval_s,
            self.timeout_s,
            self.soak_s,
            self.total_s
        );
        let _ = writeln!(s, "| measure | value |\n|---|---:|");
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            s,
            "| faults injected (seed, `LAGWATCH_SOAK_SEED`) | {} ({}; seed {}) |",
            self.faults.values().sum::<u64>(),
            faults.join(", "),
            self.seed
        );
        for l in &self.lives {
            let _ = writeln!(
                s,
                "| life {}: sentinel writes ok / failed; skipped; lost by sweep; graceful stop | {} / {}; {}; {}; {:.2} s |",
                l.number,
                l.writes_ok.values().sum::<u64>(),
                l.writes_failed,
                l.skipped,
                l.lost,
                l.stop_seconds
            );
            let in_flight = l
                .ledger
                .iter()
                .filter(|e| !e.probes.is_empty() && e.acked_at.is_some() && !e.undeleted)
                .count();
            let _ = writeln!(
                s,
                "| life {}: left in the ledger (in flight / other) ; in the sources | {} / {} ; {} |",
                l.number,
                in_flight,
                l.ledger.len() - in_flight,
                l.in_source.len()
            );
        }
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            s,
            "| probes expected (ok writes × fan-out) / outcomes recorded (of which resumed) | {} / {} ({}) |",
            self.probes_expected, self.records, self.resumed
        );
        let _ = writeln!(s, "| outcomes | {} |", outcomes.join(", "));
        let _ = writeln!(
            s,
            "| timeouts whose sentinel the ground truth shows visible before the deadline | {} |",
            self.false_timeouts.len()
        );
        let unconverged: Vec<String> = self
            .unconverged
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(
            s,
            "| not converged, by target kind and life | {} |",
            unconverged.join("; ")
        );
        let _ = writeln!(s, "| records lost by the subscriber | {} |", self.lagged);
        if let (Some(w), Some(e)) = (warm, end) {
            let _ = writeln!(
                s,
                "| RSS at warm-up ({:.0} s) / max after / end of soak | {:.1} / {:.1} / {:.1} MiB (tolerance +{:.0} MiB) |",
                w.at, w.rss_mib, max_after, e.rss_mib, self.rss_tolerance_mib
            );
            let _ = writeln!(
                s,
                "| RSS slope after warm-up | {:+.2} MiB/min |",
                self.rss_slope()
            );
            let _ = writeln!(
                s,
                "| sockets open at once: max before warm-up / max after / max in the last quarter / end of soak (fds at end) / ceiling (the concurrency caps) | {} / {} / {} / {} ({}) / {} |",
                sockets_max(0.0, self.warmup_s),
                sockets_max(self.warmup_s, self.soak_s + 0.1),
                sockets_max(self.soak_s * 0.75, self.soak_s + 0.1),
                e.sockets,
                e.fds,
                self.socket_ceiling
            );
            let first = self.samples.first().map_or(0.0, |x| x.cpu_s);
            let cpu = e.cpu_s - first;
            let _ = writeln!(
                s,
                "| CPU during the soak (monitor + harness) | {cpu:.1} s in {:.0} s ({:.1} % of one core), {:.2} ms per outcome |",
                e.at,
                100.0 * cpu / e.at.max(1e-9),
                1000.0 * cpu / self.records.max(1) as f64
            );
        }
        if let (Some(b), Some(a)) = (self.idle_before, self.idle_after) {
            let _ = writeln!(
                s,
                "| idle, before the first monitor / after the last stopped: sockets, fds | {}, {} / {}, {} |",
                b.sockets, b.fds, a.sockets, a.fds
            );
        }
        let trend: Vec<String> = self
            .samples
            .iter()
            .step_by((self.samples.len() / 12).max(1))
            .map(|x| format!("{:.0} s: {:.1}", x.at, x.rss_mib))
            .collect();
        let _ = writeln!(s, "| RSS over the run (MiB) | {} |", trend.join(", "));
        let trend: Vec<String> = self
            .samples
            .iter()
            .step_by((self.samples.len() / 12).max(1))
            .map(|x| format!("{:.0} s: {}", x.at, x.sockets))
            .collect();
        let _ = writeln!(s, "| sockets over the run | {} |", trend.join(", "));
        let _ = writeln!(
            s,
            "\nInvariants: {}",
            if self.violations.is_empty() {
                "all hold.".to_string()
            } else {
                format!("**{} violated:**", self.violations.len())
            }
        );
        for v in self.violations.iter().take(50) {
            let _ = writeln!(s, "- {v}");
        }
        let _ = writeln!(
            s,
            "\n<details><summary>Faults as injected (seed {})</summary>\n",
            self.seed
        );
        for f in &self.fault_log {
            let _ = writeln!(s, "- {f}");
        }
        let _ = writeln!(s, "\n</details>");
        s
    }
}

/// Runs the whole soak (blocking) and returns the report.
pub fn run(o: Options) -> Report {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run_async(o))
}

async fn run_async(o: Options) -> Report {
    let dir = tempfile::tempdir().expect("temp dir");
    for (f, v) in [
        ("client_secret", SECRET),
        ("search_key", SEARCH_KEY),
        ("es_password", ES_PASSWORD),
    ] {
        std::fs::write(dir.path().join(f), v).expect("secret file");
    }
    let scenario_file = dir.path().join("scenario.yaml");
    std::fs::write(&scenario_file, scenario(&o)).expect("scenario");
    let emulator = start_emulator(&o.binary, &scenario_file);
    let base = emulator.base.clone();
    let yaml = monitor_yaml(&o, &base, dir.path());
    let state = dir.path().join("state");
    let records_file = dir.path().join("records.tsv");
    let sink: Sink = Arc::new(Mutex::new(BufWriter::new(
        std::fs::File::create(&records_file).expect("records file"),
    )));
    let lagged = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::new();

    let mut report = Report {
        paths: o.paths(),
        sources: o.sources,
        targets: o.targets,
        interval_s: o.interval.as_secs(),
        timeout_s: o.timeout.as_secs(),
        warmup_s: o.warmup.as_secs_f64(),
        rss_tolerance_mib: o.rss_tolerance_mib,
        seed: o.seed,
        socket_growth_tolerance: o.socket_growth_tolerance,
        socket_ceiling: o.socket_ceiling(),
        ..Report::default()
    };

    let start = Instant::now();
    // Idle baseline: the harness's client has made one request (so its pool exists).
    clear_faults(&http, &base).await;
    report.idle_before = Some(sample(start));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (samples, sampling, every) = (samples.clone(), sampling.clone(), o.sample_every);
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                samples.lock().unwrap().push(sample(start));
                std::thread::sleep(every);
            }
        })
    };

    let gate = Arc::new(tokio::sync::Mutex::new(false));
    let faults_until = start + o.soak.saturating_sub(o.recover);
    let driver = tokio::spawn(drive_faults(
        o.clone(),
        base.clone(),
        start,
        faults_until,
        gate.clone(),
    ));

    // Life 1, then a graceful restart mid-way (faults paused, the one active left in place
    // while the monitor stops), life 2.
    let life = start_life(1, &yaml, &sink, &lagged).await;
    tokio::time::sleep(o.soak / 2).await;
    let mut ends = Vec::new();
    {
        let mut paused = gate.lock().await;
        *paused = true;
        let mut end = stop_life(life, &o).await;
        clear_faults(&http, &base).await;
        end.ledger = ledger_entries(&state);
        end.in_source = sentinels_in_sources(&http, &o, &base).await;
        ends.push(end);
        *paused = false;
    }
    let life = start_life(2, &yaml, &sink, &lagged).await;
    tokio::time::sleep_until((start + o.soak).into()).await;
    report.soak_s = start.elapsed().as_secs_f64();
    let mut end = stop_life(life, &o).await;
    (report.faults, report.fault_log) = driver.await.expect("fault driver");
    end.ledger = ledger_entries(&state);
    end.in_source = sentinels_in_sources(&http, &o, &base).await;
    let owed: usize = end
        .ledger
        .iter()
        .filter(|e| !e.probes.is_empty() && e.acked_at.is_some() && !e.undeleted)
        .map(|e| e.probes.len())
        .sum();
    let earlier: BTreeSet<String> = ends
        .iter()
        .chain(std::iter::once(&end))
        .flat_map(|e| {
            e.ledger
                .iter()
                .map(|x| x.id.clone())
                .chain(e.in_source.clone())
        })
        .collect();
    ends.push(end);

    // Life 3, clean: resumes what life 2 left, and is stopped once every resumed probe has
    // ended, no delete is owed any more and nothing of lives 1 and 2 is left in a source, or
    // after a bound. Owed deletes are retried every 30 s, and a write that got no answer is
    // deleted again until its source's longest timeout (at least 60 s) has passed.
    let life = start_life(3, &yaml, &sink, &lagged).await;
    let bound = Instant::now() + o.timeout.max(Duration::from_secs(60)) + Duration::from_secs(75);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let done = life.resumed.load(Ordering::Relaxed) >= owed
            && life.app.engine.owed_deletes() == 0
            && sentinels_in_sources(&http, &o, &base)
                .await
                .is_disjoint(&earlier);
        if done || Instant::now() >= bound {
            break;
        }
    }
    let mut end = stop_life(life, &o).await;
    end.ledger = ledger_entries(&state);
    end.in_source = sentinels_in_sources(&http, &o, &base).await;
    ends.push(end);
    // Let sockets the stopped monitor closed leave the table, then the idle sample.
    tokio::time::sleep(Duration::from_secs(1)).await;
    report.idle_after = Some(sample(start));
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    report.samples = std::mem::take(&mut *samples.lock().unwrap());
    report.total_s = start.elapsed().as_secs_f64();
    report.lives = ends;
    report.lagged = lagged.load(Ordering::Relaxed);
    let _ = sink.lock().unwrap().flush();
    let records = read_records(&records_file);
    report.false_timeouts = false_timeouts(&http, &base, &o, &records).await;
    drop(emulator);
    check(&o, &mut report, &records, &earlier);
    report
}

/// Timeouts whose sentinel the emulator's ground truth shows arriving within the timeout:
/// visible `lag` after its commit, which came before the acknowledgement the deadline counts
/// from, so it was there at the deadline and a read then could not have answered "absent".
async fn false_timeouts(
    http: &reqwest::Client,
    base: &str,
    o: &Options,
    records: &[Rec],
) -> Vec<String> {
    let mut out = Vec::new();
    for rec in records
        .iter()
        .filter(|r| r.outcome == "Timeout" && !r.resumed)
    {
        let url = format!("{base}/_truth/{}-{}/{}", rec.source, rec.target, rec.id);
        let truth: Option<serde_json::Value> = match http.get(&url).send().await {
            Ok(r) => r.json().await.ok(),
            Err(_) => None,
        };
        // Elasticsearch targets are read `searchable` (by `_search`): what counts there is when
        // a search finds it, after the index refreshed.
        let lag = truth.as_ref().and_then(|t| {
            match (
                t["searchable_at_unix"].as_f64(),
                t["committed_at_unix"].as_f64(),
            ) {
                (Some(found), Some(committed)) => Some(found - committed),
                _ => t["lag_seconds"].as_f64(),
            }
        });
        match lag {
            Some(lag) if lag < o.timeout.as_secs_f64() => out.push(format!(
                "life {}: {} → {} {}: timeout, but visible {lag:.1} s after its commit",
                rec.life, rec.source, rec.target, rec.id
            )),
            Some(_) => {}
            None if truth.as_ref().is_some_and(|t| t["dropped"] == true) => {}
            None => out.push(format!("{url}: no ground truth")),
        }
    }
    out
}

fn read_records(file: &Path) -> Vec<Rec> {
    let text = std::fs::read_to_string(file).expect("records");
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some(Rec {
                life: f.first()?.parse().ok()?,
                source: f.get(1)?.to_string(),
                target: f.get(2)?.to_string(),
                id: f.get(3)?.to_string(),
                outcome: f.get(4)?.to_string(),
                resumed: *f.get(5)? == "1",
            })
        })
        .collect()
}

/// In-flight probes an entry holds: (id, target), for acknowledged, not-undeleted entries.
fn pending_pairs(entries: &[Entry]) -> BTreeSet<(String, String)> {
    entries
        .iter()
        .filter(|e| e.acked_at.is_some() && !e.undeleted)
        .flat_map(|e| e.probes.iter().map(move |(t, _)| (e.id.clone(), t.clone())))
        .collect()
}

fn check(o: &Options, r: &mut Report, records: &[Rec], earlier: &BTreeSet<String>) {
    let mut v = Vec::new();
    let all_targets: BTreeSet<String> = (0..o.targets).map(target_name).collect();
    r.records = records.len() as u64;
    for f in &r.false_timeouts {
        v.push(format!("false timeout: {f}"));
    }
    for rec in records {
        *r.outcomes.entry(rec.outcome.clone()).or_insert(0) += 1;
        // Which kind of target, and whether resumed, for every outcome but `Converged`: the
        // place to start when one looks wrong.
        if rec.outcome != "Converged" {
            let kind = rec.target.trim_end_matches(|c: char| c.is_ascii_digit());
            let resumed = if rec.resumed { ", resumed" } else { "" };
            *r.unconverged
                .entry(format!(
                    "{} ({kind}{resumed}, life {})",
                    rec.outcome, rec.life
                ))
                .or_insert(0) += 1;
        }
        r.resumed += u64::from(rec.resumed);
    }
    if r.lagged > 0 {
        v.push(format!(
            "the subscriber lost {} records: the accounting below is incomplete",
            r.lagged
        ));
    }

    // No (sentinel, target) ends twice, across all lives.
    let mut seen: HashMap<(&str, &str), u32> = HashMap::new();
    for rec in records {
        *seen.entry((&rec.id, &rec.target)).or_insert(0) += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    if !dups.is_empty() {
        v.push(format!(
            "{} (sentinel, path) pairs ended more than once, e.g. {:?}",
            dups.len(),
            dups.iter().take(3).collect::<Vec<_>>()
        ));
    }

    let mut pending_before: BTreeSet<(String, String)> = BTreeSet::new();
    for end in &r.lives {
        let n = end.number;
        if end.skipped > 0 {
            v.push(format!(
                "life {n}: {} writes skipped for lack of a slot",
                end.skipped
            ));
        }
        // docs/operations.md, "Stopping": "exits 0 within 20 s whatever the systems do".
        if end.stop_seconds > 20.5 {
            v.push(format!(
                "life {n}: the graceful stop took {:.1} s (promised: within 20 s)",
                end.stop_seconds
            ));
        }
        if end.lost > 0 {
            v.push(format!(
                "life {n}: the sweep found {} sentinels the ledger lost",
                end.lost
            ));
        }
        let pending_after = pending_pairs(&end.ledger);
        // Resumed in this life + still pending from before == what the previous life left.
        let resumed: BTreeSet<(String, String)> = records
            .iter()
            .filter(|x| x.life == n && x.resumed)
            .map(|x| (x.id.clone(), x.target.clone()))
            .collect();
        let carried: BTreeSet<(String, String)> = pending_after
            .iter()
            .filter(|p| pending_before.contains(*p))
            .cloned()
            .collect();
        let accounted: BTreeSet<_> = resumed.union(&carried).cloned().collect();
        if accounted != pending_before {
            let missing: Vec<_> = pending_before.difference(&accounted).take(3).collect();
            let extra: Vec<_> = accounted.difference(&pending_before).take(3).collect();
            v.push(format!(
                "life {n}: resumed probes do not match what the ledger held ({} held, {} resumed, {} still pending); missing e.g. {missing:?}, unexpected e.g. {extra:?}",
                pending_before.len(),
                resumed.len(),
                carried.len()
            ));
        }
        // Every sentinel written in this life: each target of its source once, either as a
        // record of this life or pending in the ledger after it, never both.
        let mut per_sentinel: BTreeMap<&str, (String, BTreeSet<String>, u32)> = BTreeMap::new();
        for x in records.iter().filter(|x| x.life == n && !x.resumed) {
            let e = per_sentinel
                .entry(&x.id)
                .or_insert((x.source.clone(), BTreeSet::new(), 0));
            e.1.insert(x.target.clone());
            e.2 += 1;
        }
        let new_pending: Vec<&(String, String)> = pending_after
            .iter()
            .filter(|p| !pending_before.contains(*p))
            .collect();
        let entry_source: HashMap<&str, &str> = end
            .ledger
            .iter()
            .map(|e| (e.id.as_str(), e.source.as_str()))
            .collect();
        for (id, t) in &new_pending {
            let e = per_sentinel.entry(id.as_str()).or_insert((
                entry_source.get(id.as_str()).unwrap_or(&"?").to_string(),
                BTreeSet::new(),
                0,
            ));
            if !e.1.insert(t.clone()) {
                v.push(format!("life {n}: {id} → {t} both ended and left pending"));
            }
            e.2 += 1;
        }
        for (id, (_, targets, count)) in &per_sentinel {
            if *targets != all_targets || *count as usize != all_targets.len() {
                v.push(format!(
                    "life {n}: sentinel {id} has {count} outcomes or pending probes over {} of {} paths",
                    targets.len(),
                    all_targets.len()
                ));
            }
        }
        let mut distinct: BTreeMap<&str, u64> = BTreeMap::new();
        for (_, (src, _, _)) in per_sentinel.iter() {
            *distinct.entry(src.as_str()).or_insert(0) += 1;
        }
        for (src, ok) in &end.writes_ok {
            let got = distinct.get(src.as_str()).copied().unwrap_or(0);
            r.probes_expected += ok * all_targets.len() as u64;
            if got != *ok {
                v.push(format!(
                    "life {n}: {src}: {ok} sentinels written, {got} with outcomes or pending probes"
                ));
            }
        }
        // No leak: the sources hold only sentinels the ledger knows, and every one the ledger
        // holds in flight is there.
        let known: BTreeSet<String> = end.ledger.iter().map(|e| e.id.clone()).collect();
        let unknown: Vec<_> = end.in_source.difference(&known).take(5).collect();
        if !unknown.is_empty() {
            v.push(format!(
                "after life {n}: sentinels in a source the ledger does not know: {unknown:?}"
            ));
        }
        let in_flight: BTreeSet<String> = pending_after.iter().map(|p| p.0.clone()).collect();
        let gone: Vec<_> = in_flight.difference(&end.in_source).take(5).collect();
        if !gone.is_empty() {
            v.push(format!(
                "after life {n}: the ledger holds in flight sentinels missing from their source: {gone:?}"
            ));
        }
        pending_before = pending_after;
    }
    if let Some(last) = r.lives.last() {
        let left: Vec<_> = last
            .in_source
            .iter()
            .chain(last.ledger.iter().map(|e| &e.id))
            .filter(|id| earlier.contains(*id))
            .take(5)
            .collect();
        if !left.is_empty() {
            v.push(format!(
                "after the clean life, sentinels of lives 1 and 2 are left: {left:?}"
            ));
        }
    }

    // Memory and sockets. RSS: the end of the soak against the warm-up level plus a
    // tolerance (allocator pools, the status history filling, a restart's second App);
    // sockets: none left once the monitors stopped, and no growth while running.
    let warm = r.at(r.warmup_s);
    let end = r.soak_samples().last().copied();
    if let (Some(w), Some(e)) = (warm, end)
        && e.rss_mib > w.rss_mib + r.rss_tolerance_mib
    {
        v.push(format!(
            "RSS grew from {:.1} MiB at warm-up to {:.1} MiB at the end of the soak (tolerance {:.0} MiB)",
            w.rss_mib, e.rss_mib, r.rss_tolerance_mib
        ));
    }
    let max_sockets = |from: f64, to: f64| {
        r.samples
            .iter()
            .filter(|x| x.at >= from && x.at <= to)
            .map(|x| x.sockets)
            .max()
            .unwrap_or(0)
    };
    let (early, late) = (
        max_sockets(0.0, r.warmup_s),
        max_sockets(r.soak_s * 0.75, r.soak_s),
    );
    if let Some(tolerance) = r.socket_growth_tolerance
        && late > early + tolerance
    {
        v.push(format!(
            "open sockets grew: at most {early} before warm-up, {late} in the last quarter (tolerance {tolerance})"
        ));
    }
    let base = r.idle_before.map_or(0, |b| b.sockets);
    if let Some(peak) = r.samples.iter().max_by_key(|x| x.sockets)
        && peak.sockets > base + r.socket_ceiling
    {
        v.push(format!(
            "{} sockets open at {:.0} s: more than the harness's {base} plus the {} the concurrency caps allow",
            peak.sockets, peak.at, r.socket_ceiling
        ));
    }
    if let (Some(b), Some(a)) = (r.idle_before, r.idle_after)
        && a.sockets > b.sockets + 4
    {
        v.push(format!(
            "{} sockets open after every monitor stopped, {} before the first started",
            a.sockets, b.sockets
        ));
    }
    r.violations = v;
}
