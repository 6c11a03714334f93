//! The Prometheus rules in `alerts/`: `scripts/check-rules` (promtool's checks and unit tests),
//! the monitoring-mixins conventions, a firing and a silent test case and a runbook for every
//! alert, and that the rules only read metrics lagwatch exports, apart from the proposed ones.
//!
//! promtool is found on `PATH`, as in `http_surface.rs`. Without it the promtool test skips,
//! unless `LAGWATCH_REQUIRE_TOOLS=1` (`scripts/test`, CI), where it fails.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use lagwatch::metrics::Metrics;
use lagwatch::metrics::series::PathShape;
use serde::Deserialize;

/// Metrics the rules may read before lagwatch exports them (when one is proposed,
/// LagwatchRuleInputMissing names the paths it leaves unevaluated, where it can); none now.
const PROPOSED: &[&str] = &[];

const SEVERITIES: &[&str] = &["critical", "warning", "info"];

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: Option<String>,
    record: Option<String>,
    expr: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct TestFile {
    #[serde(default)]
    group_eval_order: Vec<String>,
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
struct TestGroup {
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
}

#[derive(Deserialize)]
struct AlertTest {
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Deserialize)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    files
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every rule group in `alerts/*.yml`.
fn groups() -> Vec<Group> {
    let files = yaml_files(&root().join("alerts"));
    assert!(!files.is_empty(), "no rule files in alerts/");
    files
        .iter()
        .flat_map(|f| parse::<RuleFile>(f).groups)
        .collect()
}

fn rules() -> Vec<Rule> {
    groups().into_iter().flat_map(|g| g.rules).collect()
}

fn test_files() -> Vec<(PathBuf, TestFile)> {
    let files = yaml_files(&root().join("alerts/tests"));
    assert!(!files.is_empty(), "no promtool tests in alerts/tests/");
    files
        .into_iter()
        .map(|f| {
            let t = parse(&f);
            (f, t)
        })
        .collect()
}

/// mixtool's alert-name-camelcase rule, `^([A-Z]+[a-z0-9]+)+$`: runs of capitals, each
/// followed by lower-case letters or digits.
fn camel_case(name: &str) -> bool {
    let b = name.as_bytes();
    let mut i = 0;
    if b.is_empty() {
        return false;
    }
    while i < b.len() {
        let upper = b[i..].iter().take_while(|c| c.is_ascii_uppercase()).count();
        let lower = b[i + upper..]
            .iter()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            .count();
        if upper == 0 || lower == 0 {
            return false;
        }
        i += upper + lower;
    }
    true
}

/// Names in `text` that start with `lagwatch_` and are not part of a longer identifier or of a
/// recording rule's name (`path:lagwatch_lag_seconds:p95_1h`).
fn lagwatch_identifiers(text: &str) -> BTreeSet<String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("lagwatch_") {
        if text[..i].chars().next_back().is_some_and(word) {
            continue;
        }
        let end = text[i..]
            .find(|c: char| !word(c))
            .map_or(text.len(), |n| i + n);
        let ident = &text[i..end];
        if !ident.contains(':') {
            found.insert(ident.to_string());
        }
    }
    found
}

