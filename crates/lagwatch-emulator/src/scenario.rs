//! The scenario file: which services the emulated estate runs and how records replicate.
//!
//! YAML, strict like lagwatch's own configuration (unknown keys are errors, durations use the
//! same grammar). Every error names the key path. See the module docs of [`crate`]
//! for an example.
//!
//! A replica's knobs that break replication on purpose (`drop_probability`,
//! `delete_drop_probability`, `resurrect_probability`, `child_first_probability`,
//! `version_drop_probability`, `version_duplicate_probability`…) are documented on
//! [`Replica`]; each is a probability in [0, 1], drawn per write or delete from the seeded
//! generator, and the ground truth lists what it did. A knob a target cannot show is refused
//! rather than ignored: the version knobs need a change-log lake (incremental folders, or the
//! table layout with append-only updates), since anywhere else a skipped version is legal and
//! there is no row to repeat.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::simulated::{self, LagSpec, Outage, OutageMode, ReplicaSpec};
use lagwatch::config::{self, Dur, Issue};

use super::EmulatorError;
use super::odata::{self, Filter};

/// Path prefixes the other services use; a Dataverse environment cannot take these names.
pub(crate) const RESERVED: &[&str] = &["entra", "fno", "search", "es", "_truth"];

/// Incremental folder interval of a lake replica that does not set one: the documented
/// minimum of Synapse Link (fact sheet §5.3).
pub const DEFAULT_FOLDER_INTERVAL: Dur = Dur::secs(300);

/// Columns every emulated Dataverse table has besides its configured ones.
pub(crate) const SYSTEM_COLUMNS: &[&str] = &["createdon", "modifiedon", "versionnumber"];

/// A validated scenario. Build it with [`Scenario::from_yaml`] or [`Scenario::demo`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seed of the replication draws, for reproducible runs.
    #[serde(default)]
    pub seed: Option<u64>,
    /// App registrations the token endpoint knows.
    #[serde(default)]
    pub credentials: Vec<Credential>,
    /// Dataverse environments by name (the first path segment of their Web API).
    #[serde(default)]
    pub dataverse: BTreeMap<String, DataverseEnv>,
    /// Finance & Operations environments by name.
    #[serde(default)]
    pub fno: BTreeMap<String, FnoEnv>,
    /// Azure AI Search services by name.
    #[serde(default)]
    pub search: BTreeMap<String, SearchService>,
    /// Elasticsearch/OpenSearch clusters by name.
    #[serde(default)]
    pub elasticsearch: BTreeMap<String, ElasticCluster>,
    /// Analytics lakes (ADLS Gen2 storage accounts) Synapse Link exports into, by name.
    #[serde(default)]
    pub lakes: BTreeMap<String, Lake>,
    /// Replication paths by name (the name used by the ground-truth endpoint).
    #[serde(default)]
    pub replicas: BTreeMap<String, Replica>,
    /// Bidirectional dual-write maps by name: two replicas, one each way between a Dataverse
    /// table and an F&O entity, and how a conflict between their sides ends
    /// ([`crate::link`]).
    #[serde(default)]
    pub links: BTreeMap<String, Link>,
    /// Faults in force from the start, as `POST /_faults` takes them ([`super::faults`]);
    /// cleared like any other with `DELETE /_faults`.
    #[serde(default)]
    pub faults: Vec<serde_json::Value>,
}

/// One app registration (client credentials). The values are emulator test data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Tenant id or domain, as it appears in the token URL.
    pub tenant: String,
    pub client_id: String,
    /// The accepted `client_secret`; none means secrets are refused.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Accept `client_assertion` JWTs (certificate / federated credentials) whose `iss` and
    /// `sub` are the client id and whose `exp` has not passed. Signatures are not checked.
    #[serde(default)]
    pub accept_assertions: bool,
    /// `expires_in` of issued tokens, in seconds.
    #[serde(default = "default_expires_in")]
    pub expires_in: u64,
}

fn default_expires_in() -> u64 {
    3599
}

/// A Dataverse environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataverseEnv {
    /// The resource tokens must be issued for (scope = resource + `/.default`); default
    /// `https://<env>.crm.dynamics.com`. The emulated URL `http://<host>/<env>` is accepted too.
    #[serde(default)]
    pub resource: Option<String>,
    /// Service protection: a request budget per caller.
    #[serde(default)]
    pub throttle: Option<Throttle>,
    /// Entity sets by name (`accounts`).
    pub tables: BTreeMap<String, Table>,
    /// How far this environment's clock is off true time ([`Skew`]).
    #[serde(default)]
    pub clock_skew: Skew,
}

/// A request budget: more than `requests` within `per` → 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    pub requests: u32,
    pub per: Dur,
    /// The first penalty; each request sent while throttled lengthens it by this much.
    pub retry_after: Dur,
    /// Longest penalty; default 5m (the documented window).
    #[serde(default = "default_max_retry_after")]
    pub max_retry_after: Dur,
}

fn default_max_retry_after() -> Dur {
    Dur::secs(300)
}

/// An entity set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// Logical name of the table (`account`); default the set name without its final `s`.
    #[serde(default)]
    pub logical_name: Option<String>,
    /// Primary id column; default `<logical name>id`.
    #[serde(default)]
    pub id: Option<String>,
    /// Writable columns and their types.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnType>,
    /// Lookup columns: navigation property (`parentaccountid`) → the entity set it points at
    /// in the same environment. Written with `<nav>@odata.bind: "/<set>(<guid>)"`, read back
    /// as `_<nav>_value`; a bind to a record that does not exist is refused.
    #[serde(default)]
    pub lookups: BTreeMap<String, String>,
    /// Rows present from the start, generated (see [`super::seed`]).
    #[serde(default)]
    pub seed: Option<super::seed::Seed>,
}

impl Table {
    pub(crate) fn logical(&self, set: &str) -> String {
        self.logical_name
            .clone()
            .unwrap_or_else(|| set.strip_suffix('s').unwrap_or(set).to_string())
    }

    pub(crate) fn id_column(&self, set: &str) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| format!("{}id", self.logical(set)))
    }

    /// Every readable column: id, configured ones, system ones.
    pub(crate) fn has_column(&self, set: &str, c: &str) -> bool {
        c == self.id_column(set) || self.columns.contains_key(c) || SYSTEM_COLUMNS.contains(&c)
    }
}

/// Type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    String,
    Int,
    Bool,
}

/// A Finance & Operations environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FnoEnv {
    /// Token resource; default `https://<env>.operations.dynamics.com`.
    #[serde(default)]
    pub resource: Option<String>,
    /// The caller's default company: without `cross-company=true` only its rows are returned,
    /// and a create that names no `dataAreaId` goes into it.
    #[serde(default = "default_company")]
    pub default_company: String,
    /// Data entities callers may write through OData (`POST`, `PATCH`, `DELETE`), by entity
    /// set name (`CustomersV3`). Entities only filled by dual-write from Dataverse need no
    /// entry: they stay read-only, as they always were.
    #[serde(default)]
    pub entities: BTreeMap<String, FnoEntity>,
    /// How far this environment's clock is off true time ([`Skew`]).
    #[serde(default)]
    pub clock_skew: Skew,
}

/// A writable F&O data entity. Its fields are `dataAreaId`, `key`, `mandatory`, `fields` and
/// every field a replica maps to or from it; a write naming another is refused, as F&O
/// refuses a property its entity type does not declare.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FnoEntity {
    /// The key field; with `dataAreaId` it is the entity key
    /// (`CustomersV3(dataAreaId='usmf',CustomerAccount='…')`), unique per company.
    pub key: String,
    /// Fields a create must fill (absent, `null` or empty text is refused, as F&O's
    /// "Field '…' must be filled in."); the key is always mandatory unless numbered.
    #[serde(default)]
    pub mandatory: Vec<String>,
    /// A number sequence code: a create without the key gets `<code>-000001`, `<code>-000002`,
    /// … (one sequence per company, numbers consumed even by a create that then fails).
    #[serde(default)]
    pub number_sequence: Option<String>,
    /// Further fields of the entity, beyond the key, the mandatory and the mapped ones.
    #[serde(default)]
    pub fields: Vec<String>,
}

/// A signed clock offset (`4s`, `-2500ms`, `+1m`): the environment's clock reads true time
/// plus this (and a `clock` fault's step). It shows in the `Date` header of every response
/// under the environment's routes, in the `createdon`/`modifiedon` of Dataverse rows written
/// there and in the stamps of its link writes ([`crate::link`]).
///
/// Why: real environments' clocks drift apart, and a last-writer-wins policy comparing
/// their stamps then lets the earlier write win; lagwatch estimates each system's offset
/// from `Date` headers, so the emulator must be able to skew one on purpose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skew(pub chrono::Duration);

impl Skew {
    /// Parses the strict duration grammar with an optional leading `-` or `+`.
    ///
    /// # Errors
    /// A sentence naming the input and the accepted form.
    pub fn parse(input: &str) -> Result<Skew, String> {
        let (negative, rest) = match input.as_bytes().first() {
            Some(b'-') => (true, &input[1..]),
            Some(b'+') => (false, &input[1..]),
            _ => (false, input),
        };
        let bad = || {
            format!(
                "invalid clock skew \"{input}\": write a signed duration with a unit (ms, s, m, h, d) \
                 and no spaces, such as 4s or -2500ms"
            )
        };
        if rest.starts_with(['-', '+']) {
            return Err(bad());
        }
        let d = config::duration::parse(rest).map_err(|_| bad())?;
        let d = chrono::Duration::from_std(d).map_err(|_| bad())?;
        Ok(Skew(if negative { -d } else { d }))
    }
}

