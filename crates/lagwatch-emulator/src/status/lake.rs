//! Synapse Link's status tables in the lake's Dataverse environment (fact sheet §1.1, §1.2):
//! `synapselinkprofiles`, `synapselinkprofileentitystates` (CSV lakes: incremental folders or
//! the table layout), `synapselinkschedules` and, for Delta lakes (Link to Fabric),
//! `synapselinkexternaltablestates`, under `/{env}/api/data/v9.2/` with the Web API's
//! authentication, throttling, `$select`, `$filter` and `$top`.
//!
//! Derived from the rows the export really wrote ([`LakeLog`]): every row queued for a lake
//! table (a version, a delete row, a resurrection) with its sink instant, readable when its
//! folder closes (Delta: its commit; table layout: at its sink instant), exactly when the
//! ground truth says it is. `lastsynceddatatime` (Delta `lastsynchronizedon`) is when the last
//! readable row of the table became readable: the close of the last completed folder that
//! exported it, on the environment's clock (whole seconds, as every Dataverse time). The
//! version watermark (`lastsynceddataversion`, `maxrecordversion`) is honest: the highest
//! `versionnumber` V such that every version of the table's rows (those the replica carries)
//! up to V is readable, so a version the replica lost (`drop_probability`,
//! `version_drop_probability`, a stopped or paused map) holds it below that version for good:
//! a truthful platform cannot claim what it never exported. Seeded rows count in
//! `lakerecordcount` and are not versions.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::super::dataverse::{dv_error, dv_json, dv_time, dv_wrong_method};
use super::super::odata::{self, Dialect};
use super::super::replication::ReplicaDef;
use super::super::scenario::LieKind;
use super::super::{Emulator, Req};
use super::{Claim, Condition, History, LOG_CAPACITY, row_id, stale_since};

/// The Dataverse entity sets of Synapse Link's status.
pub(crate) const SETS: &[&str] = &[
    "synapselinkprofiles",
    "synapselinkprofileentitystates",
    "synapselinkschedules",
    "synapselinkexternaltablestates",
];

/// What one lake table's export did, for its status. A Dataverse search index keeps one too
/// ([`super::dataverse_search`]): its rows are the record versions made findable, each readable
/// at once.
#[derive(Default)]
pub(crate) struct LakeLog {
    /// Rows queued for the export, not readable yet: `(sink, seq)` → `versionnumber` (`None`:
    /// a delete row).
    exports: BTreeMap<(Instant, u64), Option<u64>>,
    /// Rows readable so far, and how many of them are delete rows.
    rows: u64,
    deletes: u64,
    /// When the last readable row became readable.
    last_sync: Option<Instant>,
    /// The highest version among readable rows (what `watermark_without_record` claims).
    max_exported: Option<u64>,
    /// Readable instants with the highest version then.
    syncs: History<Option<u64>>,
    /// Versions committed, not yet in the watermark: version → sink (`None`: never exported).
    versions: BTreeMap<u64, Option<Instant>>,
    /// The honest watermark and when it got there.
    prefix: Option<(Instant, u64)>,
    prefixes: History<u64>,
    /// A version never reaches the export: the honest watermark stays below it.
    blocked: bool,
}

impl LakeLog {
    /// A version the replica carries was committed; its row reaches the export at `sink`.
    pub fn note_version(&mut self, version: u64, sink: Option<Instant>) {
        if self.blocked {
            return;
        }
        if self.versions.len() >= LOG_CAPACITY {
            // Too many versions in flight to vouch for: the watermark stops here.
            self.blocked = true;
            self.versions.clear();
            return;
        }
        self.versions.insert(version, sink);
    }

    /// A row was queued for the export (`version` `None`: a delete row).
    pub fn note_export(&mut self, sink: Instant, seq: u64, version: Option<u64>) {
        if self.exports.len() >= LOG_CAPACITY {
            self.exports.pop_first();
        }
        self.exports.insert((sink, seq), version);
    }

    /// A queued row was taken back (a delete overtook it).
    pub fn cancel(&mut self, sink: Instant, seq: u64) {
        self.exports.remove(&(sink, seq));
    }

    /// Takes in what is readable at `now` (as [`LakeLog::advance`]) and reads the log; with
    /// `stale_since` (a `stale_while_flowing` lie), the last sync and the watermark are those
    /// of that instant.
    pub fn read(
        &mut self,
        now: Instant,
        readable: impl Fn(Instant) -> Option<Instant>,
        stale_since: Option<Instant>,
    ) -> Reading {
        self.advance(now, readable);
        let (last_sync, watermark) = match stale_since {
            Some(t) => (
                self.syncs.value_at(t).map(|p| p.0),
                self.prefixes.value_at(t).map(|p| p.1),
            ),
            None => (self.last_sync, self.prefix.map(|p| p.1)),
        };
        Reading {
            last_sync,
            watermark,
            max_exported: self.max_exported,
            rows: self.rows,
            deletes: self.deletes,
        }
    }

