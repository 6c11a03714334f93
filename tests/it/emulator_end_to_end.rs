//! The demo estate end to end: lagwatch's real connectors (Entra client-credentials tokens,
//! Dataverse upsert writes and read-back, F&O OData, Azure AI Search with an API key,
//! Elasticsearch with basic auth, a second Dataverse environment) against the emulator over
//! loopback HTTP, each measured lag checked against the emulator's ground truth.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lagwatch::app::App;
use lagwatch::probe::{Outcome, ProbeRecord};
use lagwatch_emulator::demo::{DEMO_SECRETS, Demo};
use tokio_util::sync::CancellationToken;

/// Converged probes wanted per demo path before the checks run.
const WANT: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_demo_path_measures_the_true_lag_through_the_emulator() {
    let emulator_stop = CancellationToken::new();
    let (demo, config) = Demo::start(emulator_stop.clone())
        .await
        .expect("demo starts");
    let app = Arc::new(App::build(config).unwrap_or_else(|e| panic!("{e}")));
    let mut rx = app.engine.subscribe();
    let stop = CancellationToken::new();
    let run = tokio::spawn(app.engine.clone().run(stop.clone()));

    let mut converged: BTreeMap<String, Vec<ProbeRecord>> = BTreeMap::new();
    let mut other: Vec<ProbeRecord> = Vec::new();
    // The search path's lag is 20-35 s, so its third probe converges after about 45 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(100);
    // By replica (the emulator's name for a path): fno -> crm is the replica fno_back.
    while ["fno", "fno_back", "search", "es", "crm2", "lake", "fabric"]
        .iter()
        .any(|t| converged.get(*t).is_none_or(|v| v.len() < WANT))
    {
        let r = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("probes converge in time; so far {converged:?}"))
            .expect("engine publishes");
        if r.outcome == Outcome::Converged {
            let replica = match (&*r.source, &*r.target) {
                ("fno", "crm") => "fno_back".to_string(),
                (_, target) => target.to_string(),
            };
            converged.entry(replica).or_default().push(r);
        } else {
            other.push(r);
        }
    }
    // A converged probe is published before its target's apply time is read (one more lake
    // scan): wait for the apply lags of the probes counted.
    let applied = |text: &str, target: &str| -> f64 {
        let series =
            format!("lagwatch_apply_lag_seconds_count{{source=\"crm\",target=\"{target}\"}}");
        text.lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let mut text = app.engine.metrics().render();
    let settle = tokio::time::Instant::now() + Duration::from_secs(10);
    while ["lake", "fabric"]
        .iter()
        .any(|t| applied(&text, t) < WANT as f64)
        && tokio::time::Instant::now() < settle
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        text = app.engine.metrics().render();
    }
    stop.cancel();
    run.await.unwrap();
    emulator_stop.cancel();
    let emulator = demo.emulator.clone();
    demo.finish().await;

    for (target, records) in &converged {
        for r in records {
            let truth = emulator
                .truth(target, r.sentinel.key())
                .unwrap_or_else(|| panic!("ground truth for {} in {target}", r.sentinel));
            // Elasticsearch is probed with `_search`: it counts once a refresh made it
            // searchable, not when it was indexed.
            let visible = if target == "es" {
                truth.searchable_at
            } else {
                truth.visible_at
            };
            let truth_lag = visible
                .expect("arrived")
                .saturating_duration_since(truth.committed_at);
            let est = r.estimate.expect("a converged probe has an estimate");
            assert!(
                est.contains(truth_lag, Duration::from_millis(1)),
                "{target}: measured {:?} ± {:?}, truth {truth_lag:?}",
                est.lag,
                est.uncertainty
            );
        }
    }
    // The scenario changes no content: nothing may be reported as a mismatch.
    assert!(
        other.iter().all(|r| r.outcome != Outcome::Mismatch),
        "{other:?}"
    );

    for series in [
        "lagwatch_sentinel_writes_total{outcome=\"ok\",source=\"crm\"}",
        "lagwatch_requests_total{operation=\"write\",status=\"2xx\",system=\"crm\"}",
        "lagwatch_requests_total{operation=\"read\",status=\"2xx\",system=\"crm\"}",
        "lagwatch_requests_total{operation=\"delete\",status=\"2xx\",system=\"crm\"}",
        "lagwatch_requests_total{operation=\"lookup\",status=\"2xx\",system=\"crm2\"}",
        "lagwatch_requests_total{operation=\"lookup\",status=\"2xx\",system=\"fno\"}",
        "lagwatch_requests_total{operation=\"lookup\",status=\"2xx\",system=\"search\"}",
        "lagwatch_requests_total{operation=\"lookup\",status=\"2xx\",system=\"es\"}",
    ] {
        let v: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing"));
        assert!(v >= 1.0, "{series} = {v}");
    }
    assert!(text.contains("lagwatch_read_your_writes_violations_total{source=\"crm\"} 0"));
    assert!(
        text.contains("lagwatch_clock_offset_seconds{system=\"crm\"}"),
        "Date headers seen"
    );
    // The lake's rows carry the export's own time: the apply lag is measured for the lake path
    // only, and never exceeds the observed lag (the export wrote the row before its folder
    // completed).
    let apply_count = |target: &str| applied(&text, target);
    assert!(
        apply_count("lake") >= WANT as f64,
        "apply lag per lake probe"
    );
    assert!(
        apply_count("fabric") >= WANT as f64,
        "apply lag per Delta probe"
    );
    assert_eq!(apply_count("fno"), 0.0);
    let sum = |name: &str| -> f64 {
        let series = format!("{name}{{source=\"crm\",target=\"lake\"}}");
        text.lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series}"))
    };
    let apply_mean = sum("lagwatch_apply_lag_seconds_sum") / apply_count("lake");
    let observed_mean = sum("lagwatch_lag_seconds_sum") / sum("lagwatch_lag_seconds_count");
    assert!(
        apply_mean > 0.0 && apply_mean < observed_mean,
        "apply {apply_mean} s vs observed {observed_mean} s"
    );
    for (_, secret) in DEMO_SECRETS {
        assert!(!text.contains(secret), "a secret reached /metrics");
    }
}
