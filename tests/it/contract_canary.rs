//! Update canaries: k-staleness, time staleness and version regressions, measured through the
//! connectors on simulated replicas whose lag is known exactly.

use crate::common;

use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn k_and_time_staleness_follow_the_replicas_lag_and_a_flapping_replica_regresses() {
    // Versions every 3 s; a replica 10 s behind is 3 or 4 versions behind at any read, and has
    // been stale for less than 10 s; one 1 s behind is 0 or 1 behind.
    let app = common::app(
        r#"
instance: t
systems:
  src: { kind: simulated, seed: 9 }
  slow: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 10s } }
  quick: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 1s } }
  flappy: { kind: simulated, replica_of: src, lag: { distribution: uniform, min: 6s, max: 14s }, flap_probability: 1 }
defaults:
  interval: 30s
  objective: 20s
  update_interval: 3s
paths:
  - { source: src, target: slow }
  - { source: src, target: quick }
  - { source: src, target: flappy, contract: { monotonic_reads: true } }
"#,
    );
    common::run_for(&app, Duration::from_secs(300)).await;

    let labels = |target: &str, le: &str| format!("source=\"src\",target=\"{target}\",le=\"{le}\"");
    let k = |target: &str, le: &str| {
        common::sample(
            &app,
            "lagwatch_version_staleness_bucket",
            &labels(target, le),
        )
    };
    let t = |target: &str, le: &str| {
        common::sample(
            &app,
            "lagwatch_time_staleness_seconds_bucket",
            &labels(target, le),
        )
    };
    let plain = |target: &str| format!("source=\"src\",target=\"{target}\"");

    // About one read per 3 s for 5 minutes, less the first 10 s before anything arrived.
    let reads = k("slow", "+Inf");
    assert!(reads > 0.0, "{}", app.engine.metrics().render());
    assert!((80.0..=100.0).contains(&reads), "{reads} canary reads");
    assert_eq!(k("slow", "2"), 0.0, "never fewer than 3 versions behind");
    assert_eq!(k("slow", "5"), reads, "never more than 4 behind");
    assert_eq!(t("slow", "+Inf"), reads, "every slow read was stale");
    assert_eq!(t("slow", "10"), reads, "and for less than the lag");
    assert!(t("slow", "2.5") < reads, "not all of them only just");

    let quick = k("quick", "+Inf");
    assert!(quick >= 90.0, "{quick}");
    assert_eq!(k("quick", "1"), quick, "at most one version behind");
    assert!(k("quick", "0") > 0.0, "and sometimes the latest");
    assert_eq!(
        t("quick", "+Inf"),
        quick - k("quick", "0"),
        "a time staleness for each stale read only"
    );
    assert_eq!(
        t("quick", "2.5"),
        t("quick", "+Inf"),
        "stale for under the 1 s lag"
    );

    // The flapping replica shows each version early, loses it, and shows the older one again:
    // monotonic-read regressions, violations of the contract it declares. The others: none.
    for target in ["slow", "quick"] {
        assert_eq!(
            common::sample(
                &app,
                "lagwatch_monotonic_read_violations_total",
                &plain(target)
            ),
            0.0,
            "{target}"
        );
    }
    let regressions = common::sample(
        &app,
        "lagwatch_monotonic_read_violations_total",
        &plain("flappy"),
    );
    assert!(regressions >= 5.0, "{regressions}");
    assert_eq!(
        common::sample(
            &app,
            "lagwatch_contract_violations_total",
            &format!("guarantee=\"monotonic_reads\",{}", plain("flappy"))
        ),
        regressions
    );
    // The contract report's k-staleness is the same distribution, over its window: the slow
    // replica's reads all in the buckets of 3 and of 4–5 versions behind.
    let report = lagwatch::contracts::report(&app.engine, "t", Duration::from_secs(3600));
    let slow = report
        .paths
        .iter()
        .find(|p| p.target == "slow")
        .and_then(|p| p.k_staleness.clone())
        .expect("the slow path's k-staleness");
    let in_bucket = |k: u64| {
        slow.iter()
            .find(|b| b.k_le == Some(k))
            .map_or(0, |b| b.reads)
    };
    assert_eq!(slow.iter().map(|b| b.reads).sum::<u64>() as f64, reads);
    assert_eq!((in_bucket(3) + in_bucket(5)) as f64, reads, "{slow:?}");
    assert_eq!(in_bucket(3) as f64, k("slow", "3"));

    // The canary stays in the source; no sentinel does.
    let keys = lagwatch_emulator::simulated::landscape(&app).source_keys("src");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let canary = lagwatch::sentinel::SentinelId::parse(&keys[0]).expect("a sentinel key");
    assert!(canary.is_canary());
}

