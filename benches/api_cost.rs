//! API cost benchmark: the requests lagwatch makes per minute at default settings, split by
//! what they are for, against the Dataverse service-protection budget (6,000 requests per
//! 5 minutes per user: 1,200 a minute).
//!
//! The consistency measures (issue "Consistency contracts") add requests; this counts them
//! beside the base cost of probing. A ten-path estate (one Dataverse source, the target kinds
//! a Dynamics 365 landscape has, lags as they are documented) runs on the simulated landscape
//! with paused time, so an hour of probing takes seconds and every request is counted
//! (`lagwatch_requests_total`, which the simulated systems feed as the HTTP ones do). Reads of
//! the probes and reads watching deletes are told apart by the probes' and deletes' own traces.
//!
//! The update canary is on (`update_interval: 15s`, the cadence README suggests); everything
//! else is at its default (causal pairs every 5 minutes).
//!
//! `cargo bench --bench api_cost` (`LAGWATCH_BENCH_MINUTES`, default 60, of simulated time).

use std::collections::BTreeMap;
use std::time::Duration;

use lagwatch::app::App;
use tokio_util::sync::CancellationToken;

/// The Dataverse budget per user, requests per minute (6,000 per 5 minutes).
const DATAVERSE_PER_MINUTE: f64 = 1200.0;

/// Targets: name, `lag:`, and the settings a realistic configuration gives them beyond the
/// defaults (a lake's timeout must exceed its export cadence).
const TARGETS: &[(&str, &str, &str)] = &[
    (
        "fno",
        "{ distribution: log_normal, median: 400ms, p99: 1500ms }",
        "",
    ),
    (
        "crm2",
        "{ distribution: log_normal, median: 2s, p99: 6s }",
        "",
    ),
    (
        "crm3",
        "{ distribution: log_normal, median: 5s, p99: 30s }",
        "",
    ),
    (
        "search",
        "{ distribution: uniform, min: 30s, max: 180s }",
        "",
    ),
    (
        "dvsearch",
        "{ distribution: uniform, min: 15s, max: 60s }",
        "",
    ),
    (
        "es",
        "{ distribution: log_normal, median: 1s, p99: 3s }",
        "",
    ),
    (
        "orders",
        "{ distribution: log_normal, median: 5s, p99: 20s }",
        "",
    ),
    (
        "warehouse",
        "{ distribution: uniform, min: 60s, max: 300s }",
        "",
    ),
    (
        "lake",
        "{ distribution: uniform, min: 5m, max: 15m }",
        ", timeout: 30m, objective: 20m",
    ),
    (
        "fabric",
        "{ distribution: uniform, min: 10m, max: 50m }",
        ", timeout: 90m, objective: 60m",
    ),
];

fn yaml() -> String {
    // The update canary is opt-in; it is measured at the cadence README suggests.
    let mut y = String::from(
        "instance: bench\ndefaults:\n  update_interval: 15s\nsystems:\n  crm: { kind: simulated, seed: 7 }\n",
    );
    for (name, lag, _) in TARGETS {
        y.push_str(&format!(
            "  {name}: {{ kind: simulated, replica_of: crm, lag: {lag} }}\n"
        ));
    }
    y.push_str("paths:\n");
    for (name, _, extra) in TARGETS {
        y.push_str(&format!("  - {{ source: crm, target: {name}{extra} }}\n"));
    }
    y
}

/// `lagwatch_requests_total` summed by (system, operation).
fn requests(text: &str) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("lagwatch_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let n: f64 = value.trim().parse().unwrap_or(0.0);
        *out.entry((label("system"), label("operation")))
            .or_insert(0.0) += n;
    }
    out
}

