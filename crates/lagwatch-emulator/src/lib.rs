//! An emulated Dynamics 365 estate on one loopback listener, over real HTTP.
//!
//! Why: lagwatch's connectors speak the documented protocols of Dataverse, Entra ID, F&O,
//! Azure AI Search and Elasticsearch. Testing them (and running `lagwatch demo`) needs servers
//! that answer those protocols the way the documents say, replicate between each other with
//! realistic lags and failures, and know the true instant each record became visible, so a
//! measured lag can be checked against the truth. The emulator follows the protocol fact
//! sheet (`d365-protocols.md`), not any particular client; where the documents leave a detail
//! open, the choice is noted on the service.
//!
//! Services, each under a path prefix of one listener (connectors take base URLs):
//!
//! | prefix | service | fact sheet |
//! |---|---|---|
//! | `/{env}/api/data/v9.2/` | Dataverse Web API ([`dataverse`]) | §1, §2 |
//! | `/{env}/api/data/v9.2/searchquery`, `searchstatus` | Dataverse search of the tables with a `dataverse_search` replica ([`dataverse_search`]) | §6.2 |
//! | `/entra/{tenant}/oauth2/v2.0/token` | Entra client-credentials tokens ([`entra`]) | §3.1 |
//! | `/fno/{env}/data/` | F&O OData, filled by dual-write; declared entities writable ([`fno`]) | §4 |
//! | `/search/{service}/` | Azure AI Search ([`search`]) | §6.1 |
//! | `/es/{cluster}/` | Elasticsearch/OpenSearch ([`elastic`]) | §6.3 |
//! | `/_truth/{replica}/{key}` | ground truth (below) | — |
//! | `/_truth/_drift/{replica}` | seeded rows' drift (below) | — |
//! | `/_truth/links/{link}/{key}` | a link's conflict truth ([`link`]) | — |
//! | `/_truth/status/{replica}` | what a replica's status surface claims vs the truth ([`status`]) | — |
//! | `/_faults` | fault injection: `POST` adds, `GET` lists, `DELETE` clears ([`faults`]) | — |
//! | `/` | JSON description of the services | — |
//!
//! Analytics lakes are not served over HTTP: a lake replica writes Synapse Link incremental
//! update folders, or the table layout's partition files ([`lake_table`]), as files under a
//! directory ([`lake`], fact sheet §5.2–§5.5;
//! [`Emulator::with_lake_root`], `lagwatch emulate --lake-dir`), through the [`LakeSink`]
//! trait, or as blobs in Azure Storage or Azurite ([`BlobSink`] in
//! [`EmulatorOptions::lake_sink`], `lagwatch emulate --lake-blob-url`).
//!
//! Replication reuses [`Landscape`] of the `simulated` kind ([`simulated`], lagwatch's
//! in-process landscape with ground truth, also a kind of its own): every replica of the scenario is
//! a landscape replica (lag distribution, drop/mismatch/flap probabilities, `stall` and
//! `unavailable` outages), fed by the Dataverse entity set it names, or, for dual-write from
//! F&O into Dataverse (`source: fno:<env>/<entity>`), by the rows written through the F&O
//! entity's OData API. Only writes made through a service's API replicate, never a copy a
//! replica put there, so no change goes back to the side it came from. Deletes replicate the same
//! way: a deleted row stays in each replica until a lag drawn from the replica's distribution
//! has passed (never before the write it follows), unless the replica drops the delete
//! (`delete_drop_probability`: the row stays) or undoes it for a while
//! (`resurrect_probability`: the row is back `resurrect_after` after it was gone, default 1s,
//! for `resurrect_for`, default 3s, then gone for good). A lake replica whose export is a
//! change log (incremental folders, or `layout: table` with `update_mode: append_only`) can
//! also lose an update's row (`version_drop_probability`: the lake shows the version before
//! until a later one arrives) or write it twice (`version_duplicate_probability`); creates and
//! deletes never, and other targets refuse both keys. A dual-write map `state`
//! (`running`, `paused`, `stopped`) and `paused` windows become a stall outage or a certain
//! drop. All instants are `tokio::time::Instant`, so in-process tests under paused time
//! ([`Emulator::handle`]) run minutes of lag in milliseconds. Wall-clock values the services
//! return (`createdon`, `Date`, truth timestamps) are derived from the same clock: the wall
//! time when the emulator started plus the tokio time elapsed since.
//!
//! Ground truth: `GET /_truth/{replica}/{key}` (no authentication), where `key` is the value
//! of the replica's `key` column (default the record id) or the Dataverse record id (for an
//! F&O source: the id its Dataverse copy gets; `committed_at` is the F&O write), answers
//!
//! ```json
//! {"replica":"fno","key":"SENT-1","record_id":"…","committed_at":"2026-05-01T10:00:00.123456789Z",
//!  "committed_at_unix":1777629600.123456789,"visible_at":"…","visible_at_unix":…,
//!  "lag_seconds":0.41,"searchable_at":null,"searchable_at_unix":null,"sink_at":null,
//!  "sink_at_unix":null,"folder":null,"flap":null,"mismatched":false,"dropped":false,
//!  "queued":false,"deleted_at":"…","deleted_at_unix":…,"gone_at":"…","gone_at_unix":…,
//!  "delete_lag_seconds":0.38,"delete_dropped":false,
//!  "resurrected":{"from":"…","to":"…","from_unix":…,"to_unix":…},
//!  "delete_sink_at":null,"delete_sink_at_unix":null,"versions_dropped":[],
//!  "versions_duplicated":[],"visible_now":false,"now":"…"}
//! ```
//!
//! Timestamps are RFC 3339 UTC with nanoseconds plus the same instant as Unix seconds with a
//! fraction. `visible_at` is when the record became stably visible to reads by key (null if it
//! never will: `dropped`, or `queued` behind a paused map); `searchable_at` (Elasticsearch
//! only) is when `_search` finds it; `flap` is an early `{from, to}` appearance before
//! `visible_at`. For a lake replica `visible_at` is when the incremental folder holding the
//! row closed (table layout: when the row was put into its partition file, `sink_at`),
//! `sink_at` when the row was appended (its `SinkCreatedOn`), and `folder` that folder's name
//! (null in the table layout). After the Dataverse row was deleted (the fields are null, and
//! `delete_dropped` false, while it lives): `deleted_at` is when the delete committed;
//! `gone_at` when the replica stopped showing the row (null if the delete was dropped, or is
//! queued behind a paused map; deletes apply in order, so it is never before `visible_at`, and
//! equal to it when the delete was drawn faster than the write: the row never showed),
//! `delete_lag_seconds` the time between; `delete_dropped` says
//! the delete never reaches the replica (the row stays); `resurrected` is a `{from, to}`
//! window after `gone_at` during which the row shows again before it is gone for good (null if
//! none). Reads by key and queries (Elasticsearch `_doc` too) find the row until `gone_at`, and
//! inside `resurrected`, never after; Elasticsearch `_search` stops finding it at the first
//! refresh at or after `gone_at` (and finds a resurrection from the first refresh at or after
//! `from` to the first at or after `to`). For a lake replica `delete_sink_at` is when the
//! delete row was appended (its `SinkCreatedOn`), `gone_at` when it became readable, by the
//! same rule as `visible_at`, and `resurrected` when the row written again and its second
//! delete row became readable. `versions_dropped` and `versions_duplicated` (change-log lakes;
//! empty elsewhere) list the updates of the record, since it was created, whose row
//! `version_drop_probability` kept from the lake or `version_duplicate_probability` wrote
//! twice, oldest first, each as `{"committed_at": "…", "committed_at_unix": …}` (its Dataverse
//! commit; the last 1024 of each); a lost latest version leaves `dropped` true and
//! `visible_at` null. `visible_now` is whether reads by key find the row stably now
//! (arrived and not gone, or resurrected). Unknown replica or key → 404.
//!
//! Drift truth: `GET /_truth/_drift/{replica}` (no authentication) lists the exact drift of a
//! replica's copy of its source's seeded rows ([`seed`], served by [`seeded`]):
//!
//! ```json
//! {"replica":"fno","source":"crm/accounts","key":"accountnumber",
//!  "rows":{"source":995,"replica":993},
//!  "counts":{"missing":3,"stale":2,"extra":1,"changed":2,"in_flight":4,"deleted":4},
//!  "keys":{"missing":["accountnumber-00000017",…],"stale":[…],"extra":[…],"changed":[…],
//!          "in_flight":[…],"deleted":[…]},
//!  "truncated":false}
//! ```
//!
//! Keys are the text of the replica's `key` column (default the id) in the source, by row
//! index; each list holds at most 10,000 keys, and `truncated` says a list was cut. `deleted`
//! are the source's deleted rows that are gone from the replica too (the others are `extra`);
//! `in_flight` rows show the version before in the replica. `rows` counts the source's rows
//! and the replica's copies (without live rows). With a replica `filter`, only rows it passes
//! are counted (the drift was picked among all rows, so the counts may be below the scenario's).
//! A replica whose source has no seed answers zeros; an unknown replica → 404.
//!
//! A scenario (the full demo is `examples/scenarios/demo.yaml`):
//!
//! ```yaml
//! seed: 7
//! credentials:
//!   - { tenant: contoso, client_id: lagwatch-app, client_secret: demo-secret }
//! dataverse:
//!   crm:
//!     throttle: { requests: 50, per: 10s, retry_after: 5s }
//!     tables:
//!       accounts:
//!         id: accountid
//!         columns: { name: string, accountnumber: string, customertypecode: int }
//! fno:
//!   fin:
//!     default_company: dat
//!     entities:                      # writable through OData; dual-written back below
//!       CustomersV3:
//!         key: CustomerAccount       # with dataAreaId, the entity key
//!         mandatory: [OrganizationName, CustomerGroupId]
//!         number_sequence: DW        # a create without the key gets DW-000001, …
//! replicas:
//!   fno:
//!     source: crm/accounts
//!     target: { kind: fno, env: fin, entity: CustomersV3, company: usmf }
//!     key: accountnumber
//!     map: { accountnumber: CustomerAccount, name: OrganizationName }
//!     transform: { OrganizationName: uppercase }
//!     lag: { distribution: log_normal, median: 400ms, p99: 1500ms }
//!     flap_probability: 0.0          # rows shown early, then lost until the lag
//!     delete_drop_probability: 0.0   # deletes that never arrive: the row stays
//!     resurrect_probability: 0.0     # deletes undone for a while: the row is back, then gone
//!     resurrect_after: 1s            # back this long after it was gone
//!     resurrect_for: 3s              # for this long
//!     paused: [ { start: 5m, duration: 1m, every: 15m } ]
//!   fno_back:                        # dual-write the other way: F&O → Dataverse
//!     source: fno:fin/CustomersV3
//!     target: { kind: dataverse, env: crm, table: accounts }
//!     key: OrganizationName          # an F&O field, mapped
//!     map: { OrganizationName: name, CustomerAccount: accountnumber }
//!     lag: { distribution: log_normal, median: 400ms, p99: 1500ms }
//! ```
//!
//! Status surfaces ([`status`]): every replica with one gets the platform's own status, derived
//! from its replication and bent on purpose by its `status_lie` — Synapse Link's tables under
//! the lake source's Dataverse environment (`synapselinkprofiles`,
//! `synapselinkprofileentitystates`, `synapselinkschedules`, `synapselinkexternaltablestates`),
//! Dataverse search's `searchstatus`, `/search/{svc}/indexers/{name}/status`,
//! `/es/{cluster}/{index}/_stats/refresh,indexing`,
//! `/fno/{env}/data/DualWriteProjectConfigurations`; see `docs/design/emulator.md`.
//!
//! Links ([`link`]): a scenario's `links:` makes two opposite replicas one bidirectional
//! map with a conflict policy, and an environment's `clock_skew` moves its clock (its `Date`
//! headers, Dataverse times, link stamps); see `docs/design/emulator.md`.
//!
//! Left out: writes to search and Elasticsearch (they are read-only replicas here), writes
//! to F&O entities not declared writable and to rows dual-written from Dataverse (but for
//! the linked fields of a link's copies),
//! `$expand`, `$orderby` in F&O, batch requests, Elasticsearch's idle-shard refresh and
//! `_refresh`, Dataverse search's other operations (suggest, autocomplete, statistics, the
//! `/api/search/v2.0/` routes), its facets, `orderby`, Lucene syntax and its budget of a
//! request a second; for the lake see [`lake`].

