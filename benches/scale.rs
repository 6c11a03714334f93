//! Scale benchmark: 1,000 paths probed every 10 s on simulated systems, in real time.
//!
//! 250 simulated sources with 4 replicas each (lags log-normal, median 2 s, p99 8 s), one path
//! per replica, interval 10 s, timeout 60 s, on a multi-thread runtime with 2 workers. It runs
//! for `LAGWATCH_BENCH_SECONDS` (default 60) and reports CPU time per resolved probe (utime +
//! stime from /proc/self/stat, measured after a warm-up of one interval), peak RSS (VmHWM),
//! the outcome mix, and the time and size of `/metrics` (refresh + render, 50 times, while
//! the engine keeps probing). A counting allocator reports the heap in use beside RSS, so
//! memory can be told apart from allocator slack; the bench keeps only running totals of the
//! probes it checks, so that its own bookkeeping does not grow with the run.
//!
//! `LAGWATCH_BENCH_SECONDS=60 cargo bench --bench scale`

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lagwatch::app::App;
use lagwatch::probe::Outcome;
use lagwatch::probe::path::Resolved;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

const SOURCES: usize = 250;
const REPLICAS: usize = 4;
const INTERVAL_S: u64 = 10;
const RENDERS: usize = 50;
/// USER_HZ: the unit of utime and stime in /proc (100 on every mainstream Linux build).
const CLOCK_TICKS: f64 = 100.0;
const AIM_RSS_MIB: f64 = 80.0;
const AIM_RENDER_MS: f64 = 10.0;
const AIM_SAMPLES_PER_PATH: f64 = 30.0;

/// The system allocator, counting the bytes it has handed out and not yet got back.
struct Counting;

static HEAP: AtomicUsize = AtomicUsize::new(0);
static HEAP_PEAK: AtomicUsize = AtomicUsize::new(0);

