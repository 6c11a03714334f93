//! Replication from Dataverse entity sets to the targets, and by dual-write from writable F&O
//! entities into Dataverse tables, on the simulated [`Landscape`](crate::simulated::Landscape).
//!
//! Each scenario replica is one landscape source (`emulator:<replica>`) with one landscape
//! replica (`<replica>`), so every replica draws its own lag, drop, mismatch and flap per
//! write, and a replica's `filter` decides per write whether the record goes to it at all. The
//! payload committed is the source row as JSON (an F&O row: its fields and `dataAreaId`, plus
//! the `versionnumber` the Dataverse copy shows); reads map it to the target's fields
//! (`map`, `transform`) when served. A mismatched record (the landscape's mismatch draw) arrives
//! with every mapped text field except the key's changed (a `~` appended), so content checks
//! notice it while lookups by key still find it. An update commits again; until the new
//! version arrives the replica keeps showing the version it had.
//!
//! A delete goes through the landscape too: each replica keeps serving the row (by key and in
//! queries, listings, `$filter` and search) until its `gone_at`, and again during a
//! resurrection window, never after; a dropped delete leaves it there. The row's last version
//! is kept as a tombstone until it has left for good (Elasticsearch `_search`: until the first
//! refresh after that), then dropped from the replica's index, a few per write or delete. A
//! lake replica gets its delete row at `gone_at` ([`Emulator::lake_delete`]).
//!
//! A change-log lake replica can lose or repeat versions on purpose: the landscape draws
//! `version_drop_probability` and `version_duplicate_probability` for each update (with the
//! replica's other write draws, from the seeded generator), a lost version never reaches the
//! export and a duplicated one is appended twice ([`Emulator::lake_commit`]). Each record's
//! index keeps their commit instants for the truth (`versions_dropped`,
//! `versions_duplicated`), because a check that every version arrives once has to count
//! exactly these.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use crate::simulated::{DROPPED_DELETE_KEPT, ReplicaEntry, ReplicaSpec, VersionFate};

use super::odata::{Dialect, Filter, parse_filter};
use super::scenario::{self, FOREVER, ReplicaSource, Scenario, Target, Transform};
use super::{Emulator, json_response, rfc3339};

/// Most key → record entries remembered per replica for the truth endpoint.
const KEY_CAPACITY: usize = 200_000;

/// Expired tombstones dropped from a replica's index per write or delete.
const PURGE_BATCH: usize = 16;

/// Most dropped, and most duplicated, versions remembered per record for the truth endpoint:
/// an update canary written every few seconds keeps about an hour, more than a check of its
/// versions looks back.
const VERSIONS_KEPT: usize = 1024;

/// Which service a replica's source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Dataverse,
    /// A writable F&O entity, copied into Dataverse by dual-write.
    Fno,
}

/// A resolved scenario replica.
pub(crate) struct ReplicaDef {
    pub name: String,
    pub origin: Origin,
    /// The source's environment (Dataverse or F&O, by `origin`).
    pub env: String,
    /// The source's entity set (Dataverse) or data entity (F&O).
    pub set: String,
    pub target: Target,
    pub key_column: String,
    /// The target field filled from the key column, if the map has one.
    pub key_field: Option<String>,
    pub map: Vec<(String, String)>,
    pub transform: HashMap<String, Transform>,
    pub filter: Option<Filter>,
    pub spec: ReplicaSpec,
    pub landscape_source: String,
}

