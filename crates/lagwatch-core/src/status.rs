//! What the status page and `/api/v1/paths` show: one view per path, derived from its state.
//!
//! A path is `converging` (healthy: sentinels arrive within the objective), `lagging` (they
//! arrive, above the objective), `stuck` (a sentinel timed out or has been pending longer than
//! the timeout), `failing` (reads or writes error, or content arrives changed), `halted` (a
//! synchronous target such as dual-write lacks a sentinel after its grace: the replication is
//! not running), or `idle` (nothing resolved yet). The state itself is decided in
//! `probe::path` (`PathState::status`), so `/metrics` (`lagwatch_path_state`) and these views
//! agree.

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::SecondsFormat;
use serde::Serialize;
use tokio::time::Instant;

use crate::probe::{Engine, Outcome, PathHandle};

pub use crate::probe::path::PathStatus;

/// When a write made now is expected to show at the target, from the last hour's lags.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectedConvergence {
    pub p50_seconds: f64,
    pub p95_seconds: f64,
    pub samples: usize,
    /// A phrase an application can show its users ("about 3 minutes").
    pub text: String,
}

/// One path as the status page and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct PathView {
    pub source: String,
    pub target: String,
    pub state: PathStatus,
    pub objective_seconds: f64,
    pub timeout_seconds: f64,
    pub interval_seconds: f64,
    pub last_lag_seconds: Option<f64>,
    pub lag_uncertainty_seconds: Option<f64>,
    pub staleness_seconds: f64,
    pub p50_seconds_1h: Option<f64>,
    pub p95_seconds_1h: Option<f64>,
    pub success_ratio_1h: Option<f64>,
    pub probes_1h: usize,
    pub in_flight: u32,
    pub last_outcome: Option<Outcome>,
    pub last_error_kind: Option<&'static str>,
    /// The last error's message: what the system answered, or why nothing was sent.
    pub last_error_message: Option<String>,
    pub last_error_at: Option<String>,
    /// When the source last acknowledged a sentinel of this path.
    pub last_written_at: Option<String>,
    /// Writes fail: no sentinel has been written since `last_written_at` (or start-up), so
    /// staleness (of sentinels written) says nothing; the status page shows this instead.
    pub writes_failing: bool,
    pub last_converged_at: Option<String>,
    /// `None` while the path is stuck or failing: no honest promise can be made then.
    pub expected_convergence: Option<ExpectedConvergence>,
    /// The guarantees the path's contract declares, and how each fared.
    pub contract: Vec<GuaranteeView>,
    /// What the platform's own status says, and the verdict beside the canary
    /// (`platform_status:`); `None` when the path reads none.
    pub platform: Option<crate::probe::platform::PlatformView>,
}

/// One declared guarantee of a path, as the status page and `/api/v1/paths` show it.
#[derive(Debug, Clone, Serialize)]
pub struct GuaranteeView {
    /// As `lagwatch_contract_violations_total` names it (`monotonic_reads`).
    pub guarantee: &'static str,
    /// Violations measured since lagwatch started.
    pub violations: u64,
    /// When it was last broken (RFC 3339 UTC), if it was.
    pub last_violation_at: Option<String>,
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(idx).copied()
}

/// A duration for people: "850 ms", "12 s", "3 min 20 s", "2 h 5 min".
pub fn human(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "–".to_string();
    }
    if seconds < 1.0 {
        return format!("{:.0} ms", seconds * 1000.0);
    }
    if seconds < 10.0 {
        return format!("{seconds:.1} s");
    }
    let s = seconds.round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 if s.is_multiple_of(60) => format!("{} min", s / 60),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// A rounded phrase for end users: "a few seconds", "about 40 seconds", "about 3 minutes".
