//! The platforms' own status surfaces (fact sheet `platform-status.md` §1.1–1.6), driven by the
//! replication the emulator really does, and able to lie on purpose.
//!
//! Why: lagwatch reads each platform's claim about itself beside its canaries (issue 17), and
//! its verdicts (`agree`, `explained`, `healthy_but_stuck`, `watermark_passed_canary_missing`,
//! `status_stale`) need estates where the claim is true and estates where it is wrong in a
//! known way, with the truth to tell which.
//!
//! Every replica with a surface gets it, with no knob: lake replicas a Synapse Link profile
//! (CSV: `synapselinkprofileentitystates`; Delta: `synapselinkexternaltablestates`), search
//! replicas an indexer, Elasticsearch replicas refresh and indexing statistics, dual-write
//! replicas (an F&O target or source) a `DualWriteProjectConfigurations` row, Dataverse search
//! indexes an entry of their environment's `searchstatus`. Honest values are
//! derived from what the replica did ([`Book`]: rows exported and when they became readable,
//! versions committed, indexer runs, refresh ticks), so an honest surface never contradicts the
//! ground truth. A replica's `status_lie` bends its surface in one known way, always or in
//! windows; `GET /_truth/status/{replica}` gives the claim, the honest claim and the
//! replication's condition, and names the lie when it changes the claim.
//!
//! The replication's *condition* at an instant, from the scenario: `stopped` (map `state:
//! stopped`), `paused` (`state: paused` or a `paused` window), `stalled` (a `stall` outage),
//! `unavailable` (an `unavailable` outage: reads fail, replication goes on), else `flowing`.

mod dataverse_search;
mod dual_write;
mod elastic;
mod indexer;
mod lake;

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::simulated::{Outage, OutageMode, outage_window};

use super::replication::ReplicaDef;
use super::scenario::{LieKind, MapState, Target};
use super::{Emulator, json_response, rfc3339};

pub(crate) use dual_write::ENTITY as DUAL_WRITE_ENTITY;
pub(crate) use indexer::IndexerLog;
pub(crate) use lake::{LakeLog, Reading};

/// What the replication of a replica is doing at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Condition {
    Flowing,
    Paused,
    Stalled,
    Unavailable,
    Stopped,
}

impl Condition {
    pub fn name(self) -> &'static str {
        match self {
            Condition::Flowing => "flowing",
            Condition::Paused => "paused",
            Condition::Stalled => "stalled",
            Condition::Unavailable => "unavailable",
            Condition::Stopped => "stopped",
        }
    }
}

/// A lie in force: which, and when its window began.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActiveLie {
    pub kind: LieKind,
    pub since: Instant,
}

/// When the `stale_while_flowing` lie in force began, if that is the lie: what a stale
/// claim keeps.
pub(crate) fn stale_since(lie: Option<ActiveLie>) -> Option<Instant> {
    lie.filter(|l| l.kind == LieKind::StaleWhileFlowing)
        .map(|l| l.since)
}

/// What a surface claims, in the terms every surface shares: a state, when it last synced,
/// a version watermark, a counter (Elasticsearch `external_total`), and the surface's own
/// values (its integer enums, run status…).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Claim {
    /// `healthy`, `paused`, `error`, `not_running` or `in_progress`.
    pub state: &'static str,
    pub last_sync: Option<Instant>,
    pub watermark: Option<u64>,
    pub counter: Option<u64>,
    /// The surface's own fields, as served.
    pub raw: Map<String, Value>,
}

impl Claim {
    pub fn new(state: &'static str) -> Claim {
        Claim {
            state,
            last_sync: None,
            watermark: None,
            counter: None,
            raw: Map::new(),
        }
    }
}

/// What the status surfaces remember of the replication, per replica (locked after the
/// emulator's state, never while taking it).
#[derive(Default)]
pub(crate) struct Book {
    pub lakes: HashMap<String, LakeLog>,
    pub indexers: HashMap<String, IndexerLog>,
    pub es: HashMap<String, elastic::EsLog>,
    /// Dataverse search indexes: each record version made findable, as a lake's rows.
    pub searches: HashMap<String, LakeLog>,
}

/// Most entries a log keeps of anything that grows with writes (rows in flight, versions not
/// yet readable, indexer items not yet processed, history for a frozen claim).
pub(crate) const LOG_CAPACITY: usize = 200_000;

/// Most past values a log keeps to answer "what was claimed at the lie's start".
pub(crate) const HISTORY: usize = 4096;