impl ReplicaDef {
    pub fn build_all(s: &Scenario) -> Vec<ReplicaDef> {
        let mut out = Vec::new();
        for (name, r) in &s.replicas {
            let (origin, env, set, key_column, map) = match r.source_ref() {
                ReplicaSource::Dataverse { env, set } => {
                    let Some(table) = s.dataverse.get(env).and_then(|e| e.tables.get(set)) else {
                        continue;
                    };
                    let key_column = r.key.clone().unwrap_or_else(|| table.id_column(set));
                    let map = scenario::resolved_map(r, table, set);
                    (Origin::Dataverse, env, set, key_column, map)
                }
                ReplicaSource::Fno { env, entity } => {
                    let Some(decl) = s.fno.get(env).and_then(|e| e.entities.get(entity)) else {
                        continue;
                    };
                    let key_column = r.key.clone().unwrap_or_else(|| decl.key.clone());
                    let map = r
                        .map
                        .iter()
                        .flatten()
                        .map(|(a, b)| (a.clone(), b.clone()))
                        .collect();
                    (Origin::Fno, env, entity, key_column, map)
                }
            };
            let key_field = map
                .iter()
                .find(|(from, _)| *from == key_column)
                .map(|(_, to)| to.clone());
            out.push(ReplicaDef {
                name: name.clone(),
                origin,
                env: env.to_string(),
                set: set.to_string(),
                target: r.target.clone(),
                key_column,
                key_field,
                map,
                transform: r.transform.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                filter: r.filter.as_deref().and_then(|f| parse_filter(f).ok()),
                spec: r.landscape_spec(),
                landscape_source: format!("emulator:{name}"),
            });
        }
        out
    }

    /// The source as the scenario names it.
    pub fn describe_source(&self) -> String {
        match self.origin {
            Origin::Dataverse => format!("{}/{}", self.env, self.set),
            Origin::Fno => format!("fno:{}/{}", self.env, self.set),
        }
    }

    /// Whether `origin`'s `env/set` is this replica's source.
    pub fn reads(&self, origin: Origin, env: &str, set: &str) -> bool {
        self.origin == origin && self.env == env && self.set == set
    }

    pub fn describe_target(&self) -> String {
        match &self.target {
            Target::Fno {
                env,
                entity,
                company,
            } => format!("fno {env}/{entity} ({company})"),
            Target::Search { service, index } => format!("search {service}/{index}"),
            Target::Elasticsearch { cluster, index } => format!("elasticsearch {cluster}/{index}"),
            Target::Dataverse { env, table } => format!("dataverse {env}/{table}"),
            Target::Lake { lake, table } => format!("lake {lake}/{table}"),
            Target::DataverseSearch { env, table } => format!("dataverse search {env}/{table}"),
        }
    }

    /// The target-side fields of a replicated row.
    pub fn shape(&self, entry: &ReplicaEntry) -> Map<String, Value> {
        let source: Map<String, Value> = serde_json::from_str(&entry.payload).unwrap_or_default();
        self.shape_row(&source, entry.mismatched)
    }

    /// The target-side fields of a source row (`map`, `transform`); `mismatched` appends `~`
    /// to every mapped text field but the key's.
    pub fn shape_row(&self, source: &Map<String, Value>, mismatched: bool) -> Map<String, Value> {
        let mut out = Map::new();
        for (from, to) in &self.map {
            let mut v = source.get(from).cloned().unwrap_or(Value::Null);
            if let (Some(t), Value::String(s)) = (self.transform.get(to), &v) {
                v = Value::String(t.apply(s));
            }
            if mismatched
                && self.key_field.as_deref() != Some(to.as_str())
                && let Value::String(s) = &v
            {
                v = Value::String(format!("{s}~"));
            }
            out.insert(to.clone(), v);
        }
        out
    }
}

/// What the emulator remembers per replica beyond the landscape.
#[derive(Default)]
pub(crate) struct ReplicaIndex {
    /// Key value (and record id) → record, kept after deletion for the truth endpoint.
    by_key: HashMap<String, Uuid>,
    key_order: VecDeque<String>,
    /// Records currently replicated: id → (key value, order of first replication).
    pub live: HashMap<Uuid, (String, u64)>,
    /// The version a replica showed before an update, until the update arrives.
    prior: HashMap<Uuid, ReplicaEntry>,
    /// Flap and mismatch of the latest version, kept after deletion for the truth endpoint.
    meta: HashMap<Uuid, (Option<(Instant, Instant)>, bool)>,
    /// Versions the version draws lost or duplicated, since the record was (re)created; only
    /// records that had one have an entry. Forgotten with `meta`.
    versions: HashMap<Uuid, VersionLog>,
    seq: u64,
    /// Deleted records still in `live`: their last version with the delete as the landscape
    /// drew it, and which burial this is. Kept here as well because a read that rounds to a
    /// refresh (Elasticsearch `_search`) shows a row a little past the instant the landscape
    /// forgets it.
    tombstones: HashMap<Uuid, (ReplicaEntry, u64)>,
    /// When each tombstone's record leaves `live`, soonest first, with its burial.
    expiry: BinaryHeap<Reverse<(Instant, u64, Uuid)>>,
    burials: u64,
}

