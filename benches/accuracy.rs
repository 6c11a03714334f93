//! Accuracy benchmark: the lag estimate against the simulated landscape's ground truth, and
//! the reads it costs, for the adaptive schedule and for fixed 1 s / 5 s polling.
//!
//! Every scenario runs the real engine on a fresh current-thread runtime with paused time, so
//! days of simulated lag run in seconds. The adaptive schedule is measured end to end: each
//! resolved probe published by `Engine::subscribe` is compared with `Landscape::truth`.
//!
//! Fixed polling cannot be configured: the `poll:` knobs shape only the fallback schedule, and
//! after `MIN_SAMPLES` converged probes the learned window takes over whatever they say (and
//! `factor: 1` gives 100 ms gaps, the non-configurable `min_gap`). So the fixed baselines are
//! computed *analytically* from the very same ground-truth samples (see [`fixed_poll`]), with
//! the engine's estimator and the simulated call timing. A model check runs the engine with
//! fixed 1 s gaps on its first, not-yet-learned probes and compares it with the model.
//!
//! `cargo bench --bench accuracy` (`LAGWATCH_BENCH_PROBES` sets the probes kept per scenario).

use std::time::{Duration, Instant as WallInstant};

use lagwatch::app::App;
use lagwatch::probe::{Outcome, ProbeRecord};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// Simulated write call (the source commits half-way through it).
const WRITE_LATENCY_MS: u64 = 20;
/// Simulated read call (the replica answers half-way through it).
const READ_LATENCY_MS: u64 = 10;
/// Resolved probes discarded per scenario before measuring, so the learned window exists.
const WARMUP: usize = 10;
/// Resolved probes kept per scenario (after the warm-up), unless `LAGWATCH_BENCH_PROBES` says.
const DEFAULT_PROBES: usize = 1000;
/// The aim: p99 |error| within max(100 ms, 3 % of the lag), at most 8 reads on average.
const AIM_FLOOR: f64 = 0.100;
const AIM_RELATIVE: f64 = 0.03;
const AIM_READS: f64 = 8.0;

struct Scenario {
    name: &'static str,
    /// The replica's `lag:` block.
    lag: String,
    /// A typical lag, to size interval, timeout and max_in_flight.
    nominal: f64,
    /// The largest lag worth waiting for (timeout = 3 × this + 30 s).
    large: f64,
}

fn fixed_ish(name: &'static str, lag: f64) -> Scenario {
    Scenario {
        name,
        lag: format!(
            "{{ distribution: uniform, min: {}ms, max: {}ms }}",
            (lag * 950.0).round(),
            (lag * 1050.0).round()
        ),
        nominal: lag,
        large: lag,
    }
}

fn scenarios() -> Vec<Scenario> {
    vec![
        fixed_ish("1 s ±5 %", 1.0),
        fixed_ish("10 s ±5 %", 10.0),
        fixed_ish("60 s ±5 %", 60.0),
        fixed_ish("600 s ±5 %", 600.0),
        fixed_ish("3600 s ±5 %", 3600.0),
        Scenario {
            name: "log-normal 30 s / p99 300 s",
            lag: "{ distribution: log_normal, median: 30s, p99: 300s }".to_string(),
            nominal: 30.0,
            large: 300.0,
        },
    ]
}

/// One resolved probe of the measured phase, with its ground truth (seconds).
#[derive(Debug, Clone, Copy)]
struct Sample {
    outcome: Outcome,
    /// (lag, uncertainty) as reported.
    estimate: Option<(f64, f64)>,
    reads: u32,
    truth: Option<f64>,
    /// Whether the truth lies in the stated bound, with no slack at all.
    contained: Option<bool>,
}

struct Run {
    samples: Vec<Sample>,
    lagged: u64,
    simulated: Duration,
    wall: Duration,
    window: Option<(f64, f64)>,
}

fn yaml_for(s: &Scenario) -> String {
    let interval = s.nominal / 2.0 + 1.0;
    let timeout = 3.0 * s.large + 30.0;
    let max_in_flight = (timeout / interval).ceil() as u32 + 4;
    format!(
        r#"
instance: bench
systems:
  src: {{ kind: simulated, write_latency: {WRITE_LATENCY_MS}ms, read_latency: {READ_LATENCY_MS}ms }}
  rep: {{ kind: simulated, replica_of: src, write_latency: {WRITE_LATENCY_MS}ms, read_latency: {READ_LATENCY_MS}ms, lag: {lag} }}
paths:
  - source: src
    target: rep
    interval: {interval_ms}ms
    timeout: {timeout}s
    objective: {timeout}s
    max_in_flight: {max_in_flight}
"#,
        lag = s.lag,
        interval_ms = (interval * 1000.0).round(),
    )
}

