//! lagwatch against an emulator that misbehaves on purpose (`/_faults`, see
//! `emulator::faults`): a target down, slower than the deadline, in a 5xx or 429 storm,
//! answering garbage, cutting its body or sending far too much; the token endpoint down or
//! answering garbage; a host that does not resolve; the emulator's wall clock stepped.
//!
//! For each fault the same four promises are checked over loopback HTTP, with the library
//! `App` serving `/metrics` on 127.0.0.1:0:
//! 1. the monitor stays up: `/metrics` answers throughout;
//! 2. `/metrics` says what is wrong (request status, `lagwatch_system_up`, outcome and error
//!    counters);
//! 3. no lag figure comes from a failed request: every converged probe's bound contains the
//!    emulator's ground truth, and nothing is reported as a mismatch;
//! 4. it recovers by itself: once the fault is cleared the system is up and probes converge.
//!
//! Each fault has its own emulator and monitor, so the tests run concurrently.

use crate::common::entra;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lagwatch::app::App;
use lagwatch::probe::{Outcome, ProbeRecord};
use lagwatch_emulator::{Emulator, Scenario};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const SCENARIO: &str = r#"
seed: 11
credentials:
  - { tenant: contoso, client_id: lagwatch-faults, client_secret: faults-secret }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, description: string }
  crm2:
    tables:
      accounts:
        id: accountid
        columns: { name: string, description: string }
fno:
  fin: { default_company: dat }
search:
  srch: { api_keys: [faults-search-key] }
elasticsearch:
  logs:
    users: { elastic: faults-password }
    refresh_interval: 1s
replicas:
  fno:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: CustomersV3, company: usmf }
    key: name
    map: { name: OrganizationName }
    lag: { distribution: log_normal, median: 300ms, p99: 1s }
  crm2:
    source: crm/accounts
    target: { kind: dataverse, env: crm2, table: accounts }
    key: name
    lag: { distribution: log_normal, median: 300ms, p99: 1s }
  search:
    source: crm/accounts
    target: { kind: search, service: srch, index: sentinels }
    key: name
    lag: { distribution: log_normal, median: 300ms, p99: 1s }
  es:
    source: crm/accounts
    target: { kind: elasticsearch, cluster: logs, index: sentinels }
    key: name
    lag: { distribution: log_normal, median: 300ms, p99: 1s }
"#;

/// The monitor's system block for `name`, served by the emulator at `base`.
fn system_yaml(name: &str, base: &str, secrets: &std::path::Path) -> String {
    let secret = |f: &str| format!("file:{}", secrets.join(f).display());
    let entra = format!(
        "auth: {{ method: client_secret, tenant_id: contoso, client_id: lagwatch-faults, \
         client_secret: \"{}\", authority: \"{base}/entra\" }}",
        secret("client_secret")
    );
    match name {
        "crm" | "crm2" => format!(
            "  {name}:\n    kind: dataverse\n    url: {base}/{name}\n    table: accounts\n    \
             id_column: accountid\n    key_column: name\n    payload_column: description\n    \
             scope: https://{name}.crm.dynamics.com/.default\n    {entra}\n"
        ),
        "fno" => format!(
            "  fno:\n    kind: fo_odata\n    url: {base}/fno/fin\n    entity_set: CustomersV3\n    \
             key_field: OrganizationName\n    data_area_id: usmf\n    sync_grace: 4s\n    \
             scope: https://fin.operations.dynamics.com/.default\n    {entra}\n"
        ),
        "search" => format!(
            "  search:\n    kind: azure_search\n    endpoint: {base}/search/srch\n    index: sentinels\n    \
             mode: lookup\n    key_field: name\n    payload_field: description\n    \
             auth: {{ method: api_key, key: \"{}\" }}\n",
            secret("search_key")
        ),
        "es" => format!(
            "  es:\n    kind: elasticsearch\n    url: {base}/es/logs\n    index: sentinels\n    \
             mode: searchable\n    key_field: name\n    payload_field: description\n    \
             auth: {{ method: basic, username: elastic, password: \"{}\" }}\n",
            secret("es_password")
        ),
        // A host in the reserved `.invalid` domain never resolves (RFC 6761).
        "ghost" => format!(
            "  ghost:\n    kind: elasticsearch\n    url: http://lagwatch-faults.invalid:9200/es/logs\n    \
             index: sentinels\n    mode: searchable\n    key_field: name\n    \
             payload_field: description\n    \
             auth: {{ method: basic, username: elastic, password: \"{}\" }}\n",
            secret("es_password")
        ),
        other => panic!("no system {other}"),
    }
}