impl Emulator {
    pub(crate) fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The replication's condition of replica `name` at `at` (see the module docs).
    pub(crate) fn condition(&self, name: &str, at: Instant) -> Condition {
        let Some(r) = self.scenario.replicas.get(name) else {
            return Condition::Flowing;
        };
        match r.state {
            MapState::Stopped => return Condition::Stopped,
            MapState::Paused => return Condition::Paused,
            MapState::Running => {}
        }
        let paused: Vec<Outage> = r
            .paused
            .iter()
            .map(|w| Outage {
                start: w.start,
                duration: w.duration,
                every: w.every,
                mode: OutageMode::Stall,
            })
            .collect();
        if outage_window(self.started, &paused, at, OutageMode::Stall).is_some() {
            Condition::Paused
        } else if outage_window(self.started, &r.outages, at, OutageMode::Stall).is_some() {
            Condition::Stalled
        } else if outage_window(self.started, &r.outages, at, OutageMode::Unavailable).is_some() {
            Condition::Unavailable
        } else {
            Condition::Flowing
        }
    }

    /// The lie of replica `name` in force at `at`, if any.
    pub(crate) fn lie_at(&self, name: &str, at: Instant) -> Option<ActiveLie> {
        let lie = self.scenario.replicas.get(name)?.status_lie.as_ref()?;
        let (since, _) = outage_window(self.started, &lie.windows(), at, OutageMode::Stall)?;
        Some(ActiveLie {
            kind: lie.lie,
            since,
        })
    }

    /// The surface replica `r`'s status is read from, if it has one.
    fn surface_of(&self, r: &ReplicaDef) -> Option<&'static str> {
        if matches!(r.origin, super::replication::Origin::Fno) {
            return Some("dual_write");
        }
        match &r.target {
            Target::Fno { .. } => Some("dual_write"),
            Target::Search { .. } => Some("search_indexer"),
            Target::Elasticsearch { .. } => Some("elasticsearch"),
            Target::DataverseSearch { .. } => Some("dataverse_search"),
            Target::Lake { .. } => {
                Some(if self.lakes.of_replica(&r.name).is_some_and(|d| d.delta) {
                    "link_to_fabric"
                } else {
                    "synapse_link"
                })
            }
            Target::Dataverse { .. } => None,
        }
    }

    /// Replica `r`'s claim at `now`: as served (its `status_lie` applied), or `honest`.
    pub(crate) fn claim(&self, r: &ReplicaDef, now: Instant, honest: bool) -> Option<Claim> {
        match self.surface_of(r)? {
            "dual_write" => Some(self.dual_write_claim(r, now, honest)),
            "search_indexer" => Some(self.indexer_claim(r, now, honest)),
            "elasticsearch" => Some(self.es_claim(r, now, honest)),
            "dataverse_search" => Some(self.search_status_claim(r, now, honest)),
            _ => self.lake_claim(r, now, honest),
        }
    }

    /// The lie that bends replica `name`'s claim at `now`: none when `honest`.
    pub(crate) fn lie_for(&self, name: &str, now: Instant, honest: bool) -> Option<ActiveLie> {
        if honest { None } else { self.lie_at(name, now) }
    }

    /// `GET /_truth/status` (the replicas with a surface) and `GET /_truth/status/{replica}`.
    pub(crate) fn status_truth_endpoint(&self, replica: Option<&str>) -> Response {
        let Some(name) = replica else {
            let list: Vec<Value> = self
                .replicas
                .iter()
                .filter_map(|r| {
                    self.surface_of(r).map(|s| {
                        json!({"replica": r.name, "surface": s,
                               "truth": format!("/_truth/status/{}", r.name)})
                    })
                })
                .collect();
            return json_response(StatusCode::OK, &json!({"replicas": list}));
        };
        let not_found = |why: String| json_response(StatusCode::NOT_FOUND, &json!({"error": why}));
        let Some(r) = self.replicas.iter().find(|r| r.name == name) else {
            return not_found(format!("no replica \"{name}\""));
        };
        let Some(surface) = self.surface_of(r) else {
            return not_found(format!(
                "replica \"{name}\" (into a Dataverse table) has no status surface"
            ));
        };
        let now = Instant::now();
        let lie = self.lie_at(name, now);
        let (Some(claimed), Some(honest)) = (self.claim(r, now, false), self.claim(r, now, true))
        else {
            return not_found(format!("replica \"{name}\" has no status surface"));
        };
        let configured = self
            .scenario
            .replicas
            .get(name)
            .and_then(|s| s.status_lie.as_ref());
        let lying = configured
            .filter(|_| claimed != honest)
            .map(|l| l.lie.name());
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        let mut truth = self.claim_json(&honest);
        truth.insert(
            "replication".into(),
            json!(self.condition(name, now).name()),
        );
        json_response(
            StatusCode::OK,
            &json!({
                "replica": name,
                "surface": surface,
                "lie": configured.map(|l| json!({
                    "lie": l.lie.name(),
                    "start_seconds": l.start.get().as_secs_f64(),
                    "duration_seconds": secs(l.duration.map(|d| d.get())),
                    "every_seconds": secs(l.every.map(|d| d.get())),
                })),
                "lie_active": lie.map(|l| l.kind.name()),
                "lie_since": lie.map(|l| rfc3339(self.wall_time(l.since))),
                "lying": lying,
                "claims": Value::Object(self.claim_json(&claimed)),
                "truth": Value::Object(truth),
                "now": rfc3339(self.wall_time(now)),
            }),
        )
    }

    fn claim_json(&self, c: &Claim) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("state".into(), json!(c.state));
        m.insert(
            "last_sync".into(),
            json!(c.last_sync.map(|i| rfc3339(self.wall_time(i)))),
        );
        m.insert(
            "last_sync_unix".into(),
            json!(c.last_sync.map(|i| {
                let w = self.wall_time(i);
                w.timestamp() as f64 + f64::from(w.timestamp_subsec_nanos()) / 1e9
            })),
        );
        m.insert("watermark".into(), json!(c.watermark));
        m.insert("counter".into(), json!(c.counter));
        m.insert("surface".into(), Value::Object(c.raw.clone()));
        m
    }

    /// Notes a change of a record of replica `r` committed at `now`: a write (`payload`, the
    /// committed row) or a delete (`None`), reaching the target at `arrival` (`None`: never).
    /// A lake notes the version (its rows are noted as they are queued), a search replica an
    /// item for its indexer, Elasticsearch an indexing, a Dataverse search index the version
    /// and when it is findable. Called by replication with the state
    /// locked.
    pub(crate) fn status_note(
        &self,
        r: &ReplicaDef,
        key: &str,
        payload: Option<&str>,
        arrival: Option<Instant>,
        now: Instant,
    ) {
        let horizon = self.started + super::scenario::FOREVER.get() / 2;
        let arrival = arrival.filter(|a| *a <= horizon);
        // The committed row's `versionnumber` (a write of a Dataverse row has one).
        let version = || {
            payload
                .and_then(|p| serde_json::from_str::<Map<String, Value>>(p).ok())
                .and_then(|m| m.get("versionnumber").and_then(Value::as_u64))
        };
        match &r.target {
            Target::Lake { .. } => {
                if let Some(v) = version() {
                    self.book()
                        .lakes
                        .entry(r.name.clone())
                        .or_default()
                        .note_version(v, arrival);
                }
            }
            Target::Search { .. } => {
                let every = self
                    .scenario
                    .indexer_of(&r.name)
                    .map_or(Duration::from_secs(30), |(_, e)| e.get());
                self.book()
                    .indexers
                    .entry(r.name.clone())
                    .or_insert_with(|| IndexerLog::new(self.started, every))
                    .note(key, now, arrival);
            }
            Target::DataverseSearch { .. } => {
                if let Some(v) = version() {
                    self.search_note(r, v, arrival);
                }
            }
            Target::Elasticsearch { .. } => {
                if let Some(a) = arrival {
                    let tick = self.es_tick(r, a);
                    self.book().es.entry(r.name.clone()).or_default().note(
                        a,
                        tick,
                        payload.is_none(),
                    );
                }
            }
            _ => {}
        }
    }
}