/// Runs the engine on paused time and returns the records after `skip`, up to `keep`.
fn run_engine(yaml: &str, skip: usize, keep: usize) -> Run {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let wall = WallInstant::now();
    rt.block_on(async {
        let config = lagwatch_emulator::REGISTRY
            .from_yaml("bench", yaml)
            .unwrap_or_else(|e| panic!("{e}"));
        let app = App::build(config).unwrap_or_else(|e| panic!("{e}"));
        let mut rx = app.engine.subscribe();
        let stop = CancellationToken::new();
        let started = tokio::time::Instant::now();
        let engine = tokio::spawn(app.engine.clone().run(stop.clone()));
        let mut seen = 0usize;
        let mut lagged = 0u64;
        let mut samples = Vec::with_capacity(keep);
        while samples.len() < keep {
            let r: ProbeRecord = match rx.recv().await {
                Ok(r) => r,
                Err(RecvError::Lagged(n)) => {
                    lagged += n;
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            seen += 1;
            if seen <= skip {
                continue;
            }
            let truth = lagwatch_emulator::simulated::landscape(&app)
                .truth(&r.target, r.sentinel.key())
                .and_then(|t| t.lag());
            let contained = match (r.estimate, truth) {
                (Some(e), Some(t)) => Some(e.contains(t, Duration::ZERO)),
                _ => None,
            };
            samples.push(Sample {
                outcome: r.outcome,
                estimate: r
                    .estimate
                    .map(|e| (e.lag.as_secs_f64(), e.uncertainty.as_secs_f64())),
                reads: r.reads,
                truth: truth.map(|t| t.as_secs_f64()),
                contained,
            });
        }
        let simulated = started.elapsed();
        let window = app.engine.paths()[0]
            .expectation()
            .map(|e| (e.lo.as_secs_f64(), e.hi.as_secs_f64()));
        stop.cancel();
        let _ = engine.await;
        Run {
            samples,
            lagged,
            simulated,
            wall: wall.elapsed(),
            window,
        }
    })
}

/// Fixed polling every `gap` seconds from the write's acknowledgement, on a probe whose true
/// lag (commit to stable visibility) is `truth`, with the simulated call timing: the write is
/// sent at 0, commits at W/2 and is acknowledged at W; read k is sent at W + k·gap, served
/// R/2 later and answered R later. The first read served at or after the arrival hits. The
/// estimate is the engine's (`probe::estimate`): lower bound = last miss sent − ack (0 without
/// a miss), upper bound = hit answered − write sent. Returns (estimate lag, uncertainty,
/// reads), or `None` past the timeout.
fn fixed_poll(truth: f64, gap: f64, timeout: f64) -> Option<(f64, f64, u32)> {
    let w = WRITE_LATENCY_MS as f64 / 1000.0;
    let r = READ_LATENCY_MS as f64 / 1000.0;
    // Served at W + k·gap + R/2 ≥ W/2 + truth  ⇔  k·gap ≥ truth − W/2 − R/2.
    let need = truth - w / 2.0 - r / 2.0;
    let k = ((need / gap) - 1e-9).ceil().max(1.0);
    if k * gap >= timeout {
        return None;
    }
    let lower = (k - 1.0) * gap;
    let upper = (w + k * gap + r).max(lower);
    let half = (upper - lower) / 2.0;
    Some((lower + half, half, k as u32))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// One table row.
struct Row {
    scenario: &'static str,
    schedule: &'static str,
    probes: usize,
    not_converged: usize,
    p50_err: f64,
    p99_err: f64,
    p99_rel: f64,
    p50_unc_rel: f64,
    within: f64,
    reads: f64,
    aim_err: bool,
    aim_reads: bool,
}

/// One probe to summarise: estimate (lag, uncertainty) if it converged, ground truth, whether
/// the truth was inside the bound, and reads spent (also counted when it did not converge).
type Measured = (Option<(f64, f64)>, f64, Option<bool>, u32);

fn summarise(scenario: &'static str, schedule: &'static str, probes: &[Measured]) -> Row {
    let mut errs = Vec::new();
    let mut rels = Vec::new();
    let mut norm = Vec::new();
    let mut unc = Vec::new();
    let (mut inside, mut checked, mut not_converged) = (0usize, 0usize, 0usize);
    for &(est, truth, contained, _) in probes {
        let Some((lag, u)) = est else {
            not_converged += 1;
            continue;
        };
        let err = (lag - truth).abs();
        errs.push(err);
        rels.push(err / truth.max(1e-9));
        norm.push(err / (AIM_RELATIVE * truth).max(AIM_FLOOR));
        unc.push(u / truth.max(1e-9));
        if let Some(c) = contained {
            checked += 1;
            inside += usize::from(c);
        }
    }
    let reads = probes.iter().map(|p| f64::from(p.3)).sum::<f64>() / probes.len().max(1) as f64;
    let (errs, rels, norm, unc) = (sorted(errs), sorted(rels), sorted(norm), sorted(unc));
    Row {
        scenario,
        schedule,
        probes: probes.len(),
        not_converged,
        p50_err: percentile(&errs, 0.50),
        p99_err: percentile(&errs, 0.99),
        p99_rel: percentile(&rels, 0.99),
        p50_unc_rel: percentile(&unc, 0.50),
        within: if checked == 0 {
            f64::NAN
        } else {
            inside as f64 / checked as f64
        },
        reads,
        aim_err: percentile(&norm, 0.99) <= 1.0,
        aim_reads: reads <= AIM_READS,
    }
}

fn secs(s: f64) -> String {
    if s.is_nan() {
        "–".to_string()
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 100.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.0} s")
    }
}

fn pct(x: f64) -> String {
    if x.is_nan() {
        "–".to_string()
    } else {
        format!("{:.1} %", x * 100.0)
    }
}

/// Runs the engine with fixed 1 s gaps before any window is learned (probes that all start
/// before the first converges) and compares estimate and reads with [`fixed_poll`].
fn model_check() -> (usize, usize, f64) {
    let yaml = format!(
        r#"
instance: bench
systems:
  src: {{ kind: simulated, write_latency: {WRITE_LATENCY_MS}ms, read_latency: {READ_LATENCY_MS}ms }}
  rep: {{ kind: simulated, replica_of: src, write_latency: {WRITE_LATENCY_MS}ms, read_latency: {READ_LATENCY_MS}ms, lag: {{ distribution: uniform, min: 9500ms, max: 10500ms }} }}
paths:
  - source: src
    target: rep
    interval: 1s
    timeout: 60s
    objective: 60s
    max_in_flight: 100
    poll: {{ first: 1s, factor: 10, max_gap: 1s, jitter: 0 }}
"#
    );
    // Sentinels are written every second and take ~10 s, so the first 8 resolved were all
    // started before any converged: none of them had a learned window.
    let run = run_engine(&yaml, 0, 8);
    let mut agree = 0;
    let mut worst = 0f64;
    for s in &run.samples {
        let (Some((lag, _)), Some(truth)) = (s.estimate, s.truth) else {
            continue;
        };
        if let Some((m_lag, _, m_reads)) = fixed_poll(truth, 1.0, 60.0) {
            let d = (m_lag - lag).abs();
            worst = worst.max(d);
            if m_reads == s.reads && d <= 0.002 {
                agree += 1;
            }
        }
    }
    (agree, run.samples.len(), worst)
}

/// Lags up to just below the timeout, and a share that never arrives: every sentinel visible
/// before its deadline must converge (no false `timeout`), every lost one end `timeout`.
fn near_the_timeout(keep: usize, failures: &mut Vec<String>) {
    let timeout: f64 = 45.0;
    let yaml = format!(
        r#"
instance: bench
systems:
  src: {{ kind: simulated, write_latency: {WRITE_LATENCY_MS}ms, read_latency: {READ_LATENCY_MS}ms }}
  rep: {{ kind: simulated, replica_of: src, write_latency: {WRITE_LATENCY_MS}ms, read_latency: {READ_LATENCY_MS}ms, lag: {{ distribution: uniform, min: {min}ms, max: {max}ms }}, drop_probability: 0.2 }}
paths:
  - {{ source: src, target: rep, interval: 5s, timeout: {timeout}s, objective: 40s, max_in_flight: 20 }}
"#,
        min = (0.6 * timeout * 1000.0).round(),
        max = (0.98 * timeout * 1000.0).round(),
    );
    let run = run_engine(&yaml, WARMUP, keep);
    let arrived: Vec<&Sample> = run.samples.iter().filter(|x| x.truth.is_some()).collect();
    let lost = run.samples.len() - arrived.len();
    let false_timeouts = arrived
        .iter()
        .filter(|x| x.outcome != Outcome::Converged)
        .count();
    let missed = run
        .samples
        .iter()
        .filter(|x| x.truth.is_none() && x.outcome != Outcome::Timeout)
        .count();
    let outside = arrived
        .iter()
        .filter(|x| x.contained == Some(false))
        .count();
    let top = arrived
        .iter()
        .filter(|x| x.outcome == Outcome::Converged)
        .filter_map(|x| x.truth)
        .fold(0.0, f64::max);
    println!(
        "\n### Near the timeout\n\nLags uniform from 0.6 to 0.98 × a {timeout} s timeout (27 – 44.1 s), 20 % never arriving; interval 5 s.\n"
    );
    println!(
        "| probes | arrived before the deadline | converged of those | never arrived | timeout of those | truth outside ± | largest lag measured |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {lost} | {} | {outside} | {} |",
        run.samples.len(),
        arrived.len(),
        arrived.len() - false_timeouts,
        lost - missed,
        secs(top)
    );
    if false_timeouts > 0 {
        failures.push(format!(
            "FAIL: near the timeout: {false_timeouts} sentinels visible before their deadline did not converge"
        ));
    }
    if missed > 0 {
        failures.push(format!(
            "FAIL: near the timeout: {missed} sentinels that never arrived did not end as timeout"
        ));
    }
}

fn main() {
    let keep = std::env::var("LAGWATCH_BENCH_PROBES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_PROBES);
    println!("# lagwatch accuracy benchmark\n");
    println!(
        "Simulated write {WRITE_LATENCY_MS} ms, read {READ_LATENCY_MS} ms; {WARMUP} warm-up probes discarded, {keep} measured per scenario; paused tokio time.\n"
    );

    let (agree, checked, worst) = model_check();
    println!(
        "Model check (engine with fixed 1 s gaps, before learning, vs the analytic baseline): {agree}/{checked} probes agree (same reads, estimate within 2 ms; largest difference {:.1} ms).\n",
        worst * 1000.0
    );
    if agree != checked {
        println!("**FAIL: the analytic fixed-polling model disagrees with the engine.**\n");
    }

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for s in scenarios() {
        let yaml = yaml_for(&s);
        let run = run_engine(&yaml, WARMUP, keep);
        let timeout = 3.0 * s.large + 30.0;
        notes.push(format!(
            "- {}: {} probes in {:.1} h simulated, {:.2} s wall; learned window at the end: {}{}",
            s.name,
            run.samples.len(),
            run.simulated.as_secs_f64() / 3600.0,
            run.wall.as_secs_f64(),
            run.window.map_or("none".to_string(), |(lo, hi)| format!(
                "{} – {}",
                secs(lo),
                secs(hi)
            )),
            if run.lagged > 0 {
                format!("; {} records lost to a lagging subscriber", run.lagged)
            } else {
                String::new()
            }
        ));
        let adaptive: Vec<_> = run
            .samples
            .iter()
            .filter_map(|x| {
                let truth = x.truth?;
                let est = match x.outcome {
                    Outcome::Converged => x.estimate,
                    _ => None,
                };
                Some((est, truth, x.contained, x.reads))
            })
            .collect();
        if adaptive.len() < run.samples.len() {
            notes.push(format!(
                "  - {} probes without ground truth were left out",
                run.samples.len() - adaptive.len()
            ));
        }
        let row = summarise(s.name, "adaptive", &adaptive);
        if row.within < 1.0 {
            failures.push(format!(
                "FAIL: {}: the truth lies outside the stated uncertainty for {} of probes",
                s.name,
                pct(1.0 - row.within)
            ));
        }
        rows.push(row);
        for (label, gap) in [("fixed 1 s", 1.0), ("fixed 5 s", 5.0)] {
            let probes: Vec<_> = run
                .samples
                .iter()
                .filter_map(|x| x.truth)
                .map(|truth| match fixed_poll(truth, gap, timeout) {
                    Some((lag, u, reads)) => {
                        let c = truth + 1e-9 >= lag - u && truth <= lag + u + 1e-9;
                        (Some((lag, u)), truth, Some(c), reads)
                    }
                    None => (None, truth, None, (timeout / gap).ceil() as u32),
                })
                .collect();
            rows.push(summarise(s.name, label, &probes));
        }
    }

    println!(
        "| scenario | schedule | probes | not converged | p50 \\|err\\| | p99 \\|err\\| | p99 \\|err\\|/truth | p50 ±/truth | truth within ± | mean reads | aim |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in &rows {
        let aim = match (r.aim_err, r.aim_reads) {
            (true, true) => "holds".to_string(),
            (false, true) => "no: error".to_string(),
            (true, false) => "no: reads".to_string(),
            (false, false) => "no: error, reads".to_string(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
            r.scenario,
            r.schedule,
            r.probes,
            r.not_converged,
            secs(r.p50_err),
            secs(r.p99_err),
            pct(r.p99_rel),
            pct(r.p50_unc_rel),
            pct(r.within),
            r.reads,
            aim
        );
    }
    println!(
        "\nAim: p99 of |err| / max(100 ms, 3 % × truth) ≤ 1 and ≤ {AIM_READS} reads per sentinel and target on average. Fixed rows are computed analytically from the same truth samples.\n"
    );
    for n in &notes {
        println!("{n}");
    }
    println!();
    near_the_timeout(keep, &mut failures);
    if failures.is_empty() {
        println!("Bound check: every adaptive estimate contains its ground truth (no slack).");
    } else {
        for f in &failures {
            println!("**{f}**");
            eprintln!("{f}");
        }
    }
}