impl ReplicaIndex {
    /// Keeps deleted record `id` in `live` until `until`, as `entry` (its delete drawn).
    fn bury(&mut self, id: Uuid, entry: ReplicaEntry, until: Instant) {
        self.burials += 1;
        self.tombstones.insert(id, (entry, self.burials));
        self.expiry.push(Reverse((until, self.burials, id)));
    }

    /// Drops up to [`PURGE_BATCH`] records whose tombstone expired by `now` (unless the
    /// record was written again since).
    fn purge(&mut self, now: Instant) {
        for _ in 0..PURGE_BATCH {
            if self
                .expiry
                .peek()
                .is_none_or(|Reverse((until, _, _))| *until > now)
            {
                return;
            }
            let Some(Reverse((_, burial, id))) = self.expiry.pop() else {
                return;
            };
            if self.tombstones.get(&id).is_some_and(|(_, b)| *b == burial) {
                self.tombstones.remove(&id);
                self.live.remove(&id);
                self.prior.remove(&id);
            }
        }
    }

    fn remember(&mut self, key: String, id: Uuid) {
        if self.by_key.insert(key.clone(), id).is_none() {
            self.key_order.push_back(key);
        }
        while self.key_order.len() > KEY_CAPACITY {
            if let Some(old) = self.key_order.pop_front()
                && let Some(id) = self.by_key.remove(&old)
            {
                self.meta.remove(&id);
                self.versions.remove(&id);
            }
        }
    }
}

/// The commit instants of a record's updates a change log lost or holds twice, oldest first,
/// the last [`VERSIONS_KEPT`] of each.
#[derive(Default)]
struct VersionLog {
    dropped: VecDeque<Instant>,
    duplicated: VecDeque<Instant>,
}

impl VersionLog {
    /// Notes the update committed at `at` as duplicated, or else as dropped.
    fn note(&mut self, duplicated: bool, at: Instant) {
        let list = if duplicated {
            &mut self.duplicated
        } else {
            &mut self.dropped
        };
        list.push_back(at);
        if list.len() > VERSIONS_KEPT {
            list.pop_front();
        }
    }
}

/// A replicated row as a target sees it.
pub(crate) struct TargetRow {
    /// The replica it came through.
    pub replica: String,
    pub id: Uuid,
    pub key: String,
    pub fields: Map<String, Value>,
    pub entry: ReplicaEntry,
    pub seq: u64,
}

/// How a target reads.
#[derive(Clone, Copy)]
pub(crate) enum Visibility {
    /// Reads by key and queries: visible once settled, or during a flap.
    Read,
    /// Elasticsearch `_search`: settled and refreshed.
    Search { refresh: std::time::Duration },
}