fn about(seconds: f64) -> String {
    match seconds {
        s if s < 5.0 => "a few seconds".to_string(),
        s if s < 90.0 => format!("about {} seconds", ((s / 5.0).round() * 5.0) as u64),
        s if s < 5400.0 => format!("about {} minutes", (s / 60.0).round() as u64),
        s => format!("about {} hours", (s / 3600.0).round() as u64),
    }
}

impl PathView {
    pub fn of(path: &PathHandle, now: Instant) -> PathView {
        let spec = &path.spec;
        let s = path.state();
        let staleness = s.staleness(now);
        let mut lags: Vec<f64> = s
            .history
            .iter()
            .filter(|r| r.outcome == Outcome::Converged)
            .filter_map(|r| r.lag())
            .collect();
        lags.sort_by(f64::total_cmp);
        let probes = s.history.len();
        let converged = s
            .history
            .iter()
            .filter(|r| r.outcome == Outcome::Converged)
            .count();
        let last_outcome = s.last_probe.map(|l| l.outcome);
        let timeout = spec.timeout.get();
        let objective = spec.objective.get();
        let last_lag = s.last_estimate.map(|e| e.lag);
        let state = s.status(now, objective, timeout);
        let p50 = quantile(&lags, 0.5);
        let p95 = quantile(&lags, 0.95);
        let expected = match (state, p50, p95) {
            (PathStatus::Converging | PathStatus::Lagging, Some(p50), Some(p95)) => {
                Some(ExpectedConvergence {
                    p50_seconds: p50,
                    p95_seconds: p95,
                    samples: lags.len(),
                    text: about(p50),
                })
            }
            _ => None,
        };
        let rfc = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        PathView {
            source: spec.source.clone(),
            target: spec.target.clone(),
            state,
            objective_seconds: objective.as_secs_f64(),
            timeout_seconds: timeout.as_secs_f64(),
            interval_seconds: spec.interval.get().as_secs_f64(),
            last_lag_seconds: last_lag.map(|d| d.as_secs_f64()),
            lag_uncertainty_seconds: s.last_estimate.map(|e| e.uncertainty.as_secs_f64()),
            staleness_seconds: staleness.as_secs_f64(),
            p50_seconds_1h: p50,
            p95_seconds_1h: p95,
            success_ratio_1h: (probes > 0).then(|| converged as f64 / probes as f64),
            probes_1h: probes,
            in_flight: s.reserved,
            last_outcome,
            last_error_kind: s.last_error.map(|(k, _)| k),
            last_error_message: s.last_error_message.as_deref().map(str::to_string),
            last_error_at: s.last_error.map(|(_, t)| rfc(t)),
            last_written_at: s.last_written_at.map(rfc),
            writes_failing: s.last_error.is_some_and(|(k, at)| {
                k.starts_with("write_") && s.last_written_at.is_none_or(|w| at > w)
            }) && s.pending.is_empty(),
            last_converged_at: s.last_converged_at.map(rfc),
            expected_convergence: expected,
            contract: crate::config::Contract::GUARANTEES
                .into_iter()
                .zip(spec.contract.declared())
                .enumerate()
                .filter(|(_, (_, declared))| *declared)
                .map(|(i, (g, _))| GuaranteeView {
                    guarantee: g,
                    violations: path.contract_violations(i),
                    last_violation_at: s.contract_broken_at.get(i).copied().flatten().map(rfc),
                })
                .collect(),
            platform: None,
        }
    }
}

/// Views of every path of the engine, in config order.
pub fn views(engine: &Engine) -> Vec<PathView> {
    let now = Instant::now();
    engine
        .paths()
        .iter()
        .map(|p| {
            let mut v = PathView::of(p, now);
            v.platform = engine
                .platform()
                .iter()
                .find(|w| Arc::ptr_eq(&w.path, p))
                .map(|w| {
                    // Judged now, against the path's state now, as the row beside it.
                    w.refresh();
                    w.view()
                });
            v
        })
        .collect()
}