impl<'de> Deserialize<'de> for Skew {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Skew;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a signed duration such as 4s or -2500ms")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Skew, E> {
                Skew::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Skew, E> {
                Err(E::custom(format!(
                    "the clock skew {v} has no unit: write a signed duration such as {v}s"
                )))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Skew, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Skew, E> {
                Err(E::custom(format!(
                    "the clock skew {v} has no unit: write a signed duration such as {v}s"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

fn default_company() -> String {
    "dat".to_string()
}

/// An Azure AI Search service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchService {
    /// Accepted `api-key` values. Bearer tokens for `https://search.azure.com` work too.
    #[serde(default)]
    pub api_keys: Vec<String>,
}

/// An Elasticsearch/OpenSearch cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticCluster {
    /// Basic-auth users and passwords.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// API keys as `id:key` (clients send `Authorization: ApiKey base64(id:key)`).
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// How often indexed documents become searchable.
    #[serde(default = "default_refresh")]
    pub refresh_interval: Dur,
}

fn default_refresh() -> Dur {
    Dur::secs(1)
}

/// An analytics lake: one Synapse Link export (incremental update folders, fact sheet §5.3,
/// or the table layout, §5.2) into a container of a storage account. Its files are written
/// under the emulator's lake root directory as `<root>/<container>/` (see
/// [`lagwatch::lake`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lake {
    /// Container (file system) name, `dataverse-<environment>-<organization>`, e.g.
    /// `dataverse-contoso-unq1234`; Azure container rules (3-63 lower-case letters, digits
    /// and single hyphens).
    pub container: String,
    /// How the export lays out its files: `incremental` (update folders, the default) or
    /// `table` (`<table>/<partition>.csv` at the container's root).
    #[serde(default)]
    pub layout: LakeLayout,
    /// Table layout only: partition files by the `year` (default, `2026.csv`) or `month`
    /// (`2026-11.csv`) of the row's `createdon`.
    #[serde(default)]
    pub partition: Option<Partitioning>,
    /// Table layout only: `in_place` (default: creates appended, updates and deletes rewrite
    /// the partition file) or `append_only` (every change appended, deletes as `IsDelete` rows).
    #[serde(default)]
    pub update_mode: Option<UpdateMode>,
}

impl Lake {
    /// The table layout's settings, with defaults; `None` for incremental folders.
    pub fn table_layout(&self) -> Option<(Partitioning, UpdateMode)> {
        (self.layout == LakeLayout::Table).then(|| {
            (
                self.partition.unwrap_or_default(),
                self.update_mode.unwrap_or_default(),
            )
        })
    }
}

/// The folder structure of a Synapse Link CSV export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LakeLayout {
    /// Timestamped incremental update folders and `Changelog/changelog.info` (§5.3).
    #[default]
    Incremental,
    /// One CSV file per table partition, at the container's root (§5.2).
    Table,
    /// Delta tables under `deltalake/<table>/`, as Link to Fabric keeps them (§5.6), committed
    /// once per refresh interval (the replica's `folder_interval`).
    Delta,
}

/// How a table-layout export splits a table into files, by `createdon`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioning {
    #[default]
    Year,
    Month,
}

/// How a table-layout export applies updates and deletes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateMode {
    /// Creates appended; an update replaces the row and a delete removes it, each by
    /// rewriting the partition file.
    #[default]
    InPlace,
    /// Every version appended, deletes as rows with only `Id`, the sink times and `IsDelete`.
    AppendOnly,
}

/// State of a replication (a dual-write table map's states, §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapState {
    /// Records arrive after the lag.
    #[default]
    Running,
    /// Records queue and never arrive while the emulator runs.
    Paused,
    /// Records are never replicated.
    Stopped,
}

/// A window during which replication is paused (records queue and arrive when it ends).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: Dur,
    pub duration: Dur,
    #[serde(default)]
    pub every: Option<Dur>,
}

/// Where a replica's records appear.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// An F&O data entity, filled by dual-write.
    Fno {
        env: String,
        entity: String,
        #[serde(default = "default_data_area")]
        company: String,
    },
    /// An Azure AI Search index.
    Search { service: String, index: String },
    /// Dataverse search (relevance search) of a table: the source table itself, findable
    /// through the environment's `searchquery` action once its index has the record
    /// ([`crate::dataverse_search`]). `env` and `table` (the entity set) name the source: the
    /// index is of a table of its own environment.
    DataverseSearch { env: String, table: String },
    /// An Elasticsearch/OpenSearch index.
    Elasticsearch { cluster: String, index: String },
    /// An entity set of another Dataverse environment.
    Dataverse { env: String, table: String },
    /// A table of an analytics lake (Synapse Link incremental update folders).
    Lake {
        lake: String,
        /// Table (entity) name in the export: folder name and `model.json` entity, e.g.
        /// `account`.
        table: String,
    },
}

fn default_resurrect_after() -> Dur {
    simulated::DEFAULT_RESURRECT_AFTER
}

fn default_child_first_for() -> Dur {
    simulated::DEFAULT_CHILD_FIRST_FOR
}
fn default_resurrect_for() -> Dur {
    simulated::DEFAULT_RESURRECT_FOR
}

fn default_data_area() -> String {
    "usmf".to_string()
}

/// One replication path from a Dataverse entity set to a target, or, by dual-write, from a
/// writable F&O data entity to a Dataverse table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replica {
    /// `<env>/<entity set>` of a Dataverse source, or `fno:<env>/<entity>` of an F&O entity
    /// declared under `fno.<env>.entities` (its target is then a Dataverse table).
    pub source: String,
    pub target: Target,
    /// Source column identifying a record in the target (document id, truth key); default
    /// the id column (an F&O source: the entity's key field). An F&O source's key must be
    /// mapped, since the Dataverse row is found by the column it fills.
    #[serde(default)]
    pub key: Option<String>,
    /// Source column → target field; default every column under its own name (required for
    /// F&O targets, and for F&O sources: F&O field → Dataverse column).
    #[serde(default)]
    pub map: Option<BTreeMap<String, String>>,
    /// Target field → transformation applied on the way.
    #[serde(default)]
    pub transform: BTreeMap<String, Transform>,
    /// Only source rows matching this `$filter` replicate (a dual-write map's source filter).
    #[serde(default)]
    pub filter: Option<String>,
    pub lag: LagSpec,
    #[serde(default)]
    pub drop_probability: f64,
    #[serde(default)]
    pub mismatch_probability: f64,
    #[serde(default)]
    pub flap_probability: f64,
    /// Share of deletes that never reach the target: the row stays (a lost delete).
    #[serde(default)]
    pub delete_drop_probability: f64,
    /// Share of deletes undone for a while: the row is back `resurrect_after` after it was
    /// gone, for `resurrect_for`, then gone for good (a resurrection).
    #[serde(default)]
    pub resurrect_probability: f64,
    #[serde(default = "default_resurrect_after")]
    pub resurrect_after: Dur,
    #[serde(default = "default_resurrect_for")]
    pub resurrect_for: Dur,
    /// Share of children (records written with a reference to another) applied before
    /// their parent: the parent is held until `child_first_for` after the child arrived.
    /// Otherwise a child is never applied before its parent.
    #[serde(default)]
    pub child_first_probability: f64,
    #[serde(default = "default_child_first_for")]
    pub child_first_for: Dur,
    /// Change-log lakes only: share of updates (writes of a record the replica already has)
    /// whose row never reaches the export, so the lake shows the version before until a later
    /// one arrives: every version arriving once is what such a lake promises, and this breaks
    /// it on purpose. Creates and deletes are never lost this way.
    #[serde(default)]
    pub version_drop_probability: f64,
    /// Change-log lakes only: share of updates (not lost) whose row is written twice, the
    /// copy identical and right behind the first, as an export retry leaves it.
    #[serde(default)]
    pub version_duplicate_probability: f64,
    /// Outages: `stall` pauses replication, `unavailable` fails reads with 503.
    #[serde(default)]
    pub outages: Vec<Outage>,
    #[serde(default)]
    pub state: MapState,
    /// Pause windows (records queue and arrive when the window ends).
    #[serde(default)]
    pub paused: Vec<Window>,
    /// Lake targets only: how often the export starts a new incremental update folder
    /// (real exports: 5 min to 24 h). One value per lake: replicas of a lake that set it must
    /// agree, those that do not share it; 5m if none sets it.
    #[serde(default)]
    pub folder_interval: Option<Dur>,
    /// Exact drift of this replica's copy of the source table's seeded rows.
    #[serde(default)]
    pub drift: Option<super::seed::Drift>,
    /// What the target's own status surface claims, wrong on purpose ([`crate::status`]):
    /// `healthy_while_stuck`, `stale_while_flowing`, `error_while_flowing` or
    /// `watermark_without_record`, always, or `{ lie: …, start, duration, every }` in windows.
    /// Without it the surface tells the truth.
    #[serde(default)]
    pub status_lie: Option<StatusLie>,
    /// Search targets only: the indexer that fills the index, whose status
    /// (`/indexers/{name}/status`) the emulator serves ([`crate::status`]). Default: named
    /// `<index>-indexer` (`<replica>-indexer` when several replicas fill the index), every 30s.
    #[serde(default)]
    pub indexer: Option<IndexerSpec>,
    /// Dual-write replicas only (an F&O target or source): the F&O entity's name in the map's
    /// `DualWriteProjectConfigurations` row (`InternalEntityName`, such as `Customers V3`);
    /// default the entity set name with a space before each capital that follows a small
    /// letter (`CustomersV3` → `Customers V3`).
    #[serde(default)]
    pub internal_entity_name: Option<String>,
}