/// Ground truth of one record in one replica. Instants are tokio instants; see
/// [`Emulator::wall_time`] for wall-clock values.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    pub replica: String,
    /// The replica key value.
    pub key: String,
    pub record_id: Uuid,
    /// When the source write committed (in Dataverse; for an F&O source, in F&O).
    pub committed_at: Instant,
    /// When the record became stably visible to reads by key; `None` if it never will. For
    /// a lake: when the incremental folder holding the row closed.
    pub visible_at: Option<Instant>,
    /// Lake only: when the row reached the export and was appended to the open folder (its
    /// `SinkCreatedOn`/`SinkModifiedOn`).
    pub sink_at: Option<Instant>,
    /// Elasticsearch only: when `_search` finds it.
    pub searchable_at: Option<Instant>,
    /// An early appearance `[from, to)` before `visible_at`.
    pub flap: Option<(Instant, Instant)>,
    pub mismatched: bool,
    /// Never arrives because the replica dropped it (or the map is stopped; for an update,
    /// also `version_drop_probability`).
    pub dropped: bool,
    /// Waits behind a paused map: arrives only when the map resumes.
    pub queued: bool,
    /// When the source's delete committed (the source forgot the row); `None` while it lives.
    pub deleted_at: Option<Instant>,
    /// When reads by key and queries stop finding the row after its delete (Elasticsearch
    /// `_search`: at the first refresh at or after it). For a lake: when the delete row is
    /// readable (its folder closed; table layout: `delete_sink_at`; Delta: its commit).
    /// `None` while it lives, if the delete was dropped, or queued behind a paused map.
    pub gone_at: Option<Instant>,
    /// The delete never reaches the replica: the row stays.
    pub delete_dropped: bool,
    /// `[from, to)`: after `gone_at` the row is visible again during this window, then gone for
    /// good (a lake: the row written again, readable from `from`, and deleted again, readable
    /// from `to`).
    pub resurrected: Option<(Instant, Instant)>,
    /// Lake only: when the delete row reached the export (its `SinkCreatedOn`).
    pub delete_sink_at: Option<Instant>,
    /// Change-log lake only: the Dataverse commit instants of this record's updates whose row
    /// `version_drop_probability` kept from the export, oldest first (the last 1024). A
    /// version lost otherwise (`drop_probability`, a paused map) is not listed.
    pub versions_dropped: Vec<Instant>,
    /// Change-log lake only: the commit instants of updates whose row
    /// `version_duplicate_probability` wrote twice, oldest first (the last 1024); not those
    /// whose rows a delete overtook before they reached the export.
    pub versions_duplicated: Vec<Instant>,
}

impl GroundTruth {
    /// The true lag, if the record arrived (or will).
    pub fn lag(&self) -> Option<std::time::Duration> {
        self.visible_at
            .map(|v| v.saturating_duration_since(self.committed_at))
    }

    /// The true delete lag, from the Dataverse delete to `gone_at`, if the delete arrived.
    pub fn delete_lag(&self) -> Option<std::time::Duration> {
        Some(self.gone_at?.saturating_duration_since(self.deleted_at?))
    }

    /// Whether reads by key find the row stably at `now` (flaps aside): arrived and not gone,
    /// or inside a resurrection.
    pub fn visible(&self, now: Instant) -> bool {
        let within = |(a, b): (Instant, Instant)| now >= a && now < b;
        (self.visible_at.is_some_and(|v| now >= v) && self.gone_at.is_none_or(|g| now < g))
            || self.resurrected.is_some_and(within)
    }
}

fn key_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// First refresh tick (every `refresh` from `origin`) at or after `at`.
pub(crate) fn next_tick(origin: Instant, at: Instant, refresh: std::time::Duration) -> Instant {
    let since = at.saturating_duration_since(origin).as_nanos();
    let step = refresh.as_nanos().max(1);
    let ticks = since.div_ceil(step);
    let nanos = u64::try_from(ticks.saturating_mul(step)).unwrap_or(u64::MAX);
    origin + std::time::Duration::from_nanos(nanos)
}

impl Emulator {
    /// Replicates a committed Dataverse row to every replica of `(env, set)` it qualifies for.
    pub(crate) fn replicate(&self, env: &str, set: &str, id: Uuid, row: &Map<String, Value>) {
        self.replicate_from(Origin::Dataverse, env, set, id, row);
    }

