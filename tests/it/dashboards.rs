//! The Grafana dashboards under `dashboards/` follow the project's conventions and query only
//! what lagwatch exports.
//!
//! Conventions (grafana/dashboard-linter's rules where they apply, plus ours): one `datasource`
//! variable used by every panel and target, no `__inputs`; a title, description and known unit
//! on every panel; `$__rate_interval` as the range of every range selector (or `$__range` in an
//! instant query, which charts the whole time range at once); counters (and
//! histogram `_bucket`/`_sum`/`_count` series) only inside `rate`/`increase`/`irate`, and
//! nothing else inside them; `job` and `instance` matchers on every selector; what every member
//! of an HA pair measures of the same replication never summed across the members (outside a
//! ratio or a quantile, where their samples pool); unique panel ids
//! and a `gridPos` for each, without overlaps; a stable uid per file; `editable: false`; and a
//! runbook link on every panel that charts a metric an alert is built on.
//!
//! Every PromQL expression is parsed with `promql-parser` after the Grafana variables are
//! replaced, and every metric and label it names is checked against the `/metrics` text of a
//! lagwatch built in-process. `the_checks_catch_broken_dashboards` breaks a copy of a
//! dashboard in each of those ways and expects the check to say so.
//! `an_ha_pair_shows_what_one_member_shows` has promtool evaluate every query over one lagwatch
//! and over an HA pair exporting the same series.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use promql_parser::parser::{self, Expr, LabelModifier};
use serde_json::{Value, json};

/// The alerts a dashboard may link a runbook of (`docs/runbooks/<AlertName>.md`); each must be
/// an alert of `alerts/lagwatch.alerts.yml` (checked below).
const ALERTS: &[&str] = &[
    "LagwatchObjectiveBudgetBurn",
    "LagwatchLagAboveObjective",
    "LagwatchPathNotConverging",
    "LagwatchDualWritePaused",
    "LagwatchReadYourWritesViolated",
    "LagwatchContractViolated",
    "LagwatchDeletesNotPropagating",
    "LagwatchReplicasDiverged",
    "LagwatchConflictPolicyViolated",
    "LagwatchPlatformHealthyButStuck",
    "LagwatchPlatformStatusStale",
    "LagwatchPlatformStatusUnreadable",
    "LagwatchSentinelWritesFailing",
    "LagwatchSourceThrottled",
    "LagwatchClockOffsetHigh",
    "LagwatchDown",
    "LagwatchLakeStale",
    "LagwatchDiscrepanciesPersisting",
    "LagwatchReconcileFailing",
    "LagwatchLedgerDown",
    "LagwatchConfigReloadFailed",
    "LagwatchInstanceConflict",
    "LagwatchShardingMismatch",
    "LagwatchShardMissing",
];

/// A panel that charts the metric (series) on the left must link the runbook on the right.
const ALERT_BACKED: &[(&str, &str)] = &[
    ("lagwatch_instance_conflict", "LagwatchInstanceConflict"),
    ("lagwatch_shard_info", "LagwatchShardMissing"),
    ("lagwatch_lag_seconds_bucket", "LagwatchLagAboveObjective"),
    (
        "lagwatch_lag_objective_seconds",
        "LagwatchLagAboveObjective",
    ),
    ("lagwatch_staleness_seconds", "LagwatchPathNotConverging"),
    ("lagwatch_probes_total", "LagwatchPathNotConverging"),
    ("lagwatch_probes_total", "LagwatchObjectiveBudgetBurn"),
    (
        "lagwatch_read_your_writes_violations_total",
        "LagwatchReadYourWritesViolated",
    ),
    (
        "lagwatch_contract_violations_total",
        "LagwatchContractViolated",
    ),
    (
        "lagwatch_deletes_lost_total",
        "LagwatchDeletesNotPropagating",
    ),
    (
        "lagwatch_sentinel_writes_total",
        "LagwatchSentinelWritesFailing",
    ),
    ("lagwatch_throttled_total", "LagwatchSourceThrottled"),
    ("lagwatch_clock_offset_seconds", "LagwatchClockOffsetHigh"),
    (
        "lagwatch_lake_last_folder_timestamp_seconds",
        "LagwatchLakeStale",
    ),
    ("up", "LagwatchDown"),
    ("lagwatch_status_verdict", "LagwatchPlatformHealthyButStuck"),
    ("lagwatch_status_verdict", "LagwatchPlatformStatusStale"),
    (
        "lagwatch_platform_status_errors_total",
        "LagwatchPlatformStatusUnreadable",
    ),
    ("lagwatch_discrepancies", "LagwatchDiscrepanciesPersisting"),
    (
        "lagwatch_reconcile_last_success_timestamp_seconds",
        "LagwatchReconcileFailing",
    ),
    ("lagwatch_reconcile_runs_total", "LagwatchReconcileFailing"),
    ("lagwatch_ledger_up", "LagwatchLedgerDown"),
    (
        "lagwatch_config_last_reload_successful",
        "LagwatchConfigReloadFailed",
    ),
];

/// Where a runbook link starts: the dashboards' `runbook_base` constant variable.
const RUNBOOK_PREFIX: &str = "${runbook_base}/docs/runbooks/";

/// Grafana unit ids (from Grafana's value formats) the dashboards may use.
const UNITS: &[&str] = &[
    "s",
    "ms",
    "percentunit",
    "short",
    "none",
    "reqps",
    "cps",
    "ops",
    "Bps",
    "bytes",
    "dateTimeAsIso",
];

/// Series Prometheus adds to every scrape, with their labels: not in `/metrics`, but real.
const SCRAPE_SERIES: &[&str] = &["up"];

/// Labels Prometheus attaches to every scraped series.
const TARGET_LABELS: &[&str] = &["job", "instance"];

/// Labels besides `instance` that tell the members of an HA pair apart (what a ServiceMonitor
/// adds): a query may group by them, though lagwatch's `/metrics` does not have them.
const MEMBER_LABELS: &[&str] = &["pod"];

