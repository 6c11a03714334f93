//! Dataverse search's status (fact sheet §1.1, §1.3; Microsoft's "Dataverse Search statistics
//! and status", `developer/data-platform/search/statistics-status.md`):
//! `GET /{env}/api/data/v9.2/searchstatus` with the Web API's authentication and throttling.
//!
//! The answer is JSON inside a string, as documented:
//!
//! ```json
//! {"@odata.context":"…$metadata#Microsoft.Dynamics.CRM.searchstatusResponse",
//!  "response":"{\"value\":{\"entitystatusresults\":[{\"entitylogicalname\":\"account\",…}],
//!               \"manytomanyrelationshipsyncstatus\":[],\"status\":\"provisioned\",
//!               \"lockboxstatus\":\"Disabled\",\"cmkstatus\":\"Disabled\"}}"}
//! ```
//!
//! An environment without a `dataverse_search` replica is not provisioned:
//! `{"value":{"status":"notprovisioned","lockboxstatus":"Unknown"}}`, the documented answer.
//! Otherwise one `entitystatusresults` entry per indexed table (`entitylogicalname`,
//! `objecttypecode`, `primarynamefield`, `lastdatasynctimestamp`,
//! `lastprincipalobjectaccesssynctimestamp`, `entitystatus`, `searchableindexedfieldinfomap`),
//! but none for a table whose replica is `state: stopped` (not indexed).
//!
//! `lastdatasynctimestamp` is `"<version>!MM/dd/yyyy HH:mm:ss"`, derived from what the index
//! really holds ([`LakeLog`], each record version readable when it becomes findable): the
//! version is the honest watermark, the highest `versionnumber` V such that every version of
//! the table's records up to V is findable (a version the replica loses, to
//! `drop_probability` or a paused or stopped map, holds it below that version for good), and
//! the time when the last record version became findable, on the environment's clock (its
//! `clock_skew`), whole seconds, no zone (UTC, as Dataverse keeps times). Before anything was
//! findable it is the initial sync: the environment's first version at the emulator's start.
//! `entitystatus` is `EntitySyncComplete`, the one value the documents show; a stall or a
//! paused map shows as a sync time that stops, as it would. `lastprincipalobjectaccesssynctimestamp`
//! is `0!<start>` (no sharing is emulated).
//!
//! Lies (`status_lie`): `healthy_while_stuck` moves the sync time to now while the version
//! stays honest (and lists a stopped table); `stale_while_flowing` keeps the version and time
//! of the lie's start; `watermark_without_record` claims the highest findable version, past
//! versions the replica lost. `error_while_flowing` is refused by the scenario: the documents
//! give no failed `entitystatus`.

use axum::http::Method;
use axum::response::Response;
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::super::dataverse::dv_wrong_method;
use super::super::dataverse_search::string_wrapped;
use super::super::replication::ReplicaDef;
use super::super::scenario::LieKind;
use super::super::seed::VERSION_BASE;
use super::super::{Emulator, Req};
use super::{Claim, Condition, Reading, stale_since};

/// The one `entitystatus` the documents show: the table's index is in sync.
const SYNC_COMPLETE: &str = "EntitySyncComplete";

/// `<version>!MM/dd/yyyy HH:mm:ss`, the time in whole seconds.
pub(crate) fn version_at(version: u64, t: DateTime<Utc>) -> String {
    format!(
        "{version}!{}",
        t.trunc_subsecs(0).format("%m/%d/%Y %H:%M:%S")
    )
}

impl Emulator {
    /// Notes record version `version` of Dataverse search replica `r`, findable at `arrival`
    /// (`None`: never). Called by replication with the state locked.
    pub(crate) fn search_note(&self, r: &ReplicaDef, version: u64, arrival: Option<Instant>) {
        let mut book = self.book();
        let log = book.searches.entry(r.name.clone()).or_default();
        log.note_version(version, arrival);
        if let Some(a) = arrival {
            log.note_export(a, version, Some(version));
        }
    }