// Handlers return a finished error `Response` early through `Result<_, Response>`; it is
// large, but only built on the error path of one request.
#![allow(clippy::result_large_err)]

pub mod blob_sink;
pub mod cli;
pub mod dataverse;
pub mod dataverse_search;
pub mod delta;
pub mod demo;
pub mod elastic;
pub mod entra;
pub mod faults;
pub mod fno;
pub mod lake;
pub mod lake_delta;
pub mod lake_seed;
pub mod lake_sink;
pub mod lake_table;
pub mod link;
mod odata;
mod replication;
pub mod scenario;
pub mod search;
pub mod seed;
mod seeded;
pub mod simulated;
pub mod status;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::simulated::Landscape;
use lagwatch::systems::Registry;

/// lagwatch's kinds and the emulator's `simulated` (first, as it was listed before the
/// emulator became a crate of its own): what `lagwatch` loads configurations with when built
/// with the `demo` feature, and what tests and benchmarks load theirs with.
pub const REGISTRY: Registry = Registry::new(&[simulated::KINDS, lagwatch::systems::REGISTRY]);

pub use blob_sink::{BlobSink, BlobSinkError};
pub use lake_sink::{LakeSink, LocalDirSink};
pub use replication::GroundTruth;
pub use scenario::Scenario;