    /// Replicates a committed row of `origin`'s `env/set` to every replica of it the row
    /// qualifies for. Only writes made through a service's own API come here, never a copy a
    /// replica put there: that is what keeps dual-write from echoing a change back to the
    /// side it came from.
    pub(crate) fn replicate_from(
        &self,
        origin: Origin,
        env: &str,
        set: &str,
        id: Uuid,
        row: &Map<String, Value>,
    ) {
        let now = Instant::now();
        let payload = Value::Object(row.clone()).to_string();
        let id_text = id.to_string();
        // A row that references another of its own set is applied after it (or, with the
        // replica's child_first_probability, before it).
        let parent = match origin {
            Origin::Dataverse => self
                .scenario
                .dataverse
                .get(env)
                .and_then(|e| e.tables.get(set))
                .and_then(|t| {
                    t.lookups
                        .iter()
                        .filter(|(_, to)| to.as_str() == set)
                        .find_map(|(nav, _)| row.get(&format!("_{nav}_value"))?.as_str())
                })
                .map(str::to_string),
            Origin::Fno => None,
        };
        let dialect = match origin {
            Origin::Dataverse => Dialect::DATAVERSE,
            Origin::Fno => Dialect::FNO,
        };
        let mut st = self.state();
        for r in self.replicas.iter().filter(|r| r.reads(origin, env, set)) {
            if r.filter.as_ref().is_some_and(|f| !f.matches(row, dialect)) {
                continue;
            }
            let Some(key) = key_text(row.get(&r.key_column)) else {
                continue;
            };
            // Dual-write into Dataverse: the copy's `versionnumber` is the target
            // environment's, drawn when the F&O write commits, so later changes rank later.
            let payload = match (&r.target, origin) {
                (Target::Dataverse { env: tenv, .. }, Origin::Fno) => {
                    let v = st.versions.entry(tenv.clone()).or_insert(1_000_000);
                    *v += 1;
                    let mut with = row.clone();
                    with.insert("versionnumber".into(), json!(*v));
                    Cow::Owned(Value::Object(with).to_string())
                }
                _ => Cow::Borrowed(payload.as_str()),
            };
            let Some(index) = st.indexes.get_mut(&r.name) else {
                continue;
            };
            index.purge(now);
            // Written again after a delete: a record of its own, no longer buried.
            index.tombstones.remove(&id);
            match self.landscape.replica_entry(&r.name, &id_text) {
                // An update over a lost version: the lake still shows the one before it, and
                // a delete must know that one's row went ahead of it (`lake_delete`).
                Some(p)
                    if p.version == VersionFate::Dropped
                        && p.deleted_at.is_none()
                        && index.prior.contains_key(&id) => {}
                Some(p) => {
                    if p.deleted_at.is_some() {
                        // A create: the versions lost or repeated were another record's.
                        index.versions.remove(&id);
                    }
                    index.prior.insert(id, p);
                }
                None => {
                    index.versions.remove(&id);
                }
            }
            match &parent {
                Some(p) => {
                    self.landscape
                        .commit_child(&r.landscape_source, &id_text, &payload, p, now)
                }
                None => self
                    .landscape
                    .commit_record(&r.landscape_source, &id_text, &payload, now),
            }
            if let Some(e) = self.landscape.replica_entry(&r.name, &id_text) {
                self.status_note(r, &key, Some(&e.payload), e.visible_at, now);
                index.meta.insert(id, (e.glimpse, e.mismatched));
                let doubled =
                    matches!(r.target, Target::Lake { .. }) && self.lake_commit(r, id, &e, now);
                let duplicated = match e.version {
                    VersionFate::Dropped => Some(false),
                    VersionFate::Duplicated if doubled => Some(true),
                    _ => None,
                };
                if let Some(duplicated) = duplicated {
                    index.versions.entry(id).or_default().note(duplicated, now);
                }
            }
            index.seq += 1;
            let seq = index.seq;
            let entry = index.live.entry(id).or_insert((key.clone(), seq));
            if entry.0 != key {
                entry.0 = key.clone();
            }
            index.remember(key, id);
            index.remember(id_text.clone(), id);
        }
    }

