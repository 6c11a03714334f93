//! A path's consistency characteristic over a window: each guarantee declared against what was
//! measured, with the sentinels that broke it (`GET /api/v1/contracts`, `lagwatch report`).
//!
//! Why a window of whole hours: the counts come from each path's hourly history
//! (`probe::history`), kept for [`MAX_WINDOW`]; a window starts at the beginning of the hour
//! it reaches into, and the report says when exactly (`window_start`), never more than it saw.
//! The types are also read back (the `report` command fetches them from a running instance),
//! so they deserialize as well.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Contract;
use crate::metrics::series::{READ_AGE_BOUNDS, VERSION_BOUNDS};
use crate::probe::Engine;
use crate::probe::history::{EvidenceKind, HOURS};

/// The longest window a report can cover: the hours each path keeps.
pub const MAX_WINDOW: std::time::Duration = std::time::Duration::from_secs(HOURS as u64 * 3600);

/// The window of a report when `since` is not given: a day shows a daily batch and a night.
pub const DEFAULT_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Why a `since` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// Not in the duration grammar (the grammar's own sentence).
    #[error("{0}")]
    Grammar(String),
    #[error("must be longer than 0s and at most 7d")]
    OutOfRange,
}

/// The window `since` asks for ([`DEFAULT_WINDOW`] without one). One check for the API, the
/// report page and `lagwatch report`, so that the command refuses what the instance would,
/// before asking it.
///
/// # Errors
/// A `since` outside the duration grammar, zero, or longer than [`MAX_WINDOW`].
pub fn window(since: Option<&str>) -> Result<std::time::Duration, WindowError> {
    match since.map(crate::config::duration::parse) {
        None => Ok(DEFAULT_WINDOW),
        Some(Ok(d)) if !d.is_zero() && d <= MAX_WINDOW => Ok(d),
        Some(Ok(_)) => Err(WindowError::OutOfRange),
        Some(Err(why)) => Err(WindowError::Grammar(why)),
    }
}

/// Every path's guarantees over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractsReport {
    pub instance: String,
    pub generated_at: String,
    /// The start of the window (the hour the requested window reaches into, or when this
    /// process started, whichever is later).
    pub window_start: String,
    pub paths: Vec<PathContract>,
}

/// One path's guarantees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathContract {
    pub source: String,
    pub target: String,
    /// The target system's `kind:`.
    pub target_kind: String,
    /// `visibility`, `monotonic_reads`, `deletes`, `causal`, `updates`, `order`, in that
    /// order (`order` is measured, never declared).
    pub guarantees: Vec<GuaranteeReport>,
    /// t-visibility: reads by age bucket over the window (non-cumulative buckets).
    pub t_visibility: Vec<VisibilityBucket>,
    /// Delete lags of the deletes watched in the window (at most the last 200 of the path).
    pub delete_lag: Option<LagSummary>,
    /// The update canary's reads by k-staleness over the window; `None` without a canary.
    #[serde(default)]
    pub k_staleness: Option<Vec<KBucket>>,
}

/// The canary's reads with a k-staleness in one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KBucket {
    /// The bucket's upper bound (versions behind); `None` for the last (`+Inf`).
    pub k_le: Option<u64>,
    pub reads: u64,
}

/// How one guarantee fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuaranteeReport {
    pub guarantee: String,
    /// What the path declares (`"2m"`, `"true"`); `None` when it does not declare it (it is
    /// still measured where it can be).
    pub declared: Option<String>,
    pub status: Status,
    /// Events that could have broken it in the window (probes, deletes watched).
    pub observations: u64,
    /// Events that broke it in the window.
    pub violations: u64,
    /// What was measured, in words ("97.1 % of 1,203 probes within 2m").
    pub summary: String,
    /// The latest sentinels that broke it in the window (at most 20), to look up in
    /// `/api/v1/probes` and the logs.
    pub evidence: Vec<Evidence>,
}

impl GuaranteeReport {
    /// A guarantee the target kind cannot show, and why.
    fn not_observable(guarantee: &str, why: &str) -> Self {
        GuaranteeReport {
            guarantee: guarantee.to_string(),
            declared: None,
            status: Status::NotObservable,
            observations: 0,
            violations: 0,
            summary: why.to_string(),
            evidence: Vec::new(),
        }
    }
}

/// The verdict on one guarantee over the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Observed, never broken.
    Holds,
    /// Broken at least once.
    Violated,
    /// Nothing that could show it happened in the window.
    NoData,
    /// The target kind cannot show it (the reason is the summary).
    NotObservable,
}

/// One sentinel that broke a guarantee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub at: String,
    /// The sentinel's key.
    pub sentinel: String,
    /// Where this instance shows it: `/api/v1/probes?sentinel=…`, or for a causal pair's
    /// child `/api/v1/pairs?sentinel=…`.
    pub url: String,
    /// What happened, in words.
    pub what: String,
}