use odata::percent_decode;

/// A scenario that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("{file}: cannot read the scenario: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario: not valid YAML: {message}")]
    Syntax { message: String },
    #[error("scenario: {key}: {reason}")]
    Invalid { key: String, reason: String },
}

/// Options of an emulator beyond its scenario.
#[derive(Clone, Default)]
pub struct EmulatorOptions {
    /// Directory the lakes are written under (`<dir>/<container>/…`). Default: a new
    /// directory `lagwatch-lake-<uuid>` under the system temp dir, made only if the scenario
    /// has lakes and removed when the emulator is dropped. See [`Emulator::lake_root`].
    pub lake_root: Option<PathBuf>,
    /// Another storage for the lakes than a local directory; overrides `lake_root`.
    pub lake_sink: Option<Arc<dyn LakeSink>>,
}

impl std::fmt::Debug for EmulatorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorOptions")
            .field("lake_root", &self.lake_root)
            .field("lake_sink", &self.lake_sink.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// Largest request body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The emulated estate: services, replication and ground truth. Cheap to share (`Arc`).
pub struct Emulator {
    scenario: Scenario,
    landscape: Arc<Landscape>,
    replicas: Vec<replication::ReplicaDef>,
    started: Instant,
    started_wall: DateTime<Utc>,
    state: Mutex<State>,
    lakes: lake::Lakes,
    faults: faults::Faults,
    /// The scenario's links ([`link`]), and their writes (locked before `state`, never while
    /// holding it).
    links: Vec<link::LinkDef>,
    link_book: Mutex<link::Book>,
    /// What the status surfaces remember of the replication ([`status`]); locked after
    /// `state`, never while taking it.
    status: Mutex<status::Book>,
}

#[derive(Default)]
struct State {
    tables: HashMap<(String, String), dataverse::TableStore>,
    versions: HashMap<String, u64>,
    tokens: HashMap<String, entra::Token>,
    throttles: HashMap<(String, String), dataverse::ThrottleState>,
    indexes: HashMap<String, replication::ReplicaIndex>,
    /// Rows written through F&O OData, by environment and entity.
    fno_rows: HashMap<(String, String), fno::EntityStore>,
}

/// One request, decoded: what every service handler works from.
pub(crate) struct Req {
    pub method: Method,
    /// Path segments after the service prefix, percent-decoded.
    pub segments: Vec<String>,
    pub query: odata::QueryString,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `Host` of the request (for absolute URLs), default `localhost`.
    pub host: String,
    /// The request path as sent (for messages).
    pub path: String,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// An empty response.
pub(crate) fn empty_response(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

/// Base64 (standard or URL-safe alphabet, padding optional).
pub(crate) fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Base64, standard alphabet, padded.
pub(crate) fn b64_encode(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// RFC 3339 UTC with nanoseconds.
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl Emulator {
    /// Builds the estate of a validated scenario; the replication clock starts now. Lakes, if
    /// any, are written under a new directory in the system temp dir ([`Emulator::lake_root`]).
    pub fn new(scenario: Scenario) -> Arc<Emulator> {
        Emulator::with_options(scenario, EmulatorOptions::default())
    }

    /// As [`Emulator::new`], writing the scenario's lakes under `lake_root`
    /// (`<lake_root>/<container>/…`).
    pub fn with_lake_root(scenario: Scenario, lake_root: impl Into<PathBuf>) -> Arc<Emulator> {
        Emulator::with_options(
            scenario,
            EmulatorOptions {
                lake_root: Some(lake_root.into()),
                ..EmulatorOptions::default()
            },
        )
    }

    /// Builds the estate with `options`. Nothing is written yet: the lakes' folders are made
    /// by the first request, [`Emulator::flush_lake`] (which reports storage errors) or the
    /// background task started here when the scenario has lakes and a tokio runtime runs.
    pub fn with_options(scenario: Scenario, options: EmulatorOptions) -> Arc<Emulator> {
        let landscape = Arc::new(Landscape::new());
        let replicas = replication::ReplicaDef::build_all(&scenario);
        let mut seed = scenario.seed;
        for r in &replicas {
            landscape.register_source(&r.landscape_source, seed.take());
            landscape.register_replica(&r.name, &r.landscape_source, r.spec.clone());
        }
        let mut state = State::default();
        for (env, e) in &scenario.dataverse {
            state.versions.insert(env.clone(), 1_000_000);
            for set in e.tables.keys() {
                state
                    .tables
                    .insert((env.clone(), set.clone()), dataverse::TableStore::default());
            }
        }
        for r in &replicas {
            state
                .indexes
                .insert(r.name.clone(), replication::ReplicaIndex::default());
        }
        let started = landscape.started_at();
        let lakes = lake::Lakes::build(&scenario, &replicas, &options, started);
        let faults = faults::Faults::default();
        for f in &scenario.faults {
            // Checked when the scenario was validated; a scenario built otherwise that holds a
            // bad fault is served without it.
            if let Err(e) = faults.add(f.to_string().as_bytes()) {
                tracing::warn!(error = %e, "scenario fault ignored");
            }
        }
        let links = link::LinkDef::build_all(&scenario, &replicas);
        let emu = Arc::new(Emulator {
            links,
            link_book: Mutex::new(link::Book::default()),
            status: Mutex::new(status::Book::default()),
            scenario,
            started,
            started_wall: Utc::now(),
            landscape,
            replicas,
            state: Mutex::new(state),
            lakes,
            faults,
        });
        emu.spawn_lake_task();
        emu
    }

    /// The scenario being served.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The replication model behind the replicas (its ground truth is keyed by replica name
    /// and Dataverse record id).
    pub fn landscape(&self) -> &Arc<Landscape> {
        &self.landscape
    }

    /// The faults in force ([`faults`]); tests may set them directly instead of over HTTP.
    pub fn faults(&self) -> &faults::Faults {
        &self.faults
    }

    /// The emulator's wall clock at a tokio instant: start wall time + elapsed tokio time,
    /// stepped by a `clock` fault if one is in force.
    pub fn wall_time(&self, at: Instant) -> DateTime<Utc> {
        self.unstepped_wall_time(at) + self.faults.clock_offset()
    }

    /// The wall clock without a `clock` fault's step: lakes name folders by it, and a step
    /// must not rename folders already written.
    pub(crate) fn unstepped_wall_time(&self, at: Instant) -> DateTime<Utc> {
        match at.checked_duration_since(self.started) {
            Some(d) => self.started_wall + chrono::Duration::from_std(d).unwrap_or_default(),
            None => {
                let back = self.started.saturating_duration_since(at);
                self.started_wall - chrono::Duration::from_std(back).unwrap_or_default()
            }
        }
    }

    pub(crate) fn wall_now(&self) -> DateTime<Utc> {
        self.wall_time(Instant::now())
    }

    /// The `clock_skew` of Dataverse environment `env` (zero for an unknown one).
    pub(crate) fn dataverse_skew(&self, env: &str) -> chrono::Duration {
        self.scenario
            .dataverse
            .get(env)
            .map_or_else(chrono::Duration::zero, |e| e.clock_skew.0)
    }

    /// The `clock_skew` of F&O environment `env` (zero for an unknown one).
    pub(crate) fn fno_skew(&self, env: &str) -> chrono::Duration {
        self.scenario
            .fno
            .get(env)
            .map_or_else(chrono::Duration::zero, |e| e.clock_skew.0)
    }

    /// Dataverse environment `env`'s clock at `at`: the wall clock plus its skew.
    pub(crate) fn dataverse_time(&self, env: &str, at: Instant) -> DateTime<Utc> {
        self.wall_time(at) + self.dataverse_skew(env)
    }

    /// The clock that answers a request for `path`: a Dataverse environment's (`/{env}/…`)
    /// or an F&O environment's (`/fno/{env}/…`) skewed clock; every other route (tokens,
    /// search, truth) keeps the unskewed one.
    fn path_skew(&self, path: &str) -> chrono::Duration {
        let mut parts = path.split('/').skip(1);
        match parts.next() {
            Some("fno") => parts
                .next()
                .map_or_else(chrono::Duration::zero, |env| self.fno_skew(env)),
            Some(env) => self.dataverse_skew(env),
            None => chrono::Duration::zero(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps behind; keep serving them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The axum router serving every service and `/_faults`; state is shared with this
    /// handle. Faults apply here, on the socket path, because several of them (a dropped
    /// connection, a body cut mid-way) only exist on a socket.
    pub fn router(self: &Arc<Self>) -> Router {
        let emu = self.clone();
        Router::new().fallback(move |req: Request| {
            let emu = emu.clone();
            async move { emu.handle_faulted(req).await }
        })
    }

    /// [`Emulator::handle`] behind the fault in force for the request's path, if any.
    async fn handle_faulted(&self, req: Request) -> Response {
        let path = req.uri().path().to_string();
        if path == "/_faults" {
            return self.faults_endpoint(req).await;
        }
        let Some(mode) = self.faults.pick(req.method().as_str(), &path) else {
            return self.handle(req).await;
        };
        tracing::debug!(%path, ?mode, "emulated fault");
        if let Some(response) = self.faults.immediate(&mode) {
            return self.finish(&path, response);
        }
        if let Some(delay) = faults::delay(&mode) {
            tokio::time::sleep(delay).await;
        }
        let response = self.handle(req).await;
        faults::transform(&mode, response).await
    }

    /// `GET`, `POST` and `DELETE /_faults` ([`faults`]).
    async fn faults_endpoint(&self, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let ok = |emu: &Self, status| json_response(status, &emu.faults.describe());
        let bad = |message: String| {
            json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": {"code": "", "message": message}}),
            )
        };
        let response = match parts.method {
            Method::GET => ok(self, StatusCode::OK),
            Method::POST => match axum::body::to_bytes(body, MAX_BODY).await {
                Ok(bytes) => match self.faults.add(&bytes) {
                    Ok(()) => ok(self, StatusCode::CREATED),
                    Err(e) => bad(e),
                },
                Err(_) => bad("request body too large or unreadable".into()),
            },
            Method::DELETE => {
                let prefix = parts.uri.query().and_then(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "prefix")
                        .map(|(_, v)| v.into_owned())
                });
                self.faults.clear(prefix.as_deref());
                ok(self, StatusCode::OK)
            }
            _ => empty_response(StatusCode::METHOD_NOT_ALLOWED),
        };
        self.finish("/_faults", response)
    }

    /// Serves the router on `listener` until `shutdown` is cancelled.
    ///
    /// # Errors
    /// Accept errors of the listener.
    pub async fn serve(
        self: &Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }

    /// Handles one request in-process, exactly as the router does (tests under paused time
    /// call this instead of going through a socket).
    pub async fn handle(&self, req: Request) -> Response {
        if self.lakes.is_due(Instant::now()) {
            // Storage errors are logged by the flush; requests are served regardless.
            let _ = self.flush_lake().await;
        }
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        let body = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b,
            Err(_) => {
                return self.finish(&path, json_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &json!({"error": {"code": "", "message": "request body too large or unreadable"}}),
                ));
            }
        };
        let segments: Result<Vec<String>, String> = path
            .split('/')
            .skip(1)
            .map(|s| percent_decode(s, false))
            .collect();
        let query = odata::QueryString::parse(parts.uri.query());
        let (segments, query) = match (segments, query) {
            (Ok(s), Ok(q)) => (s, q),
            (Err(e), _) | (_, Err(e)) => {
                return self.finish(
                    &path,
                    json_response(
                        StatusCode::BAD_REQUEST,
                        &json!({"error": {"code": "", "message": e}}),
                    ),
                );
            }
        };
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost")
            .to_string();
        let mut req = Req {
            method: parts.method,
            segments,
            query,
            headers: parts.headers,
            body,
            host,
            path,
        };
        let response = self.dispatch(&mut req);
        self.finish(&req.path, response)
    }

    /// Adds the `Date` header: the emulator clock, skewed by the environment `path` is under.
    fn finish(&self, path: &str, mut r: Response) -> Response {
        let date = (self.wall_now() + self.path_skew(path))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        r.headers_mut().insert(header::DATE, hv(&date));
        r
    }

    fn dispatch(&self, req: &mut Req) -> Response {
        let first = req.segments.first().cloned().unwrap_or_default();
        let take = |req: &mut Req, n: usize| -> Vec<String> {
            let n = n.min(req.segments.len());
            req.segments.drain(..n).collect()
        };
        match first.as_str() {
            "" if req.segments.len() <= 1 => self.describe_services(req),
            "entra" => {
                take(req, 1);
                match req.segments.as_slice() {
                    [tenant, o, v, t] if o == "oauth2" && v == "v2.0" && t == "token" => {
                        if req.method != Method::POST {
                            return empty_response(StatusCode::METHOD_NOT_ALLOWED);
                        }
                        let tenant = tenant.clone();
                        self.token_endpoint(req, &tenant)
                    }
                    _ => not_found(req),
                }
            }
            "fno" => {
                let s = take(req, 2);
                match (s.get(1), req.segments.first()) {
                    (Some(env), Some(d)) if d == "data" && self.scenario.fno.contains_key(env) => {
                        take(req, 1);
                        let env = env.clone();
                        self.fno(req, &env)
                    }
                    _ => not_found(req),
                }
            }
            "search" => {
                let s = take(req, 2);
                match s.get(1) {
                    Some(svc) if self.scenario.search.contains_key(svc) => {
                        let svc = svc.clone();
                        self.search(req, &svc)
                    }
                    _ => not_found(req),
                }
            }
            "es" => {
                let s = take(req, 2);
                match s.get(1) {
                    Some(c) if self.scenario.elasticsearch.contains_key(c) => {
                        let c = c.clone();
                        self.elastic(req, &c)
                    }
                    _ => not_found(req),
                }
            }
            "_truth" => match req.segments.as_slice() {
                [_, s] if s == "status" && req.method == Method::GET => {
                    self.status_truth_endpoint(None)
                }
                [_, s, replica] if s == "status" && req.method == Method::GET => {
                    self.status_truth_endpoint(Some(replica))
                }
                [_, l] if l == "links" && req.method == Method::GET => {
                    self.link_truth_endpoint(None, None)
                }
                [_, l, link] if l == "links" && req.method == Method::GET => {
                    self.link_truth_endpoint(Some(link), None)
                }
                [_, l, link, key] if l == "links" && req.method == Method::GET => {
                    self.link_truth_endpoint(Some(link), Some(key))
                }
                [_, d, replica] if d == "_drift" && req.method == Method::GET => {
                    self.drift_truth_endpoint(replica)
                }
                [_, replica, key] if req.method == Method::GET => self.truth_endpoint(replica, key),
                _ => not_found(req),
            },
            env if self.scenario.dataverse.contains_key(env) => {
                let s = take(req, 4);
                match s.as_slice() {
                    [env, api, data, version]
                        if api == "api" && data == "data" && version.starts_with("v9.") =>
                    {
                        let env = env.clone();
                        self.dataverse(req, &env)
                    }
                    _ => not_found(req),
                }
            }
            _ => not_found(req),
        }
    }

    /// Resources tokens may be issued for, as seen from `host`.
    pub(crate) fn known_resources(&self, host: &str) -> Vec<String> {
        let mut out = Vec::new();
        for env in self.scenario.dataverse.keys() {
            out.extend(self.dataverse_resources(env, host));
        }
        for env in self.scenario.fno.keys() {
            out.extend(self.fno_resources(env, host));
        }
        for svc in self.scenario.search.keys() {
            out.extend(self.search_resources(svc, host));
        }
        out
    }

    fn describe_services(&self, req: &Req) -> Response {
        let base = format!("http://{}", req.host);
        json_response(StatusCode::OK, &self.describe_json(&base))
    }

    /// Services and their base URLs under `base` (such as `http://127.0.0.1:8080`).
    pub fn describe_json(&self, base: &str) -> Value {
        let s = &self.scenario;
        let tenants: Vec<&str> = {
            let mut t: Vec<&str> = s.credentials.iter().map(|c| c.tenant.as_str()).collect();
            t.dedup();
            t
        };
        json!({
            "token_endpoints": tenants.iter().map(|t| format!("{base}/entra/{t}/oauth2/v2.0/token")).collect::<Vec<_>>(),
            "dataverse": s.dataverse.iter().map(|(env, e)| json!({
                "env": env,
                "url": format!("{base}/{env}/api/data/v9.2/"),
                "scope": format!("{}/.default", self.dataverse_resources(env, "").first().cloned().unwrap_or_default()),
                "entity_sets": e.tables.keys().collect::<Vec<_>>(),
                "search_indexed": self.indexed_tables(env).iter().map(|i| i.logical.clone()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "fno": s.fno.keys().map(|env| json!({
                "env": env,
                "url": format!("{base}/fno/{env}/data/"),
                "scope": format!("{}/.default", self.fno_resources(env, "").first().cloned().unwrap_or_default()),
            })).collect::<Vec<_>>(),
            "search": s.search.keys().map(|svc| json!({
                "service": svc,
                "url": format!("{base}/search/{svc}/"),
            })).collect::<Vec<_>>(),
            "elasticsearch": s.elasticsearch.keys().map(|c| json!({
                "cluster": c,
                "url": format!("{base}/es/{c}/"),
            })).collect::<Vec<_>>(),
            "lakes": self.describe_lakes(),
            "replicas": self.replicas.iter().map(|r| json!({
                "name": r.name,
                "source": r.describe_source(),
                "target": r.describe_target(),
                "truth": format!("{base}/_truth/{}/{{key}}", r.name),
                "drift_truth": format!("{base}/_truth/_drift/{}", r.name),
                "status_truth": format!("{base}/_truth/status/{}", r.name),
            })).collect::<Vec<_>>(),
            "links": self.describe_links(base),
        })
    }
}

fn not_found(req: &Req) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": {"code": "", "message": format!("no emulated endpoint at {}", req.path)}}),
    )
}

/// Serves `scenario` on an already-bound listener until `shutdown` is cancelled.
///
/// # Errors
/// Accept errors of the listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    scenario: Scenario,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    Emulator::new(scenario).serve(listener, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "abcd", "id:key"] {
            assert_eq!(
                b64_decode(&b64_encode(s.as_bytes())).as_deref(),
                Some(s.as_bytes())
            );
        }
        assert_eq!(b64_encode(b"id:key"), "aWQ6a2V5");
        assert!(b64_decode("a*b").is_none());
    }

    #[test]
    fn the_scenario_in_the_crate_docs_is_valid() {
        let docs: String = include_str!("lib.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .map(|l| format!("{}\n", l.strip_prefix(' ').unwrap_or(l)))
            .collect();
        let yaml = docs
            .split("```yaml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap_or_else(|| panic!("no yaml example in the crate docs"));
        let s = Scenario::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.fno["fin"].entities.contains_key("CustomersV3"));
        assert!(s.replicas.contains_key("fno_back"));
    }

    #[test]
    fn the_demo_scenario_is_valid() {
        let s = Scenario::demo().unwrap_or_else(|e| panic!("{e}"));
        assert!(s.dataverse.contains_key("crm"));
        assert!(s.replicas.len() >= 3);
    }
}