    /// Takes in every row and version readable at `now` (`readable`: when a row reaching the
    /// export at a sink instant becomes readable).
    pub fn advance(&mut self, now: Instant, readable: impl Fn(Instant) -> Option<Instant>) {
        while let Some((&(sink, _), &version)) = self.exports.first_key_value() {
            if readable(sink).is_none_or(|r| r > now) {
                break;
            }
            let r = readable(sink).unwrap_or(sink);
            self.exports.pop_first();
            self.rows += 1;
            match version {
                Some(v) => self.max_exported = self.max_exported.max(Some(v)),
                None => self.deletes += 1,
            }
            if self.last_sync.is_none_or(|l| r >= l) {
                self.last_sync = Some(r);
                self.syncs.push(r, self.max_exported);
            }
        }
        while !self.blocked {
            let Some((&v, &sink)) = self.versions.first_key_value() else {
                break;
            };
            let Some(sink) = sink else {
                self.blocked = true;
                self.versions.clear();
                break;
            };
            let Some(r) = readable(sink).filter(|r| *r <= now) else {
                break;
            };
            self.versions.pop_first();
            let at = self.prefix.map_or(r, |(at, _)| at.max(r));
            self.prefix = Some((at, v));
            self.prefixes.push(at, v);
        }
    }
}

/// What a claim reads of a [`LakeLog`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    /// When the last row became readable.
    pub last_sync: Option<Instant>,
    /// The honest version watermark.
    pub watermark: Option<u64>,
    /// The highest version readable.
    pub max_exported: Option<u64>,
    /// Rows readable, and how many of them are delete rows.
    pub rows: u64,
    pub deletes: u64,
}

/// `syncstate` (CSV) of a claimed state: InProgress 2 ("active and error-free"), Paused 32,
/// CompletedWithFailures 8, None 0.
fn syncstate(state: &str) -> u64 {
    match state {
        "healthy" => 2,
        "paused" => 32,
        "error" => 8,
        _ => 0,
    }
}

/// `lastsyncstate` (Delta) of a claimed state: Created 1, In Progress 4, Failed 2, Not
/// Created 0.
fn lastsyncstate(state: &str) -> u64 {
    match state {
        "healthy" => 1,
        "paused" => 4,
        "error" => 2,
        _ => 0,
    }
}

/// `profilestate` of a profile from its tables' claimed states: Suspended 6 when every table
/// is paused, Inactive 0 when every one is not running, else Active 1.
fn profilestate(states: &[&str]) -> u64 {
    if !states.is_empty() && states.iter().all(|s| *s == "paused") {
        6
    } else if !states.is_empty() && states.iter().all(|s| *s == "not_running") {
        0
    } else {
        1
    }
}

/// `recurrenceinterval` in whole minutes, rounded up, at least 1.
fn minutes(d: std::time::Duration) -> u64 {
    d.as_secs().div_ceil(60).max(1)
}

impl Emulator {
    /// The source table's rows now: written through the Web API and seeded.
    fn source_rows(&self, r: &ReplicaDef) -> u64 {
        let live = {
            let st = self.state();
            st.tables
                .get(&(r.env.clone(), r.set.clone()))
                .map_or(0, |t| t.len() as u64)
        };
        live + self
            .source_view(&r.env, &r.set)
            .map_or(0, |v| v.held_count())
    }