/// Everything a fault test runs: the emulator, the monitor, and what the monitor published.
struct Rig {
    emulator: Arc<Emulator>,
    base: String,
    metrics_url: String,
    http: reqwest::Client,
    records: Arc<Mutex<Vec<(Instant, ProbeRecord)>>>,
    stop: CancellationToken,
    emulator_stop: CancellationToken,
    app_task: JoinHandle<std::io::Result<()>>,
    _secrets: tempfile::TempDir,
}

impl Rig {
    /// Starts the emulator, lets `before` set faults on it, then starts a monitor probing
    /// `crm` → each of `targets` every second.
    async fn start(targets: &[&str], before: &[Value]) -> Rig {
        let emulator_stop = CancellationToken::new();
        let emulator = Emulator::new(Scenario::from_yaml(SCENARIO).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        {
            let (emulator, stop) = (emulator.clone(), emulator_stop.clone());
            tokio::spawn(async move { emulator.serve(listener, stop).await });
        }
        let http = reqwest::Client::new();
        for f in before {
            post_fault(&http, &base, f).await;
        }
        let (app_task, stop, metrics_url, records, secrets) = monitor(&base, targets).await;
        Rig {
            emulator,
            base,
            metrics_url,
            http,
            records,
            stop,
            emulator_stop,
            app_task,
            _secrets: secrets,
        }
    }

    /// Stops the monitor (it must still be running: a crash would have ended its task),
    /// checks what it published against the truth, and starts a new one (same instance) on
    /// the same emulator, as a restart does.
    async fn restart(&mut self, targets: &[&str], between: impl AsyncFnOnce(&Rig)) {
        self.stop_monitor().await;
        between(self).await;
        let (app_task, stop, metrics_url, records, secrets) = monitor(&self.base, targets).await;
        self.app_task = app_task;
        self.stop = stop;
        self.metrics_url = metrics_url;
        self.records = records;
        self._secrets = secrets;
    }

    async fn stop_monitor(&mut self) -> Vec<ProbeRecord> {
        assert!(!self.app_task.is_finished(), "the monitor is still running");
        self.stop.cancel();
        (&mut self.app_task)
            .await
            .expect("no panic")
            .expect("clean stop");
        let records: Vec<ProbeRecord> = self
            .records
            .lock()
            .unwrap()
            .drain(..)
            .map(|(_, r)| r)
            .collect();
        check_against_truth(&self.emulator, &records);
        records
    }

    /// Names of this test's sentinels in the source, read through the emulated Web API.
    async fn sentinels_in_source(&self) -> Vec<String> {
        entra::sentinels_in(
            &self.http,
            &self.base,
            "crm",
            ("lagwatch-faults", "faults-secret"),
            "faults",
        )
        .await
        .into_iter()
        .collect()
    }

    async fn fault(&self, fault: Value) {
        post_fault(&self.http, &self.base, &fault).await;
    }

    async fn clear(&self) -> Instant {
        let r = self
            .http
            .delete(format!("{}/_faults", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        Instant::now()
    }

    /// `/metrics` over HTTP: the monitor must answer it whatever the fault.
    async fn metrics(&self) -> Metrics {
        let r = self
            .http
            .get(&self.metrics_url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("/metrics answers during faults");
        assert_eq!(r.status(), 200);
        Metrics(r.text().await.unwrap())
    }

    /// Polls `/metrics` until `check` holds (within `within`), returning that scrape.
    async fn until(
        &self,
        what: &str,
        within: Duration,
        check: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        let deadline = Instant::now() + within;
        loop {
            let m = self.metrics().await;
            if check(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "{what} within {within:?}; last scrape:\n{}",
                m.relevant()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Converged probes of `target` published after `since`.
    fn converged_since(&self, target: &str, since: Instant) -> usize {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, r)| {
                *at >= since && &*r.target == target && r.outcome == Outcome::Converged
            })
            .count()
    }

    /// Waits for `n` converged probes of `target` after `since`.
    async fn converges(&self, target: &str, since: Instant, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.converged_since(target, since) < n {
            assert!(
                Instant::now() < deadline,
                "{target}: {n} probes converge within {within:?}; got {}",
                self.converged_since(target, since)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the monitor and the emulator, checking every published probe against the
    /// ground truth. Returns the records.
    async fn finish(mut self) -> Vec<ProbeRecord> {
        let records = self.stop_monitor().await;
        self.emulator_stop.cancel();
        records
    }
}

type Monitor = (
    JoinHandle<std::io::Result<()>>,
    CancellationToken,
    String,
    Arc<Mutex<Vec<(Instant, ProbeRecord)>>>,
    tempfile::TempDir,
);

/// A monitor (instance `faults`) probing `crm` → each of `targets` on the emulator at `base`
/// every second, serving `/metrics` on loopback; its published records are collected.
async fn monitor(base: &str, targets: &[&str]) -> Monitor {
    let secrets = tempfile::tempdir().unwrap();
    for (file, value) in [
        ("client_secret", "faults-secret"),
        ("search_key", "faults-search-key"),
        ("es_password", "faults-password"),
    ] {
        std::fs::write(secrets.path().join(file), value).unwrap();
    }
    let mut yaml = String::from(
        "instance: faults\ndefaults:\n  interval: 1s\n  timeout: 6s\n  objective: 3s\n  \
         request_timeout: 1s\n  max_in_flight: 12\nsystems:\n",
    );
    yaml.push_str(&system_yaml("crm", base, secrets.path()));
    for t in targets {
        yaml.push_str(&system_yaml(t, base, secrets.path()));
    }
    yaml.push_str("paths:\n");
    for t in targets {
        yaml.push_str(&format!("  - {{ source: crm, target: {t} }}\n"));
    }
    let config = lagwatch_emulator::REGISTRY
        .from_yaml("faults.yaml", &yaml)
        .unwrap_or_else(|e| panic!("{e}"));
    let app = Arc::new(App::build(config).unwrap_or_else(|e| panic!("{e}")));

    let records = Arc::new(Mutex::new(Vec::new()));
    let mut rx = app.engine.subscribe();
    {
        let records = records.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(r) => records.lock().unwrap().push((Instant::now(), r)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let app_task = {
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move { app.run(listener, stop).await })
    };
    (
        app_task,
        stop,
        format!("http://{addr}/metrics"),
        records,
        secrets,
    )
}

async fn post_fault(http: &reqwest::Client, base: &str, fault: &Value) {
    let r = http
        .post(format!("{base}/_faults"))
        .json(fault)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{fault}: {}", r.text().await.unwrap());
}

/// No lag from a failed request: a converged probe's bound holds the truth; nothing is a
/// mismatch (the scenario changes no content, so a mismatch could only come from a misread
/// body); outcomes without a converged answer carry no estimate.
fn check_against_truth(emulator: &Emulator, records: &[ProbeRecord]) {
    for r in records {
        match r.outcome {
            Outcome::Converged => {
                let truth = emulator
                    .truth(&r.target, r.sentinel.key())
                    .unwrap_or_else(|| panic!("truth of {} in {}", r.sentinel, r.target));
                let visible = if &*r.target == "es" {
                    truth.searchable_at
                } else {
                    truth.visible_at
                };
                let lag = visible
                    .expect("a converged sentinel arrived")
                    .saturating_duration_since(truth.committed_at);
                let est = r.estimate.expect("a converged probe has an estimate");
                assert!(
                    est.contains(lag, Duration::from_millis(1)),
                    "{}: measured {:?} ± {:?}, truth {lag:?}",
                    r.target,
                    est.lag,
                    est.uncertainty
                );
            }
            Outcome::Mismatch => panic!("a mismatch from a fault: {r:?}"),
            _ => assert!(r.estimate.is_none(), "no lag without an answer: {r:?}"),
        }
    }
}

/// One `/metrics` scrape.
struct Metrics(String);

impl Metrics {
    /// Sum of the samples of `name` whose labels include every pair of `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name, labels).iter().sum()
    }

    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        let mut out = Vec::new();
        for line in self.0.lines() {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            let (set, value) = match rest.strip_prefix('{') {
                Some(r) => match r.split_once("} ") {
                    Some((set, v)) => (set, v),
                    None => continue,
                },
                None if rest.starts_with(' ') => ("", rest),
                None => continue,
            };
            let pairs: BTreeMap<&str, &str> = set
                .split("\",")
                .filter_map(|p| {
                    let (k, v) = p.split_once("=\"")?;
                    Some((k.trim(), v.trim_end_matches('"')))
                })
                .collect();
            if labels.iter().all(|(k, v)| pairs.get(k) == Some(v))
                && let Ok(v) = value.trim().parse::<f64>()
            {
                out.push(v);
            }
        }
        out
    }

    fn up(&self, system: &str) -> Option<f64> {
        self.samples("lagwatch_system_up", &[("system", system)])
            .first()
            .copied()
    }

    fn requests(&self, system: &str, status: &str) -> f64 {
        self.sum(
            "lagwatch_requests_total",
            &[("system", system), ("status", status)],
        )
    }

    fn lookup_errors(&self, target: &str, kind: &str) -> f64 {
        self.sum(
            "lagwatch_lookup_errors_total",
            &[("target", target), ("kind", kind)],
        )
    }

    fn probes(&self, target: &str, outcome: &str) -> f64 {
        self.sum(
            "lagwatch_probes_total",
            &[("target", target), ("outcome", outcome)],
        )
    }

    /// The lines a failure message needs.
    fn relevant(&self) -> String {
        self.0
            .lines()
            .filter(|l| {
                !l.starts_with('#')
                    && [
                        "lagwatch_system_up",
                        "lagwatch_requests_total",
                        "lagwatch_lookup_errors_total",
                        "lagwatch_probes_total",
                        "lagwatch_sentinel_writes_total",
                        "lagwatch_throttled_total",
                        "lagwatch_clock_offset_seconds",
                    ]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

const SETTLE: Duration = Duration::from_secs(20);

/// The shared shape of a target fault: converge, fault `target` for a window in which
/// `during` must come to hold and at least one probe must end without converging, clear,
/// converge again with the system up.
async fn target_fault(target: &str, fault: Value, during: impl Fn(&Metrics, &Metrics) -> bool) {
    let rig = Rig::start(&[target], &[]).await;
    let t0 = Instant::now();
    rig.converges(target, t0, 1, SETTLE).await;
    let before = rig.metrics().await;
    assert_eq!(before.up(target), Some(1.0), "{}", before.relevant());

    rig.fault(fault).await;
    let failed_before = before.probes(target, "error") + before.probes(target, "timeout");
    rig.until(&format!("{target}: the fault shows"), SETTLE, |m| {
        during(&before, m)
            && m.probes(target, "error") + m.probes(target, "timeout") > failed_before
    })
    .await;

    let cleared = rig.clear().await;
    rig.converges(target, cleared, 2, SETTLE).await;
    let after = rig
        .until(&format!("{target}: up again"), SETTLE, |m| {
            m.up(target) == Some(1.0)
        })
        .await;
    assert!(after.probes(target, "converged") > before.probes(target, "converged"));
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_closes_connections_is_down_and_recovers() {
    target_fault(
        "fno",
        json!({"prefix": "/fno/", "mode": "down"}),
        |before, m| {
            m.up("fno") == Some(0.0)
                && m.requests("fno", "transport_error") > before.requests("fno", "transport_error")
                && m.lookup_errors("fno", "transport") > before.lookup_errors("fno", "transport")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_slower_than_the_deadline_is_down_and_recovers() {
    // request_timeout is 1 s: every lookup is abandoned by its deadline.
    target_fault(
        "crm2",
        json!({"prefix": "/crm2/", "mode": "slow", "delay_seconds": 3}),
        |before, m| {
            m.up("crm2") == Some(0.0)
                && m.requests("crm2", "transport_error")
                    > before.requests("crm2", "transport_error")
                && m.lookup_errors("crm2", "timeout") > before.lookup_errors("crm2", "timeout")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_storm_is_down_and_recovers() {
    target_fault(
        "es",
        json!({"prefix": "/es/", "mode": "status", "status": 503}),
        |before, m| {
            m.up("es") == Some(0.0)
                && m.requests("es", "5xx") > before.requests("es", "5xx")
                && m.lookup_errors("es", "unavailable") > before.lookup_errors("es", "unavailable")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_write_cut_after_it_was_applied_is_an_error_and_the_next_start_sweeps_it() {
    // Every answer of the source is cut mid-body: writes (applied before the answer was cut),
    // read-backs and deletes all fail. No probe starts from a failed write, no read-your-write
    // violation is invented from a failed read, and the sentinels the failed writes left are
    // deleted by the next start's sweep.
    let mut rig = Rig::start(&["fno"], &[]).await;
    let t0 = Instant::now();
    rig.converges("fno", t0, 1, SETTLE).await;
    let before = rig.metrics().await;
    let write_errors =
        |m: &Metrics| m.sum("lagwatch_sentinel_writes_total", &[("outcome", "error")]);
    rig.fault(json!({"prefix": "/crm/", "mode": "reset"})).await;
    let m = rig
        .until("crm: down, writes fail", SETTLE, |m| {
            m.up("crm") == Some(0.0) && write_errors(m) >= write_errors(&before) + 3.0
        })
        .await;
    assert!(m.requests("crm", "transport_error") >= 3.0);
    let cleared = rig.clear().await;
    rig.converges("fno", cleared, 2, SETTLE).await;
    let m = rig.metrics().await;
    assert_eq!(
        m.sum(
            "lagwatch_read_your_writes_violations_total",
            &[("source", "crm")]
        ),
        0.0
    );
    let leaked = Arc::new(Mutex::new(Vec::new()));
    rig.restart(&["fno"], async |rig: &Rig| {
        // What the stopped monitor left: the sentinels of the cut writes (it deleted its own
        // in-flight ones on the way out). The sweep takes those older than the longest timeout.
        *leaked.lock().unwrap() = rig.sentinels_in_source().await;
        tokio::time::sleep_until(cleared + Duration::from_secs(7)).await;
    })
    .await;
    let leaked = leaked.lock().unwrap().clone();
    assert!(!leaked.is_empty(), "the cut writes were applied");
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = rig.sentinels_in_source().await;
        if !leaked.iter().any(|l| now.contains(l)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the start-up sweep deletes {leaked:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    rig.converges("fno", Instant::now(), 1, SETTLE).await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_refuses_deletes_shows_sentinels_piling_up_and_drains_them() {
    // The principal may create records but not delete them (403 on DELETE only): probes go on,
    // each finished sentinel stays in the source, and lagwatch_sentinel_deletes_owed says how
    // many; once deletes are allowed again the janitor (every 30 s) deletes them all.
    let rig = Rig::start(&["fno"], &[]).await;
    rig.converges("fno", Instant::now(), 1, SETTLE).await;
    let owed = |m: &Metrics| m.sum("lagwatch_sentinel_deletes_owed", &[("source", "crm")]);
    let delete_errors = |m: &Metrics| {
        m.sum(
            "lagwatch_sentinel_deletes_total",
            &[("source", "crm"), ("outcome", "error")],
        )
    };
    let before = rig.metrics().await;
    assert_eq!(owed(&before), 0.0, "{}", before.relevant());

    rig.fault(json!({"prefix": "/crm/", "methods": ["DELETE"], "mode": "status", "status": 403}))
        .await;
    let refused = Instant::now();
    rig.converges("fno", refused, 3, SETTLE).await;
    let m = rig
        .until("crm: owed deletes counted", SETTLE, |m| {
            owed(m) >= 3.0 && delete_errors(m) >= delete_errors(&before) + 3.0
        })
        .await;
    let left = rig.sentinels_in_source().await;
    assert!(
        left.len() as f64 >= owed(&m),
        "every owed delete is a sentinel still in the source: {} owed, {left:?}",
        owed(&m)
    );
    assert!(m.requests("crm", "4xx") >= 3.0, "{}", m.relevant());

    rig.clear().await;
    // The next janitor round (at most 30 s away) deletes every one.
    let m = rig
        .until("crm: owed deletes drained", Duration::from_secs(45), |m| {
            owed(m) == 0.0
        })
        .await;
    assert!(delete_errors(&m) >= 3.0);
    let now = rig.sentinels_in_source().await;
    let kept: Vec<&String> = left.iter().filter(|id| now.contains(id)).collect();
    assert!(
        kept.is_empty(),
        "refused sentinels deleted once allowed: {kept:?}"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_5xx_storm_costs_reads_but_no_lag_is_wrong() {
    // Half of the reads fail: probes still converge between the failures, and their bounds,
    // built only from the answered reads, still hold the truth (checked in `finish`).
    let rig = Rig::start(&["fno"], &[]).await;
    let t0 = Instant::now();
    rig.converges("fno", t0, 1, SETTLE).await;
    let before = rig.metrics().await;
    rig.fault(json!({"prefix": "/fno/", "mode": "status", "status": 500, "probability": 0.5}))
        .await;
    let storm = Instant::now();
    rig.converges("fno", storm, 4, SETTLE).await;
    let m = rig.metrics().await;
    assert!(m.requests("fno", "5xx") > before.requests("fno", "5xx"));
    assert!(m.lookup_errors("fno", "unavailable") > before.lookup_errors("fno", "unavailable"));
    rig.clear().await;
    rig.until("fno: up", SETTLE, |m| m.up("fno") == Some(1.0))
        .await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_mid_way_is_a_transport_error_and_recovers() {
    target_fault(
        "crm2",
        json!({"prefix": "/crm2/", "mode": "reset"}),
        |before, m| {
            m.up("crm2") == Some(0.0)
                && m.requests("crm2", "transport_error")
                    > before.requests("crm2", "transport_error")
                && m.lookup_errors("crm2", "transport") > before.lookup_errors("crm2", "transport")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_json_is_a_bad_response_not_an_absence() {
    // The system answered (2xx, up); the body is not an answer, so it moves no bound.
    target_fault(
        "fno",
        json!({"prefix": "/fno/", "mode": "truncated"}),
        |before, m| {
            m.up("fno") == Some(1.0)
                && m.lookup_errors("fno", "bad_response")
                    > before.lookup_errors("fno", "bad_response")
                && m.requests("fno", "2xx") > before.requests("fno", "2xx")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_body_is_refused_at_the_cap_without_reading_it() {
    let rig = Rig::start(&["es"], &[]).await;
    let t0 = Instant::now();
    rig.converges("es", t0, 1, SETTLE).await;
    let before = rig.metrics().await;
    // 256 MiB per answer: 64 times lagwatch's 4 MiB cap.
    rig.fault(json!({"prefix": "/es/", "mode": "huge", "bytes": 256u64 << 20}))
        .await;
    rig.until("es: huge bodies refused", SETTLE, |m| {
        m.lookup_errors("es", "bad_response") >= before.lookup_errors("es", "bad_response") + 3.0
            && m.probes("es", "error") + m.probes("es", "timeout")
                > before.probes("es", "error") + before.probes("es", "timeout")
    })
    .await;
    let listed: Value = rig
        .http
        .get(format!("{}/_faults", rig.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cleared = rig.clear().await;
    // The emulator streams the body as it is read: lagwatch stopped reading each answer soon
    // after its cap, instead of taking in 256 MiB (socket buffers hold a few MiB more).
    let (sent, answers) = (
        listed["huge"]["bytes_sent"].as_u64().unwrap(),
        listed["huge"]["responses"].as_u64().unwrap(),
    );
    assert!(answers >= 3, "{listed}");
    assert!(
        sent / answers < 32 << 20,
        "{} MiB sent per huge answer",
        (sent / answers) >> 20
    );
    rig.converges("es", cleared, 2, SETTLE).await;
    rig.until("es: up", SETTLE, |m| m.up("es") == Some(1.0))
        .await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bodies_are_bad_responses_not_absences() {
    // HTML where JSON was expected, and JSON of a shape no service sends: never `Absent`
    // (which would move a lower bound past the truth), always a counted bad response.
    let targets = ["fno", "crm2", "search", "es"];
    let rig = Rig::start(&targets, &[]).await;
    let t0 = Instant::now();
    for t in targets {
        rig.converges(t, t0, 1, SETTLE).await;
    }
    let before = rig.metrics().await;
    for (prefix, body) in [
        ("/fno/", "html"),
        ("/crm2/", "wrong_shape"),
        ("/search/", "html"),
        ("/es/", "wrong_shape"),
    ] {
        rig.fault(json!({"prefix": prefix, "mode": "garbage", "body": body}))
            .await;
    }
    rig.until(
        "every target: bad responses and failed probes",
        SETTLE,
        |m| {
            targets.iter().all(|t| {
                m.lookup_errors(t, "bad_response") > before.lookup_errors(t, "bad_response")
                    && m.probes(t, "error") > before.probes(t, "error")
            })
        },
    )
    .await;
    let cleared = rig.clear().await;
    for t in targets {
        rig.converges(t, cleared, 2, SETTLE).await;
    }
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_is_honoured_not_hammered_and_recovers() {
    // search: Retry-After 120 s, longer than the test; es: 2 s, to see recovery.
    let rig = Rig::start(&["search", "es"], &[]).await;
    let t0 = Instant::now();
    rig.converges("search", t0, 1, SETTLE).await;
    rig.converges("es", t0, 1, SETTLE).await;
    let before = rig.metrics().await;
    rig.fault(json!([
        {"prefix": "/search/", "mode": "throttle", "retry_after_seconds": 120},
        {"prefix": "/es/", "mode": "throttle", "retry_after_seconds": 2},
    ]))
    .await;
    let storm = rig
        .until("both throttled; probes end without a lag", SETTLE, |m| {
            ["search", "es"].iter().all(|t| {
                m.sum("lagwatch_throttled_total", &[("system", t)])
                    > before.sum("lagwatch_throttled_total", &[("system", t)])
                    && m.probes(t, "error") + m.probes(t, "timeout")
                        > before.probes(t, "error") + before.probes(t, "timeout")
            })
        })
        .await;
    // A throttled system answered: it is up, and its 429s are 4xx requests.
    assert_eq!(storm.up("search"), Some(1.0), "{}", storm.relevant());
    assert!(storm.requests("search", "4xx") > before.requests("search", "4xx"));
    // Retry-After 120 s is honoured: the first wave of 429s (the lookups already in flight)
    // and then nothing more is sent to search.
    let search_4xx = storm.requests("search", "4xx");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = rig.metrics().await;
    assert_eq!(
        later.requests("search", "4xx"),
        search_4xx,
        "requests sent inside Retry-After"
    );
    let cleared = rig.clear().await;
    rig.converges("es", cleared, 2, SETTLE).await;
    let after = rig.metrics().await;
    assert_eq!(
        after.requests("search", "4xx") + after.requests("search", "2xx"),
        later.requests("search", "4xx") + later.requests("search", "2xx"),
        "search still waits out its Retry-After after the storm"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_that_is_down_or_answers_garbage_blocks_nothing_for_good() {
    // From the start no token can be had: the source cannot be written and the target cannot
    // be read; lagwatch keeps trying (one token request per attempt) and never caches garbage.
    let rig = Rig::start(
        &["fno", "search"],
        &[json!({"prefix": "/entra/", "mode": "garbage", "body": "html"})],
    )
    .await;
    let writes_failed =
        |m: &Metrics| m.sum("lagwatch_sentinel_writes_total", &[("outcome", "error")]);
    let m = rig
        .until("writes fail without a token", SETTLE, |m| {
            writes_failed(m) >= 2.0
        })
        .await;
    assert_eq!(
        m.sum("lagwatch_sentinel_writes_total", &[("outcome", "ok")]),
        0.0
    );
    assert!(
        m.requests("crm", "2xx") == 0.0,
        "nothing reaches Dataverse without a token"
    );
    // /metrics names the cause: the token, not the system.
    assert!(
        m.sum(
            "lagwatch_token_errors_total",
            &[("system", "crm"), ("kind", "transport")]
        ) >= 2.0
    );
    for (mode, body) in [
        (json!("garbage"), json!("wrong_shape")),
        (json!("huge"), Value::Null),
        (json!("down"), Value::Null),
        (json!("status"), Value::Null),
    ] {
        rig.clear().await;
        let mut fault = json!({"prefix": "/entra/", "mode": mode});
        if !body.is_null() {
            fault["body"] = body;
        }
        rig.fault(fault).await;
        let seen = writes_failed(&rig.metrics().await);
        rig.until(
            &format!("writes fail with token fault {mode}"),
            SETTLE,
            |m| writes_failed(m) >= seen + 2.0,
        )
        .await;
    }
    assert_eq!(
        rig.metrics()
            .await
            .sum("lagwatch_sentinel_writes_total", &[("outcome", "ok")]),
        0.0
    );
    let cleared = rig.clear().await;
    rig.converges("fno", cleared, 2, SETTLE).await;
    // search authenticates with an API key: it measures once the source can be written again.
    rig.converges("search", cleared, 2, SETTLE).await;
    let after = rig.metrics().await;
    assert_eq!(after.up("crm"), Some(1.0));
    assert_eq!(after.up("fno"), Some(1.0));
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_does_not_resolve_is_down_without_a_lag() {
    // `ghost` is an Elasticsearch system on a `.invalid` host; `es` is the same cluster on the
    // emulator, so the writes are real and converge there. Recovering from a DNS failure is
    // the same code path as from any transport error (the next request resolves again; reqwest
    // caches no failed lookup), which the other tests cover: no /etc/hosts games here.
    let rig = Rig::start(&["ghost", "es"], &[]).await;
    let t0 = Instant::now();
    let m = rig
        .until(
            "ghost: down, transport errors, failed probes",
            SETTLE,
            |m| {
                m.up("ghost") == Some(0.0)
                    && m.requests("ghost", "transport_error") >= 1.0
                    && m.lookup_errors("ghost", "transport") + m.lookup_errors("ghost", "timeout")
                        >= 1.0
                    && m.probes("ghost", "error") >= 1.0
            },
        )
        .await;
    assert_eq!(m.probes("ghost", "converged"), 0.0);
    assert_eq!(
        m.sum("lagwatch_lag_seconds_count", &[("target", "ghost")]),
        0.0
    );
    rig.converges("es", t0, 2, SETTLE).await;
    let records = rig.finish().await;
    assert!(
        records
            .iter()
            .filter(|r| &*r.target == "ghost")
            .all(|r| r.outcome == Outcome::Error && r.estimate.is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_clock_steps_change_no_measured_lag() {
    // lagwatch measures lag on its monotonic clock: stepping the estate's wall clock an hour
    // forward, then an hour back, changes no measured lag (every bound still holds the truth).
    // The step shows in the clock offset gauge, which follows it and settles back at 0. The
    // step forward also expires the emulator's tokens: 401, one refresh, no lost probe.
    let rig = Rig::start(&["fno", "crm2"], &[]).await;
    let t0 = Instant::now();
    rig.converges("fno", t0, 1, SETTLE).await;
    let offset = |m: &Metrics| {
        m.samples("lagwatch_clock_offset_seconds", &[("system", "crm")])
            .first()
            .copied()
            .unwrap_or(f64::NAN)
    };
    let m = rig.metrics().await;
    assert!(offset(&m).abs() < 2.0, "{}", m.relevant());
    for step in [3600i64, -3600, 0] {
        if step == 0 {
            rig.clear().await;
        } else {
            rig.clear().await;
            rig.fault(json!({"mode": "clock", "offset_seconds": step}))
                .await;
        }
        let at = Instant::now();
        rig.until(
            &format!("clock offset follows a step to {step} s"),
            SETTLE,
            |m| (offset(m) - step as f64).abs() < 2.0,
        )
        .await;
        rig.converges("fno", at, 2, SETTLE).await;
        rig.converges("crm2", at, 2, SETTLE).await;
    }
    let m = rig.metrics().await;
    assert!(
        m.sum(
            "lagwatch_clock_offset_uncertainty_seconds",
            &[("system", "crm")]
        ) <= 1.0,
        "the offset settles: {}",
        m.relevant()
    );
    assert_eq!(m.probes("fno", "error") + m.probes("crm2", "error"), 0.0);
    rig.finish().await;
}

/// One raw HTTP/1.1 exchange: everything the server sent before closing.
async fn raw_get(base: &str, path: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    // A reset may end the read with an error; what arrived before it is what counts.
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the emulator neither answered nor closed"),
        }
    }
    out
}

#[tokio::test]
async fn the_emulator_faults_look_as_documented_on_the_wire() {
    let stop = CancellationToken::new();
    let emulator = Emulator::new(Scenario::from_yaml(SCENARIO).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    {
        let (emulator, stop) = (emulator.clone(), stop.clone());
        tokio::spawn(async move { emulator.serve(listener, stop).await });
    }
    let http = reqwest::Client::new();
    // The service description at `/`: a 200 JSON answer without credentials.
    let path = "/";

    // down: not one byte of a response.
    post_fault(&http, &base, &json!({"prefix": "/", "mode": "down"})).await;
    assert_eq!(raw_get(&base, path).await, b"", "down sends nothing");
    // Truth and the control endpoint are never faulted.
    let listed: Value = http
        .get(format!("{base}/_faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["faults"].as_array().unwrap().len(), 1, "{listed}");
    let truth = http
        .get(format!("{base}/_truth/es/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(truth.status(), 404);
    http.delete(format!("{base}/_faults")).send().await.unwrap();

    // The real answer, for comparison.
    let real = raw_get(&base, path).await;
    let real_text = String::from_utf8_lossy(&real).to_string();
    assert!(real_text.starts_with("HTTP/1.1 200"), "{real_text}");

    // reset: the head and part of the body, then the connection is gone.
    post_fault(&http, &base, &json!({"prefix": "/", "mode": "reset"})).await;
    let cut = String::from_utf8_lossy(&raw_get(&base, path).await).to_string();
    let (head, body) = cut.split_once("\r\n\r\n").expect("a head was sent");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let announced: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("a length")
        .parse()
        .unwrap();
    assert!(
        !body.is_empty() && body.len() < announced,
        "{} of {announced}",
        body.len()
    );
    http.delete(format!("{base}/_faults")).send().await.unwrap();

    // truncated: a complete HTTP answer whose JSON is cut short.
    post_fault(&http, &base, &json!({"prefix": "/", "mode": "truncated"})).await;
    let r = http.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert!(!body.is_empty());
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    http.delete(format!("{base}/_faults")).send().await.unwrap();

    // clock: the Date header moves with the step.
    post_fault(
        &http,
        &base,
        &json!({"mode": "clock", "offset_seconds": -86400}),
    )
    .await;
    let r = http.get(format!("{base}{path}")).send().await.unwrap();
    let date = r.headers()["date"].to_str().unwrap().to_string();
    let date = chrono::DateTime::parse_from_rfc2822(&date).unwrap();
    let behind = chrono::Utc::now().signed_duration_since(date).num_seconds();
    assert!((86_398..=86_402).contains(&behind), "{behind}");

    // Bad control requests are 400s, not panics.
    for bad in ["{", r#"{"prefix":"/es/","mode":"melt"}"#, "[]x"] {
        let r = http
            .post(format!("{base}/_faults"))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    stop.cancel();
}