/// Recording-rule names (`level:metric:operations`) in `text`.
fn recorded_identifiers(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.matches(':').count() == 2)
        .map(str::to_string)
        .collect()
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    if let Err(e) = Command::new("promtool").arg("--version").output() {
        common::tools::missing("promtool", &format!("cannot run ({e})"));
        return;
    }
    let out = Command::new(root().join("scripts/check-rules"))
        .output()
        .expect("scripts/check-rules runs");
    assert!(
        out.status.success(),
        "scripts/check-rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alerts_follow_the_monitoring_mixins_conventions() {
    let mut names = BTreeSet::new();
    for rule in rules() {
        if let Some(record) = &rule.record {
            let parts: Vec<&str> = record.split(':').collect();
            assert!(
                parts.len() == 3
                    && parts.iter().all(|p| !p.is_empty())
                    && parts[1].starts_with("lagwatch_"),
                "recording rule {record}: name it level:lagwatch_metric:operations"
            );
            continue;
        }
        let name = rule
            .alert
            .as_deref()
            .expect("a rule is a record or an alert");
        names.insert(name.to_string());
        assert!(
            name.starts_with("Lagwatch") && camel_case(name),
            "{name}: CamelCase with the Lagwatch prefix"
        );
        let severity = rule.labels.get("severity").map(String::as_str);
        assert!(
            severity.is_some_and(|s| SEVERITIES.contains(&s)),
            "{name}: severity {severity:?} is not one of {SEVERITIES:?}"
        );
        let summary = rule.annotations.get("summary").map(String::as_str);
        let summary = summary.unwrap_or_else(|| panic!("{name}: no summary"));
        assert!(
            summary.starts_with(|c: char| c.is_ascii_uppercase())
                && summary.ends_with('.')
                && !summary.contains("{{"),
            "{name}: the summary is a static sentence with a capital and a period: {summary:?}"
        );
        let description = rule.annotations.get("description").map(String::as_str);
        assert!(
            description.is_some_and(|d| d.contains("$labels") || d.contains("$value")),
            "{name}: the description is templated with $labels or $value"
        );
        // Either a fixed base (`runbookURLBase` in mixin/config.libsonnet) or, by default, a
        // template that names a live member serving its own runbooks; both end in the page.
        let url = rule.annotations.get("runbook_url").map(String::as_str);
        let page = format!("docs/runbooks/{name}.md");
        assert!(
            url.is_some_and(|u| u.ends_with(&format!("}}{page}"))
                || (u.starts_with("http") && u.ends_with(&format!("/{page}")))),
            "{name}: runbook_url {url:?} must point at {page}"
        );
        assert!(root().join(&page).is_file(), "{name}: {page} is missing");
    }
    let pages: BTreeSet<String> = std::fs::read_dir(root().join("docs/runbooks"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".md")
                .filter(|n| *n != "README")
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        pages, names,
        "one runbook per alert, none for an alert that does not exist"
    );
}

#[test]
fn every_alert_has_a_test_where_it_fires_and_one_where_it_stays_silent() {
    // Alert name to the severities its rules carry.
    let mut alerts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rule in rules() {
        if let Some(name) = rule.alert {
            let severity = rule.labels.get("severity").cloned().unwrap_or_default();
            alerts.entry(name).or_default().insert(severity);
        }
    }
    let group_names: BTreeSet<String> = groups().into_iter().map(|g| g.name).collect();
    let mut firing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut silent: BTreeSet<String> = BTreeSet::new();
    for (path, file) in test_files() {
        // Without a complete order promtool 2.42 evaluates the groups in a random order.
        let order: BTreeSet<String> = file.group_eval_order.iter().cloned().collect();
        assert_eq!(
            order,
            group_names,
            "{}: group_eval_order must list every rule group",
            path.display()
        );
        for case in file.tests.iter().flat_map(|t| &t.alert_rule_test) {
            assert!(
                alerts.contains_key(&case.alertname),
                "{}: tests {}, which no rule defines (such a test passes vacuously)",
                path.display(),
                case.alertname
            );
            if case.exp_alerts.is_empty() {
                silent.insert(case.alertname.clone());
            }
            for alert in &case.exp_alerts {
                let severity = alert
                    .exp_labels
                    .get("severity")
                    .cloned()
                    .unwrap_or_default();
                firing
                    .entry(case.alertname.clone())
                    .or_default()
                    .insert(severity);
            }
        }
    }
    for (name, severities) in &alerts {
        let fired = firing.get(name).cloned().unwrap_or_default();
        assert!(
            severities.is_subset(&fired),
            "{name}: no test shows it firing with severity {:?}",
            severities.difference(&fired).collect::<Vec<_>>()
        );
        assert!(silent.contains(name), "{name}: no test shows it silent");
    }
}