    /// Deletes a Dataverse row from every replica of `(env, set)`: each draws when the row is
    /// gone (or whether the delete is dropped, or undone for a while) and keeps it until
    /// then; a lake replica gets its delete row then.
    pub(crate) fn unreplicate(&self, env: &str, set: &str, id: Uuid) {
        self.unreplicate_from(Origin::Dataverse, env, set, id);
    }

    /// As [`Emulator::unreplicate`], for a row of `origin`'s `env/set`.
    pub(crate) fn unreplicate_from(&self, origin: Origin, env: &str, set: &str, id: Uuid) {
        let id_text = id.to_string();
        let now = Instant::now();
        let mut st = self.state();
        for r in self.replicas.iter().filter(|r| r.reads(origin, env, set)) {
            self.landscape
                .delete_record(&r.landscape_source, &id_text, now);
            let Some(index) = st.indexes.get_mut(&r.name) else {
                continue;
            };
            index.purge(now);
            let Some(entry) = self
                .landscape
                .replica_entry(&r.name, &id_text)
                .filter(|e| e.deleted_at.is_some())
            else {
                // Never replicated here (its filter), or already forgotten.
                index.live.remove(&id);
                index.prior.remove(&id);
                continue;
            };
            let key = index
                .live
                .get(&id)
                .map_or(id_text.as_str(), |(k, _)| k.as_str());
            self.status_note(r, key, None, entry.gone_at, now);
            if matches!(r.target, Target::Lake { .. }) {
                let prior = index.prior.get(&id).and_then(|p| p.visible_at);
                let cancelled = self.lake_delete(r, id, &entry, prior);
                if let Some(v) = index.versions.get_mut(&id) {
                    v.duplicated.retain(|at| !cancelled.contains(at));
                }
            }
            let until = match entry.gone_at {
                Some(gone) => {
                    let over = entry.resurrected.map_or(gone, |(_, to)| to.max(gone));
                    match self.es_refresh(r) {
                        Some(refresh) => next_tick(self.started, over, refresh),
                        None => over,
                    }
                }
                None => now + DROPPED_DELETE_KEPT,
            };
            index.bury(id, entry, until);
        }
    }

    /// The refresh interval of an Elasticsearch replica's cluster (`None` for other targets).
    pub(crate) fn es_refresh(&self, r: &ReplicaDef) -> Option<std::time::Duration> {
        let Target::Elasticsearch { cluster, .. } = &r.target else {
            return None;
        };
        Some(
            self.scenario
                .elasticsearch
                .get(cluster)
                .map(|c| c.refresh_interval.get())
                .unwrap_or(std::time::Duration::from_secs(1)),
        )
    }

    /// The replicas whose target satisfies `pred`.
    pub(crate) fn replicas_for(&self, pred: impl Fn(&Target) -> bool) -> Vec<&ReplicaDef> {
        self.replicas.iter().filter(|r| pred(&r.target)).collect()
    }

    /// `Some(end)` if any of `replicas` is in an `unavailable` outage now.
    pub(crate) fn unavailable(&self, replicas: &[&ReplicaDef]) -> Option<Instant> {
        let now = Instant::now();
        replicas
            .iter()
            .filter_map(|r| self.landscape.unavailable_until(&r.name, now))
            .max()
    }

    /// The version of record `id` that `r` shows now, if any.
    fn visible_entry(
        &self,
        r: &ReplicaDef,
        index: &ReplicaIndex,
        id: Uuid,
        now: Instant,
        vis: Visibility,
    ) -> Option<ReplicaEntry> {
        let current = match self.landscape.replica_entry(&r.name, &id.to_string()) {
            Some(e) => e,
            // Forgotten by the landscape: a buried row a refresh still shows; never one
            // whose delete was dropped (forgotten with its truth).
            None => index
                .tombstones
                .get(&id)
                .map(|(e, _)| e)
                .filter(|e| !e.delete_dropped)?
                .clone(),
        };
        let at = |i: Instant| match vis {
            Visibility::Read => i,
            Visibility::Search { refresh } => next_tick(self.started, i, refresh),
        };
        let shows = |e: &ReplicaEntry| match vis {
            Visibility::Read => e.visible(now),
            Visibility::Search { .. } => {
                let within = |(a, b): (Instant, Instant)| now >= at(a) && now < at(b);
                (e.visible_at.is_some_and(|v| now >= at(v))
                    && e.gone_at.is_none_or(|g| now < at(g)))
                    || e.resurrected.is_some_and(within)
            }
        };
        if shows(&current) {
            return Some(current);
        }
        if current.gone_at.is_some_and(|g| now >= at(g)) {
            // The delete has applied: no older version shows either.
            return None;
        }
        index.prior.get(&id).filter(|p| shows(p)).cloned()
    }

