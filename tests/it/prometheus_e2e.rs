//! The shipped dashboards and rules against a real Prometheus and Alertmanager (Debian
//! packages `prometheus` and `prometheus-alertmanager`, installed by
//! `scripts/install-test-tools`): `lagwatch demo` is scraped every second with the rules of
//! `alerts/` loaded; Alertmanager routes to a webhook receiver inside this test.
//!
//! After warm-up: every rule evaluates without error, every series a rule selects exists, every
//! dashboard expression returns data through the HTTP API, and the demo's stuck path (crm → crm2,
//! whose replication stalls for 40 s every 3 minutes) pages: an alert with its `source` and
//! `target` labels reaches the webhook.
//!
//! Time is compressed in one place only (`tests/common/prometheus.rs`): the rules are loaded with
//! every `for:` hold divided by 60 (10m → 10s), because the demo's stalls last 40 s, not hours;
//! the expressions, labels and thresholds are the shipped ones. Without the binaries the test
//! skips, unless `LAGWATCH_REQUIRE_TOOLS=1` (CI), where it fails.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::demo::{start_demo, terminate};
use common::prometheus::{Stack, Webhook, query, rule_files};
use promql_parser::parser::{self, Expr};
use serde_json::Value;

/// Families whose series appear with their first event (an error, a skip, a 429, a resumed
/// probe): a panel over one of them may be empty until that happens.
const EVENT_BORN: &[&str] = &[
    "lagwatch_lookup_errors_total",
    "lagwatch_monotonic_read_violations_total",
    "lagwatch_probes_skipped_total",
    "lagwatch_probes_resumed_total",
    "lagwatch_throttled_total",
    "lagwatch_throttle_wait_seconds_total",
    "lagwatch_admission_timeouts_total",
    "lagwatch_sentinels_lost_total",
    "lagwatch_requests_total",
    "lagwatch_sentinel_deletes_owed",
    "lagwatch_sentinel_writes_total{outcome=\"throttled\"}",
    "lagwatch_reads_total",
    // Exists only for the guarantees a path declares (the demo's crm -> fabric declares none).
    "lagwatch_contract_violations_total",
    // Exist only where deletes are watched: not on lake targets such as crm -> fabric, the
    // path the path dashboard is checked on (the overview's panels must have them).
    "lagwatch_delete_lag_seconds",
    "lagwatch_deletes_lost_total",
    "lagwatch_resurrections_total",
    // Exist only on paths with an update canary: not on lake targets such as crm -> fabric.
    "lagwatch_version_staleness",
    "lagwatch_time_staleness_seconds",
    "lagwatch_updates_lost_total",
    // Exist only on paths that read a canary at a change log (no demo path does).
    "lagwatch_versions_lost_total",
    "lagwatch_versions_duplicated_total",
    // Exist from a path's first failed platform status read (the demo's reads succeed).
    "lagwatch_platform_status_errors_total",
];

/// Whether `selector` selects a family born with its first event and that has no series yet.
fn unborn(prom: SocketAddr, selector: &str) -> bool {
    EVENT_BORN.iter().any(|f| selector.starts_with(f))
        && query(prom, &format!("count({selector})")).is_empty()
}

/// The alerts that say a path is behind: what the stuck path must raise.
const PAGES: &[&str] = &["LagwatchLagAboveObjective", "LagwatchPathNotConverging"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every vector selector of an expression, as text (`metric{matchers}`).
fn selectors(expr: &Expr, out: &mut Vec<String>) {
    match expr {
        Expr::VectorSelector(vs) => out.push(vs.to_string()),
        Expr::MatrixSelector(ms) => out.push(ms.vs.to_string()),
        Expr::Aggregate(a) => {
            selectors(&a.expr, out);
            if let Some(p) = &a.param {
                selectors(p, out);
            }
        }
        Expr::Unary(u) => selectors(&u.expr, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, out);
            selectors(&b.rhs, out);
        }
        Expr::Paren(p) => selectors(&p.expr, out),
        Expr::Subquery(s) => selectors(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| selectors(a, out)),
        Expr::Extension(_) | Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
    }
}