/// HTML-escapes text for the status pages.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn opt(v: Option<f64>) -> String {
    v.map(human).unwrap_or_else(|| "–".to_string())
}

/// One reconciliation entry as the status page and `/api/v1/reconciliations` show it.
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileView {
    pub source: String,
    pub target: String,
    pub table: String,
    pub interval_seconds: f64,
    /// The settle window a run started now would use.
    pub settle_window_seconds: f64,
    pub last_run: Option<crate::reconcile::RunSummary>,
    /// Where the discrepant keys are listed.
    pub discrepancies_url: String,
}

/// Views of every reconciliation entry, in config order.
pub fn reconcile_views(reconciler: &crate::reconcile::Reconciler) -> Vec<ReconcileView> {
    reconciler
        .entries()
        .iter()
        .map(|e| ReconcileView {
            source: e.source.clone(),
            target: e.target.clone(),
            table: e.spec.name.clone(),
            interval_seconds: e.spec.interval.get().as_secs_f64(),
            settle_window_seconds: e.settle_window().as_secs_f64(),
            last_run: e.last_run(),
            discrepancies_url: format!(
                "/api/v1/discrepancies?{}",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("source", &e.source)
                    .append_pair("target", &e.target)
                    .append_pair("table", &e.spec.name)
                    .finish()
            ),
        })
        .collect()
}

fn reconcile_rows(h: &mut String, views: &[ReconcileView]) {
    if views.is_empty() {
        return;
    }
    let _ = write!(
        h,
        r#"<h2>Reconciliation</h2>
<table>
<thead><tr><th>Path</th><th>Table</th><th>Last run</th><th>Missing</th><th>Extra</th><th>Stale</th><th>Mismatched</th><th>In flight</th><th>Settle window</th><th>Keys</th></tr></thead>
<tbody>
"#
    );
    for v in views {
        let count = |kind: &str| match &v.last_run {
            Some(r) => match r.discrepancies.get(kind) {
                Some([t, p]) if *p > 0 => format!("<b>{p}</b> + {t}"),
                Some([t, _]) => t.to_string(),
                None => "–".to_string(),
            },
            None => "–".to_string(),
        };
        let last = match &v.last_run {
            None => "not yet".to_string(),
            Some(r) if r.outcome == "success" => format!(
                "ok, {} keys ({})",
                r.compared,
                r.finished.format("%H:%M:%S UTC")
            ),
            Some(r) => format!(
                "<span class=\"state failing\">error</span> {}",
                esc(r.error.as_deref().unwrap_or_default())
            ),
        };
        let _ = writeln!(
            h,
            r#"<tr data-reconcile="{src}->{tgt}/{tbl}"><td>{src} → {tgt}</td><td>{tbl}</td><td>{last}</td><td class="num">{mi}</td><td class="num">{ex}</td><td class="num">{st}</td><td class="num">{mm}</td><td class="num">{un}</td><td class="num">{settle}</td><td><a href="{url}">keys</a></td></tr>"#,
            src = esc(&v.source),
            tgt = esc(&v.target),
            tbl = esc(&v.table),
            mi = count("missing"),
            ex = count("extra"),
            st = count("stale"),
            mm = count("mismatched"),
            un = v
                .last_run
                .as_ref()
                .map_or_else(|| "–".to_string(), |r| r.unsettled.to_string()),
            settle = human(v.settle_window_seconds),
            url = esc(&v.discrepancies_url),
        );
    }
    h.push_str(
        "</tbody></table>\n<p class=\"sub\">Discrepancies past the settle window; <b>bold</b>: persistent (also found by the previous run). In flight: keys that differ but changed inside the settle window.</p>\n",
    );
}