    /// The claim of lake replica `r`'s table (see the module docs), its row as served.
    pub(crate) fn lake_claim(&self, r: &ReplicaDef, now: Instant, honest: bool) -> Option<Claim> {
        let def = self.lakes.of_replica(&r.name)?;
        let lie = self.lie_for(&r.name, now, honest);
        let seeded = self.replica_view(r).map_or(0, |v| v.held_count());
        let crm = self.source_rows(r);
        let Reading {
            last_sync,
            watermark,
            max_exported,
            rows,
            deletes,
        } = self.book().lakes.entry(r.name.clone()).or_default().read(
            now,
            |s| self.lake_visible_at(&r.name, s),
            stale_since(lie),
        );
        let mut claim = Claim::new(match self.condition(&r.name, now) {
            Condition::Flowing | Condition::Unavailable => "healthy",
            Condition::Paused | Condition::Stalled => "paused",
            Condition::Stopped => "not_running",
        });
        claim.last_sync = last_sync;
        claim.watermark = watermark;
        match lie.map(|l| l.kind) {
            Some(LieKind::HealthyWhileStuck) => {
                claim.state = "healthy";
                // As if every folder (refresh) exported something.
                let boundary = if def.table_layout.is_some() {
                    now
                } else {
                    self.folder_opens(def, self.folder_index(def, now))
                };
                claim.last_sync = claim.last_sync.max(Some(boundary));
            }
            // Read as they were at the lie's start.
            Some(LieKind::StaleWhileFlowing) => {}
            Some(LieKind::ErrorWhileFlowing) => claim.state = "error",
            Some(LieKind::WatermarkWithoutRecord) => {
                claim.watermark = claim.watermark.max(max_exported);
            }
            None => {}
        }
        let table = def
            .tables
            .iter()
            .find(|t| t.replica == r.name)
            .map(|t| t.table.clone())
            .unwrap_or_default();
        let env_time = |i: Option<Instant>| i.map(|i| dv_time(self.dataverse_time(&r.env, i)));
        let profile = row_id("synapselinkprofile", &def.name).to_string();
        let mut raw = Map::new();
        if def.delta {
            raw.insert(
                "synapselinkexternaltablestateid".into(),
                json!(row_id("synapselinkexternaltablestate", &r.name).to_string()),
            );
            raw.insert("entityname".into(), json!(table));
            raw.insert("synapseworkspacename".into(), Value::Null);
            raw.insert(
                "lastsynchronizedon".into(),
                json!(env_time(claim.last_sync)),
            );
            raw.insert("lastsyncstate".into(), json!(lastsyncstate(claim.state)));
            raw.insert(
                "tablestate".into(),
                json!(if claim.state == "error" { 2 } else { 1 }),
            );
            raw.insert("lakehouseshortcutstate".into(), json!(1));
            raw.insert("maxrecordversion".into(), json!(claim.watermark));
            raw.insert(
                "recordcount".into(),
                json!((seeded + rows - deletes).saturating_sub(deletes)),
            );
        } else {
            raw.insert(
                "synapselinkprofileentitystateid".into(),
                json!(row_id("synapselinkprofileentitystate", &r.name).to_string()),
            );
            raw.insert("entityname".into(), json!(table));
            raw.insert("entitysource".into(), json!(0));
            raw.insert("syncstate".into(), json!(syncstate(claim.state)));
            raw.insert("initialsyncstate".into(), json!(4));
            raw.insert(
                "initialsyncprocesscompletedtime".into(),
                json!(env_time(Some(self.started))),
            );
            raw.insert(
                "lastsynceddatatime".into(),
                json!(env_time(claim.last_sync)),
            );
            raw.insert(
                "lastsynceddataversion".into(),
                json!(claim.watermark.map(|v| v.to_string())),
            );
            raw.insert("lakerecordcount".into(), json!(seeded + rows));
            raw.insert(
                "lakerecordcountmodifiedtime".into(),
                json!(env_time(claim.last_sync.or(Some(self.started)))),
            );
            raw.insert("crmrecordcount".into(), json!(crm));
            raw.insert(
                "crmrecordcountmodifiedtime".into(),
                json!(env_time(Some(now))),
            );
        }
        raw.insert("_profile_value".into(), json!(profile));
        claim.raw = raw;
        Some(claim)
    }

    /// Whether `set` of Dataverse environment `env` is a Synapse Link status table (and not
    /// a table the scenario declares).
    pub(crate) fn is_synapse_set(&self, env: &str, set: &str) -> bool {
        SETS.contains(&set)
            && self
                .scenario
                .dataverse
                .get(env)
                .is_some_and(|e| !e.tables.contains_key(set))
    }