    /// Every row `replicas` show now, in replication order.
    pub(crate) fn target_rows(&self, replicas: &[&ReplicaDef], vis: Visibility) -> Vec<TargetRow> {
        let now = Instant::now();
        let st = self.state();
        let mut out = Vec::new();
        for r in replicas {
            let Some(index) = st.indexes.get(&r.name) else {
                continue;
            };
            for (id, (key, seq)) in &index.live {
                if let Some(entry) = self.visible_entry(r, index, *id, now, vis) {
                    out.push(TargetRow {
                        replica: r.name.clone(),
                        id: *id,
                        key: key.clone(),
                        fields: r.shape(&entry),
                        entry,
                        seq: *seq,
                    });
                }
            }
        }
        out.sort_by_key(|r| r.seq);
        out
    }

    /// The row with replica key `key` (document id), if one of `replicas` shows it now.
    pub(crate) fn target_row_by_key(
        &self,
        replicas: &[&ReplicaDef],
        key: &str,
        vis: Visibility,
    ) -> Option<TargetRow> {
        let now = Instant::now();
        let st = self.state();
        for r in replicas {
            let Some(index) = st.indexes.get(&r.name) else {
                continue;
            };
            let Some(id) = index.by_key.get(key).copied() else {
                continue;
            };
            let Some((k, seq)) = index.live.get(&id).cloned().filter(|(k, _)| k == key) else {
                continue;
            };
            if let Some(entry) = self.visible_entry(r, index, id, now, vis) {
                return Some(TargetRow {
                    replica: r.name.clone(),
                    id,
                    key: k,
                    fields: r.shape(&entry),
                    entry,
                    seq,
                });
            }
        }
        None
    }

    /// Ground truth of the record with key (or Dataverse id) `key` in `replica`.
    pub fn truth(&self, replica: &str, key: &str) -> Option<GroundTruth> {
        let r = self.replicas.iter().find(|r| r.name == replica)?;
        let (id, key_value, meta, versions) = {
            let st = self.state();
            let index = st.indexes.get(replica)?;
            let id = index.by_key.get(key).copied().or_else(|| {
                let canonical = Uuid::parse_str(key).ok()?.to_string();
                index.by_key.get(&canonical).copied()
            })?;
            let key_value = index
                .live
                .get(&id)
                .map(|(k, _)| k.clone())
                .unwrap_or_else(|| key.to_string());
            let versions = index.versions.get(&id).map(|v| {
                (
                    v.dropped.iter().copied().collect(),
                    v.duplicated.iter().copied().collect(),
                )
            });
            (id, key_value, index.meta.get(&id).copied(), versions)
        };
        let (versions_dropped, versions_duplicated) = versions.unwrap_or_default();
        let t = self.landscape.truth(replica, &id.to_string())?;
        let horizon = self.started + FOREVER.get() / 2;
        let queued = t.visible_at.is_some_and(|v| v > horizon);
        let visible_at = t.visible_at.filter(|_| !queued);
        let searchable_at = self
            .es_refresh(r)
            .zip(visible_at)
            .map(|(refresh, v)| next_tick(self.started, v, refresh));
        let (flap, mismatched) = meta.unwrap_or((None, false));
        let lake = matches!(r.target, Target::Lake { .. });
        let (visible_at, sink_at) = match visible_at {
            Some(sink) if lake => (self.lake_visible_at(replica, sink), Some(sink)),
            v => (v, None),
        };
        // A delete queued behind a paused map never applies while the emulator runs.
        let gone_at = t.gone_at.filter(|g| *g <= horizon);
        let resurrected = t.resurrected.filter(|(_, to)| *to <= horizon);
        let (gone_at, resurrected, delete_sink_at) = if lake {
            let readable = |i: Instant| self.lake_visible_at(replica, i);
            (
                gone_at.and_then(readable),
                resurrected.and_then(|(a, b)| readable(a).zip(readable(b))),
                gone_at,
            )
        } else {
            (gone_at, resurrected, None)
        };
        Some(GroundTruth {
            replica: replica.to_string(),
            key: key_value,
            record_id: id,
            committed_at: t.committed_at,
            visible_at,
            sink_at,
            searchable_at,
            flap,
            mismatched,
            dropped: t.visible_at.is_none(),
            queued,
            deleted_at: t.deleted_at,
            gone_at,
            delete_dropped: t.delete_dropped,
            resurrected,
            delete_sink_at,
            versions_dropped,
            versions_duplicated,
        })
    }