/// One conflict probe pair as the status page and `/api/v1/conflicts` show it: its settings,
/// the probes it counted by outcome, and its recent probes, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct ConflictView {
    pub a: String,
    pub b: String,
    pub policy: String,
    pub interval_seconds: f64,
    pub spread_seconds: f64,
    pub timeout_seconds: f64,
    pub canary: String,
    /// Probes since start-up by outcome (`lagwatch_conflict_probes_total`).
    pub outcomes: std::collections::BTreeMap<&'static str, u64>,
    pub probes: Vec<crate::probe::conflict::ConflictProbe>,
}

/// Views of every conflict probe pair, in config order.
pub fn conflict_views(engine: &Engine) -> Vec<ConflictView> {
    let counts = &engine.metrics().conflict.probes;
    engine
        .conflicts()
        .iter()
        .map(|c| {
            let mut probes = c.recent();
            probes.reverse();
            ConflictView {
                a: c.spec.a.clone(),
                b: c.spec.b.clone(),
                policy: c.spec.policy.describe(),
                interval_seconds: c.spec.interval.get().as_secs_f64(),
                spread_seconds: c.spec.spread.get().as_secs_f64(),
                timeout_seconds: c.spec.timeout.get().as_secs_f64(),
                canary: c.canary().key().to_string(),
                outcomes: crate::metrics::conflict::OUTCOMES
                    .iter()
                    .map(|o| {
                        (
                            *o,
                            counts
                                .with_label_values(&[c.spec.a.as_str(), c.spec.b.as_str(), o])
                                .get(),
                        )
                    })
                    .collect(),
                probes,
            }
        })
        .collect()
}

/// The status class a conflict outcome is shown with.
fn conflict_class(outcome: &str) -> &'static str {
    match outcome {
        "converged_same" => "converging",
        "policy_violated" => "lagging",
        "diverged" => "stuck",
        "rejected" => "halted",
        _ => "failing",
    }
}

fn other_shard_rows(h: &mut String, unowned: &[(String, String, u32)]) {
    if unowned.is_empty() {
        return;
    }
    h.push_str(
        "<h2>Measured by other shards</h2>\n<table>\n<thead><tr><th>Path</th><th>Shard</th></tr></thead>\n<tbody>\n",
    );
    for (source, target, owner) in unowned {
        let _ = writeln!(
            h,
            r#"<tr><td>{} → {}</td><td class="num">{owner}</td></tr>"#,
            esc(source),
            esc(target)
        );
    }
    h.push_str("</tbody></table>\n");
}

fn conflict_rows(h: &mut String, views: &[ConflictView]) {
    if views.is_empty() {
        return;
    }
    h.push_str(
        r#"<h2>Conflicts</h2>
<table>
<thead><tr><th>Linked systems</th><th>Policy</th><th>Last probe</th><th>Why</th><th>Agreed after</th><th>Skew (a − b)</th><th>Spread</th><th>Since start</th></tr></thead>
<tbody>
"#,
    );
    for v in views {
        let last = v.probes.first();
        let (outcome, why, agreed, skew) = match last {
            Some(p) => (
                format!(
                    "<span class=\"state {}\">{}</span> {}",
                    conflict_class(p.outcome),
                    p.outcome,
                    p.started_at.format("%H:%M:%S UTC")
                ),
                esc(&p.reason),
                opt(p.agreement_seconds),
                p.skew_seconds
                    .map_or_else(|| "–".to_string(), |s| format!("{s:+.1} s")),
            ),
            None => (
                "not yet".to_string(),
                String::new(),
                "–".to_string(),
                "–".to_string(),
            ),
        };
        let counts: Vec<String> = v
            .outcomes
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(o, n)| format!("{n} {o}"))
            .collect();
        let _ = writeln!(
            h,
            r#"<tr data-conflict="{a}/{b}"><td>{a} ↔ {b}</td><td>{policy}</td><td>{outcome}</td><td><div class="msg" title="{why}">{why}</div></td><td class="num">{agreed}</td><td class="num">{skew}</td><td class="num">{spread}</td><td>{counts}</td></tr>"#,
            a = esc(&v.a),
            b = esc(&v.b),
            policy = esc(&v.policy),
            spread = human(v.spread_seconds),
            counts = if counts.is_empty() {
                "–".to_string()
            } else {
                counts.join(", ")
            },
        );
    }
    h.push_str(
        "</tbody></table>\n<p class=\"sub\">Both systems of a link updated at once (<code>spread</code> apart), then read until they agree: the probes behind each row are at <a href=\"/api/v1/conflicts\">/api/v1/conflicts</a>.</p>\n",
    );
}