fn counted(add: usize, sub: usize) {
    let now = if add >= sub {
        HEAP.fetch_add(add - sub, Ordering::Relaxed) + (add - sub)
    } else {
        HEAP.fetch_sub(sub - add, Ordering::Relaxed) - (sub - add)
    };
    HEAP_PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            counted(layout.size(), 0);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            counted(layout.size(), 0);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        counted(0, layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            counted(new_size, layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / 1048576.0
}

fn yaml() -> String {
    let mut y = String::from(
        "instance: bench\ndefaults:\n  interval: 10s\n  timeout: 60s\n  objective: 30s\nsystems:\n",
    );
    for s in 0..SOURCES {
        let _ = writeln!(y, "  s{s:03}: {{ kind: simulated }}");
        for r in 0..REPLICAS {
            let _ = writeln!(
                y,
                "  s{s:03}-r{r}: {{ kind: simulated, replica_of: s{s:03}, lag: {{ distribution: log_normal, median: 2s, p99: 8s }} }}"
            );
        }
    }
    y.push_str("paths:\n");
    for s in 0..SOURCES {
        for r in 0..REPLICAS {
            let _ = writeln!(y, "  - {{ source: s{s:03}, target: s{s:03}-r{r} }}");
        }
    }
    y
}

/// utime + stime of the whole process, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> f64 {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(14) + tick(15)) / CLOCK_TICKS
}

/// A `Vm*` line of /proc/self/status, in MiB.
fn vm_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let v = l.strip_prefix(key)?.strip_prefix(':')?;
            v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Before, inside and after the measured window.
const WARMING: u8 = 0;
const WINDOW: u8 = 1;
const AFTER: u8 = 2;

/// Running totals of the probes the benchmark's subscriber saw resolve in the window.
#[derive(Default)]
struct Seen {
    /// Every probe resolved, window or not.
    all: usize,
    /// By outcome, in the window.
    outcomes: [usize; 5],
    reads: u64,
    /// |estimate − truth| in seconds of each converged probe in the window.
    errs: Vec<f32>,
    /// Converged probes whose truth was outside the stated bound.
    outside: usize,
}

impl Seen {
    fn resolved(&self) -> usize {
        self.outcomes.iter().sum()
    }
    fn count(&self, o: Outcome) -> usize {
        self.outcomes[outcome_index(o)]
    }
}

fn outcome_index(o: Outcome) -> usize {
    match o {
        Outcome::Converged => 0,
        Outcome::Timeout => 1,
        Outcome::Mismatch => 2,
        Outcome::Error => 3,
        Outcome::Halted => 4,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let seconds: u64 = std::env::var("LAGWATCH_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let warmup = Duration::from_secs(INTERVAL_S.min(seconds / 3));
    let run_for = Duration::from_secs(seconds);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let rss_start = vm_mib("VmRSS");
    let built = Instant::now();
    let text = yaml();
    let config = lagwatch_emulator::REGISTRY
        .from_yaml("bench", &text)
        .unwrap_or_else(|e| panic!("{e}"));
    let paths = config.paths.len();
    let app = rt.block_on(async { App::build(config).unwrap_or_else(|e| panic!("{e}")) });
    let build_time = built.elapsed();
    let rss_built = vm_mib("VmRSS");

    let seen: Arc<Mutex<Seen>> = Arc::new(Mutex::new(Seen::default()));
    let phase = Arc::new(AtomicU8::new(WARMING));
    let lagged = Arc::new(Mutex::new(0u64));
    let stop = CancellationToken::new();
    let started = Instant::now();
    let engine = {
        let _guard = rt.enter();
        let mut rx = app.engine.subscribe();
        let landscape = lagwatch_emulator::simulated::landscape(&app);
        let (seen, lagged, stop_sub) = (seen.clone(), lagged.clone(), stop.clone());
        let phase = phase.clone();
        rt.spawn(async move {
            loop {
                let r = tokio::select! {
                    _ = stop_sub.cancelled() => return,
                    r = rx.recv() => r,
                };
                let r = match r {
                    Ok(r) => r,
                    Err(RecvError::Lagged(n)) => {
                        *lagged.lock().unwrap() += n;
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                let truth = landscape
                    .truth(&r.target, r.sentinel.key())
                    .and_then(|t| t.lag());
                let mut seen = seen.lock().unwrap();
                seen.all += 1;
                if phase.load(Ordering::Relaxed) != WINDOW {
                    continue;
                }
                seen.outcomes[outcome_index(r.outcome)] += 1;
                seen.reads += u64::from(r.reads);
                if let (Outcome::Converged, Some(e), Some(t)) = (r.outcome, r.estimate, truth) {
                    seen.errs
                        .push((e.lag.as_secs_f64() - t.as_secs_f64()).abs() as f32);
                    if !e.contains(t, Duration::ZERO) {
                        seen.outside += 1;
                    }
                }
            }
        });
        rt.spawn(app.engine.clone().run(stop.clone()))
    };

    std::thread::sleep(warmup);
    let cpu_warm = cpu_seconds();
    let warm_at = Instant::now();
    phase.store(WINDOW, Ordering::Relaxed);
    let mut rss_trend = vec![(warmup.as_secs(), vm_mib("VmRSS"))];
    while started.elapsed() < run_for {
        let next = Duration::from_secs((started.elapsed().as_secs() / 10 + 1) * 10).min(run_for);
        std::thread::sleep(next.saturating_sub(started.elapsed()));
        rss_trend.push((
            started.elapsed().as_secs_f64().round() as u64,
            vm_mib("VmRSS"),
        ));
    }
    let cpu_end = cpu_seconds();
    let end_at = Instant::now();
    phase.store(AFTER, Ordering::Relaxed);
    let heap_run_end = HEAP.load(Ordering::Relaxed);
    let heap_run_peak = HEAP_PEAK.load(Ordering::Relaxed);
    let ready = app.engine.ready();

    // Scrapes while the engine keeps probing, as Prometheus would.
    let mut refresh_ms = Vec::with_capacity(RENDERS);
    let mut render_ms = Vec::with_capacity(RENDERS);
    let mut bytes = 0usize;
    let mut lines = 0usize;
    let mut last_body = String::new();
    let mut om_ms = Vec::with_capacity(RENDERS);
    let mut om_bytes = 0usize;
    for _ in 0..RENDERS {
        let t0 = Instant::now();
        app.engine.refresh();
        let t1 = Instant::now();
        let body = app.engine.metrics().render();
        let t2 = Instant::now();
        refresh_ms.push((t1 - t0).as_secs_f64() * 1000.0);
        render_ms.push((t2 - t1).as_secs_f64() * 1000.0);
        bytes = body.len();
        lines = body.lines().filter(|l| !l.starts_with('#')).count();
        last_body = body;
        std::thread::sleep(Duration::from_millis(10));
        // The same scrape as Prometheus asks for it by default (OpenMetrics, with exemplars).
        let t3 = Instant::now();
        app.engine.refresh();
        let om = app
            .engine
            .metrics()
            .render_as(lagwatch::metrics::Format::OpenMetrics);
        om_ms.push(t3.elapsed().as_secs_f64() * 1000.0);
        om_bytes = om.len();
        std::thread::sleep(Duration::from_millis(10));
    }
    om_ms.sort_by(f64::total_cmp);
    let scrape_cpu = cpu_seconds() - cpu_end;

    let shutdown_at = Instant::now();
    stop.cancel();
    let _ = rt.block_on(engine);
    let shutdown = shutdown_at.elapsed();
    let rss_peak = vm_mib("VmHWM");
    let rss_end = vm_mib("VmRSS");
    let total = started.elapsed();

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let count = |o: Outcome| seen.count(o);
    let resolved = seen.resolved();
    let cpu = cpu_end - cpu_warm;
    let wall = (end_at - warm_at).as_secs_f64();
    let reads = seen.reads as f64 / resolved.max(1) as f64;
    let mut errs: Vec<f64> = seen.errs.iter().map(|&e| f64::from(e)).collect();
    errs.sort_by(f64::total_cmp);
    let outside = seen.outside;
    let all_resolved = seen.all;
    let mut skipped = 0u64;
    let (mut history, mut history_cap, mut recent) = (0usize, 0usize, 0usize);
    let (mut traces, mut trace_bytes, mut trace_slots) = (0usize, 0usize, 0usize);
    for p in app.engine.paths() {
        {
            let st = p.state();
            traces += st.traces.len();
            trace_bytes += st.traces.iter().map(|t| t.bytes()).sum::<usize>();
            trace_slots += st.traces.capacity();
            history += st.history.len();
            history_cap += st.history.capacity();
            recent += st.recent.len();
        }
        skipped += app
            .engine
            .metrics()
            .paths
            .get(&p.spec.source, &p.spec.target)
            .map_or(0, |s| s.skipped.get());
    }
    refresh_ms.sort_by(f64::total_cmp);
    render_ms.sort_by(f64::total_cmp);
    let scrape: Vec<f64> = {
        let mut v: Vec<f64> = refresh_ms
            .iter()
            .zip(&render_ms)
            .map(|(a, b)| a + b)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };

    println!("# lagwatch scale benchmark\n");
    println!(
        "{paths} paths ({SOURCES} sources × {REPLICAS} replicas, log-normal lag median 2 s, p99 8 s), interval {INTERVAL_S} s, timeout 60 s; tokio multi-thread runtime, 2 workers; {seconds} s run, measured after a {} s warm-up.\n",
        warmup.as_secs()
    );
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| config parse + build | {:.0} ms |",
        build_time.as_secs_f64() * 1000.0
    );
    println!(
        "| all paths started (ready) at the end of the run | {} |",
        if ready { "yes" } else { "no" }
    );
    println!(
        "| probes resolved in the {wall:.1} s window | {resolved} ({:.1}/s) |",
        resolved as f64 / wall
    );
    println!(
        "| outcomes: converged / timeout / mismatch / error | {} / {} / {} / {} |",
        count(Outcome::Converged),
        count(Outcome::Timeout),
        count(Outcome::Mismatch),
        count(Outcome::Error)
    );
    println!("| probes skipped (max_in_flight), whole run | {skipped} |");
    println!("| mean reads per probe | {reads:.2} |");
    println!(
        "| CPU (utime + stime) in the window | {cpu:.2} s ({:.1} % of one core) |",
        100.0 * cpu / wall
    );
    println!(
        "| CPU per resolved probe | {:.0} µs |",
        1e6 * cpu / resolved.max(1) as f64
    );
    println!("| RSS: start / built / end | {rss_start:.1} / {rss_built:.1} / {rss_end:.1} MiB |");
    println!(
        "| heap in use (counted): end of run / peak over the run | {:.1} / {:.1} MiB |",
        mib(heap_run_end),
        mib(heap_run_peak)
    );
    println!(
        "| peak RSS (VmHWM) | {rss_peak:.1} MiB (aim < {AIM_RSS_MIB:.0} MiB: {}) |",
        if rss_peak < AIM_RSS_MIB {
            "holds"
        } else {
            "FAILS"
        }
    );
    let per_path = lines as f64 / paths as f64;
    println!(
        "| /metrics size | {bytes} bytes, {lines} samples: {per_path:.1} per path (aim ≤ {AIM_SAMPLES_PER_PATH:.0}: {}) |",
        if per_path <= AIM_SAMPLES_PER_PATH {
            "holds"
        } else {
            "FAILS"
        }
    );
    println!(
        "| OpenMetrics scrape (refresh + render), p50 / p99 | {:.2} / {:.2} ms, {om_bytes} bytes |",
        percentile(&om_ms, 0.5),
        percentile(&om_ms, 0.99)
    );
    println!(
        "| refresh, p50 / p99 | {:.2} / {:.2} ms |",
        percentile(&refresh_ms, 0.5),
        percentile(&refresh_ms, 0.99)
    );
    println!(
        "| render, p50 / p99 | {:.2} / {:.2} ms |",
        percentile(&render_ms, 0.5),
        percentile(&render_ms, 0.99)
    );
    println!(
        "| refresh + render, p50 / p99 | {:.2} / {:.2} ms (aim < {AIM_RENDER_MS:.0} ms: {}) |",
        percentile(&scrape, 0.5),
        percentile(&scrape, 0.99),
        if percentile(&scrape, 0.99) < AIM_RENDER_MS {
            "holds"
        } else {
            "FAILS"
        }
    );
    println!(
        "| CPU of the {RENDERS} scrapes (with probing) | {:.2} s |",
        scrape_cpu
    );
    println!(
        "| converged \\|err\\| vs truth, p50 / p99 | {:.0} / {:.0} ms |",
        1000.0 * percentile(&errs, 0.5),
        1000.0 * percentile(&errs, 0.99)
    );
    println!(
        "| truth outside the stated bound | {outside} of {} |",
        errs.len()
    );
    println!(
        "| records lost by the bench subscriber | {} |",
        *lagged.lock().unwrap()
    );
    println!(
        "| shutdown (cancel to engine returned) | {:.0} ms |",
        shutdown.as_secs_f64() * 1000.0
    );
    println!(
        "| total wall time | {:.1} s, {all_resolved} probes resolved |",
        total.as_secs_f64()
    );
    // Each path keeps an hour (at most 720) of resolved probes for the status page: at one
    // probe per 10 s that is 360 entries, in a VecDeque of capacity 512 once full.
    let entry = std::mem::size_of::<Resolved>();
    let per_path_steady = (3600 / INTERVAL_S as usize).min(720);
    let cap_steady = per_path_steady.next_power_of_two();
    println!(
        "| status history now: entries / capacity | {history} / {history_cap} ({:.1} MiB at {entry} B each); recent lags {recent} |",
        (history_cap * entry) as f64 / 1048576.0
    );
    println!(
        "| status history after 1 h (projected) | {} entries, capacity {} → +{:.1} MiB |",
        per_path_steady * paths,
        cap_steady * paths,
        ((cap_steady * paths).saturating_sub(history_cap) * entry) as f64 / 1048576.0
    );
    // Each path keeps its last RING resolved probes, read by read, for /api/v1/probes.
    let per_trace = trace_bytes as f64 / traces.max(1) as f64;
    let full = lagwatch::probe::trace::RING * paths;
    println!(
        "| probe rings now: traces / bytes | {traces} / {:.1} MiB ({per_trace:.0} B per probe, {trace_slots} slots) |",
        trace_bytes as f64 / 1048576.0
    );
    println!(
        "| probe rings when full (projected) | {full} traces → {:.1} MiB |",
        (full as f64 * per_trace) / 1048576.0
    );
    let trend: Vec<String> = rss_trend
        .iter()
        .map(|(t, m)| format!("{t} s: {m:.1}"))
        .collect();
    println!("| RSS over the run (MiB) | {} |", trend.join(", "));
    // Which metric families the exposition is made of (samples, bytes).
    let mut families: Vec<(String, usize, usize)> = Vec::new();
    for l in last_body.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap_or("");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        match families.iter_mut().find(|f| f.0 == family) {
            Some(f) => {
                f.1 += 1;
                f.2 += l.len() + 1;
            }
            None => families.push((family.to_string(), 1, l.len() + 1)),
        }
    }
    families.sort_by_key(|f| std::cmp::Reverse(f.2));
    println!("\n/metrics by family (largest first):\n");
    println!("| family | samples | bytes |");
    println!("|---|---:|---:|");
    for (f, n, b) in families.iter().take(8) {
        println!("| {f} | {n} | {b} |");
    }
    if outside > 0 {
        println!(
            "\n**FAIL: {outside} converged probes have their truth outside the stated bound.**"
        );
    }
}