#[tokio::test(start_paused = true)]
async fn a_target_that_stops_applying_updates_loses_each_version_it_does_not_reach_in_time() {
    // Versions every 5 s; `stalled` applies nothing from 60 s for 90 s (then all at once, 1 s
    // later), `clean` keeps up. With a 30 s timeout, the versions acknowledged in the first
    // 60 s of the stall (about 12) are still unreached 30 s after their acknowledgement; those
    // acknowledged in its last 30 s arrive in time.
    let app = common::app(
        r#"
instance: t
systems:
  src: { kind: simulated, seed: 5 }
  clean: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 1s } }
  stalled:
    kind: simulated
    replica_of: src
    lag: { distribution: fixed, value: 1s }
    outages: [{ start: 60s, duration: 90s, mode: stall }]
defaults:
  interval: 60s
  timeout: 30s
  objective: 10s
  update_interval: 5s
  pair_interval: 0s
paths:
  - { source: src, target: clean, contract: { updates: latest } }
  - { source: src, target: stalled, contract: { updates: latest } }
"#,
    );
    common::run_for(&app, Duration::from_secs(300)).await;
    let plain = |target: &str| format!("source=\"src\",target=\"{target}\"");
    let lost = |target: &str| common::sample(&app, "lagwatch_updates_lost_total", &plain(target));
    let broken = |target: &str| {
        common::sample(
            &app,
            "lagwatch_contract_violations_total",
            &format!("guarantee=\"updates\",{}", plain(target)),
        )
    };
    assert_eq!(lost("clean"), 0.0, "{}", app.engine.metrics().render());
    assert_eq!(broken("clean"), 0.0);
    let n = lost("stalled");
    assert!((11.0..=13.0).contains(&n), "{n} versions lost");
    assert_eq!(
        broken("stalled"),
        n,
        "each lost version breaks the declared promise"
    );
    let report = lagwatch::contracts::report(&app.engine, "t", Duration::from_secs(3600));
    let updates = |target: &str| common::guarantee(&report, target, "updates");
    assert_eq!(updates("stalled").violations as f64, n);
    assert_eq!(updates("clean").status, lagwatch::contracts::Status::Holds);
}

#[test]
fn the_canary_runs_every_15_seconds_by_default_where_it_can_and_0s_turns_it_off() {
    let config = lagwatch_emulator::REGISTRY
        .from_yaml(
            "c.yaml",
            r#"
instance: t
systems:
  src: { kind: simulated }
  dst: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 1s } }
  dst2: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 1s } }
  fno:
    kind: fo_odata
    url: https://contoso.operations.dynamics.com
    entity_set: CustomersV3
    key_field: OrganizationName
    auth: { method: managed_identity, endpoint: http://127.0.0.1:1/token }
paths:
  - { source: src, target: dst }
  - { source: src, target: dst2, update_interval: 0s }
  - { source: src, target: fno }
"#,
        )
        .expect("valid");
    let every: Vec<Option<Duration>> = config
        .paths
        .iter()
        .map(|p| p.update_interval.map(|d| d.get()))
        .collect();
    // The F&O target has no payload field: no version to read there, so no canary.
    assert_eq!(every, [Some(Duration::from_secs(15)), None, None]);
}