    /// The rows of Synapse Link status table `set` in environment `env`, as served.
    fn synapse_rows(&self, env: &str, set: &str, now: Instant) -> Vec<Map<String, Value>> {
        let mut out = Vec::new();
        for def in &self.lakes.defs {
            let replicas: Vec<&ReplicaDef> = def
                .tables
                .iter()
                .filter_map(|t| self.replicas.iter().find(|r| r.name == t.replica))
                .filter(|r| r.env == env)
                .collect();
            if replicas.is_empty() {
                continue;
            }
            let profile = row_id("synapselinkprofile", &def.name).to_string();
            let started = dv_time(self.dataverse_time(env, self.started));
            match set {
                "synapselinkprofiles" => {
                    let claims: Vec<Claim> = replicas
                        .iter()
                        .filter_map(|r| self.lake_claim(r, now, false))
                        .collect();
                    let states: Vec<&str> = claims.iter().map(|c| c.state).collect();
                    out.push(
                        json!({
                            "synapselinkprofileid": profile,
                            "name": def.name,
                            "uniquename": def.container,
                            "profilestate": profilestate(&states),
                            "destinationsyncstate": 2,
                            "profiletype": 0,
                            "activationtime": started,
                            "profileupdatedtime": started,
                        })
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    );
                }
                "synapselinkschedules" => out.push(
                    json!({
                        "synapselinkscheduleid": row_id("synapselinkschedule", &def.name).to_string(),
                        "name": def.name,
                        "recurrenceinterval": minutes(def.interval),
                        "_profile_value": profile,
                    })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                ),
                "synapselinkexternaltablestates" if def.delta => out.extend(
                    replicas
                        .iter()
                        .filter_map(|r| self.lake_claim(r, now, false).map(|c| c.raw)),
                ),
                "synapselinkprofileentitystates" if !def.delta => out.extend(
                    replicas
                        .iter()
                        .filter_map(|r| self.lake_claim(r, now, false).map(|c| c.raw)),
                ),
                _ => {}
            }
        }
        out
    }

    /// `GET /{env}/api/data/v9.2/{set}` of a Synapse Link status table: `$select`, `$filter`
    /// (the Web API's subset) and `$top`.
    pub(crate) fn synapse_link(&self, req: &Req, env: &str, set: &str, base: &str) -> Response {
        if req.method != Method::GET {
            return dv_wrong_method(&req.method, ": Synapse Link's tables are read-only");
        }
        let logical = set.strip_suffix('s').unwrap_or(set);
        let bad = |m: String| dv_error(StatusCode::BAD_REQUEST, "0x80060888", &m);
        let rows = self.synapse_rows(env, set, Instant::now());
        let columns: Vec<String> = columns_of(set);
        let unknown = |c: &str| {
            format!(
                "Could not find a property named '{c}' on type 'Microsoft.Dynamics.CRM.{logical}'."
            )
        };
        let select = match req.query.get("$select").map(odata::parse_select) {
            None => None,
            Some(Ok(cols)) => {
                if let Some(c) = cols.iter().find(|c| !columns.contains(c)) {
                    return bad(unknown(c));
                }
                Some(cols)
            }
            Some(Err(e)) => return bad(e),
        };
        let filter = match req.query.get("$filter").map(odata::parse_filter) {
            None => None,
            Some(Ok(f)) => {
                if let Some(c) = f
                    .fields()
                    .into_iter()
                    .find(|c| !columns.iter().any(|k| k == c))
                {
                    return bad(unknown(c));
                }
                Some(f)
            }
            Some(Err(e)) => return bad(format!("Syntax error in $filter: {e}")),
        };
        let top = match req.query.get("$top").map(odata::parse_top) {
            None => usize::MAX,
            Some(Ok(t)) => t,
            Some(Err(e)) => return bad(e),
        };
        let id = columns.first().cloned().unwrap_or_default();
        let value: Vec<Value> = rows
            .into_iter()
            .filter(|row| {
                filter
                    .as_ref()
                    .is_none_or(|f| f.matches(row, Dialect::DATAVERSE))
            })
            .take(top)
            .map(|row| {
                Value::Object(match &select {
                    None => row,
                    Some(cols) => row
                        .into_iter()
                        .filter(|(k, _)| *k == id || cols.contains(k))
                        .collect(),
                })
            })
            .collect();
        let cols = select
            .map(|s| format!("({})", s.join(",")))
            .unwrap_or_default();
        dv_json(
            StatusCode::OK,
            &json!({"@odata.context": format!("{base}$metadata#{set}{cols}"), "value": value}),
        )
    }
}

