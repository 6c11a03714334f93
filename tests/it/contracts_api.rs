//! The contract report (`/api/v1/contracts`): each guarantee declared against what was
//! measured over a window, with the sentinels that broke it, on simulated replicas whose
//! behaviour is known.

use crate::common;

use std::time::Duration;

use lagwatch::contracts::{ContractsReport, Status};
use lagwatch::probe::Outcome;
use tokio_util::sync::CancellationToken;

const ESTATE: &str = r#"
instance: t
systems:
  src: { kind: simulated }
  flappy: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 20s }, flap_probability: 1 }
  steady: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 2s } }
paths:
  - { source: src, target: flappy, interval: 30s, timeout: 2m, confirm: 15s, contract: { visibility: 10s, monotonic_reads: true } }
  - { source: src, target: steady, interval: 30s, timeout: 2m, confirm: 5s, delete_sample: 1, contract: { visibility: 10s, monotonic_reads: true, deletes: 1m } }
"#;

use common::guarantee;

#[tokio::test(start_paused = true)]
async fn each_guarantee_is_judged_by_what_was_measured_with_its_evidence() {
    let app = common::app(ESTATE);
    let mut rx = app.engine.subscribe();
    let stop = CancellationToken::new();
    let run = tokio::spawn(app.engine.clone().run(stop.clone()));
    let mut records = Vec::new();
    while records.len() < 16 {
        records.push(rx.recv().await.expect("records"));
    }
    // Let the last deletes be watched.
    tokio::time::sleep(Duration::from_secs(30)).await;
    stop.cancel();
    run.await.unwrap();

    let r = lagwatch::contracts::report(&app.engine, "t", Duration::from_secs(3600));
    assert_eq!(r.instance, "t");
    let resolved = |target: &str| records.iter().filter(|x| &*x.target == target).count() as u64;

    // Visibility: the flappy path (20 s) misses its 10 s objective every time, the steady one
    // (2 s) never.
    let v = guarantee(&r, "flappy", "visibility");
    assert_eq!(v.declared.as_deref(), Some("10s"));
    assert_eq!(v.status, Status::Violated);
    assert!(v.observations >= resolved("flappy"), "{v:?}");
    assert_eq!(v.violations, v.observations, "{v:?}");
    let v = guarantee(&r, "steady", "visibility");
    assert_eq!((v.status, v.violations), (Status::Holds, 0), "{v:?}");
    assert!(v.observations >= resolved("steady"));

    // Monotonic reads: every evidence sentinel of the flappy path is one of its probes, and
    // the count is the metric's.
    let m = guarantee(&r, "flappy", "monotonic_reads");
    assert_eq!(m.status, Status::Violated);
    let counted = app
        .engine
        .metrics()
        .paths
        .get("src", "flappy")
        .unwrap()
        .monotonic
        .get();
    assert_eq!(m.violations, counted);
    assert!(!m.evidence.is_empty());
    let keys: Vec<String> = app.engine.paths()[0]
        .state()
        .traces
        .iter()
        .map(|t| t.sentinel("t").key().to_string())
        .collect();
    for e in &m.evidence {
        assert!(keys.contains(&e.sentinel), "{e:?}");
    }
    assert_eq!(
        guarantee(&r, "steady", "monotonic_reads").status,
        Status::Holds
    );

    // Deletes: the steady replica applies a delete after its 2 s lag, well within the declared
    // minute, so every watched delete arrived; an undeclared guarantee still reports what was
    // measured.
    let d = guarantee(&r, "steady", "deletes");
    assert_eq!(d.declared.as_deref(), Some("1m"));
    assert_eq!(d.status, Status::Holds, "{d:?}");
    assert!(d.observations > 0);
    let steady = r.paths.iter().find(|p| p.target == "steady").unwrap();
    assert_eq!(
        steady.delete_lag.as_ref().map(|l| l.count),
        Some(d.observations)
    );
    assert_eq!(guarantee(&r, "flappy", "deletes").declared, None);

    // t-visibility: every counted read is in the report, by bucket.
    let fresh: u64 = steady.t_visibility.iter().map(|b| b.fresh).sum();
    assert!(fresh >= resolved("steady"));
    assert!(
        steady.t_visibility[..3].iter().all(|b| b.fresh == 0),
        "no read under 1 s saw a 2 s replica: {:?}",
        steady.t_visibility
    );
    assert!(records.iter().all(|x| x.outcome == Outcome::Converged));

    // A window that ends before anything happened reports no data.
    let r = lagwatch::contracts::report(&app.engine, "t", Duration::from_secs(1));
    assert!(r.window_start <= r.generated_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_takes_a_window_and_refuses_a_bad_one() {
    let app = std::sync::Arc::new(common::app(ESTATE));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let runner = {
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move { app.run(listener, stop).await })
    };
    let get = |path: String| tokio::task::spawn_blocking(move || common::http_get(addr, &path));
    let (status, _, body) = get("/api/v1/contracts?since=2h".into()).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let r: ContractsReport = serde_json::from_str(&body).expect("the report's JSON");
    assert_eq!(r.paths.len(), 2);
    // Nothing resolved yet: the flappy replica takes 20 s.
    assert_eq!(guarantee(&r, "flappy", "visibility").status, Status::NoData);
    for (q, why) in [
        ("since=8d", "at most 7d"),
        ("since=soon", "invalid duration"),
        ("until=1h", "accepted: since"),
    ] {
        let (status, _, body) = get(format!("/api/v1/contracts?{q}")).await.unwrap();
        assert_eq!(status, 400, "{q}");
        assert!(body.contains(why), "{q}: {body}");
    }
    stop.cancel();
    let _ = runner.await;
}