/// Series of what every member of an HA pair measures of the same replication (probe outcomes,
/// violations, reconciliation runs, its own sentinels per path): a sum of them across the
/// members counts each event once per member. Outside a ratio or a quantile, a `sum` over them
/// keeps `instance` (the dashboards take one member's: `max by (…) (sum by (…, instance, pod)
/// (…))`). Requests, writes and lake reads are not here: their sum is the load on a system.
const PER_MEMBER: &[&str] = &[
    "lagwatch_probes_total",
    "lagwatch_probes_in_flight",
    "lagwatch_probes_skipped_total",
    "lagwatch_reads_total",
    "lagwatch_read_your_writes_violations_total",
    "lagwatch_monotonic_read_violations_total",
    "lagwatch_contract_violations_total",
    "lagwatch_deletes_lost_total",
    "lagwatch_resurrections_total",
    "lagwatch_causal_pairs_total",
    "lagwatch_causal_violations_total",
    "lagwatch_order_inversions_total",
    "lagwatch_updates_lost_total",
    "lagwatch_versions_lost_total",
    "lagwatch_versions_duplicated_total",
    "lagwatch_conflict_probes_total",
    "lagwatch_discrepancies",
    "lagwatch_discrepancies_healed_total",
    "lagwatch_reconcile_unsettled",
    "lagwatch_reconcile_runs_total",
    "lagwatch_reconcile_rows_compared_total",
];

/// What `$__rate_interval` is replaced with before parsing: a duration no panel would write by
/// hand (7m13s), so a range selector is known to have used the variable.
const RATE_INTERVAL_STANDIN: &str = "7m13s";
const RATE_INTERVAL_SECONDS: u64 = 433;

/// What `$__range` is replaced with, the same way.
const RANGE_STANDIN: &str = "6h11m";
const RANGE_SECONDS: u64 = 22_260;

/// Variables Grafana defines itself.
const BUILTIN_VARIABLES: &[&str] = &[
    "__rate_interval",
    "__interval",
    "__range",
    "__url_time_range",
    "__data",
    "__all",
];

/// A lagwatch with a simulated path, an HTTP target (clock offsets, request metrics) and two lake
/// targets (lake and apply-lag metrics). Nothing is contacted: building opens no connection.
const YAML: &str = r#"
instance: dash
systems:
  crm: { kind: simulated }
  replica: { kind: simulated, replica_of: crm, lag: { distribution: fixed, value: 1s } }
  es:
    kind: elasticsearch
    url: http://127.0.0.1:9/es
    index: sentinels
    mode: searchable
    key_field: name
    payload_field: description
    auth: { method: none }
  lake:
    kind: synapse_link_csv
    url: file:///nonexistent/lagwatch-dashboards-test/lake
    table: account
    key_column: name
    payload_column: description
  fabric:
    kind: delta
    url: file:///nonexistent/lagwatch-dashboards-test/fabric
    key_column: name
    payload_column: description
paths:
  - { source: crm, target: replica, objective: 5s, update_interval: 15s }
  - { source: crm, target: es, objective: 5s, contract: { monotonic_reads: true } }
  - { source: crm, target: lake, objective: 5m }
  - { source: crm, target: fabric, objective: 5m }
"#;

/// One series name of the exposition.
#[derive(Debug, Default)]
struct Series {
    /// A counter, or a histogram's `_bucket`, `_sum` or `_count`: only meaningful as a rate.
    counter_like: bool,
    labels: BTreeSet<String>,
}

/// What lagwatch's `/metrics` offers: series name → kind and label names.
struct Exposition {
    series: BTreeMap<String, Series>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut types: BTreeMap<&str, &str> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                types.insert(name, kind.trim());
            }
        }
        let mut series: BTreeMap<String, Series> = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let end = line.find(['{', ' ']).expect("a sample line has a name");
            let name = &line[..end];
            let kind = types.get(name).copied().or_else(|| {
                ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    types
                        .get(base)
                        .filter(|k| **k == "histogram" || **k == "summary")
                        .map(|_| "counter")
                })
            });
            let kind = kind.unwrap_or_else(|| panic!("{name} has a TYPE"));
            let entry = series.entry(name.to_string()).or_default();
            entry.counter_like = kind == "counter";
            entry.labels.extend(label_names(&line[end..]));
        }
        for name in SCRAPE_SERIES {
            series.insert(name.to_string(), Series::default());
        }
        Exposition { series }
    }
}

/// The label names of a sample line's `{...}` part (empty without one).
fn label_names(rest: &str) -> Vec<String> {
    let Some(mut s) = rest.strip_prefix('{') else {
        return Vec::new();
    };
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches(',');
        if s.starts_with('}') || s.is_empty() {
            return out;
        }
        let (name, after) = s.split_once("=\"").expect("label=\"value\"");
        out.push(name.to_string());
        // Skip the quoted value, honouring backslash escapes.
        let mut chars = after.char_indices();
        let close = loop {
            match chars.next().expect("closed label value") {
                (_, '\\') => {
                    chars.next();
                }
                (i, '"') => break i,
                _ => {}
            }
        };
        s = &after[close + 1..];
    }
}

/// What lagwatch's own `/metrics` offers, from an app built in-process.
fn exposition() -> Exposition {
    Exposition::parse(&exposition_text())
}