    pub(crate) fn truth_endpoint(&self, replica: &str, key: &str) -> Response {
        let Some(t) = self.truth(replica, key) else {
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": format!("no record with key \"{key}\" was replicated to \"{replica}\"")}),
            );
        };
        let now = Instant::now();
        let at = |i: Option<Instant>| i.map(|i| rfc3339(self.wall_time(i)));
        let unix = |i: Option<Instant>| {
            i.map(|i| {
                let w = self.wall_time(i);
                w.timestamp() as f64 + f64::from(w.timestamp_subsec_nanos()) / 1e9
            })
        };
        let visible_now = t.visible(now);
        let window = |w: Option<(Instant, Instant)>| {
            w.map(|(a, b)| {
                json!({"from": at(Some(a)), "to": at(Some(b)), "from_unix": unix(Some(a)), "to_unix": unix(Some(b))})
            })
        };
        let versions = |list: &[Instant]| {
            list.iter()
                .map(|i| json!({"committed_at": at(Some(*i)), "committed_at_unix": unix(Some(*i))}))
                .collect::<Vec<_>>()
        };
        let folder = t
            .sink_at
            .and_then(|s| self.lake_folder_of(replica, s))
            .map(|(_, name)| name);
        json_response(
            StatusCode::OK,
            &json!({
                "replica": t.replica,
                "key": t.key,
                "record_id": t.record_id.to_string(),
                "committed_at": at(Some(t.committed_at)),
                "committed_at_unix": unix(Some(t.committed_at)),
                "visible_at": at(t.visible_at),
                "visible_at_unix": unix(t.visible_at),
                "lag_seconds": t.lag().map(|d| d.as_secs_f64()),
                "searchable_at": at(t.searchable_at),
                "searchable_at_unix": unix(t.searchable_at),
                "sink_at": at(t.sink_at),
                "sink_at_unix": unix(t.sink_at),
                "folder": folder,
                "flap": t.flap.map(|(a, b)| json!({"from": at(Some(a)), "to": at(Some(b))})),
                "mismatched": t.mismatched,
                "dropped": t.dropped,
                "queued": t.queued,
                "deleted_at": at(t.deleted_at),
                "deleted_at_unix": unix(t.deleted_at),
                "gone_at": at(t.gone_at),
                "gone_at_unix": unix(t.gone_at),
                "delete_lag_seconds": t.delete_lag().map(|d| d.as_secs_f64()),
                "delete_dropped": t.delete_dropped,
                "resurrected": window(t.resurrected),
                "delete_sink_at": at(t.delete_sink_at),
                "delete_sink_at_unix": unix(t.delete_sink_at),
                "versions_dropped": versions(&t.versions_dropped),
                "versions_duplicated": versions(&t.versions_duplicated),
                "visible_now": visible_now,
                "now": rfc3339(self.wall_time(now)),
            }),
        )
    }
}