/// The "platform says" cell: the verdict, and under it the surface's claim and its age.
fn platform_cell(p: Option<&crate::probe::platform::PlatformView>) -> String {
    use crate::probe::platform::Verdict;
    let Some(p) = p else {
        return "–".to_string();
    };
    let class = match p.verdict {
        Verdict::Agree => "converging",
        Verdict::Explained => "halted",
        Verdict::HealthyButStuck | Verdict::WatermarkPassedCanaryMissing => "stuck",
        Verdict::StatusStale => "lagging",
        Verdict::Unknown => "idle",
    };
    let claim = match (&p.latest, &p.error) {
        (_, Some(e)) => format!("{}: unreadable ({})", p.surface, esc(e)),
        (Some(c), None) => {
            let age = (chrono::Utc::now() - c.read_at).num_seconds().max(0);
            format!(
                "{}: {} ({}), read {} ago",
                p.surface,
                c.claim.state.label(),
                esc(&c.claim.raw),
                human(age as f64)
            )
        }
        (None, None) => format!("{}: not read yet", p.surface),
    };
    format!(
        r#"<span class="state {class}" title="{why}">{verdict}</span><div class="contract"><div class="msg" title="{claim}">{claim}</div></div>"#,
        verdict = p.verdict.label(),
        why = esc(&p.why),
    )
}

/// Where the status page of one path is.
pub fn path_page_url(source: &str, target: &str) -> String {
    format!(
        "/paths/{}/{}",
        crate::percent::component(source),
        crate::percent::component(target)
    )
}

/// Staleness, or, while writes fail, since when no sentinel was written (staleness only ages
/// sentinels that exist, so it would read 0).
fn staleness_cell(v: &PathView) -> String {
    if v.writes_failing {
        let since = v
            .last_written_at
            .as_deref()
            .map_or_else(|| "start-up".to_string(), short_time);
        format!("no sentinel written since {}", esc(&since))
    } else {
        human(v.staleness_seconds)
    }
}