fn main() {
    let minutes: u64 = std::env::var("LAGWATCH_BENCH_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let _in_rt = rt.enter();
    let config = lagwatch_emulator::REGISTRY
        .from_yaml("api_cost.yaml", &yaml())
        .expect("the bench's configuration");
    let app = App::build(config).expect("the bench's estate");
    let stop = CancellationToken::new();
    let run = rt.spawn(app.engine.clone().run(stop.clone()));
    rt.block_on(tokio::time::sleep(Duration::from_secs(minutes * 60)));
    stop.cancel();
    rt.block_on(run).expect("engine");

    let per_min = |n: f64| n / minutes as f64;
    let counted = requests(&app.engine.metrics().render());
    let get = |system: &str, op: &str| {
        counted
            .get(&(system.to_string(), op.to_string()))
            .copied()
            .unwrap_or(0.0)
    };

    println!("## API cost at default settings ({minutes} simulated minutes)\n");
    println!(
        "| path | probe reads/min | delete-watch reads/min | canary reads/min | pair reads/min | lookups/min (all) | deletes watched | lost |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut pairs_written = 0;
    let mut extra_total = 0.0;
    let mut lookups_total = 0.0;
    for p in app.engine.paths() {
        let s = p.state();
        let probe_reads: usize = s.traces.iter().map(|t| t.reads()).sum();
        let delete_reads: u64 = s.deletes.iter().map(|d| u64::from(d.reads)).sum();
        let lost = s
            .deletes
            .iter()
            .filter(|d| d.outcome == lagwatch::probe::deletes::DeleteOutcome::Lost)
            .count();
        // A pair read is one request where the kind reads both keys together, else two.
        let per_pair_read = if p.target.reads_together() { 1 } else { 2 };
        let pair_reads: u64 = s
            .pairs
            .iter()
            .map(|t| u64::from(t.reads) * per_pair_read)
            .sum();
        pairs_written = pairs_written.max(s.pairs.len());
        let lookups = get(&p.spec.target, "lookup");
        // What is neither a probe's read nor a delete's: the canary's (the traces keep every
        // probe and delete of the hour: 120 of each at most, within their 200).
        let canary_reads = lookups - probe_reads as f64 - delete_reads as f64 - pair_reads as f64;
        extra_total +=
            per_min(delete_reads as f64) + per_min(canary_reads) + per_min(pair_reads as f64);
        lookups_total += per_min(lookups);
        println!(
            "| crm → {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            p.spec.target,
            per_min(probe_reads as f64),
            per_min(delete_reads as f64),
            per_min(canary_reads),
            per_min(pair_reads as f64),
            per_min(lookups),
            s.deletes.len(),
            lost,
        );
    }
    // Each pair: the parent's and the child's write, then their deletes.
    let pair_source = 4.0 * pairs_written as f64;
    let source: f64 = ["write", "read", "delete", "list"]
        .iter()
        .map(|op| get("crm", op))
        .sum::<f64>()
        - pair_source;
    println!();
    println!("| cost | requests/min | share of the Dataverse budget (1,200/min per user) |");
    println!("|---|---:|---:|");
    println!(
        "| source `crm` (write, read-your-write, delete, sweep) | {:.2} | {:.2} % |",
        per_min(source),
        100.0 * per_min(source) / DATAVERSE_PER_MINUTE
    );
    println!(
        "| all target lookups, were every target Dataverse under the same user | {:.2} | {:.2} % |",
        lookups_total,
        100.0 * lookups_total / DATAVERSE_PER_MINUTE
    );
    let updates = per_min(get("crm", "update"));
    println!(
        "| source `crm`: canary updates | {:.2} | {:.2} % |",
        updates,
        100.0 * updates / DATAVERSE_PER_MINUTE
    );
    let pairs = per_min(pair_source);
    println!(
        "| source `crm`: causal pairs' writes and deletes | {:.2} | {:.2} % |",
        pairs,
        100.0 * pairs / DATAVERSE_PER_MINUTE
    );
    let extra = extra_total + updates + pairs;
    println!(
        "| the consistency measures' extra requests (delete watch, canary, causal pairs) | {:.2} | {:.2} % |",
        extra,
        100.0 * extra / DATAVERSE_PER_MINUTE
    );
}