/// The columns of a Synapse Link status table, its id first.
fn columns_of(set: &str) -> Vec<String> {
    let cols: &[&str] = match set {
        "synapselinkprofiles" => &[
            "synapselinkprofileid",
            "name",
            "uniquename",
            "profilestate",
            "destinationsyncstate",
            "profiletype",
            "activationtime",
            "profileupdatedtime",
        ],
        "synapselinkschedules" => &[
            "synapselinkscheduleid",
            "name",
            "recurrenceinterval",
            "_profile_value",
        ],
        "synapselinkexternaltablestates" => &[
            "synapselinkexternaltablestateid",
            "entityname",
            "synapseworkspacename",
            "lastsynchronizedon",
            "lastsyncstate",
            "tablestate",
            "lakehouseshortcutstate",
            "maxrecordversion",
            "recordcount",
            "_profile_value",
        ],
        _ => &[
            "synapselinkprofileentitystateid",
            "entityname",
            "entitysource",
            "syncstate",
            "initialsyncstate",
            "initialsyncprocesscompletedtime",
            "lastsynceddatatime",
            "lastsynceddataversion",
            "lakerecordcount",
            "lakerecordcountmodifiedtime",
            "crmrecordcount",
            "crmrecordcountmodifiedtime",
            "_profile_value",
        ],
    };
    cols.iter().map(|c| (*c).to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    /// Rows become readable at the next multiple of 10 s (a folder close).
    fn folders(t0: Instant) -> impl Fn(Instant) -> Option<Instant> {
        move |sink| {
            let s = sink.duration_since(t0).as_secs() / 10 + 1;
            Some(t0 + Duration::from_secs(s * 10))
        }
    }

    #[test]
    fn the_last_sync_is_the_close_of_the_last_folder_that_exported_a_row() {
        let t0 = Instant::now();
        let mut log = LakeLog::default();
        log.note_version(101, Some(at(t0, 3)));
        log.note_export(at(t0, 3), 1, Some(101));
        log.note_version(102, Some(at(t0, 14)));
        log.note_export(at(t0, 14), 2, Some(102));
        log.advance(at(t0, 9), folders(t0));
        assert_eq!((log.last_sync, log.prefix), (None, None));
        log.advance(at(t0, 12), folders(t0));
        assert_eq!(log.last_sync, Some(at(t0, 10)));
        assert_eq!(log.prefix.map(|p| p.1), Some(101));
        log.advance(at(t0, 35), folders(t0));
        assert_eq!(log.last_sync, Some(at(t0, 20)), "no row since: no sync");
        assert_eq!((log.rows, log.max_exported), (2, Some(102)));
        assert_eq!(log.prefix, Some((at(t0, 20), 102)));
    }

    #[test]
    fn the_honest_watermark_waits_for_every_version_and_stops_below_a_lost_one() {
        let t0 = Instant::now();
        let mut log = LakeLog::default();
        // 101 is slow (a stall), 102 fast: the watermark waits for 101.
        log.note_version(101, Some(at(t0, 25)));
        log.note_export(at(t0, 25), 1, Some(101));
        log.note_version(102, Some(at(t0, 2)));
        log.note_export(at(t0, 2), 2, Some(102));
        log.advance(at(t0, 15), folders(t0));
        assert_eq!(log.prefix, None);
        assert_eq!(log.max_exported, Some(102));
        log.advance(at(t0, 30), folders(t0));
        assert_eq!(log.prefix.map(|p| p.1), Some(102));
        // 103 is lost; 104 arrives: the honest watermark stays at 102, for good.
        log.note_version(103, None);
        log.note_version(104, Some(at(t0, 31)));
        log.note_export(at(t0, 31), 3, Some(104));
        log.advance(at(t0, 60), folders(t0));
        assert_eq!(log.prefix.map(|p| p.1), Some(102));
        assert_eq!(log.max_exported, Some(104));
        log.note_version(105, Some(at(t0, 61)));
        log.advance(at(t0, 90), folders(t0));
        assert_eq!(log.prefix.map(|p| p.1), Some(102));
    }

    #[test]
    fn a_cancelled_row_is_never_counted() {
        let t0 = Instant::now();
        let mut log = LakeLog::default();
        log.note_export(at(t0, 5), 1, Some(7));
        log.note_export(at(t0, 4), 2, None);
        log.cancel(at(t0, 5), 1);
        log.advance(at(t0, 40), folders(t0));
        assert_eq!((log.rows, log.deletes, log.max_exported), (1, 1, None));
    }

    #[test]
    fn states_and_intervals_encode_as_documented() {
        assert_eq!(
            ["healthy", "paused", "error", "not_running"].map(syncstate),
            [2, 32, 8, 0]
        );
        assert_eq!(
            ["healthy", "paused", "error", "not_running"].map(lastsyncstate),
            [1, 4, 2, 0]
        );
        assert_eq!(profilestate(&["paused", "paused"]), 6);
        assert_eq!(profilestate(&["paused", "healthy"]), 1);
        assert_eq!(profilestate(&["not_running"]), 0);
        assert_eq!(minutes(Duration::from_secs(20)), 1);
        assert_eq!(minutes(Duration::from_secs(300)), 5);
        assert_eq!(minutes(Duration::from_secs(301)), 6);
    }
}