/// `HH:MM:SS UTC` of an RFC 3339 time.
fn short_time(rfc: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc)
        .map(|t| t.format("%H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| rfc.to_string())
}

/// The start of every page up to `<body>`: refreshes itself every `refresh` seconds (a page
/// to print or save, such as the report, passes `None`), shares one style (tables, state
/// badges) and adds the page's own `css`.
pub fn head(h: &mut String, title: &str, refresh: Option<u32>, css: &str) {
    let refresh = refresh
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">\n"))
        .unwrap_or_default();
    let _ = write!(
        h,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
{refresh}<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1b1f24;background:#fafbfc}}
h1{{font-size:1.4rem;margin:0 0 .2rem}} h2{{font-size:1.1rem;margin:1.5rem 0 .5rem}} p.sub{{color:#57606a;margin:0 0 1.2rem}}
table{{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0001}}
th,td{{padding:.5rem .7rem;border-bottom:1px solid #e4e7eb;text-align:left}}
th{{background:#f3f4f6;font-weight:600;font-size:.85rem;color:#404850}}
.state{{display:inline-block;padding:.1rem .55rem;border-radius:1rem;font-weight:600;font-size:.85rem}}
.converging,.converged{{background:#dafbe1;color:#116329}} .lagging{{background:#fff8c5;color:#7d4e00}}
.stuck,.timeout{{background:#ffebe9;color:#a40e26}} .failing,.error,.mismatch{{background:#a40e26;color:#fff}} .halted{{background:#6e40c9;color:#fff}} .idle{{background:#eaeef2;color:#404850}}
a{{color:#0969da}}
{css}
</style></head><body>
"#,
        title = esc(title),
    );
}

/// A line per declared guarantee under a path's state: kept, or broken how often and when last.
fn contract_lines(contract: &[GuaranteeView]) -> String {
    let mut out = String::new();
    for g in contract {
        let name = g.guarantee.replace('_', " ");
        match (&g.last_violation_at, g.violations) {
            (_, 0) => {
                let _ = write!(out, r#"<div class="contract">{name}: kept</div>"#);
            }
            (last, n) => {
                let _ = write!(
                    out,
                    r#"<div class="contract broken" title="last at {at}">{name}: broken {n}×</div>"#,
                    at = esc(last.as_deref().unwrap_or("?")),
                );
            }
        }
    }
    out
}

/// The status page: plain HTML that refreshes itself, readable without JavaScript. A shard
/// (`shard`, of `total` > 1) lists the paths the other shards measure (`unowned`: source,
/// target, owning shard), so that an operator looking for one finds where it went.
pub fn render_html(
    instance: &str,
    views: &[PathView],
    reconciliations: &[ReconcileView],
    conflicts: &[ConflictView],
    shard: crate::config::Shard,
    unowned: &[(String, String, u32)],
) -> String {
    let mut h = String::with_capacity(4096 + views.len() * 800);
    head(
        &mut h,
        &format!("lagwatch · {instance}"),
        Some(5),
        "th,td{white-space:nowrap} td.num{text-align:right;font-variant-numeric:tabular-nums}\n\
         div.msg{max-width:22rem;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}\n\
         div.contract{font-size:.8rem;color:#116329;margin-top:.2rem} div.contract.broken{color:#a40e26;font-weight:600}\n\
         footer{margin-top:1rem;color:#57606a;font-size:.85rem}",
    );
    let _ = write!(
        h,
        r#"<h1>lagwatch</h1>
<p class="sub">Instance <b>{inst}</b> · {n} paths{of_shard} · refreshes every 5 s</p>
<table>
<thead><tr><th>Path</th><th>State</th><th>Last lag</th><th>p50 / p95 (1 h)</th><th>Success (1 h)</th><th>Staleness</th><th>Objective</th><th>In flight</th><th>Platform says</th><th>Last error</th></tr></thead>
<tbody>
"#,
        inst = esc(instance),
        n = views.len(),
        of_shard = if shard.total > 1 {
            format!(
                " · shard {shard} (the other shards measure {})",
                unowned.len()
            )
        } else {
            String::new()
        },
    );
    for v in views {
        let last = match (v.last_lag_seconds, v.lag_uncertainty_seconds) {
            (Some(l), Some(u)) => format!("{} ± {}", human(l), human(u)),
            _ => "–".to_string(),
        };
        let success = v
            .success_ratio_1h
            .map(|r| format!("{:.1} % of {}", r * 100.0, v.probes_1h))
            .unwrap_or_else(|| "–".to_string());
        let _ = writeln!(
            h,
            r#"<tr data-path="{src}->{tgt}"><td><a href="{page}">{src} → {tgt}</a></td><td><span class="state {st}">{st}</span>{contract}</td><td class="num">{last}</td><td class="num">{p50} / {p95}</td><td class="num">{success}</td><td class="num">{stale}</td><td class="num">{obj}</td><td class="num">{inflight}</td><td>{platform}</td><td><div class="msg" title="{title}">{err}</div></td></tr>"#,
            src = esc(&v.source),
            tgt = esc(&v.target),
            page = esc(&path_page_url(&v.source, &v.target)),
            title = esc(v.last_error_message.as_deref().unwrap_or_default()),
            st = v.state.label(),
            contract = contract_lines(&v.contract),
            p50 = opt(v.p50_seconds_1h),
            p95 = opt(v.p95_seconds_1h),
            stale = staleness_cell(v),
            obj = human(v.objective_seconds),
            inflight = v.in_flight,
            platform = platform_cell(v.platform.as_ref()),
            err = match (v.last_error_kind, v.last_outcome) {
                (Some(kind), _) => match &v.last_error_message {
                    Some(m) => format!("{}: {}", esc(kind), esc(m)),
                    None => esc(kind),
                },
                (None, Some(Outcome::Timeout)) => "timeout".to_string(),
                (None, Some(Outcome::Halted)) => "replication not running".to_string(),
                _ => "–".to_string(),
            },
        );
    }
    h.push_str("</tbody></table>\n");
    reconcile_rows(&mut h, reconciliations);
    conflict_rows(&mut h, conflicts);
    other_shard_rows(&mut h, unowned);
    let _ = write!(
        h,
        r#"<footer>Lag is the midpoint of the interval in which the sentinel is known to have arrived; ± is half that interval.
<a href="/report">Consistency report</a> · <a href="/metrics">/metrics</a> · <a href="/api/v1/paths">/api/v1/paths</a> · <a href="/api/v1/reconciliations">/api/v1/reconciliations</a> · <a href="/api/v1/discrepancies">/api/v1/discrepancies</a> · <a href="/api/v1/conflicts">/api/v1/conflicts</a> · <a href="/readyz">/readyz</a></footer>
</body></html>
"#
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Shard;

    #[test]
    fn a_declared_guarantee_shows_kept_or_broken_with_when() {
        let kept = GuaranteeView {
            guarantee: "monotonic_reads",
            violations: 0,
            last_violation_at: None,
        };
        let broken = GuaranteeView {
            violations: 3,
            last_violation_at: Some("2026-12-05T22:40:01.000Z".into()),
            ..kept.clone()
        };
        assert_eq!(
            contract_lines(std::slice::from_ref(&kept)),
            r#"<div class="contract">monotonic reads: kept</div>"#
        );
        assert_eq!(
            contract_lines(&[broken]),
            r#"<div class="contract broken" title="last at 2026-12-05T22:40:01.000Z">monotonic reads: broken 3×</div>"#
        );
        assert_eq!(contract_lines(&[]), "");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(0.25), "250 ms");
        assert_eq!(human(3.21), "3.2 s");
        assert_eq!(human(42.0), "42 s");
        assert_eq!(human(200.0), "3 min 20 s");
        assert_eq!(human(180.0), "3 min");
        assert_eq!(human(7500.0), "2 h 5 min");
        assert_eq!(about(185.0), "about 3 minutes");
        assert_eq!(about(2.0), "a few seconds");
        assert_eq!(about(41.0), "about 40 seconds");
    }

    #[test]
    fn quantiles_pick_ranks() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(51.0));
        assert_eq!(quantile(&v, 0.95), Some(95.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn html_escapes_and_has_no_script() {
        let h = render_html("<x>", &[], &[], &[], Shard::default(), &[]);
        assert!(h.contains("&lt;x&gt;"));
        assert!(!h.contains("<script"));
        assert!(h.contains(r#"<a href="/report">Consistency report</a>"#));
        assert!(!h.contains("shard"), "one shard says nothing of shards");
    }

    #[test]
    fn a_shard_lists_the_paths_the_others_measure() {
        let shard: Shard = "1/3".parse().expect("a shard");
        let unowned = [("crm".to_string(), "<fno>".to_string(), 2)];
        let h = render_html("x", &[], &[], &[], shard, &unowned);
        assert!(h.contains("shard 1/3 (the other shards measure 1)"), "{h}");
        assert!(h.contains("<h2>Measured by other shards</h2>"));
        assert!(h.contains(r#"<tr><td>crm → &lt;fno&gt;</td><td class="num">2</td></tr>"#));
    }
}