/// lagwatch's own `/metrics` text, from an app built in-process, every series made to exist.
fn exposition_text() -> String {
    let app = common::app(YAML);
    let metrics = app.engine.metrics();
    // Some series appear with their first event; make every one exist.
    common::every_series(metrics, "crm", "es");
    // The version series exist on paths that read a canary at a change log (a lake of
    // incremental folders), which the simulated kind is not.
    metrics.paths.path(
        "crm",
        "lake",
        lagwatch::metrics::series::PathShape {
            objective: 300.0,
            timeout: 600.0,
            synchronous: false,
            records_apply_time: true,
            declared: [false; lagwatch::config::Contract::N],
            delete_window: None,
            canary: true,
            pairs: false,
            ordered: true,
            versions: true,
        },
    );
    // Reconciliation series exist per configured entry; the simulated kind cannot be
    // reconciled, so create one entry's series as a configured one would.
    metrics.reconcile.init("crm", "fabric", "account", 900.0);
    // lagwatch_system_up is exported from a system's first request.
    metrics.system_up.with_label_values(&["es"]).set(1);
    // The ledger's series exist with a state_dir.
    metrics.ledger_up.with_label_values::<&str>(&[]).set(1);
    // Token errors exist per system that authenticates with Entra ID tokens.
    metrics.token_errors.with_label_values(&["es", "transport"]);
    metrics.ledger_errors.with_label_values(&["write"]);
    // Conflict series exist per configured pair; the skew once both clocks are measured.
    metrics.conflict.init("crm", "es", 0.0);
    metrics
        .conflict
        .skew
        .with_label_values(&["crm", "es"])
        .set(0.0);
    // Platform status series exist per path with platform_status: (the state sets from
    // start-up), the last sync and watermark from a claim that has them, the errors from the
    // first failed read.
    metrics.platform.init("crm", "es", "elasticsearch_refresh");
    metrics
        .platform
        .last_sync
        .with_label_values(&["crm", "es", "elasticsearch_refresh"])
        .set(1.8e9);
    metrics
        .platform
        .watermark
        .with_label_values(&["crm", "es", "elasticsearch_refresh"])
        .set(73_630_169.0);
    metrics
        .platform
        .errors
        .with_label_values(&["crm", "es", "elasticsearch_refresh", "auth"]);
    metrics.render()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dashboard_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("dashboards"))
        .expect("dashboards/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("readable dashboard");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel, rows included, and the panels of collapsed rows.
fn all_panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().into_iter().flatten() {
        out.push(p);
        for inner in p["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

/// The names of the variables a text refers to: `$name`, `${name}` and `${name:format}`
/// (`${__data.fields.x}` gives `__data`).
fn variables_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let braced = rest.starts_with('{');
        let body = if braced { &rest[1..] } else { rest };
        let name: String = body
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

/// Replaces Grafana variables so the text parses as PromQL: `$__rate_interval` becomes
/// [`RATE_INTERVAL_STANDIN`], any other variable an identifier (fine inside a label value, an
/// unknown metric anywhere else).
fn substitute(expr: &str) -> String {
    let expr = expr
        .replace("${__rate_interval}", RATE_INTERVAL_STANDIN)
        .replace("$__rate_interval", RATE_INTERVAL_STANDIN)
        .replace("${__range}", RANGE_STANDIN)
        .replace("$__range", RANGE_STANDIN);
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr.as_str();
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(body) = rest.strip_prefix('{') {
            let end = body.find('}').map_or(body.len(), |e| e + 1);
            rest = &body[end.min(body.len())..];
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            rest = &rest[end..];
        }
        out.push_str("grafana_variable");
    }
    out.push_str(rest);
    out
}

/// What checking one expression found.
#[derive(Default)]
struct ExprReport {
    /// Series names the expression selects.
    metrics: BTreeSet<String>,
    problems: Vec<String>,
    /// A range selector spans `$__range`.
    whole_range: bool,
}

/// Parses a (Grafana) PromQL expression and checks it against the exposition.
fn check_expr(expr: &str, expo: &Exposition) -> ExprReport {
    let mut report = ExprReport::default();
    if expr.contains(RATE_INTERVAL_STANDIN) || expr.contains(RANGE_STANDIN) {
        report.problems.push(format!(
            "uses {RATE_INTERVAL_STANDIN} or {RANGE_STANDIN} literally"
        ));
    }
    match parser::parse(&substitute(expr)) {
        Ok(ast) => {
            walk(&ast, false, expo, &mut report);
            member_sums(&ast, false, expo, &mut report);
        }
        Err(e) => report
            .problems
            .push(format!("does not parse as PromQL: {e}")),
    }
    report
}

fn walk(e: &Expr, in_rate: bool, expo: &Exposition, r: &mut ExprReport) {
    match e {
        Expr::Aggregate(a) => {
            check_grouping(a.modifier.as_ref(), &[&a.expr], expo, r);
            walk(&a.expr, false, expo, r);
            if let Some(p) = &a.param {
                walk(p, false, expo, r);
            }
        }
        Expr::Unary(u) => walk(&u.expr, false, expo, r),
        Expr::Binary(b) => {
            let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
            check_grouping(matching, &[&b.lhs, &b.rhs], expo, r);
            walk(&b.lhs, false, expo, r);
            walk(&b.rhs, false, expo, r);
        }
        Expr::Paren(p) => walk(&p.expr, false, expo, r),
        Expr::Subquery(s) => {
            r.problems
                .push("uses a subquery (write a rate over $__rate_interval)".into());
            walk(&s.expr, false, expo, r);
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        Expr::VectorSelector(vs) => {
            let name = selector(vs, expo, r);
            if in_rate {
                r.problems
                    .push(format!("rate/increase of {name} without a range"));
            }
            if expo.series.get(&name).is_some_and(|s| s.counter_like) || is_counter_name(&name) {
                r.problems.push(format!(
                    "counter {name} used outside rate()/increase()/irate()"
                ));
            }
        }
        Expr::MatrixSelector(ms) => {
            let name = selector(&ms.vs, expo, r);
            if ms.range == Duration::from_secs(RANGE_SECONDS) {
                r.whole_range = true;
            } else if ms.range != Duration::from_secs(RATE_INTERVAL_SECONDS) {
                r.problems.push(format!(
                    "range selector on {name} does not use $__rate_interval"
                ));
            }
            let counter =
                expo.series.get(&name).is_some_and(|s| s.counter_like) || is_counter_name(&name);
            if !in_rate && counter {
                r.problems.push(format!(
                    "counter {name} used outside rate()/increase()/irate()"
                ));
            }
            if in_rate && !counter && expo.series.contains_key(&name) {
                r.problems
                    .push(format!("rate/increase of {name}, which is a gauge"));
            }
        }
        Expr::Call(c) => {
            let rate_like = matches!(c.func.name, "rate" | "increase" | "irate");
            for arg in &c.args.args {
                walk(arg, rate_like, expo, r);
            }
        }
    }
}

/// Flags a `sum` that adds up a [`PER_MEMBER`] series across HA members, unless it is inside a
/// ratio or a quantile (`pooled`), where both members' samples pool.
fn member_sums(e: &Expr, pooled: bool, expo: &Exposition, r: &mut ExprReport) {
    match e {
        Expr::Aggregate(a) => {
            if !pooled && a.op.to_string() == "sum" {
                let keeps_members = match &a.modifier {
                    Some(LabelModifier::Include(l)) => l.labels.iter().any(|n| n == "instance"),
                    Some(LabelModifier::Exclude(l)) => !l.labels.iter().any(|n| n == "instance"),
                    None => false,
                };
                if !keeps_members {
                    let mut inner = ExprReport::default();
                    walk(&a.expr, false, expo, &mut inner);
                    for name in inner
                        .metrics
                        .iter()
                        .filter(|n| PER_MEMBER.contains(&n.as_str()))
                    {
                        r.problems.push(format!(
                            "sums {name} across HA members (take one member's: max by (…) (sum by (…, instance, pod) (…)))"
                        ));
                    }
                }
            }
            member_sums(&a.expr, pooled, expo, r);
            if let Some(p) = &a.param {
                member_sums(p, pooled, expo, r);
            }
        }
        Expr::Binary(b) => {
            let ratio = pooled || b.op.to_string() == "/";
            member_sums(&b.lhs, ratio, expo, r);
            member_sums(&b.rhs, ratio, expo, r);
        }
        Expr::Call(c) => {
            let quantile = pooled || c.func.name == "histogram_quantile";
            for arg in &c.args.args {
                member_sums(arg, quantile, expo, r);
            }
        }
        Expr::Unary(u) => member_sums(&u.expr, pooled, expo, r),
        Expr::Paren(p) => member_sums(&p.expr, pooled, expo, r),
        Expr::Subquery(s) => member_sums(&s.expr, pooled, expo, r),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::Extension(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_) => {}
    }
}

fn is_counter_name(name: &str) -> bool {
    ["_total", "_bucket", "_count", "_sum"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Checks one selector's metric and matchers; returns its metric name.
fn selector(
    vs: &promql_parser::parser::VectorSelector,
    expo: &Exposition,
    r: &mut ExprReport,
) -> String {
    let name = vs
        .name
        .clone()
        .or_else(|| {
            vs.matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__")
                .map(|m| m.value.clone())
        })
        .unwrap_or_default();
    r.metrics.insert(name.clone());
    let Some(series) = expo.series.get(&name) else {
        r.problems.push(format!(
            "{name:?} is not exported by lagwatch (not in its /metrics)"
        ));
        return name;
    };
    let matchers: Vec<&str> = vs
        .matchers
        .matchers
        .iter()
        .chain(vs.matchers.or_matchers.iter().flatten())
        .map(|m| m.name.as_str())
        .filter(|n| *n != "__name__")
        .collect();
    for label in &matchers {
        if !series.labels.contains(*label) && !TARGET_LABELS.contains(label) {
            r.problems
                .push(format!("{name} has no label {label:?} to match on"));
        }
    }
    for label in TARGET_LABELS {
        if !matchers.contains(label) {
            r.problems
                .push(format!("{name} selector has no {label} matcher"));
        }
    }
    name
}

/// `by (...)`/`on (...)` labels must exist on some series the expression selects.
fn check_grouping(
    m: Option<&LabelModifier>,
    operands: &[&Expr],
    expo: &Exposition,
    r: &mut ExprReport,
) {
    let Some(LabelModifier::Include(labels)) = m else {
        return;
    };
    let mut inner = ExprReport::default();
    for e in operands {
        walk(e, false, expo, &mut inner);
    }
    let known: BTreeSet<&str> = inner
        .metrics
        .iter()
        .filter_map(|n| expo.series.get(n))
        .flat_map(|s| s.labels.iter().map(String::as_str))
        .chain(TARGET_LABELS.iter().copied())
        .chain(MEMBER_LABELS.iter().copied())
        .collect();
    for label in &labels.labels {
        if !known.contains(label.as_str()) {
            r.problems
                .push(format!("groups by {label:?}, which no selected series has"));
        }
    }
}

/// Checks a dashboard; returns every problem found (empty when it follows the conventions).
fn check_dashboard(file: &str, dash: &Value, expo: &Exposition) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bad = |what: String| problems.push(format!("{file}: {what}"));

    // The dashboard.
    if dash.get("__inputs").is_some() || dash.to_string().contains("${DS_") {
        bad("uses __inputs / ${DS_...}: file provisioning does not resolve them".into());
    }
    if dash["editable"] != json!(false) {
        bad("editable is not false".into());
    }
    let stem = file.trim_end_matches(".json");
    if dash["uid"] != json!(stem) {
        bad(format!(
            "uid {} is not the file's stable uid {stem:?}",
            dash["uid"]
        ));
    }
    if dash["schemaVersion"] != json!(41) {
        bad("schemaVersion is not 41".into());
    }
    if dash["title"].as_str().is_none_or(str::is_empty) {
        bad("no title".into());
    }

    // Variables.
    let vars = dash["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let defined: BTreeSet<String> = vars
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .chain(BUILTIN_VARIABLES.iter().map(|s| s.to_string()))
        .collect();
    let datasources: Vec<&Value> = vars.iter().filter(|v| v["type"] == "datasource").collect();
    match datasources.as_slice() {
        [ds] if ds["name"] == "datasource"
            && ds["label"] == "Data source"
            && ds["query"] == "prometheus" => {}
        _ => bad("needs exactly one datasource variable: name datasource, label \"Data source\", query prometheus".into()),
    }
    let templated = json!({"type": "prometheus", "uid": "${datasource}"});
    for v in vars.iter().filter(|v| v["type"] == "query") {
        let name = v["name"].as_str().unwrap_or("?");
        if v["datasource"] != templated {
            bad(format!(
                "variable {name} does not use the datasource variable"
            ));
        }
        if v["refresh"] != json!(2) {
            bad(format!(
                "variable {name} does not refresh on time range change"
            ));
        }
        let query = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or("");
        // The runbook base is a query_result over `up` (`$1` is label_replace's), checked below.
        if name == "runbook_base" {
            continue;
        }
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','));
        let Some((sel, label)) = inner else {
            bad(format!(
                "variable {name}: expected label_values(selector, label), got {query:?}"
            ));
            continue;
        };
        let report = check_expr(sel, expo);
        // label_values() selectors need no job/instance matchers: they list them.
        for p in report.problems.iter().filter(|p| !p.ends_with(" matcher")) {
            bad(format!("variable {name}: {p}"));
        }
        let label = label.trim();
        for m in &report.metrics {
            if expo
                .series
                .get(m)
                .is_some_and(|s| !s.labels.contains(label))
                && !TARGET_LABELS.contains(&label)
            {
                bad(format!("variable {name}: {m} has no label {label}"));
            }
        }
        for used in variables_in(query) {
            if !defined.contains(&used) {
                bad(format!(
                    "variable {name} refers to undefined variable ${used}"
                ));
            }
        }
    }
    // A fixed base (an https URL), or a member that is up, where lagwatch serves its runbooks.
    match vars.iter().find(|v| v["name"] == "runbook_base") {
        Some(v)
            if v["type"] == "constant"
                && v["query"]
                    .as_str()
                    .is_some_and(|q| q.starts_with("https://")) => {}
        Some(v)
            if v["type"] == "query"
                && v["multi"] == false
                && v["query"]["query"].as_str().is_some_and(|q| {
                    q.contains("up{") && q.contains("== 1") && q.contains("\"http://$1\"")
                }) => {}
        _ => bad(
            "needs the variable runbook_base: a constant https URL, or a member that is up".into(),
        ),
    }
    for link in dash["links"].as_array().into_iter().flatten() {
        for used in variables_in(link["url"].as_str().unwrap_or("")) {
            if !defined.contains(&used) {
                bad(format!(
                    "dashboard link refers to undefined variable ${used}"
                ));
            }
        }
    }

    // Panels.
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(String, [i64; 4])> = Vec::new();
    for panel in all_panels(dash) {
        let title = panel["title"].as_str().unwrap_or("").to_string();
        let what = format!("panel {title:?}");
        match panel["id"].as_i64() {
            Some(id) if !ids.insert(id) => bad(format!("{what}: duplicate panel id {id}")),
            Some(_) => {}
            None => bad(format!("{what}: no numeric id")),
        }
        let g = &panel["gridPos"];
        let pos = ["x", "y", "w", "h"].map(|k| g[k].as_i64());
        match pos {
            [Some(x), Some(y), Some(w), Some(h)] if w > 0 && h > 0 && x >= 0 && x + w <= 24 => {
                for (other, [ox, oy, ow, oh]) in &boxes {
                    if x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h {
                        bad(format!("{what}: gridPos overlaps panel {other:?}"));
                    }
                }
                boxes.push((title.clone(), [x, y, w, h]));
            }
            _ => bad(format!(
                "{what}: no gridPos with x, y, w, h inside the 24 columns"
            )),
        }
        for used in variables_in(&title) {
            if !defined.contains(&used) {
                bad(format!(
                    "{what}: title refers to undefined variable ${used}"
                ));
            }
        }
        if panel["type"] == "row" {
            continue;
        }
        if title.is_empty() {
            bad(format!("{what}: no title"));
        }
        if panel["description"]
            .as_str()
            .is_none_or(|d| d.trim().is_empty())
        {
            bad(format!("{what}: no description"));
        }
        let unit = panel["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or("");
        if !UNITS.contains(&unit) {
            bad(format!(
                "{what}: unit {unit:?} is missing or not a known Grafana unit"
            ));
        }
        if panel["type"] == "heatmap"
            && !UNITS.contains(&panel["options"]["yAxis"]["unit"].as_str().unwrap_or(""))
        {
            bad(format!("{what}: heatmap without a y-axis unit"));
        }
        if panel["datasource"] != templated {
            bad(format!("{what}: datasource is not {templated}"));
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            bad(format!("{what}: no targets"));
        }
        let mut metrics = BTreeSet::new();
        let mut refs = BTreeSet::new();
        for t in &targets {
            if t["datasource"] != templated {
                bad(format!("{what}: a target's datasource is not {templated}"));
            }
            if !refs.insert(t["refId"].as_str().unwrap_or("").to_string()) {
                bad(format!("{what}: duplicate or missing refId"));
            }
            let expr = t["expr"].as_str().unwrap_or("");
            let report = check_expr(expr, expo);
            for p in report.problems {
                bad(format!("{what}: {p} in `{expr}`"));
            }
            // `$__range` charts the whole time range at once: one value, an instant query.
            if report.whole_range && t["instant"] != json!(true) {
                bad(format!(
                    "{what}: `$__range` outside an instant query in `{expr}`"
                ));
            }
            for used in variables_in(expr) {
                if !defined.contains(&used) {
                    bad(format!("{what}: refers to undefined variable ${used}"));
                }
            }
            metrics.extend(report.metrics);
        }

        // Runbook links.
        let mut linked = BTreeSet::new();
        let links = panel["links"].as_array().into_iter().flatten();
        let data_links = panel["fieldConfig"]["defaults"]["links"]
            .as_array()
            .into_iter()
            .flatten();
        for link in links.chain(data_links) {
            let url = link["url"].as_str().unwrap_or("");
            for used in variables_in(url) {
                if !defined.contains(&used) {
                    bad(format!("{what}: link refers to undefined variable ${used}"));
                }
            }
            if !url.contains("runbook") {
                continue;
            }
            let alert = url
                .strip_prefix(RUNBOOK_PREFIX)
                .and_then(|a| a.strip_suffix(".md"))
                .unwrap_or(url);
            if ALERTS.contains(&alert) {
                linked.insert(alert.to_string());
            } else {
                bad(format!(
                    "{what}: runbook link {url:?} is not {RUNBOOK_PREFIX}<known alert>.md (unknown alert)"
                ));
            }
        }
        for (metric, alert) in ALERT_BACKED {
            if metrics.contains(*metric) && !linked.contains(*alert) {
                bad(format!(
                    "{what}: charts {metric} but has no runbook link to {alert}"
                ));
            }
        }
    }
    problems
}

/// Runbook alerts a dashboard links from its panels.
fn linked_alerts(dash: &Value) -> BTreeSet<String> {
    all_panels(dash)
        .into_iter()
        .flat_map(|p| p["links"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| {
            l["url"]
                .as_str()?
                .strip_prefix(RUNBOOK_PREFIX)?
                .strip_suffix(".md")
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn the_dashboards_follow_the_conventions_and_query_lagwatchs_metrics() {
    let expo = exposition();
    let files = dashboard_files();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names,
        ["lagwatch-overview.json", "lagwatch-path.json"],
        "the dashboards"
    );
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    let mut bases = BTreeSet::new();
    for (path, name) in files.iter().zip(&names) {
        let dash = load(path);
        problems.extend(check_dashboard(name, &dash, &expo));
        assert!(
            uids.insert(dash["uid"].to_string()),
            "{name}: uid is unique"
        );
        let base = dash["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == "runbook_base")
            .map(|v| v["query"].to_string());
        bases.insert(base);
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert_eq!(bases.len(), 1, "every dashboard has the same runbook base");

    // The overview links every alert's runbook somewhere.
    let overview = load(&repo().join("dashboards/lagwatch-overview.json"));
    let linked = linked_alerts(&overview);
    for alert in ALERTS {
        assert!(
            linked.contains(*alert),
            "the overview links the runbook of {alert}"
        );
    }
    // The path dashboard is chosen by $source and $target.
    let path = load(&repo().join("dashboards/lagwatch-path.json"));
    for var in ["source", "target"] {
        assert!(
            path["templating"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["name"] == var && v["type"] == "query" && v["multi"] == json!(false)),
            "lagwatch-path.json has a single-valued ${var} variable"
        );
    }
}

#[test]
fn the_exposition_offers_what_the_checks_rely_on() {
    // The check is only as good as the metric list: every family of metrics.rs must be in it.
    let expo = exposition();
    for name in [
        "lagwatch_lag_seconds_bucket",
        "lagwatch_lag_seconds_count",
        "lagwatch_apply_lag_seconds_bucket",
        "lagwatch_lookup_errors_total",
        "lagwatch_clock_offset_seconds",
        "lagwatch_lake_last_folder_timestamp_seconds",
        "lagwatch_lake_bytes_read_total",
        "lagwatch_lake_objects_listed_total",
        "lagwatch_request_seconds_total",
        "lagwatch_path_state",
        "process_cpu_seconds_total",
    ] {
        assert!(expo.series.contains_key(name), "{name} is in /metrics");
    }
    assert!(expo.series["lagwatch_probes_total"].counter_like);
    assert!(expo.series["lagwatch_lag_seconds_bucket"].counter_like);
    assert!(!expo.series["lagwatch_staleness_seconds"].counter_like);
    assert!(
        expo.series["lagwatch_lag_seconds_bucket"]
            .labels
            .contains("le")
    );
    let families = expo
        .series
        .keys()
        .filter(|n| n.starts_with("lagwatch_"))
        .count();
    // 75 families, eight of them histograms (_bucket, _sum, _count). A new family whose
    // series appear only on an event needs one made in exposition().
    assert_eq!(families, 75 - 8 + 8 * 3, "{:?}", expo.series.keys());
}

#[test]
fn expressions_are_parsed_and_checked() {
    let expo = exposition();
    let sel = r#"{job=~"$job", instance=~"$instance"}"#;
    for expr in [
        r#"sum by (source, target) (rate(lagwatch_lookup_errors_total{job=~"$job", instance=~"$instance", source="$source"}[$__rate_interval]))"#.to_string(),
        // One HA member's count.
        format!("max by (source) (sum by (source, instance, pod) (increase(lagwatch_probes_total{sel}[$__rate_interval])))"),
        // Both members' samples pooled in a ratio and in a quantile.
        format!("sum(rate(lagwatch_probes_total{sel}[$__rate_interval])) / sum(rate(lagwatch_probes_total{sel}[$__rate_interval]))"),
        format!("histogram_quantile(0.5, sum by (le) (rate(lagwatch_lag_seconds_bucket{sel}[$__rate_interval])))"),
    ] {
        let ok = check_expr(&expr, &expo);
        assert!(ok.problems.is_empty(), "{expr}: {:?}", ok.problems);
    }
    let ok = check_expr(
        &format!("sum(rate(lagwatch_lookup_errors_total{sel}[$__rate_interval]))"),
        &expo,
    );
    assert!(ok.metrics.contains("lagwatch_lookup_errors_total"));
    for (expr, expected) in [
        (
            format!("rate(lagwatch_probes_total{sel}[5m])"),
            "does not use $__rate_interval",
        ),
        (format!("lagwatch_probes_total{sel}"), "outside rate"),
        (
            format!("sum(lagwatch_lag_seconds_count{sel})"),
            "outside rate",
        ),
        (
            format!("rate(lagwatch_staleness_seconds{sel}[$__rate_interval])"),
            "gauge",
        ),
        (format!("lagwatch_lag_secondz{sel}"), "not exported"),
        (
            r#"lagwatch_staleness_seconds{job=~"$job"}"#.to_string(),
            "no instance matcher",
        ),
        (
            format!("lagwatch_staleness_seconds{{path=\"x\", {}", &sel[1..]),
            "no label \"path\"",
        ),
        (
            format!("sum by (path) (lagwatch_staleness_seconds{sel})"),
            "groups by \"path\"",
        ),
        (
            format!("sum(lagwatch_staleness_seconds{sel}"),
            "does not parse",
        ),
        (format!("$metric{sel}"), "not exported"),
        (
            format!("rate(lagwatch_probes_total{sel}[7m13s])"),
            "literally",
        ),
        (
            format!("sum by (source) (increase(lagwatch_probes_total{sel}[$__rate_interval]))"),
            "across HA members",
        ),
        (
            format!("2 * sum(lagwatch_probes_in_flight{sel})"),
            "across HA members",
        ),
        (
            format!(
                "sum by (source, pod) (increase(lagwatch_probes_total{sel}[$__rate_interval]))"
            ),
            "across HA members",
        ),
    ] {
        let report = check_expr(&expr, &expo);
        assert!(
            report.problems.iter().any(|p| p.contains(expected)),
            "`{expr}` should be rejected with {expected:?}, got {:?}",
            report.problems
        );
    }
}

/// A broken copy of the overview in each way the conventions forbid, and what the check says.
#[test]
fn the_checks_catch_broken_dashboards() {
    let expo = exposition();
    let good = load(&repo().join("dashboards/lagwatch-overview.json"));
    let file = "lagwatch-overview.json";
    assert!(check_dashboard(file, &good, &expo).is_empty());

    // The first panel that is not a row, and the first one with a runbook link.
    let first = good["panels"]
        .as_array()
        .unwrap()
        .iter()
        .position(|p| p["type"] != "row")
        .unwrap();
    let linked = good["panels"]
        .as_array()
        .unwrap()
        .iter()
        .position(|p| p["links"].as_array().is_some_and(|l| !l.is_empty()))
        .unwrap();
    // The first time series panel (its queries run over time, not once).
    let over_time = good["panels"]
        .as_array()
        .unwrap()
        .iter()
        .position(|p| p["type"] == "timeseries")
        .unwrap();
    type Breakage = (&'static str, Box<dyn Fn(&mut Value)>, &'static str);
    let cases: Vec<Breakage> = vec![
        (
            "no unit",
            Box::new(move |d| {
                d["panels"][first]["fieldConfig"]["defaults"]
                    .as_object_mut()
                    .unwrap()
                    .remove("unit");
            }),
            "unit",
        ),
        (
            "an unknown unit",
            Box::new(move |d| {
                d["panels"][first]["fieldConfig"]["defaults"]["unit"] = json!("seconds")
            }),
            "not a known Grafana unit",
        ),
        (
            "no description",
            Box::new(move |d| d["panels"][first]["description"] = json!("")),
            "no description",
        ),
        (
            "a fixed data source",
            Box::new(move |d| {
                d["panels"][first]["datasource"] =
                    json!({"type": "prometheus", "uid": "prometheus"})
            }),
            "datasource is not",
        ),
        (
            "a target with a fixed data source",
            Box::new(move |d| {
                d["panels"][first]["targets"][0]["datasource"] = json!({"uid": "P1809F7CD0C75ACF3"})
            }),
            "a target's datasource",
        ),
        (
            "__inputs",
            Box::new(|d| d["__inputs"] = json!([{"name": "DS_PROMETHEUS", "type": "datasource"}])),
            "__inputs",
        ),
        (
            "no datasource variable",
            Box::new(|d| {
                d["templating"]["list"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|v| v["type"] != "datasource")
            }),
            "exactly one datasource variable",
        ),
        (
            "editable",
            Box::new(|d| d["editable"] = json!(true)),
            "editable",
        ),
        (
            "$__range in a query over time",
            Box::new(move |d| {
                d["panels"][over_time]["targets"][0]["expr"] = json!(
                    "sum by (source, target) (increase(lagwatch_reads_total{job=~\"$job\", instance=~\"$instance\"}[$__range]))"
                )
            }),
            "outside an instant query",
        ),
        (
            "a sum across HA members",
            Box::new(move |d| {
                d["panels"][over_time]["targets"][0]["expr"] = json!(
                    "sum by (source, target) (increase(lagwatch_probes_total{job=~\"$job\", instance=~\"$instance\"}[$__rate_interval]))"
                )
            }),
            "across HA members",
        ),
        (
            "another uid",
            Box::new(|d| d["uid"] = json!("abc123XYZ")),
            "stable uid",
        ),
        (
            "a duplicate panel id",
            Box::new(move |d| d["panels"][first + 1]["id"] = d["panels"][first]["id"].clone()),
            "duplicate panel id",
        ),
        (
            "no gridPos",
            Box::new(move |d| {
                d["panels"][first]
                    .as_object_mut()
                    .unwrap()
                    .remove("gridPos");
            }),
            "no gridPos",
        ),
        (
            "overlapping panels",
            Box::new(move |d| {
                d["panels"][first + 1]["gridPos"] = d["panels"][first]["gridPos"].clone()
            }),
            "overlaps",
        ),
        (
            "a fixed range",
            Box::new(|d| {
                let text = d.to_string().replace("[$__rate_interval]", "[5m]");
                *d = serde_json::from_str(&text).unwrap();
            }),
            "does not use $__rate_interval",
        ),
        (
            "a counter without rate",
            Box::new(move |d| {
                d["panels"][first]["targets"][0]["expr"] = json!(
                    r#"sum by (source, target) (lagwatch_probes_total{job=~"$job", instance=~"$instance"})"#
                )
            }),
            "outside rate",
        ),
        (
            "a metric lagwatch does not export",
            Box::new(|d| {
                let text = d
                    .to_string()
                    .replace("lagwatch_staleness_seconds", "lagwatch_staleness");
                *d = serde_json::from_str(&text).unwrap();
            }),
            "not exported",
        ),
        (
            "invalid PromQL",
            Box::new(move |d| d["panels"][first]["targets"][0]["expr"] = json!("sum(rate(")),
            "does not parse",
        ),
        (
            "an undefined variable",
            Box::new(move |d| {
                d["panels"][first]["targets"][0]["expr"] =
                    json!(r#"lagwatch_staleness_seconds{job=~"$job", instance=~"$nope"}"#)
            }),
            "undefined variable $nope",
        ),
        (
            "an alert-backed panel without its runbook",
            Box::new(move |d| d["panels"][linked]["links"] = json!([])),
            "no runbook link",
        ),
        (
            "a runbook of an unknown alert",
            Box::new(move |d| {
                d["panels"][linked]["links"][0]["url"] =
                    json!("${runbook_base}/docs/runbooks/LagwatchSomethingElse.md")
            }),
            "unknown alert",
        ),
        (
            "a variable from a fixed data source",
            Box::new(|d| {
                for v in d["templating"]["list"].as_array_mut().unwrap() {
                    if v["type"] == "query" {
                        v["datasource"] = json!({"type": "prometheus", "uid": "prometheus"});
                    }
                }
            }),
            "does not use the datasource variable",
        ),
        (
            "a variable on a metric lagwatch does not export",
            Box::new(|d| {
                for v in d["templating"]["list"].as_array_mut().unwrap() {
                    if v["name"] == "job" {
                        v["query"]["query"] = json!("label_values(lagwatch_info, job)");
                    }
                }
            }),
            "variable job: \"lagwatch_info\" is not exported",
        ),
    ];
    for (name, breakage, expected) in cases {
        let mut broken = good.clone();
        breakage(&mut broken);
        let problems = check_dashboard(file, &broken, &expo);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "a dashboard with {name} should be rejected with {expected:?}; got {problems:#?}"
        );
    }
}

#[test]
fn the_provisioning_examples_parse() {
    let dir = repo().join("dashboards/provisioning");
    let read = |rel: &str| -> Value {
        let text = std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
    };
    let providers = read("dashboards/lagwatch.yaml");
    assert_eq!(providers["apiVersion"], json!(1));
    let provider = &providers["providers"][0];
    assert_eq!(provider["type"], "file");
    assert!(
        provider["options"]["path"]
            .as_str()
            .is_some_and(|p| p.starts_with('/'))
    );
    assert_eq!(
        provider["allowUiUpdates"],
        json!(false),
        "dashboards are code"
    );

    let sources = read("datasources/prometheus.yaml");
    assert_eq!(sources["apiVersion"], json!(1));
    let ds = &sources["datasources"][0];
    assert_eq!(ds["type"], "prometheus");
    assert!(ds["url"].as_str().is_some_and(|u| u.starts_with("http")));
    assert!(ds["uid"].as_str().is_some_and(|u| !u.is_empty()));

    // The YAML reader used here rejects what Grafana would choke on.
    assert!(
        serde_saphyr::from_str::<Value>("apiVersion: 1\nproviders:\n  - name: a\n   type: file\n")
            .is_err()
    );
}

#[test]
fn every_linked_alert_is_a_shipped_alert_with_a_runbook() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join("alerts/lagwatch.alerts.yml")).expect("rules");
    for alert in ALERTS {
        assert!(
            rules.contains(&format!("alert: {alert}\n")),
            "{alert} is not an alert of alerts/lagwatch.alerts.yml"
        );
        assert!(
            root.join(format!("docs/runbooks/{alert}.md")).exists(),
            "{alert} has no runbook"
        );
    }
}

/// The scrape labels of a lagwatch alone (job `single`) and of an HA pair (job `pair`: two
/// members exporting the same series, as two members probing the same paths do).
const SINGLE: &[(&str, &str)] = &[("single", "a:9100")];
const PAIR: &[(&str, &str)] = &[("pair", "a:9100"), ("pair", "b:9100")];

/// Every sample of the exposition as a promtool input series for each member: counters rising
/// by one a minute, gauges holding their value.
fn member_series(text: &str, expo: &Exposition) -> Vec<Value> {
    let mut out = Vec::new();
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty());
    for line in samples.chain(["up 1"]) {
        let (series, value) = line.rsplit_once(' ').expect("name{labels} value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let value: f64 = value.parse().expect("a sample value");
        let counter = expo.series.get(name).is_some_and(|s| s.counter_like);
        if !counter && !value.is_finite() {
            continue;
        }
        let values = if counter {
            "0+1x40".to_string()
        } else {
            format!("{value}+0x40")
        };
        for (job, instance) in SINGLE.iter().chain(PAIR) {
            let pod = instance.split(':').next().unwrap_or(instance);
            let sep = if labels.is_empty() { "" } else { "," };
            out.push(json!({
                "series": format!("{name}{{{labels}{sep}job=\"{job}\",instance=\"{instance}\",pod=\"{pod}\"}}"),
                "values": values,
            }));
        }
    }
    out
}

/// A dashboard query with its variables set: `job` the given one, every instance, the path
/// crm → es, five-minute rates over a ten-minute range.
fn instantiate(expr: &str, job: &str) -> String {
    let q = expr
        .replace("${__rate_interval}", "5m")
        .replace("$__rate_interval", "5m")
        .replace("${__range}", "10m")
        .replace("$__range", "10m")
        .replace("\"$job\"", &format!("\"{job}\""))
        .replace("\"$instance\"", "\".*\"")
        .replace("$source", "crm")
        .replace("$target", "es");
    assert!(!q.contains('$'), "a variable left in {q}");
    q
}

/// Every query of both dashboards, evaluated by Prometheus's engine (promtool) over a lagwatch
/// alone and over an HA pair exporting the same series: where the pair's answer differs from
/// the single lagwatch's, the query must not read what every member measures (PER_MEMBER) —
/// such a query would count each event once per member. Requests and writes may differ: their
/// sum is the pair's load on a system.
#[test]
fn an_ha_pair_shows_what_one_member_shows() {
    if let Err(e) = Command::new("promtool").arg("--version").output() {
        common::tools::missing("promtool", &format!("cannot run ({e})"));
        return;
    }
    let text = exposition_text();
    let expo = Exposition::parse(&text);
    let mut exprs: Vec<String> = Vec::new();
    for path in dashboard_files() {
        let dash = load(&path);
        for panel in all_panels(&dash) {
            for t in panel["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    exprs.push(e.to_string());
                }
            }
        }
    }
    assert!(exprs.len() > 100, "{} queries", exprs.len());
    // Case d<i>: where the pair's answer differs from one member's (an empty answer passes);
    // case e<i>: whether the single lagwatch's answer is empty (absent() answers then).
    let mut cases = Vec::new();
    for (i, e) in exprs.iter().enumerate() {
        let (single, pair) = (instantiate(e, SINGLE[0].0), instantiate(e, PAIR[0].0));
        cases.push(json!({"expr": format!("({pair}) != ({single}) # d{i}"), "eval_time": "30m", "exp_samples": []}));
        cases.push(json!({"expr": format!("absent({single}) # e{i}"), "eval_time": "30m", "exp_samples": []}));
    }
    let tests = json!({
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": member_series(&text, &expo),
            "promql_expr_test": cases,
        }],
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("ha_pair.yml");
    std::fs::write(&file, serde_json::to_string(&tests).expect("json")).expect("write");
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .expect("promtool runs");
    // promtool reports the failed cases on stderr.
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !report.contains("could not") && !report.contains("parse error"),
        "promtool could not evaluate the queries:\n{report}"
    );
    // The failed cases: `# d12"` at the end of a failed expression.
    let failed: BTreeSet<String> = report
        .split("# ")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(case, _)| case.to_string()))
        .collect();
    let differs = |i: usize| failed.contains(&format!("d{i}"));
    let answers = |i: usize| !failed.contains(&format!("e{i}"));

    let mut double = Vec::new();
    let mut load = 0;
    let mut checked = 0;
    for (i, e) in exprs.iter().enumerate() {
        let per_member = check_expr(e, &expo)
            .metrics
            .iter()
            .any(|m| PER_MEMBER.contains(&m.as_str()));
        if differs(i) {
            if per_member {
                double.push(e.clone());
            } else {
                load += 1;
            }
        } else if per_member && answers(i) {
            checked += 1;
        }
    }
    assert!(
        double.is_empty(),
        "{} queries show an HA pair otherwise than one member:\n{}",
        double.len(),
        double.join("\n")
    );
    // The comparison sees a pair: the requests the two members send add up.
    assert!(load > 0, "no query sums the pair's requests:\n{report}");
    // And it compared real answers, not empty ones (43 of the 169 queries today).
    assert!(
        checked >= 40,
        "only {checked} queries of what every member measures answered:\n{report}"
    );
}
