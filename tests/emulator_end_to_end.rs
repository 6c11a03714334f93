//! lagwatch through its real connectors against the emulated estate over loopback HTTP:
//! Entra client-credentials tokens, Dataverse upsert writes, read-back, lookups in a second
//! environment, deletes, and the measured lag checked against the emulator's ground truth.

use std::sync::Arc;
use std::time::Duration;

use lagwatch::app::App;
use lagwatch::config::Config;
use lagwatch::emulator::{Emulator, Scenario};
use lagwatch::probe::Outcome;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataverse_to_dataverse_through_the_emulator_matches_ground_truth() {
    let emu = Emulator::new(Scenario::demo().expect("demo scenario"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let server = {
        let emu = emu.clone();
        let stop = stop.clone();
        tokio::spawn(async move { emu.serve(listener, stop).await })
    };
    let dir = std::env::temp_dir().join(format!("lagwatch-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("client-secret");
    std::fs::write(&secret, "demo-only-secret\n").unwrap();
    let system = |env: &str| {
        format!(
            r#"
    kind: dataverse
    url: {base}/{env}
    table: accounts
    id_column: accountid
    key_column: accountnumber
    payload_column: description
    fields: {{ customertypecode: 3 }}
    scope: {base}/{env}/.default
    auth:
      method: client_secret
      tenant_id: contoso
      client_id: 5f8a0c3e-0000-4000-8000-1a9e0de70001
      client_secret: file:{}
      authority: {base}/entra"#,
            secret.display()
        )
    };
    let yaml = format!(
        "instance: e2e\nsystems:\n  crm:{}\n  crm2:{}\npaths:\n  - {{ source: crm, target: crm2, interval: 2s, timeout: 30s, objective: 10s }}\n",
        system("crm"),
        system("crm2")
    );
    let app = Arc::new(
        App::build(Config::from_yaml("e2e.yaml", &yaml).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let mut rx = app.engine.subscribe();
    let run = tokio::spawn(app.engine.clone().run(stop.clone()));
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while records.len() < 6 {
        let r = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("probes resolve within a minute")
            .expect("engine publishes");
        records.push(r);
    }
    let text = app.engine.metrics().render();
    stop.cancel();
    run.await.unwrap();
    server.await.unwrap().unwrap();

    for r in &records {
        assert_eq!(r.outcome, Outcome::Converged, "{r:?}");
        let est = r.estimate.unwrap();
        let truth = emu
            .truth("crm2", r.sentinel.key())
            .or_else(|| emu.truth("crm2", &r.sentinel.uuid().to_string()))
            .unwrap_or_else(|| panic!("ground truth for {}", r.sentinel))
            .lag()
            .expect("arrived");
        assert!(
            est.contains(truth, Duration::from_millis(1)),
            "measured {:?} ± {:?}, truth {truth:?}",
            est.lag,
            est.uncertainty
        );
    }
    for series in [
        "lagwatch_sentinel_writes_total{outcome=\"ok\",source=\"crm\"}",
        "lagwatch_requests_total{operation=\"write\",status=\"2xx\",system=\"crm\"}",
        "lagwatch_requests_total{operation=\"lookup\",status=\"2xx\",system=\"crm2\"}",
        "lagwatch_requests_total{operation=\"delete\",status=\"2xx\",system=\"crm\"}",
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
    assert!(!text.contains("demo-only-secret"));
}