/// A lie of a status surface ([`crate::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LieKind {
    /// The surface claims healthy and advancing syncs while the replica is stalled or paused.
    HealthyWhileStuck,
    /// The last-sync time (and watermark) stop at the lie's start while data keeps flowing.
    StaleWhileFlowing,
    /// The surface reports an error (a failed table, a failing run) while data flows.
    ErrorWhileFlowing,
    /// A lake's version watermark passes records the replica dropped.
    WatermarkWithoutRecord,
}

impl LieKind {
    /// The name as written in YAML.
    pub fn name(self) -> &'static str {
        match self {
            LieKind::HealthyWhileStuck => "healthy_while_stuck",
            LieKind::StaleWhileFlowing => "stale_while_flowing",
            LieKind::ErrorWhileFlowing => "error_while_flowing",
            LieKind::WatermarkWithoutRecord => "watermark_without_record",
        }
    }
}

/// `status_lie:` a lie, in force always, or in windows like outages (`start`, default 0s;
/// `duration`, default for ever; `every`).
#[derive(Debug, Clone)]
pub struct StatusLie {
    pub lie: LieKind,
    pub start: Dur,
    pub duration: Option<Dur>,
    pub every: Option<Dur>,
}

impl<'de> Deserialize<'de> for StatusLie {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            lie: LieKind,
            #[serde(default)]
            start: Option<Dur>,
            #[serde(default)]
            duration: Option<Dur>,
            #[serde(default)]
            every: Option<Dur>,
        }
        use serde::de::Error as _;
        let v = serde_json::Value::deserialize(d)?;
        let full: Full = if v.is_string() {
            let lie = serde_json::from_value(v).map_err(D::Error::custom)?;
            Full {
                lie,
                start: None,
                duration: None,
                every: None,
            }
        } else {
            serde_json::from_value(v).map_err(D::Error::custom)?
        };
        Ok(StatusLie {
            lie: full.lie,
            start: full.start.unwrap_or(Dur::secs(0)),
            duration: full.duration,
            every: full.every,
        })
    }
}

impl StatusLie {
    /// The lie's windows, as the outage rule reads them.
    pub(crate) fn windows(&self) -> Vec<simulated::Outage> {
        vec![simulated::Outage {
            start: self.start,
            duration: self.duration.unwrap_or(FOREVER),
            every: self.every,
            mode: OutageMode::Stall,
        }]
    }
}

/// `indexer:` of a search replica: its name and how often it runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexerSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_indexer_every")]
    pub every: Dur,
}

/// How often an indexer runs when the scenario does not say: scaled down like the demo's
/// lags (Azure's shortest schedule is `PT5M`).
pub const DEFAULT_INDEXER_EVERY: Dur = Dur::secs(30);

fn default_indexer_every() -> Dur {
    DEFAULT_INDEXER_EVERY
}

/// A bidirectional map: the two replicas that are its directions, and its conflict policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The two directions: one replica from a Dataverse table into an F&O entity, the other
    /// from that entity back into that table (in either order).
    pub replicas: Vec<String>,
    pub policy: ConflictPolicy,
}

/// How a link ends a conflict: both sides changed a row before each had the other's change.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The write with the later stamp (its environment's skewed clock) wins on both sides.
    LastWriterWins,
    /// `{ source_wins: <env> }`: that environment's write wins a conflict on both sides.
    SourceWins(String),
    /// A buggy map: a conflicting change is dropped at the other side, so each keeps its own.
    Diverge,
    /// Synchronous dual-write: a write while a change of the row is in flight is refused.
    Reject,
}

impl ConflictPolicy {
    /// The policy's name in the truth (`source_wins` without its environment).
    pub fn name(&self) -> &'static str {
        match self {
            ConflictPolicy::LastWriterWins => "last_writer_wins",
            ConflictPolicy::SourceWins(_) => "source_wins",
            ConflictPolicy::Diverge => "diverge",
            ConflictPolicy::Reject => "reject",
        }
    }
}

/// A value transformation on the way to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    Uppercase,
    Lowercase,
}

impl Transform {
    pub(crate) fn apply(self, s: &str) -> String {
        match self {
            Transform::Uppercase => s.to_uppercase(),
            Transform::Lowercase => s.to_lowercase(),
        }
    }
}

/// A long pause: "queued until resumed" for the life of any emulator run.
pub(crate) const FOREVER: Dur = Dur::secs(100 * 365 * 86400);

/// Where a replica's records come from, as its `source` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaSource<'a> {
    /// `<env>/<entity set>`: a Dataverse table, written through its Web API.
    Dataverse { env: &'a str, set: &'a str },
    /// `fno:<env>/<entity>`: a writable F&O data entity, written through OData and copied
    /// into Dataverse by dual-write.
    Fno { env: &'a str, entity: &'a str },
}

/// The prefix of an F&O source.
const FNO_SOURCE: &str = "fno:";

impl Replica {
    /// `(env, set)` of the source; of an F&O source, its environment and entity.
    pub fn source_parts(&self) -> (&str, &str) {
        let s = self.source.strip_prefix(FNO_SOURCE).unwrap_or(&self.source);
        s.split_once('/').unwrap_or((s, ""))
    }

    /// The source, by kind.
    pub fn source_ref(&self) -> ReplicaSource<'_> {
        let (env, set) = self.source_parts();
        if self.source.starts_with(FNO_SOURCE) {
            ReplicaSource::Fno { env, entity: set }
        } else {
            ReplicaSource::Dataverse { env, set }
        }
    }

    /// The landscape behaviour of this replica.
    pub(crate) fn landscape_spec(&self) -> ReplicaSpec {
        let mut outages = self.outages.clone();
        for w in &self.paused {
            outages.push(Outage {
                start: w.start,
                duration: w.duration,
                every: w.every,
                mode: OutageMode::Stall,
            });
        }
        if self.state == MapState::Paused {
            outages.push(Outage {
                start: Dur::secs(0),
                duration: FOREVER,
                every: None,
                mode: OutageMode::Stall,
            });
        }
        ReplicaSpec {
            lag: self.lag.clone(),
            drop_probability: if self.state == MapState::Stopped {
                1.0
            } else {
                self.drop_probability
            },
            mismatch_probability: self.mismatch_probability,
            flap_probability: self.flap_probability,
            delete_drop_probability: self.delete_drop_probability,
            resurrect_probability: self.resurrect_probability,
            resurrect_after: self.resurrect_after,
            resurrect_for: self.resurrect_for,
            child_first_probability: self.child_first_probability,
            child_first_for: self.child_first_for,
            version_drop_probability: self.version_drop_probability,
            version_duplicate_probability: self.version_duplicate_probability,
            outages,
        }
    }
}

fn issue(key: impl Into<String>, reason: impl Into<String>) -> Issue {
    Issue::new(key, reason)
}

/// Columns Synapse Link adds to every exported table (fact sheet §5.5).
pub(crate) const EXPORT_COLUMNS: &[&str] = &["Id", "SinkCreatedOn", "SinkModifiedOn", "IsDelete"];

/// Azure container naming: 3-63 characters, lower-case letters, digits and single hyphens,
/// starting and ending with a letter or digit.
fn check_container(key: &str, name: &str) -> Result<(), Issue> {
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(issue(
            key,
            format!(
                "\"{name}\" is not a container name: 3-63 lower-case letters, digits and single \
                 hyphens, such as dataverse-contoso-unq1234"
            ),
        ))
    }
}

/// A target that copies a table as it is takes no `map` (`columns` says why) nor
/// `transform` (`values`).
fn as_it_is(key: &str, r: &Replica, columns: &str, values: &str) -> Result<(), Issue> {
    if r.map.is_some() {
        return Err(issue(
            format!("{key}.map"),
            format!("{columns}; remove map"),
        ));
    }
    if let Some(field) = r.transform.keys().next() {
        return Err(issue(
            format!("{key}.transform.{field}"),
            format!("{values}; remove transform"),
        ));
    }
    Ok(())
}

fn check_name(key: &str, name: &str) -> Result<(), Issue> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(issue(
            key,
            format!("\"{name}\" is not a usable name: use letters, digits, '-', '_' or '.'"),
        ));
    }
    Ok(())
}

impl Scenario {
    /// Parses and validates a scenario.
    ///
    /// # Errors
    /// [`EmulatorError::Syntax`] for bad YAML, [`EmulatorError::Invalid`] naming the key.
    pub fn from_yaml(text: &str) -> Result<Scenario, EmulatorError> {
        let tree: serde_json::Value =
            serde_saphyr::from_str(text).map_err(|e| EmulatorError::Syntax {
                message: e.render_with_options(serde_saphyr::render_options! {
                    formatter: &serde_saphyr::UserMessageFormatter,
                    snippets: serde_saphyr::SnippetMode::Off,
                }),
            })?;
        let s: Scenario = config::decode("", tree).map_err(EmulatorError::from)?;
        s.validate().map_err(EmulatorError::from)?;
        Ok(s)
    }