    /// The claim of Dataverse search replica `r`: its `entitystatusresults` entry as `raw`
    /// (empty when the table is not listed), the watermark and the sync time.
    pub(crate) fn search_status_claim(&self, r: &ReplicaDef, now: Instant, honest: bool) -> Claim {
        let lie = self.lie_for(&r.name, now, honest);
        let Reading {
            last_sync,
            watermark,
            max_exported,
            ..
        } = self
            .book()
            .searches
            .entry(r.name.clone())
            .or_default()
            .read(now, Some, stale_since(lie));
        let stopped = self.condition(&r.name, now) == Condition::Stopped;
        let mut claim = Claim::new(if stopped { "not_running" } else { "healthy" });
        claim.last_sync = last_sync;
        claim.watermark = watermark;
        match lie.map(|l| l.kind) {
            Some(LieKind::HealthyWhileStuck) => {
                claim.state = "healthy";
                claim.last_sync = Some(now);
            }
            Some(LieKind::WatermarkWithoutRecord) => {
                claim.watermark = claim.watermark.max(max_exported);
            }
            // Stale: read as they were at the lie's start.
            Some(LieKind::StaleWhileFlowing | LieKind::ErrorWhileFlowing) | None => {}
        }
        // Before anything was findable: the initial sync, at the start.
        let last_sync = claim.last_sync.unwrap_or(self.started);
        claim.last_sync = Some(last_sync);
        claim.watermark = Some(claim.watermark.unwrap_or(VERSION_BASE));
        if claim.state == "not_running" {
            return claim;
        }
        let Some(ix) = self.indexed_table(r) else {
            return claim;
        };
        let at = |i: Instant| self.dataverse_time(&r.env, i);
        let fields: Map<String, Value> = ix
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let name = if i == 0 {
                    "a_0".to_string()
                } else {
                    format!("a{i:02x}")
                };
                (c.clone(), json!({"indexfieldname": name}))
            })
            .collect();
        let mut raw = Map::new();
        raw.insert("entitylogicalname".into(), json!(ix.logical));
        raw.insert("objecttypecode".into(), json!(ix.object_type_code));
        raw.insert("primarynamefield".into(), json!(ix.primary_name));
        raw.insert(
            "lastdatasynctimestamp".into(),
            json!(version_at(
                claim.watermark.unwrap_or(VERSION_BASE),
                at(last_sync)
            )),
        );
        raw.insert(
            "lastprincipalobjectaccesssynctimestamp".into(),
            json!(version_at(0, at(self.started))),
        );
        raw.insert("entitystatus".into(), json!(SYNC_COMPLETE));
        raw.insert(
            "searchableindexedfieldinfomap".into(),
            Value::Object(fields),
        );
        claim.raw = raw;
        claim
    }

    /// `GET /{env}/api/data/v9.2/searchstatus` (see the module docs).
    pub(crate) fn search_status(&self, req: &Req, env: &str, base: &str) -> Response {
        if req.method != Method::GET {
            return dv_wrong_method(&req.method, ": searchstatus is a function (GET)");
        }
        let indexed = self.indexed_tables(env);
        let inner = if indexed.is_empty() {
            json!({"value": {"status": "notprovisioned", "lockboxstatus": "Unknown"}})
        } else {
            let now = Instant::now();
            let entries: Vec<Value> = indexed
                .iter()
                .map(|ix| self.search_status_claim(ix.replica, now, false))
                .filter(|c| c.state != "not_running")
                .map(|c| Value::Object(c.raw))
                .collect();
            json!({"value": {
                "entitystatusresults": entries,
                "manytomanyrelationshipsyncstatus": [],
                "status": "provisioned",
                "lockboxstatus": "Disabled",
                "cmkstatus": "Disabled",
            }})
        };
        string_wrapped(base, "searchstatusResponse", &inner)
    }
}

#[cfg(test)]
mod tests {
    use super::super::LakeLog;
    use super::*;

    #[test]
    fn the_timestamp_is_version_bang_us_date_in_whole_seconds() {
        let t = DateTime::parse_from_rfc3339("2022-09-12T14:26:14.987Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(version_at(73_630_169, t), "73630169!09/12/2022 14:26:14");
    }

    #[test]
    fn findable_versions_move_the_watermark_and_a_lost_one_holds_it() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + std::time::Duration::from_secs(n);
        let mut log = LakeLog::default();
        let note = |log: &mut LakeLog, v: u64, a: Option<Instant>| {
            log.note_version(v, a);
            if let Some(a) = a {
                log.note_export(a, v, Some(v));
            }
        };
        note(&mut log, 11, Some(s(2)));
        note(&mut log, 12, Some(s(1)));
        note(&mut log, 13, None);
        note(&mut log, 14, Some(s(3)));
        let r = log.read(s(1), Some, None);
        assert_eq!((r.watermark, r.last_sync), (None, Some(s(1))), "11 not yet");
        let r = log.read(s(5), Some, None);
        assert_eq!(r.watermark, Some(12), "13 is lost");
        assert_eq!((r.max_exported, r.last_sync), (Some(14), Some(s(3))));
        // A stale claim keeps what was read at its start.
        let r = log.read(s(6), Some, Some(s(1)));
        assert_eq!((r.watermark, r.last_sync), (None, Some(s(1))));
        let r = log.read(s(6), Some, Some(s(2)));
        assert_eq!((r.watermark, r.last_sync), (Some(12), Some(s(2))));
    }
}