/// `(file, record or alert name, expression)` of every rule.
fn rules() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for f in rule_files() {
        let text = std::fs::read_to_string(&f).expect("rule file");
        let v: Value = serde_saphyr::from_str(&text).expect("YAML");
        for g in v["groups"].as_array().into_iter().flatten() {
            for r in g["rules"].as_array().into_iter().flatten() {
                let name = r["record"].as_str().or(r["alert"].as_str()).unwrap_or("?");
                out.push((
                    f.file_name().unwrap().to_string_lossy().into_owned(),
                    name.to_string(),
                    r["expr"].as_str().expect("expr").to_string(),
                ));
            }
        }
    }
    out
}

/// Every panel expression of the dashboards, with Grafana's variables set for one demo path.
fn dashboard_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join("dashboards")).expect("dashboards/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let dash: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
        let mut panels: Vec<&Value> = Vec::new();
        for p in dash["panels"].as_array().into_iter().flatten() {
            panels.push(p);
            panels.extend(p["panels"].as_array().into_iter().flatten());
        }
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                let Some(expr) = t["expr"].as_str() else {
                    continue;
                };
                let q = expr
                    .replace("${__rate_interval}", "30s")
                    .replace("$__rate_interval", "30s")
                    .replace("${__range}", "5m")
                    .replace("$__range", "5m")
                    .replace("${job}", "lagwatch")
                    .replace("$job", "lagwatch")
                    .replace("${instance}", ".+")
                    .replace("$instance", ".+")
                    .replace("$source", "crm")
                    .replace("$target", "fabric");
                out.push((format!("{} / {}", path.display(), p["title"]), q));
            }
        }
    }
    assert!(out.len() > 40, "dashboards have their panels");
    out
}