/// A Dataverse-style deterministic id for a status row.
pub(crate) fn row_id(kind: &str, name: &str) -> uuid::Uuid {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in kind.bytes().chain([b':']).chain(name.bytes()) {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
    }
    uuid::Builder::from_random_bytes(h.to_be_bytes()).into_uuid()
}

/// Keeps `(at, value)` pairs in order, the last [`HISTORY`]; `value_at(t)` is the value of
/// the last pair at or before `t`.
#[derive(Debug, Default)]
pub(crate) struct History<T: Copy> {
    pairs: std::collections::VecDeque<(Instant, T)>,
}

impl<T: Copy> History<T> {
    pub fn push(&mut self, at: Instant, v: T) {
        self.pairs.push_back((at, v));
        if self.pairs.len() > HISTORY {
            self.pairs.pop_front();
        }
    }

    pub fn value_at(&self, t: Instant) -> Option<(Instant, T)> {
        self.pairs.iter().rev().find(|(at, _)| *at <= t).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_answers_the_value_in_force() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut h = History::default();
        h.push(t0 + s, 1u64);
        h.push(t0 + 3 * s, 2);
        assert_eq!(h.value_at(t0), None);
        assert_eq!(h.value_at(t0 + 2 * s).map(|p| p.1), Some(1));
        assert_eq!(h.value_at(t0 + 3 * s).map(|p| p.1), Some(2));
    }

    #[test]
    fn row_ids_are_stable_and_distinct() {
        assert_eq!(row_id("profile", "dl"), row_id("profile", "dl"));
        assert_ne!(row_id("profile", "dl"), row_id("profile", "fabric"));
        assert_ne!(row_id("profile", "dl"), row_id("schedule", "dl"));
    }
}