    /// Reads and validates a scenario file.
    ///
    /// # Errors
    /// [`EmulatorError::Read`], or as [`Scenario::from_yaml`].
    pub fn load(path: &std::path::Path) -> Result<Scenario, EmulatorError> {
        let text = std::fs::read_to_string(path).map_err(|source| EmulatorError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Scenario::from_yaml(&text)
    }

    /// The built-in demo scenario (`examples/scenarios/demo.yaml`).
    ///
    /// # Errors
    /// Only if the shipped file is broken (a test checks it is not).
    pub fn demo() -> Result<Scenario, EmulatorError> {
        Scenario::from_yaml(include_str!("../../../examples/scenarios/demo.yaml"))
    }

    fn validate(&self) -> Result<(), Issue> {
        for (i, f) in self.faults.iter().enumerate() {
            super::faults::Faults::default()
                .add(f.to_string().as_bytes())
                .map_err(|reason| issue(format!("faults[{i}]"), reason))?;
        }
        for (i, c) in self.credentials.iter().enumerate() {
            check_name(&format!("credentials[{i}].tenant"), &c.tenant)?;
            if c.client_id.is_empty() {
                return Err(issue(
                    format!("credentials[{i}].client_id"),
                    "must not be empty",
                ));
            }
            if !(1..=86_400).contains(&c.expires_in) {
                return Err(issue(
                    format!("credentials[{i}].expires_in"),
                    "seconds between 1 and 86400",
                ));
            }
            if c.client_secret.is_none() && !c.accept_assertions {
                return Err(issue(
                    format!("credentials[{i}]"),
                    "give a client_secret or set accept_assertions: true",
                ));
            }
        }
        for (env, e) in &self.dataverse {
            let key = format!("dataverse.{env}");
            check_name(&key, env)?;
            if RESERVED.contains(&env.as_str()) {
                return Err(issue(
                    key,
                    format!("\"{env}\" is a path prefix of another service; pick another name"),
                ));
            }
            if let Some(t) = e.throttle {
                if t.requests == 0 || t.per.get().is_zero() || t.retry_after.get().is_zero() {
                    return Err(issue(
                        format!("{key}.throttle"),
                        "requests, per and retry_after must be above zero",
                    ));
                }
                if t.max_retry_after < t.retry_after {
                    return Err(issue(
                        format!("{key}.throttle.max_retry_after"),
                        "must be at least retry_after",
                    ));
                }
            }
            for (set, t) in &e.tables {
                let tkey = format!("{key}.tables.{set}");
                check_name(&tkey, set)?;
                let id = t.id_column(set);
                if t.columns.contains_key(&id) {
                    return Err(issue(
                        format!("{tkey}.columns.{id}"),
                        "the id column is implicit; do not list it under columns",
                    ));
                }
                for c in t.columns.keys() {
                    if SYSTEM_COLUMNS.contains(&c.as_str()) {
                        return Err(issue(
                            format!("{tkey}.columns.{c}"),
                            "a system column every table has; do not list it",
                        ));
                    }
                }
                if let Some(seed) = &t.seed {
                    if let Some(c) = seed.values.keys().find(|c| !t.columns.contains_key(*c)) {
                        return Err(issue(
                            format!("{tkey}.seed.values.{c}"),
                            "not a column of the table; list it under columns first",
                        ));
                    }
                    super::seed::DriftPlan::new(seed, super::seed::Drift::default())
                        .map_err(|e| issue(format!("{tkey}.seed"), e))?;
                }
            }
        }
        for (name, e) in &self.fno {
            check_name(&format!("fno.{name}"), name)?;
            for (entity, d) in &e.entities {
                let key = format!("fno.{name}.entities.{entity}");
                check_name(&key, entity)?;
                check_name(&format!("{key}.key"), &d.key)?;
                if d.key == "dataAreaId" {
                    return Err(issue(
                        format!("{key}.key"),
                        "dataAreaId (the company) is part of every entity key; name the other key field",
                    ));
                }
                for (list, names) in [("mandatory", &d.mandatory), ("fields", &d.fields)] {
                    for (i, f) in names.iter().enumerate() {
                        check_name(&format!("{key}.{list}[{i}]"), f)?;
                        if f == "dataAreaId" {
                            return Err(issue(
                                format!("{key}.{list}[{i}]"),
                                "dataAreaId is the company every entity has (default_company when a \
                                 create names none); do not list it",
                            ));
                        }
                    }
                }
                if let Some(code) = &d.number_sequence {
                    check_name(&format!("{key}.number_sequence"), code)?;
                }
            }
        }
        for name in self.search.keys() {
            check_name(&format!("search.{name}"), name)?;
        }
        for (name, c) in &self.elasticsearch {
            check_name(&format!("elasticsearch.{name}"), name)?;
            if c.refresh_interval.get().is_zero() {
                return Err(issue(
                    format!("elasticsearch.{name}.refresh_interval"),
                    "must be above zero",
                ));
            }
        }
        for (name, l) in &self.lakes {
            let key = format!("lakes.{name}");
            check_name(&key, name)?;
            check_container(&format!("{key}.container"), &l.container)?;
            if l.layout != LakeLayout::Table {
                for (field, set) in [
                    ("partition", l.partition.is_some()),
                    ("update_mode", l.update_mode.is_some()),
                ] {
                    if set {
                        return Err(issue(
                            format!("{key}.{field}"),
                            "only a table-layout lake (layout: table) has partition files; \
                             remove it or set layout: table",
                        ));
                    }
                }
            }
            if let Some((other, _)) = self
                .lakes
                .iter()
                .find(|(n, o)| *n < name && o.container == l.container)
            {
                return Err(issue(
                    format!("{key}.container"),
                    format!(
                        "lake {other} already uses container \"{}\"; both would write the same folder",
                        l.container
                    ),
                ));
            }
        }
        for (name, r) in &self.replicas {
            self.validate_replica(name, r)?;
            if let Some(drift) = r.drift {
                let (env, set) = r.source_parts();
                let seed = self
                    .dataverse
                    .get(env)
                    .and_then(|e| e.tables.get(set))
                    .and_then(|t| t.seed.as_ref())
                    .ok_or_else(|| {
                        issue(
                            format!("replicas.{name}.drift"),
                            format!("drift applies to seeded rows, and {} has no seed", r.source),
                        )
                    })?;
                super::seed::DriftPlan::new(seed, drift)
                    .map_err(|e| issue(format!("replicas.{name}.drift"), e))?;
            }
        }
        self.validate_lake_replicas()?;
        self.validate_search_indexes()?;
        self.validate_indexers()?;
        self.validate_links()
    }

    /// The indexer of search replica `name`: its name (`indexer.name`, else `<index>-indexer`,
    /// or `<replica>-indexer` when other replicas fill the index too) and how often it runs.
    pub fn indexer_of(&self, name: &str) -> Option<(String, Dur)> {
        let r = self.replicas.get(name)?;
        let Target::Search { service, index } = &r.target else {
            return None;
        };
        let every = r
            .indexer
            .as_ref()
            .map_or(DEFAULT_INDEXER_EVERY, |i| i.every);
        if let Some(n) = r.indexer.as_ref().and_then(|i| i.name.clone()) {
            return Some((n, every));
        }
        let shared = self.replicas.iter().any(|(other, o)| {
            other != name
                && matches!(&o.target, Target::Search { service: s, index: i } if s == service && i == index)
        });
        Some((
            if shared {
                format!("{name}-indexer")
            } else {
                format!("{index}-indexer")
            },
            every,
        ))
    }

    /// One Dataverse search replica per table: a table has one index.
    fn validate_search_indexes(&self) -> Result<(), Issue> {
        let mut seen: BTreeMap<(&str, &str), &str> = BTreeMap::new();
        for (name, r) in &self.replicas {
            let Target::DataverseSearch { env, table } = &r.target else {
                continue;
            };
            if let Some(other) = seen.insert((env, table), name) {
                return Err(issue(
                    format!("replicas.{name}.target"),
                    format!(
                        "replica {other} already is the Dataverse search index of {env}/{table}; \
                         a table has one index"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// One indexer name per search service.
    fn validate_indexers(&self) -> Result<(), Issue> {
        let mut seen: BTreeMap<(String, String), &str> = BTreeMap::new();
        for (name, r) in &self.replicas {
            let Target::Search { service, .. } = &r.target else {
                continue;
            };
            let Some((indexer, _)) = self.indexer_of(name) else {
                continue;
            };
            if let Some(other) = seen.insert((service.clone(), indexer.clone()), name) {
                return Err(issue(
                    format!("replicas.{name}.indexer.name"),
                    format!(
                        "replica {other} already has indexer {indexer} on service {service}; \
                         name this one apart"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A link joins two replicas that are exact opposites (a Dataverse table into an F&O
    /// entity, and that entity back into that table), whose keys map onto each other, so a
    /// row is the same row on both sides; each replica belongs to one link at most.
    fn validate_links(&self) -> Result<(), Issue> {
        let mut used: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, l) in &self.links {
            let key = format!("links.{name}");
            check_name(&key, name)?;
            let [first, second] = l.replicas.as_slice() else {
                return Err(issue(
                    format!("{key}.replicas"),
                    "name the map's two directions, such as [fno, fno_back]",
                ));
            };
            for (i, r) in [first, second].into_iter().enumerate() {
                if !self.replicas.contains_key(r) {
                    return Err(issue(
                        format!("{key}.replicas[{i}]"),
                        format!("unknown replica \"{r}\"; define it under replicas"),
                    ));
                }
                if let Some(other) = used.insert(r, name) {
                    return Err(issue(
                        format!("{key}.replicas[{i}]"),
                        format!(
                            "replica {r} is already in link {other}; a replica is in one link at most"
                        ),
                    ));
                }
            }
            let (out, back) = match (
                self.replicas[first].source_ref(),
                self.replicas[second].source_ref(),
            ) {
                (ReplicaSource::Dataverse { .. }, ReplicaSource::Fno { .. }) => (first, second),
                (ReplicaSource::Fno { .. }, ReplicaSource::Dataverse { .. }) => (second, first),
                _ => {
                    return Err(issue(
                        format!("{key}.replicas"),
                        "a link joins a Dataverse table and an F&O entity: one replica from the \
                         table into the entity, the other from the entity (fno:<env>/<entity>) \
                         back into the table",
                    ));
                }
            };
            let (ro, rb) = (&self.replicas[out], &self.replicas[back]);
            let (denv, dset) = ro.source_parts();
            let (fenv, fentity) = rb.source_parts();
            let opposite = matches!(&ro.target, Target::Fno { env, entity, .. } if env == fenv && entity == fentity)
                && matches!(&rb.target, Target::Dataverse { env, table } if env == denv && table == dset);
            if !opposite {
                return Err(issue(
                    format!("{key}.replicas"),
                    format!(
                        "{out} and {back} are not opposite directions: {out} must copy {denv}/{dset} \
                         into fno:{fenv}/{fentity}, and {back} copy fno:{fenv}/{fentity} into {denv}/{dset}"
                    ),
                ));
            }
            if denv == fenv {
                return Err(issue(
                    format!("{key}.replicas"),
                    format!(
                        "the link's sides are named by environment, and both are \"{denv}\"; \
                         rename one environment"
                    ),
                ));
            }
            // Both were validated as replicas already: the table, entity and maps exist.
            let table = self.dataverse.get(denv).and_then(|e| e.tables.get(dset));
            let decl = self.fno.get(fenv).and_then(|e| e.entities.get(fentity));
            let (Some(table), Some(decl)) = (table, decl) else {
                return Err(issue(format!("{key}.replicas"), "unknown table or entity"));
            };
            let key_out = ro.key.clone().unwrap_or_else(|| table.id_column(dset));
            let key_back = rb.key.clone().unwrap_or_else(|| decl.key.clone());
            let maps_out = ro.map.as_ref().and_then(|m| m.get(&key_out));
            let maps_back = rb.map.as_ref().and_then(|m| m.get(&key_back));
            if maps_out != Some(&key_back) || maps_back != Some(&key_out) {
                return Err(issue(
                    format!("{key}.replicas"),
                    format!(
                        "the keys do not map onto each other: {out} (key {key_out}) must map \
                         {key_out} to {key_back}, and {back} (key {key_back}) map {key_back} to \
                         {key_out}, so a row is found by one value on both sides"
                    ),
                ));
            }
            if let ConflictPolicy::SourceWins(env) = &l.policy
                && env != denv
                && env != fenv
            {
                return Err(issue(
                    format!("{key}.policy.source_wins"),
                    format!("\"{env}\" is not one of the link's sides: {denv} or {fenv}"),
                ));
            }
        }
        Ok(())
    }

    /// What replicas into one lake must agree on: one export of one environment, one folder
    /// cadence, one replica per table.
    fn validate_lake_replicas(&self) -> Result<(), Issue> {
        let mut lakes: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
        let mut intervals: BTreeMap<&str, (&str, Dur)> = BTreeMap::new();
        let mut tables: BTreeMap<(&str, &str), &str> = BTreeMap::new();
        for (name, r) in &self.replicas {
            let Target::Lake { lake, table } = &r.target else {
                continue;
            };
            let key = format!("replicas.{name}");
            if r.folder_interval.is_some()
                && self
                    .lakes
                    .get(lake.as_str())
                    .is_some_and(|l| l.layout == LakeLayout::Table)
            {
                return Err(issue(
                    format!("{key}.folder_interval"),
                    format!(
                        "lake {lake} has the table layout: rows go into its partition files as \
                         they reach the export, there are no folders; remove folder_interval"
                    ),
                ));
            }
            if let Some(interval) = r.folder_interval {
                match intervals.get(lake.as_str()) {
                    Some(&(first, every)) if every != interval => {
                        return Err(issue(
                            format!("{key}.folder_interval"),
                            format!(
                                "replica {first} starts a folder of lake {lake} every {every}; \
                                 the replicas of one lake share its folders, so give them one \
                                 interval (or set it on one replica only)"
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        intervals.insert(lake, (name, interval));
                    }
                }
            }
            let env = r.source_parts().0;
            match lakes.get(lake.as_str()) {
                Some(&(first, first_env)) => {
                    if first_env != env {
                        return Err(issue(
                            format!("{key}.source"),
                            format!(
                                "lake {lake} is the export of Dataverse environment {first_env} \
                                 (replica {first}); one export covers one environment"
                            ),
                        ));
                    }
                }
                None => {
                    lakes.insert(lake, (name, env));
                }
            }
            if let Some(other) = tables.insert((lake, table), name) {
                return Err(issue(
                    format!("{key}.target.table"),
                    format!("table {table} of lake {lake} is already filled by replica {other}"),
                ));
            }
        }
        Ok(())
    }

    fn validate_replica(&self, name: &str, r: &Replica) -> Result<(), Issue> {
        let key = format!("replicas.{name}");
        check_name(&key, name)?;
        if name == "status" {
            return Err(issue(
                key,
                "\"status\" names the status truth endpoint (/_truth/status/{replica}); pick another name",
            ));
        }
        if name == "_drift" {
            return Err(issue(
                key,
                "\"_drift\" names the drift truth endpoint (/_truth/_drift/{replica}); pick another name",
            ));
        }
        let (env, set) = match r.source_ref() {
            ReplicaSource::Dataverse { env, set } => (env, set),
            ReplicaSource::Fno { env, entity } => {
                return self.validate_fno_source(&key, r, env, entity);
            }
        };
        let Some(table) = self.dataverse.get(env).and_then(|e| e.tables.get(set)) else {
            return Err(issue(
                format!("{key}.source"),
                format!(
                    "\"{}\" is not <dataverse env>/<entity set> of a table defined under dataverse",
                    r.source
                ),
            ));
        };
        let has = |c: &str| table.has_column(set, c);
        if let Some(k) = &r.key
            && !has(k)
        {
            return Err(issue(
                format!("{key}.key"),
                format!("\"{k}\" is not a column of {}", r.source),
            ));
        }
        if let Some(map) = &r.map {
            for (from, to) in map {
                if !has(from) {
                    return Err(issue(
                        format!("{key}.map.{from}"),
                        format!("\"{from}\" is not a column of {}", r.source),
                    ));
                }
                if to.is_empty() || to.starts_with('@') || to == "dataAreaId" {
                    return Err(issue(
                        format!("{key}.map.{from}"),
                        format!("\"{to}\" cannot be a target field"),
                    ));
                }
            }
        }
        if let Some(f) = &r.filter {
            let parsed: Filter = odata::parse_filter(f)
                .map_err(|e| issue(format!("{key}.filter"), format!("invalid filter: {e}")))?;
            if let Some(c) = parsed.fields().into_iter().find(|c| !has(c)) {
                return Err(issue(
                    format!("{key}.filter"),
                    format!("\"{c}\" is not a column of {}", r.source),
                ));
            }
        }
        self.validate_knobs(&key, r)?;
        let targets: Vec<String> = self.target_fields(r, table, set);
        for field in r.transform.keys() {
            if !targets.contains(field) {
                return Err(issue(
                    format!("{key}.transform.{field}"),
                    format!("\"{field}\" is not a target field of the map"),
                ));
            }
        }
        match &r.target {
            Target::Fno { env, entity, .. } => {
                if !self.fno.contains_key(env) {
                    return Err(issue(
                        format!("{key}.target.env"),
                        format!("unknown F&O environment \"{env}\"; define it under fno"),
                    ));
                }
                check_name(&format!("{key}.target.entity"), entity)?;
                if r.map.as_ref().is_none_or(BTreeMap::is_empty) {
                    return Err(issue(
                        format!("{key}.map"),
                        "an F&O target needs a field map (source column: F&O field)",
                    ));
                }
            }
            Target::Search { service, index } => {
                if !self.search.contains_key(service) {
                    return Err(issue(
                        format!("{key}.target.service"),
                        format!("unknown search service \"{service}\"; define it under search"),
                    ));
                }
                check_name(&format!("{key}.target.index"), index)?;
            }
            Target::Elasticsearch { cluster, index } => {
                if !self.elasticsearch.contains_key(cluster) {
                    return Err(issue(
                        format!("{key}.target.cluster"),
                        format!("unknown cluster \"{cluster}\"; define it under elasticsearch"),
                    ));
                }
                check_name(&format!("{key}.target.index"), index)?;
            }
            Target::Dataverse {
                env: tenv,
                table: tset,
            } => {
                let Some(tt) = self.dataverse.get(tenv).and_then(|e| e.tables.get(tset)) else {
                    return Err(issue(
                        format!("{key}.target"),
                        format!("\"{tenv}/{tset}\" is not a table defined under dataverse"),
                    ));
                };
                if tenv == env && tset == set {
                    return Err(issue(
                        format!("{key}.target"),
                        "a table cannot replicate into itself",
                    ));
                }
                for f in &targets {
                    if !tt.columns.contains_key(f) {
                        return Err(issue(
                            format!("{key}.map"),
                            format!("\"{f}\" is not a writable column of {tenv}/{tset}"),
                        ));
                    }
                }
            }
            Target::Lake {
                lake,
                table: ltable,
            } => {
                self.validate_lake_target(&key, r, table, set, lake, ltable)?;
            }
            Target::DataverseSearch {
                env: senv,
                table: sset,
            } => {
                if senv != env || sset != set {
                    return Err(issue(
                        format!("{key}.target"),
                        format!(
                            "Dataverse search indexes a table of its own environment: the target \
                             of source {} is {{ kind: dataverse_search, env: {env}, table: {set} }}",
                            r.source
                        ),
                    ));
                }
                as_it_is(
                    &key,
                    r,
                    "Dataverse search indexes the table's own columns",
                    "Dataverse search indexes the table's own values",
                )?;
                if r.drift.is_some() {
                    return Err(issue(
                        format!("{key}.drift"),
                        "the emulated Dataverse search index holds the rows written while it \
                         runs, not seeded ones; remove drift",
                    ));
                }
            }
        }
        self.validate_version_knobs(&key, r)
    }

    /// The knobs every replica has, whatever its source: lag, probabilities, windows.
    fn validate_knobs(&self, key: &str, r: &Replica) -> Result<(), Issue> {
        simulated::validate_lag(&format!("{key}.lag"), &r.lag)?;
        for (field, p) in [
            ("drop_probability", r.drop_probability),
            ("mismatch_probability", r.mismatch_probability),
            ("flap_probability", r.flap_probability),
            ("delete_drop_probability", r.delete_drop_probability),
            ("resurrect_probability", r.resurrect_probability),
            ("child_first_probability", r.child_first_probability),
            ("version_drop_probability", r.version_drop_probability),
            (
                "version_duplicate_probability",
                r.version_duplicate_probability,
            ),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(issue(
                    format!("{key}.{field}"),
                    format!("a probability is between 0 and 1, not {p}"),
                ));
            }
        }
        simulated::validate_resurrection(key, r.resurrect_for)?;
        let windows = r
            .outages
            .iter()
            .map(|o| (o.duration, o.every, "outages"))
            .chain(r.paused.iter().map(|w| (w.duration, w.every, "paused")));
        for (i, (duration, every, what)) in windows.enumerate() {
            if let Some(every) = every
                && every <= duration
            {
                return Err(issue(
                    format!("{key}.{what}"),
                    format!("window {i} must repeat less often than it lasts"),
                ));
            }
        }
        self.validate_status_knobs(key, r)?;
        if r.folder_interval.is_some() && !matches!(r.target, Target::Lake { .. }) {
            return Err(issue(
                format!("{key}.folder_interval"),
                "only lake targets write incremental update folders",
            ));
        }
        Ok(())
    }

    /// `status_lie`, `indexer` and `internal_entity_name`: only where the target has the
    /// surface they change, and each lie only where the surface can tell it.
    fn validate_status_knobs(&self, key: &str, r: &Replica) -> Result<(), Issue> {
        let dual_write = matches!(r.target, Target::Fno { .. })
            || matches!(r.source_ref(), ReplicaSource::Fno { .. });
        if let Some(lie) = &r.status_lie {
            let lkey = format!("{key}.status_lie");
            let watermark = matches!(
                r.target,
                Target::Lake { .. } | Target::DataverseSearch { .. }
            );
            let refused = match (&r.target, lie.lie) {
                _ if dual_write => matches!(
                    lie.lie,
                    LieKind::StaleWhileFlowing | LieKind::WatermarkWithoutRecord
                )
                .then_some(
                    "a dual-write map's Status has no sync time nor watermark; it can lie \
                     healthy_while_stuck or error_while_flowing",
                ),
                (Target::Dataverse { .. }, _) => {
                    Some("a Dataverse-to-Dataverse replica has no status surface in the emulator")
                }
                (Target::DataverseSearch { .. }, LieKind::ErrorWhileFlowing) => Some(
                    "Dataverse search documents no failed state of a table (its entitystatus \
                     is documented as EntitySyncComplete only); it can lie healthy_while_stuck, \
                     stale_while_flowing or watermark_without_record",
                ),
                (_, LieKind::WatermarkWithoutRecord) if !watermark => Some(
                    "only a lake's status (lastsynceddataversion, maxrecordversion) and Dataverse \
                     search's lastdatasynctimestamp have a version watermark",
                ),
                _ => None,
            };
            if let Some(why) = refused {
                return Err(issue(lkey, why));
            }
            if lie.duration.is_some_and(|d| d.get().is_zero()) {
                return Err(issue(format!("{lkey}.duration"), "must be above zero"));
            }
            if let Some(every) = lie.every
                && lie.duration.is_none_or(|d| every <= d)
            {
                return Err(issue(
                    format!("{lkey}.every"),
                    "a repeated lie needs a duration shorter than every",
                ));
            }
        }
        if let Some(ix) = &r.indexer {
            if !matches!(r.target, Target::Search { .. }) {
                return Err(issue(
                    format!("{key}.indexer"),
                    "only a search target is filled by an indexer",
                ));
            }
            if let Some(name) = &ix.name {
                check_name(&format!("{key}.indexer.name"), name)?;
            }
            if ix.every.get().is_zero() {
                return Err(issue(format!("{key}.indexer.every"), "must be above zero"));
            }
        }
        if let Some(n) = &r.internal_entity_name
            && (!dual_write || n.trim().is_empty())
        {
            return Err(issue(
                format!("{key}.internal_entity_name"),
                "names the F&O entity of a dual-write replica (an F&O target or source), \
                 such as Customers V3",
            ));
        }
        Ok(())
    }

    /// A dual-write replica from a writable F&O entity into a Dataverse table.
    fn validate_fno_source(
        &self,
        key: &str,
        r: &Replica,
        env: &str,
        entity: &str,
    ) -> Result<(), Issue> {
        let Some(decl) = self.fno.get(env).and_then(|e| e.entities.get(entity)) else {
            let why = if self.fno.contains_key(env) {
                format!("entity {entity} is not declared writable; add it under fno.{env}.entities")
            } else {
                format!("unknown F&O environment \"{env}\"; define it under fno")
            };
            return Err(issue(
                format!("{key}.source"),
                format!(
                    "\"{}\" is not fno:<env>/<entity> of a writable entity: {why}",
                    r.source
                ),
            ));
        };
        let Target::Dataverse {
            env: tenv,
            table: tset,
        } = &r.target
        else {
            return Err(issue(
                format!("{key}.target"),
                "dual-write copies an F&O entity into a Dataverse table only: use kind: dataverse",
            ));
        };
        let Some(table) = self.dataverse.get(tenv).and_then(|e| e.tables.get(tset)) else {
            return Err(issue(
                format!("{key}.target"),
                format!("\"{tenv}/{tset}\" is not a table defined under dataverse"),
            ));
        };
        let Some(map) = r.map.as_ref().filter(|m| !m.is_empty()) else {
            return Err(issue(
                format!("{key}.map"),
                "an F&O source needs a field map (F&O field: Dataverse column)",
            ));
        };
        for (from, to) in map {
            check_name(&format!("{key}.map"), from)?;
            if !table.columns.contains_key(to) {
                return Err(issue(
                    format!("{key}.map.{from}"),
                    format!("\"{to}\" is not a writable column of {tenv}/{tset}"),
                ));
            }
        }
        let field = r.key.as_deref().unwrap_or(&decl.key);
        if !map.contains_key(field) {
            let which = if r.key.is_some() {
                format!("\"{field}\"")
            } else {
                format!("the entity's key \"{field}\" (the default key)")
            };
            return Err(issue(
                format!("{key}.key"),
                format!(
                    "{which} is not mapped: map it to a column of {tenv}/{tset}, where the \
                     record is found by it"
                ),
            ));
        }
        if let Some(f) = &r.filter {
            let parsed: Filter = odata::parse_filter(f)
                .map_err(|e| issue(format!("{key}.filter"), format!("invalid filter: {e}")))?;
            let fields = self.fno_entity_fields(env, entity);
            if let Some(c) = parsed
                .fields()
                .into_iter()
                .find(|c| !fields.iter().any(|f| f == c))
            {
                return Err(issue(
                    format!("{key}.filter"),
                    format!("\"{c}\" is not a field of {}", r.source),
                ));
            }
        }
        self.validate_knobs(key, r)?;
        for field in r.transform.keys() {
            if !map.values().any(|to| to == field) {
                return Err(issue(
                    format!("{key}.transform.{field}"),
                    format!("\"{field}\" is not a target field of the map"),
                ));
            }
        }
        if r.drift.is_some() {
            return Err(issue(
                format!("{key}.drift"),
                "drift applies to seeded rows, and an F&O entity has none",
            ));
        }
        self.validate_version_knobs(key, r)
    }

    /// The fields of F&O entity `env/entity`: `dataAreaId`, a writable entity's declared
    /// ones, and every field a replica maps into it or out of it.
    pub(crate) fn fno_entity_fields(&self, env: &str, entity: &str) -> Vec<String> {
        let mut out = vec!["dataAreaId".to_string()];
        let mut add = |f: &str| {
            if !out.iter().any(|o| o == f) {
                out.push(f.to_string());
            }
        };
        if let Some(d) = self.fno.get(env).and_then(|e| e.entities.get(entity)) {
            add(&d.key);
            d.mandatory.iter().chain(&d.fields).for_each(|f| add(f));
        }
        for r in self.replicas.values() {
            let map = r.map.iter().flatten();
            match (&r.target, r.source_ref()) {
                (
                    Target::Fno {
                        env: e, entity: n, ..
                    },
                    _,
                ) if e == env && n == entity => {
                    map.for_each(|(_, to)| add(to));
                }
                (_, ReplicaSource::Fno { env: e, entity: n }) if e == env && n == entity => {
                    map.for_each(|(from, _)| add(from));
                }
                _ => {}
            }
        }
        out
    }

    /// The version knobs lose or repeat rows of a change log; anywhere else a skipped
    /// version is legal (a snapshot shows the latest) and a repeated one means nothing, so a
    /// knob set there would inject nothing a check could count.
    fn validate_version_knobs(&self, key: &str, r: &Replica) -> Result<(), Issue> {
        let Some((field, _)) = [
            ("version_drop_probability", r.version_drop_probability),
            (
                "version_duplicate_probability",
                r.version_duplicate_probability,
            ),
        ]
        .into_iter()
        .find(|(_, p)| *p > 0.0) else {
            return Ok(());
        };
        let why = match &r.target {
            Target::Lake { lake, .. } => {
                // An unknown lake was refused with the target already.
                let Some(l) = self.lakes.get(lake) else {
                    return Ok(());
                };
                match (l.layout, l.table_layout()) {
                    (LakeLayout::Incremental, _) | (_, Some((_, UpdateMode::AppendOnly))) => {
                        return Ok(());
                    }
                    (LakeLayout::Delta, _) => format!(
                        "lake {lake} is a Delta lake, a snapshot merged per refresh: it may \
                         skip versions legally"
                    ),
                    _ => format!(
                        "lake {lake} has the table layout with in-place updates, a snapshot: \
                         it may skip versions legally"
                    ),
                }
            }
            _ => "a snapshot target may skip versions legally".to_string(),
        };
        Err(issue(
            format!("{key}.{field}"),
            format!(
                "{why}; {field} needs a change-log lake: incremental folders or layout table \
                 with append-only updates"
            ),
        ))
    }

    fn validate_lake_target(
        &self,
        key: &str,
        r: &Replica,
        table: &Table,
        set: &str,
        lake: &str,
        ltable: &str,
    ) -> Result<(), Issue> {
        if !self.lakes.contains_key(lake) {
            return Err(issue(
                format!("{key}.target.lake"),
                format!("unknown lake \"{lake}\"; define it under lakes"),
            ));
        }
        check_name(&format!("{key}.target.table"), ltable)?;
        as_it_is(
            key,
            r,
            "a lake export copies the table's columns as they are",
            "a lake export copies values as they are",
        )?;
        if r.flap_probability != 0.0 {
            return Err(issue(
                format!("{key}.flap_probability"),
                "a lake export only appends rows; it cannot show a row and lose it again (use 0)",
            ));
        }
        if let Some(i) = r
            .outages
            .iter()
            .position(|o| o.mode == OutageMode::Unavailable)
        {
            return Err(issue(
                format!("{key}.outages[{i}].mode"),
                "a lake's files are read from storage, not served: only stall outages apply",
            ));
        }
        if let Some(every) = r.folder_interval
            && every < Dur::secs(1)
        {
            return Err(issue(
                format!("{key}.folder_interval"),
                "at least 1s (real exports: 5m to 24h)",
            ));
        }
        let id = table.id_column(set);
        if let Some(c) = table
            .columns
            .keys()
            .chain(std::iter::once(&id))
            .find(|c| EXPORT_COLUMNS.iter().any(|e| e.eq_ignore_ascii_case(c)))
        {
            return Err(issue(
                format!("{key}.source"),
                format!(
                    "column \"{c}\" of {} has the name of a column the export adds ({})",
                    r.source,
                    EXPORT_COLUMNS.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// The target fields a replica fills, in map order.
    fn target_fields(&self, r: &Replica, table: &Table, set: &str) -> Vec<String> {
        resolved_map(r, table, set)
            .into_iter()
            .map(|(_, to)| to)
            .collect()
    }
}

/// The field map of a replica: explicit, or every column (plus the id for search targets, and
/// the lookups and system columns for a Dataverse search index) under its own name.
pub(crate) fn resolved_map(r: &Replica, table: &Table, set: &str) -> Vec<(String, String)> {
    if let Some(map) = &r.map {
        return map.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
    }
    let mut out = Vec::new();
    if matches!(
        r.target,
        Target::Search { .. } | Target::Elasticsearch { .. } | Target::DataverseSearch { .. }
    ) {
        let id = table.id_column(set);
        out.push((id.clone(), id));
    }
    out.extend(table.columns.keys().map(|c| (c.clone(), c.clone())));
    if matches!(r.target, Target::DataverseSearch { .. }) {
        // The index holds the row as the table does: its lookups and system columns too.
        out.extend(table.lookups.keys().map(|nav| {
            let c = format!("_{nav}_value");
            (c.clone(), c)
        }));
        out.extend(
            SYSTEM_COLUMNS
                .iter()
                .map(|c| (c.to_string(), c.to_string())),
        );
    }
    out
}

impl From<Issue> for EmulatorError {
    fn from(i: Issue) -> Self {
        EmulatorError::Invalid {
            key: i.key,
            reason: i.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scenario with one replica of `crm/accounts` into `target`, with `knobs` on it.
    fn with(lakes: &str, target: &str, knobs: &str) -> Result<Scenario, EmulatorError> {
        Scenario::from_yaml(&format!(
            r#"
dataverse:
  crm:
    tables:
      accounts: {{ columns: {{ name: string }} }}
search:
  find: {{ api_keys: [k] }}
lakes: {{ {lakes} }}
replicas:
  r:
    source: crm/accounts
    target: {target}
    lag: {{ distribution: fixed, value: 1s }}
    {knobs}
"#
        ))
    }

    fn refused(s: Result<Scenario, EmulatorError>) -> (String, String) {
        match s {
            Err(EmulatorError::Invalid { key, reason }) => (key, reason),
            other => panic!("not refused for a key: {other:?}"),
        }
    }

    const LAKE: &str = "{ kind: lake, lake: l, table: account }";

    const DV_SEARCH: &str = "{ kind: dataverse_search, env: crm, table: accounts }";

    #[test]
    fn a_dataverse_search_index_is_its_own_table_with_its_columns_as_they_are() {
        let ok = with(
            "",
            DV_SEARCH,
            "status_lie: watermark_without_record\n    key: name",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let r = &ok.replicas["r"];
        let table = &ok.dataverse["crm"].tables["accounts"];
        let fields: Vec<String> = resolved_map(r, table, "accounts")
            .into_iter()
            .map(|(_, to)| to)
            .collect();
        assert_eq!(
            fields,
            [
                "accountid",
                "name",
                "createdon",
                "modifiedon",
                "versionnumber"
            ]
        );
        for lie in ["healthy_while_stuck", "stale_while_flowing"] {
            with("", DV_SEARCH, &format!("status_lie: {lie}")).unwrap_or_else(|e| panic!("{e}"));
        }
        for (target, knobs, key, says) in [
            (
                "{ kind: dataverse_search, env: crm, table: contacts }",
                "",
                "replicas.r.target",
                "its own environment",
            ),
            (
                DV_SEARCH,
                "map: { name: title }",
                "replicas.r.map",
                "own columns",
            ),
            (
                DV_SEARCH,
                "transform: { name: uppercase }",
                "replicas.r.transform.name",
                "own values",
            ),
            (
                DV_SEARCH,
                "status_lie: error_while_flowing",
                "replicas.r.status_lie",
                "EntitySyncComplete",
            ),
            (
                DV_SEARCH,
                "version_drop_probability: 0.1",
                "replicas.r.version_drop_probability",
                "snapshot",
            ),
        ] {
            let (k, why) = refused(with("", target, knobs));
            assert_eq!(k, key, "{knobs}: {why}");
            assert!(why.contains(says), "{knobs}: {why}");
        }
        // One index per table.
        let twice = Scenario::from_yaml(
            r#"
dataverse:
  crm:
    tables:
      accounts: { columns: { name: string } }
replicas:
  a: { source: crm/accounts, target: { kind: dataverse_search, env: crm, table: accounts }, lag: { distribution: fixed, value: 1s } }
  b: { source: crm/accounts, target: { kind: dataverse_search, env: crm, table: accounts }, lag: { distribution: fixed, value: 1s } }
"#,
        );
        let (k, why) = refused(twice);
        assert_eq!(k, "replicas.b.target", "{why}");
    }

    #[test]
    fn status_knobs_are_refused_where_the_surface_cannot_show_them() {
        let search = "{ kind: search, service: find, index: accounts }";
        let lake = "l: { container: dataverse-contoso-l }";
        let ok = with(
            lake,
            LAKE,
            "status_lie: { lie: stale_while_flowing, start: 1m, duration: 30s, every: 5m }",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let lie = ok.replicas["r"].status_lie.clone().expect("a lie");
        assert_eq!(
            (lie.lie, lie.start),
            (LieKind::StaleWhileFlowing, Dur::secs(60))
        );
        let s = with("", search, "indexer: { every: 10s }").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.indexer_of("r"),
            Some(("accounts-indexer".to_string(), Dur::secs(10)))
        );
        for (lakes, target, knobs, key) in [
            (
                "",
                search,
                "status_lie: watermark_without_record",
                "replicas.r.status_lie",
            ),
            ("", search, "status_lie: lying", "replicas.r.status_lie"),
            (
                lake,
                LAKE,
                "status_lie: { lie: error_while_flowing, every: 1m }",
                "replicas.r.status_lie.every",
            ),
            (lake, LAKE, "indexer: { every: 1s }", "replicas.r.indexer"),
            (
                "",
                search,
                "indexer: { every: 0s }",
                "replicas.r.indexer.every",
            ),
            (
                "",
                search,
                "internal_entity_name: Accounts",
                "replicas.r.internal_entity_name",
            ),
        ] {
            let (k, why) = refused(with(lakes, target, knobs));
            assert!(k.starts_with(key), "{knobs}: {k}: {why}");
        }
    }

    #[test]
    fn version_knobs_need_a_change_log_lake() {
        for (lakes, knob) in [
            (
                "l: { container: dataverse-contoso-l }",
                "version_drop_probability",
            ),
            (
                "l: { container: dataverse-contoso-l, layout: table, update_mode: append_only }",
                "version_duplicate_probability",
            ),
        ] {
            let s = with(lakes, LAKE, &format!("{knob}: 0.5")).unwrap_or_else(|e| panic!("{e}"));
            let spec = s.replicas["r"].landscape_spec();
            assert_eq!(
                (spec.version_drop_probability + spec.version_duplicate_probability),
                0.5
            );
        }
        let search = "{ kind: search, service: find, index: accounts }";
        for (lakes, target, knob, why) in [
            ("", search, "version_drop_probability", "a snapshot target"),
            (
                "",
                search,
                "version_duplicate_probability",
                "a snapshot target",
            ),
            (
                "l: { container: dataverse-contoso-l, layout: table }",
                LAKE,
                "version_drop_probability",
                "in-place updates",
            ),
            (
                "l: { container: dataverse-contoso-l, layout: table, update_mode: in_place }",
                LAKE,
                "version_duplicate_probability",
                "in-place updates",
            ),
            (
                "l: { container: dataverse-contoso-l, layout: delta }",
                LAKE,
                "version_drop_probability",
                "a Delta lake",
            ),
        ] {
            let (key, reason) = refused(with(lakes, target, &format!("{knob}: 0.1")));
            assert_eq!(key, format!("replicas.r.{knob}"));
            assert!(reason.contains(why), "{reason}");
            assert!(reason.contains("needs a change-log lake"), "{reason}");
            assert!(reason.contains(knob), "{reason}");
            // At 0 the knob is off, and fine anywhere.
            with(lakes, target, &format!("{knob}: 0")).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn clock_skews_are_signed_strict_durations() {
        let ok = |t: &str| Skew::parse(t).unwrap_or_else(|e| panic!("{e}")).0;
        assert_eq!(ok("4s"), chrono::Duration::seconds(4));
        assert_eq!(ok("-2500ms"), chrono::Duration::milliseconds(-2500));
        assert_eq!(ok("+1m"), chrono::Duration::seconds(60));
        assert_eq!(ok("0s"), chrono::Duration::zero());
        for bad in ["", "-", "4", "--4s", "-+4s", "4 s", "four seconds", "1y"] {
            let e = Skew::parse(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(e.contains("such as 4s or -2500ms"), "{e}");
        }
        let yaml = |skew: &str| {
            Scenario::from_yaml(&format!(
                "dataverse: {{ crm: {{ clock_skew: {skew}, tables: {{ a: {{ columns: {{ n: string }} }} }} }} }}\n\
                 fno: {{ fin: {{ clock_skew: 3s }} }}"
            ))
        };
        let s = yaml("-2500ms").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.dataverse["crm"].clock_skew.0,
            chrono::Duration::milliseconds(-2500)
        );
        assert_eq!(s.fno["fin"].clock_skew.0, chrono::Duration::seconds(3));
        let (key, reason) = refused(yaml("soon"));
        assert_eq!(key, "dataverse.crm.clock_skew");
        assert!(reason.contains("invalid clock skew"), "{reason}");
        let (key, reason) = refused(yaml("4"));
        assert_eq!(key, "dataverse.crm.clock_skew");
        assert!(reason.contains("has no unit"), "{reason}");
    }

    /// The demo's dual-write pair with `links` (a YAML map body) and `more` replicas.
    fn linked(links: &str, more: &str) -> Result<Scenario, EmulatorError> {
        Scenario::from_yaml(&format!(
            r#"
dataverse:
  crm:
    tables:
      accounts: {{ columns: {{ name: string, accountnumber: string, description: string }} }}
fno:
  fin:
    entities:
      CustomersV3: {{ key: CustomerAccount, mandatory: [OrganizationName], number_sequence: DW }}
replicas:
  fno:
    source: crm/accounts
    target: {{ kind: fno, env: fin, entity: CustomersV3 }}
    key: name
    map: {{ accountnumber: CustomerAccount, name: OrganizationName, description: AddressDescription }}
    lag: {{ distribution: fixed, value: 1s }}
  fno_back:
    source: fno:fin/CustomersV3
    target: {{ kind: dataverse, env: crm, table: accounts }}
    key: OrganizationName
    map: {{ OrganizationName: name, CustomerAccount: accountnumber, AddressDescription: description }}
    lag: {{ distribution: fixed, value: 1s }}
{more}
links: {{ {links} }}
"#
        ))
    }

    #[test]
    fn links_join_opposite_replicas_with_one_key() {
        for (links, policy) in [
            (
                "c: { replicas: [fno, fno_back], policy: last_writer_wins }",
                ConflictPolicy::LastWriterWins,
            ),
            (
                "c: { replicas: [fno_back, fno], policy: { source_wins: crm } }",
                ConflictPolicy::SourceWins("crm".into()),
            ),
            (
                "c: { replicas: [fno, fno_back], policy: diverge }",
                ConflictPolicy::Diverge,
            ),
            (
                "c: { replicas: [fno, fno_back], policy: reject }",
                ConflictPolicy::Reject,
            ),
        ] {
            let s = linked(links, "").unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.links["c"].policy, policy);
        }
        let other = "  other:\n    source: crm/accounts\n    target: { kind: fno, env: fin, entity: CustomersV3 }\n    key: accountnumber\n    map: { accountnumber: OrganizationName }\n    lag: { distribution: fixed, value: 1s }";
        for (links, more, key, why) in [
            (
                "c: { replicas: [fno], policy: diverge }",
                "",
                "links.c.replicas",
                "two directions",
            ),
            (
                "c: { replicas: [fno, nope], policy: diverge }",
                "",
                "links.c.replicas[1]",
                "unknown replica",
            ),
            (
                "c: { replicas: [fno, fno], policy: diverge }",
                "",
                "links.c.replicas[1]",
                "already in link c",
            ),
            (
                "c: { replicas: [fno, fno_back], policy: diverge }, d: { replicas: [fno_back, other], policy: reject }",
                other,
                "links.d.replicas[0]",
                "one link at most",
            ),
            (
                "c: { replicas: [other, fno_back], policy: diverge }",
                other,
                "links.c.replicas",
                "do not map onto each other",
            ),
            (
                "c: { replicas: [fno, fno_back], policy: { source_wins: crm2 } }",
                "",
                "links.c.policy.source_wins",
                "not one of the link's sides",
            ),
            (
                "c: { replicas: [fno, fno_back], policy: first_wins }",
                "",
                "links.c.policy",
                "",
            ),
        ] {
            let (k, reason) = refused(linked(links, more));
            assert_eq!(k, key, "{reason}");
            assert!(reason.contains(why), "{reason}");
        }
    }

    #[test]
    fn version_knobs_are_probabilities() {
        let lake = "l: { container: dataverse-contoso-l }";
        for knob in ["version_drop_probability", "version_duplicate_probability"] {
            let (key, reason) = refused(with(lake, LAKE, &format!("{knob}: 1.5")));
            assert_eq!(key, format!("replicas.r.{knob}"));
            assert!(reason.contains("between 0 and 1"), "{reason}");
        }
        let s = with(lake, LAKE, "").unwrap_or_else(|e| panic!("{e}"));
        let r = &s.replicas["r"];
        assert_eq!(
            (r.version_drop_probability, r.version_duplicate_probability),
            (0.0, 0.0)
        );
    }
}
