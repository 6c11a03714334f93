//! Causal pairs (`causal`): a parent, then a child that references it, read at every target
//! of the source; measured through the connectors on simulated replicas whose order of apply
//! is known exactly (the landscape's truth records each child it applied first).

use crate::common;

use std::time::Duration;

use lagwatch::probe::causal::{Certainty, PairResult};

#[tokio::test(start_paused = true)]
async fn a_violation_is_counted_for_exactly_the_children_a_replica_applied_first() {
    // Both replicas draw lags between 1 s and 5 s per record, so without ordering half the
    // children would arrive first. `clean` applies a child only after its parent; `racy`
    // applies half of them first and holds the parent 10 s, long enough for the schedule's
    // reads (at most 1 s apart) to see every one.
    let app = common::app(
        r#"
instance: t
systems:
  src: { kind: simulated, seed: 21 }
  clean: { kind: simulated, replica_of: src, lag: { distribution: uniform, min: 1s, max: 5s } }
  racy:
    kind: simulated
    replica_of: src
    lag: { distribution: uniform, min: 1s, max: 5s }
    child_first_probability: 0.5
    child_first_for: 10s
defaults:
  interval: 60s
  timeout: 60s
  objective: 20s
  pair_interval: 20s
  poll: { first: 500ms, max_gap: 1s }
paths:
  - { source: src, target: clean, contract: { causal: true } }
  - { source: src, target: racy, contract: { causal: true } }
"#,
    );
    common::run_for(&app, Duration::from_secs(610)).await;
    let landscape = lagwatch_emulator::simulated::landscape(&app);
    let label = |target: &str| format!("source=\"src\",target=\"{target}\"");
    let counted = |name: &str, key: &str, value: &str, target: &str| {
        common::sample(&app, name, &format!("{key}=\"{value}\",{}", label(target)))
    };

    let mut results = std::collections::HashMap::new();
    for path in app.engine.paths() {
        let target = path.spec.target.clone();
        let pairs = path.state().pairs.clone();
        // A pair every 20 s from 20 s; those still being read at the stop are not recorded.
        assert!(
            (28..=30).contains(&pairs.len()),
            "{target}: {}",
            pairs.len()
        );
        let mut violated = 0;
        for p in &pairs {
            let truth = landscape
                .truth(&target, p.child.key())
                .expect("the child's truth");
            let first = truth.child_first.is_some();
            assert_eq!(
                p.result == PairResult::Violated,
                first,
                "{target}: {p:?} against {truth:?}"
            );
            if first {
                violated += 1;
                assert_eq!(p.certainty, Some(Certainty::Certain), "one read of both");
            } else {
                assert_eq!(p.result, PairResult::Ordered, "{p:?}");
                let gap = p.gap().expect("an ordered pair's gap");
                // The parent arrives at most 4 s before the child (lags of 1 s to 5 s).
                assert!(gap <= Duration::from_secs(5), "{p:?}");
            }
        }
        let ordered = pairs.len() - violated;
        assert_eq!(
            counted("lagwatch_causal_pairs_total", "result", "violated", &target),
            violated as f64
        );
        assert_eq!(
            counted("lagwatch_causal_pairs_total", "result", "ordered", &target),
            ordered as f64
        );
        assert_eq!(
            counted(
                "lagwatch_causal_violations_total",
                "certainty",
                "certain",
                &target
            ),
            violated as f64
        );
        assert_eq!(
            counted(
                "lagwatch_contract_violations_total",
                "guarantee",
                "causal",
                &target
            ),
            violated as f64
        );
        assert_eq!(
            common::sample(&app, "lagwatch_causal_gap_seconds_count", &label(&target)),
            ordered as f64
        );
        eprintln!("{target}: {violated} of {} pairs violated", pairs.len());
        results.insert(target, violated);
    }
    assert_eq!(results["clean"], 0, "an in-order replica never violates");
    assert!(
        (5..=25).contains(&results["racy"]),
        "about half of the racy replica's children came first: {}",
        results["racy"]
    );
    // Every pair was deleted, child and parent (the update canary stays, by design).
    let left: Vec<String> = landscape
        .source_keys("src")
        .into_iter()
        .filter(|k| !lagwatch::sentinel::SentinelId::is_canary_key(k))
        .collect();
    assert_eq!(left, Vec::<String>::new());
}

#[test]
fn pairs_default_to_every_five_minutes_and_a_declared_causal_needs_them() {
    let ok = lagwatch_emulator::REGISTRY
        .from_yaml(
            "c.yaml",
            r#"
instance: t
systems:
  src: { kind: simulated }
  dst: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 1s } }
paths:
  - { source: src, target: dst }
"#,
        )
        .expect("valid");
    assert_eq!(
        ok.paths[0].pair_interval.map(|d| d.get()),
        Some(Duration::from_secs(300))
    );
    assert!(!ok.paths[0].contract.causal, "simulated promises nothing");

    let err = lagwatch_emulator::REGISTRY
        .from_yaml(
            "c.yaml",
            r#"
instance: t
systems:
  src: { kind: simulated }
  dst: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 1s } }
paths:
  - { source: src, target: dst, pair_interval: 0s, contract: { causal: true } }
"#,
        )
        .expect_err("causal with pairs off");
    let text = err.to_string();
    assert!(text.contains("c.yaml"), "{text}");
    assert!(text.contains("paths[0].contract.causal"), "{text}");
    assert!(text.contains("pair_interval: 0s"), "{text}");
}