#[test]
fn the_demo_scraped_by_prometheus_feeds_every_panel_and_rule_and_pages_on_its_stuck_path() {
    let Some(bin) = common::prometheus::binaries() else {
        return;
    };
    let demo = start_demo();
    let hook = Webhook::start();
    let stack = Stack::start(&bin, &[demo.addr], hook.addr, "[alertname, source, target]");
    let prom_addr = stack.prometheus;

    // The stuck path pages: crm2 stalls 50 s after start for 40 s (every 3 minutes).
    let deadline = Instant::now() + Duration::from_secs(200);
    let page = loop {
        let got = hook.bodies();
        let firing = got.iter().find_map(|body| {
            let v: Value = serde_json::from_str(body).ok()?;
            v["alerts"]
                .as_array()?
                .iter()
                .find(|a| {
                    a["status"] == "firing"
                        && a["labels"]["source"] == "crm"
                        && a["labels"]["target"] == "crm2"
                })
                .cloned()
        });
        if let Some(a) = firing {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "no page for crm -> crm2 within 200 s; received: {got:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let name = page["labels"]["alertname"].as_str().unwrap_or_default();
    assert!(
        ["critical", "warning"].contains(&page["labels"]["severity"].as_str().unwrap_or("")),
        "{page}"
    );
    let runbook = page["annotations"]["runbook_url"].as_str().unwrap_or("");
    assert!(
        runbook.ends_with(&format!("docs/runbooks/{name}.md")),
        "{page}"
    );
    assert!(repo().join(format!("docs/runbooks/{name}.md")).exists());
    // By default the link is the page the scraped lagwatch serves itself: it answers with it.
    let (host, path) = runbook
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .unwrap_or_else(|| panic!("runbook_url {runbook} is served by a lagwatch"));
    assert_eq!(host, demo.addr.to_string(), "{runbook}");
    let (status, _, body) = common::http_get(demo.addr, &format!("/{path}"));
    assert_eq!(status, 200, "{runbook}");
    assert!(
        body.starts_with(&format!("# {name}\n")),
        "{runbook}: {body:.80}"
    );
    // The healthy path beside it (dual-write, near-immediate) raises no such alert.
    let (_, _, body) = common::http_get(prom_addr, "/api/v1/alerts");
    let v: Value = serde_json::from_str(&body).expect("alerts JSON");
    for a in v["data"]["alerts"].as_array().into_iter().flatten() {
        let about_fno = a["labels"]["target"] == "fno";
        let lag_alert = PAGES.contains(&a["labels"]["alertname"].as_str().unwrap_or(""));
        assert!(!(about_fno && lag_alert), "the healthy path alerts: {a}");
    }

    // Every rule evaluated without error.
    let (_, _, body) = common::http_get(prom_addr, "/api/v1/rules");
    let v: Value = serde_json::from_str(&body).expect("rules JSON");
    let mut loaded = 0;
    for g in v["data"]["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            loaded += 1;
            assert_eq!(r["health"], "ok", "{r}");
        }
    }
    assert_eq!(loaded, rules().len(), "every rule loaded");
    // Every series a rule selects exists (no typo, no missing metric or label).
    for (file, name, expr) in rules() {
        let parsed = parser::parse(&expr).unwrap_or_else(|e| panic!("{file} {name}: {e}"));
        let mut sels = Vec::new();
        selectors(&parsed, &mut sels);
        for s in sels {
            assert!(
                !query(prom_addr, &format!("count({s})")).is_empty() || unborn(prom_addr, &s),
                "{file} {name}: no series for {s}"
            );
        }
    }
    // Every dashboard panel returns data, unless it needs a series that appears with its first
    // event and that event has not happened in this run (tests/it/dashboards.rs checks those
    // panels against an exposition where every such series exists).
    // A rate over a series born a moment ago has one sample in its window and no value yet:
    // such a panel is judged again, a few scrapes later, before it fails.
    for (panel, q) in dashboard_queries() {
        let parsed = parser::parse(&q).unwrap_or_else(|e| panic!("{panel}: {e}"));
        let mut sels = Vec::new();
        selectors(&parsed, &mut sels);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if !query(prom_addr, &q).is_empty() || sels.iter().any(|s| unborn(prom_addr, s)) {
                break;
            }
            if Instant::now() > deadline {
                let samples: Vec<String> = sels
                    .iter()
                    .map(|s| {
                        format!(
                            "{s}: {:?}",
                            query(prom_addr, &format!("count_over_time({s}[1m])"))
                        )
                    })
                    .collect();
                panic!("{panel}: no data for {q}; samples in the last minute: {samples:?}");
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    // Prometheus scraped OpenMetrics and kept the lag buckets' exemplars: each names a
    // sentinel whose probe lagwatch shows, with the same lag.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let (_, _, body) = common::http_get(
        prom_addr,
        &format!(
            "/api/v1/query_exemplars?query=lagwatch_lag_seconds_bucket&start={}&end={}",
            now - 600,
            now + 60
        ),
    );
    let v: Value = serde_json::from_str(&body).expect("exemplars JSON");
    let exemplars: Vec<&Value> = v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["exemplars"].as_array().into_iter().flatten())
        .collect();
    assert!(!exemplars.is_empty(), "no exemplars: {body}");
    let e = exemplars[exemplars.len() - 1];
    let key = e["labels"]["sentinel"].as_str().expect("sentinel label");
    assert!(key.starts_with("lagwatch-demo-"), "{e}");
    let (status, _, body) = common::http_get(demo.addr, &format!("/api/v1/probes?sentinel={key}"));
    assert_eq!(status, 200);
    let probes: Value = serde_json::from_str(&body).expect("probes JSON");
    let lag: f64 = e["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("value");
    let found = probes["probes"].as_array().into_iter().flatten().any(|p| {
        p["lag_seconds"]
            .as_f64()
            .is_some_and(|l| (l - lag).abs() < 1e-3)
    });
    assert!(found, "exemplar {e} has no probe in {body}");
    drop(stack);
    terminate(demo);
}