/// Reads of one age bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisibilityBucket {
    /// The bucket's upper bound in seconds; `None` for the last (`+Inf`).
    pub age_le: Option<f64>,
    pub fresh: u64,
    pub stale: u64,
}

/// A distribution of lags, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagSummary {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

/// Where an instance shows the sentinel behind evidence of `guarantee`: its probe, or (a
/// causal pair's child) its pair. The report builds links with this rather than trusting the
/// `url` of a report fetched from elsewhere.
pub fn evidence_url(guarantee: &str, sentinel: &str) -> String {
    let api = match guarantee {
        "causal" => "/api/v1/pairs",
        _ => "/api/v1/probes",
    };
    format!(
        "{api}?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("sentinel", sentinel)
            .finish()
    )
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The report of every path of `engine` over the last `window` (at most [`MAX_WINDOW`]).
pub fn report(engine: &Engine, instance: &str, window: std::time::Duration) -> ContractsReport {
    let now = Utc::now();
    let window = window.min(MAX_WINDOW);
    let from = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::zero());
    let mut start = now;
    let paths = engine
        .paths()
        .iter()
        .map(|p| {
            let spec = &p.spec;
            let state = p.state();
            let (sum, first) = state.hours.since(from);
            start = start.min(first.unwrap_or(now));
            let evidence = |guarantee: &str, kind: &[EvidenceKind]| -> Vec<Evidence> {
                state
                    .evidence
                    .iter()
                    .rev()
                    .filter(|e| e.at >= from && kind.contains(&e.kind))
                    .take(20)
                    .map(|e| Evidence {
                        at: rfc(e.at),
                        sentinel: e.sentinel.to_string(),
                        url: evidence_url(guarantee, &e.sentinel),
                        what: e.kind.words().to_string(),
                    })
                    .collect()
            };
            let status = |observations: u64, violations: u64| match (observations, violations) {
                (_, v) if v > 0 => Status::Violated,
                (0, _) => Status::NoData,
                _ => Status::Holds,
            };
            let objective = crate::config::Dur(spec.objective.get());
            let late = sum.probes - sum.within_objective;
            let visibility = GuaranteeReport {
                guarantee: "visibility".to_string(),
                declared: Some(objective.to_string()),
                status: status(sum.probes, late),
                observations: sum.probes,
                violations: late,
                summary: if sum.probes == 0 {
                    "no probe resolved".to_string()
                } else {
                    format!(
                        "{:.1} % of {} probes seen within {objective}",
                        100.0 * sum.within_objective as f64 / sum.probes as f64,
                        sum.probes
                    )
                },
                evidence: evidence("visibility", &[EvidenceKind::Late]),
            };
            let declared = spec.contract.declared();
            let monotonic = if let Err(why) = &spec.observable.regressions {
                GuaranteeReport::not_observable("monotonic_reads", why)
            } else {
                GuaranteeReport {
                    guarantee: "monotonic_reads".to_string(),
                    declared: declared[Contract::MONOTONIC_READS].then(|| "true".to_string()),
                    status: status(sum.seen, sum.regressions),
                    observations: sum.seen,
                    violations: sum.regressions,
                    summary: if spec.update_interval.is_some() {
                        format!(
                            "{} regressions in {} reads that could show one (sentinels seen, confirm {}; update-canary reads: {} of {} behind the latest version)",
                            sum.regressions,
                            sum.seen,
                            spec.confirm,
                            sum.canary_stale,
                            sum.canary_reads
                        )
                    } else {
                        format!(
                            "{} of {} sentinels seen were missing from a later read (confirm {})",
                            sum.regressions, sum.seen, spec.confirm
                        )
                    },
                    evidence: evidence("monotonic_reads", &[EvidenceKind::Regressed]),
                }
            };
            let deletes = match (spec.delete_watch, &spec.observable.deletes) {
                (Some(window), Ok(())) => {
                    let watched = sum.deletes_gone + sum.deletes_lost;
                    let broken = sum.deletes_lost + sum.resurrections;
                    GuaranteeReport {
                        guarantee: "deletes".to_string(),
                        declared: spec.contract.deletes.map(|d| d.to_string()),
                        status: status(watched, broken),
                        observations: watched,
                        violations: broken,
                        summary: format!(
                            "{} of {watched} deletes watched still there after {window}, {} came back after they had gone",
                            sum.deletes_lost, sum.resurrections
                        ),
                        evidence: evidence("deletes", &[EvidenceKind::DeleteLost, EvidenceKind::Resurrected]),
                    }
                }
                (_, why) => GuaranteeReport::not_observable(
                    "deletes",
                    why.as_ref().err().map_or("", String::as_str),
                ),
            };
            let causal = match (spec.pair_interval, &spec.observable.causal) {
                (Some(every), _) => {
                    let read = sum.pairs_ordered + sum.pairs_violated;
                    GuaranteeReport {
                        guarantee: "causal".to_string(),
                        declared: spec.contract.causal.then(|| "true".to_string()),
                        status: status(read, sum.pairs_violated),
                        observations: read,
                        violations: sum.pairs_violated,
                        summary: format!(
                            "{} of {read} causal pairs (one every {every}) showed the child without its parent{}",
                            sum.pairs_violated,
                            if p.target.reads_together() {
                                " in one read of both"
                            } else {
                                " (each read alone: suspected, not certain)"
                            }
                        ),
                        evidence: evidence("causal", &[EvidenceKind::ChildFirst]),
                    }
                }
                (None, Err(why)) => GuaranteeReport::not_observable("causal", why),
                (None, Ok(())) => GuaranteeReport::not_observable(
                    "causal",
                    "causal pairs are off on this path (pair_interval: 0s)",
                ),
            };
            let updates = match spec.update_interval {
                Some(every) => {
                    let log = p.checks_versions();
                    // A path that declares `latest` is judged by it; a change log that declares
                    // `every`, or nothing, by every version.
                    let each_version =
                        log && spec.contract.updates != Some(crate::config::Updates::Latest);
                    let broken = sum.updates_lost
                        + if each_version {
                            sum.versions_lost + sum.versions_duplicated
                        } else {
                            0
                        };
                    GuaranteeReport {
                        guarantee: "updates".to_string(),
                        declared: spec.contract.updates.map(|u| u.name().to_string()),
                        status: status(sum.canary_reads, broken),
                        observations: sum.canary_reads,
                        violations: broken,
                        summary: format!(
                            "{} canary versions (one every {every}) not reached within the timeout of {}{}, in {} canary reads",
                            sum.updates_lost,
                            spec.timeout,
                            if log {
                                format!(
                                    "; of every version, {} never in the change log within the timeout and {} repeated",
                                    sum.versions_lost, sum.versions_duplicated
                                )
                            } else {
                                String::new()
                            },
                            sum.canary_reads
                        ),
                        evidence: evidence(
                            "updates",
                            &[EvidenceKind::UpdateLost, EvidenceKind::VersionsBroken],
                        ),
                    }
                }
                None => GuaranteeReport::not_observable(
                    "updates",
                    "no update canary on this path (update_interval; a source that can write a record again, a target that returns its content)",
                ),
            };
            let order = if p.checks_order() {
                GuaranteeReport {
                    guarantee: "order".to_string(),
                    declared: None,
                    status: status(sum.ordered_sightings, sum.inversions),
                    observations: sum.ordered_sightings,
                    violations: sum.inversions,
                    summary: format!(
                        "{} of {} sentinels seen while one written before them was missing from the same read",
                        sum.inversions, sum.ordered_sightings
                    ),
                    evidence: evidence("order", &[EvidenceKind::OutOfOrder]),
                }
            } else {
                GuaranteeReport::not_observable(
                    "order",
                    "the kind does not claim to apply writes in order (change-log lakes do)",
                )
            };
            let t_visibility = READ_AGE_BOUNDS
                .iter()
                .enumerate()
                .map(|(i, b)| VisibilityBucket {
                    age_le: b.is_finite().then_some(*b),
                    fresh: u64::from(sum.reads[0][i]),
                    stale: u64::from(sum.reads[1][i]),
                })
                .collect();
            let mut lags: Vec<f64> = state
                .deletes
                .iter()
                .filter(|d| d.acked_at >= from)
                .filter_map(|d| d.estimate.map(|e| e.lag.as_secs_f64()))
                .collect();
            lags.sort_by(f64::total_cmp);
            let delete_lag = (!lags.is_empty()).then(|| LagSummary {
                count: lags.len() as u64,
                p50: quantile(&lags, 0.5),
                p95: quantile(&lags, 0.95),
                max: lags[lags.len() - 1],
            });
            PathContract {
                source: spec.source.clone(),
                target: spec.target.clone(),
                target_kind: spec.target_kind.clone(),
                guarantees: vec![visibility, monotonic, deletes, causal, updates, order],
                t_visibility,
                delete_lag,
                k_staleness: spec.update_interval.map(|_| {
                    sum.canary_k
                        .iter()
                        .enumerate()
                        .map(|(i, n)| KBucket {
                            k_le: VERSION_BOUNDS.get(i).map(|b| *b as u64),
                            reads: u64::from(*n),
                        })
                        .collect()
                }),
            }
        })
        .collect();
    ContractsReport {
        instance: instance.to_string(),
        generated_at: rfc(now),
        window_start: rfc(start),
        paths,
    }
}