#[test]
fn rules_read_only_metrics_lagwatch_exports_or_the_proposed_ones() {
    // Every family, with its children created (some appear only on first use).
    let m = Metrics::new();
    m.paths.path(
        "src",
        "tgt",
        PathShape {
            objective: 300.0,
            timeout: 600.0,
            synchronous: true,
            records_apply_time: true,
            declared: [true; lagwatch::config::Contract::N],
            delete_window: Some(600.0),
            canary: true,
            pairs: true,
            ordered: true,
            versions: true,
        },
    );
    m.init_source("src");
    m.init_system("src");
    common::every_series(&m, "src", "tgt");
    m.clock_offset.with_label_values(&["src"]);
    m.clock_offset_uncertainty.with_label_values(&["src"]);
    m.lake_objects_listed.with_label_values(&["tgt"]);
    m.lake_bytes_read.with_label_values(&["tgt"]);
    m.lake_last_folder.with_label_values(&["tgt"]);
    m.reconcile.init("src", "tgt", "accounts", 3600.0);
    m.ledger_up.with_label_values::<&str>(&[]);
    m.ledger_errors.with_label_values(&["write"]);
    m.conflict.init("src", "tgt", 0.0);
    m.conflict.skew.with_label_values(&["src", "tgt"]);
    // Platform status series exist per path with platform_status:; the last sync and the
    // watermark from the first claim that has them, the errors from the first failed read.
    m.platform.init("src", "tgt", "elasticsearch_refresh");
    m.platform
        .last_sync
        .with_label_values(&["src", "tgt", "elasticsearch_refresh"]);
    m.platform
        .watermark
        .with_label_values(&["src", "tgt", "elasticsearch_refresh"]);
    m.platform
        .errors
        .with_label_values(&["src", "tgt", "elasticsearch_refresh", "auth"]);
    let mut exported = BTreeSet::new();
    for line in m.render().lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let (name, kind) = (words.next().unwrap(), words.next().unwrap());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    exported.insert(format!("{name}{suffix}"));
                }
            } else {
                exported.insert(name.to_string());
            }
        }
    }

    let rules = rules();
    let recorded: BTreeSet<String> = rules.iter().filter_map(|r| r.record.clone()).collect();
    for rule in &rules {
        let what = rule.alert.as_ref().or(rule.record.as_ref()).unwrap();
        let mut text = rule.expr.clone();
        text.push_str(
            rule.annotations
                .get("description")
                .map_or("", String::as_str),
        );
        for metric in lagwatch_identifiers(&text) {
            assert!(
                exported.contains(&metric) || PROPOSED.contains(&metric.as_str()),
                "{what} reads {metric}, which lagwatch does not export"
            );
        }
        for name in recorded_identifiers(&rule.expr) {
            assert!(
                recorded.contains(&name),
                "{what} reads {name}, which no rule records"
            );
        }
    }
    for metric in PROPOSED {
        assert!(
            !exported.contains(*metric),
            "{metric} is exported now: take it out of PROPOSED here and out of the \"proposed\" \
             notes in alerts/README.md, the rule comments and the runbooks"
        );
    }
}

#[test]
fn camel_case_follows_mixtool() {
    for good in ["LagwatchDown", "LagwatchSLIMissing", "Lagwatch2xBurn"] {
        assert!(camel_case(good), "{good}");
    }
    for bad in [
        "lagwatchDown",
        "Lagwatch_down",
        "LagwatchDOWN",
        "Lagwatch down",
        "",
    ] {
        assert!(!camel_case(bad), "{bad}");
    }
}

#[test]
fn identifiers_are_found_in_expressions() {
    let expr = "path:lagwatch_lag_seconds:p95_1h > lagwatch_lag_objective_seconds \
                unless xlagwatch_no{a=\"lagwatch_label\"}";
    assert_eq!(
        lagwatch_identifiers(expr),
        ["lagwatch_label", "lagwatch_lag_objective_seconds"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        recorded_identifiers(expr),
        ["path:lagwatch_lag_seconds:p95_1h".to_string()].into()
    );
}
