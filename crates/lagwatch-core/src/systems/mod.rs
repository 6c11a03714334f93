//! The registry of system kinds: how a `kind:` in YAML becomes a [`Source`] and/or [`Target`].
//!
//! A kind is its file implementing [`SystemKind`] for its config struct and one line in
//! [`REGISTRY`] (or, for a kind from another crate, an [`Entry`] of its own joined into a
//! [`Registry`], as the emulator's `simulated`), plus its conformance backend, tests and docs (ARCHITECTURE.md, "Where to add
//! a kind", lists every file). A kind's config struct is typed strictly (unknown keys are
//! errors) and its `Debug` must not print secrets (use `config::Secret`). Kinds share helpers
//! through `wire`, `http_inventory` and `lake_access`, never by importing each other.

pub mod azure_search;
pub mod dataverse;
pub mod dataverse_search;
pub mod delta;
pub mod elasticsearch;
pub mod fo_odata;
pub mod http;
pub mod http_inventory;
pub mod lake_access;
pub mod status;
pub mod synapse_link_csv;
pub mod wire;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use crate::config::system::{Declared, SystemSpec, Systems};
use crate::config::{self, Config, ConfigError, ConfigErrors, Issue, LoadOptions};
use crate::config::{Limits, LimitsOverride};
use crate::connector::{Source, Target};
use crate::gate::Gate;
use crate::metrics::Metrics;

/// A configured system kind that can build its connectors: the loader's [`SystemSpec`] and
/// the one thing the configuration layer cannot know, how to build.
pub trait SystemKind: SystemSpec {
    /// Builds the connectors. Opens no connection; reachability is checked by probing. `gate`
    /// is the system's admission control: connectors report each request they send and each
    /// throttling answer to it.
    ///
    /// # Errors
    /// An [`Issue`] naming the key under `systems.<name>` that makes it impossible.
    fn build(&self, name: &str, cx: &BuildContext, gate: Arc<Gate>) -> Result<System, Issue>;
}

/// A built system: whichever roles its kind supports.
#[derive(Clone)]
pub struct System {
    pub name: String,
    pub kind: &'static str,
    /// Admission control every call to this system goes through (see `gate`).
    pub gate: Arc<Gate>,
    pub source: Option<Arc<dyn Source>>,
    pub target: Option<Arc<dyn Target>>,
    /// Listing of rows for reconciliation, for kinds that support it.
    pub inventory: Option<Arc<dyn crate::connector::inventory::Inventory>>,
    /// The platform status surfaces this system can be asked about (`platform_status:`),
    /// for kinds that have any (`SystemSpec::status_surfaces`).
    pub status: Option<Arc<dyn crate::connector::status::StatusSurfaces>>,
}

impl System {
    /// A system that is only read: sentinels are written elsewhere and copied into it.
    pub fn target_only(
        name: &str,
        kind: &'static str,
        gate: Arc<Gate>,
        target: Arc<dyn Target>,
    ) -> Self {
        System {
            name: name.to_string(),
            kind,
            gate,
            source: None,
            target: Some(target),
            inventory: None,
            status: None,
        }
    }

    /// The same system with status surfaces, for kinds that offer any.
    #[must_use]
    pub fn with_status(
        mut self,
        status: Arc<dyn crate::connector::status::StatusSurfaces>,
    ) -> Self {
        self.status = Some(status);
        self
    }

    /// The same system with an inventory, for kinds that can list their rows.
    #[must_use]
    pub fn with_inventory(
        mut self,
        inventory: Arc<dyn crate::connector::inventory::Inventory>,
    ) -> Self {
        self.inventory = Some(inventory);
        self
    }
}

/// What every kind's constructor gets from the framework.
#[derive(Clone)]
pub struct BuildContext {
    pub metrics: Metrics,
    /// State the systems of one build share, one value per type (the emulator's `simulated`
    /// systems keep their in-process landscape here); it outlives the build in the [`App`].
    ///
    /// [`App`]: crate::app::App
    pub shared: Shared,
    /// The HTTP client every HTTP connector shares (one connection pool, TLS verification on).
    pub http: reqwest::Client,
    gates: Arc<Mutex<HashMap<String, Arc<Gate>>>>,
}

impl BuildContext {
    pub fn new(metrics: Metrics) -> Self {
        Self::with_client(metrics, crate::net::client().unwrap_or_default())
    }

    fn with_client(metrics: Metrics, http: reqwest::Client) -> Self {
        BuildContext {
            metrics,
            shared: Shared::default(),
            http,
            gates: Arc::default(),
        }
    }

    /// As [`BuildContext::new`], with an HTTP client that also trusts the configured private
    /// CAs (`tls.ca_files`), shared by every HTTP system and its token endpoint. Unlike `new`,
    /// a client that cannot be built is an error: silently dropping configured trust would
    /// turn into handshake failures that point nowhere near the cause.
    ///
    /// # Errors
    /// An [`Issue`] at `tls.ca_files` when the TLS backend refuses the certificates.
    pub fn with_tls(metrics: Metrics, tls: &config::OutgoingTls) -> Result<Self, Issue> {
        let http = crate::net::client_trusting(&tls.extra_roots).map_err(|e| {
            Issue::new(
                "tls.ca_files",
                format!("the HTTP client cannot trust these certificates: {e}"),
            )
        })?;
        Ok(Self::with_client(metrics, http))
    }

    /// The gate of system `name`, created with `limits` on first use.
    pub fn gate(&self, name: &str, limits: Limits) -> Arc<Gate> {
        self.gates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Gate::new(name, limits, &self.metrics)))
            .clone()
    }
}

/// State shared by the systems of one build, one value of each type, made on first use.
#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>);

impl Shared {
    /// The value of type `T`, made by `make` if this build has none yet.
    pub fn get_or_insert_with<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Arc<T> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = map
            .get(&TypeId::of::<T>())
            .and_then(|any| any.clone().downcast::<T>().ok())
        {
            return value;
        }
        let value = Arc::new(make());
        map.insert(TypeId::of::<T>(), value.clone());
        value
    }
}

type Decoder = fn(&str, serde_json::Value) -> Result<Box<dyn SystemKind>, Issue>;

/// Turns a parsed system back into its kind (the config keeps it as a [`SystemSpec`]).
type Cast = fn(&dyn Any) -> Option<&dyn SystemKind>;

fn cast<T: SystemKind>(spec: &dyn Any) -> Option<&dyn SystemKind> {
    spec.downcast_ref::<T>().map(|k| k as &dyn SystemKind)
}

/// One kind of a registry: its `kind:` name, the decoder of its config block, and the way
/// back from the parsed block (its config struct `T`) to the kind that builds it.
pub struct Entry {
    pub name: &'static str,
    decode: Decoder,
    cast: Cast,
}

/// The registry line of kind `T`, named `name` in YAML and decoded by `decode`.
pub const fn kind<T: SystemKind>(name: &'static str, decode: Decoder) -> Entry {
    Entry {
        name,
        decode,
        cast: cast::<T>,
    }
}

/// Every kind lagwatch knows, a line each.
pub const REGISTRY: &[Entry] = &[
    kind::<dataverse::DataverseConfig>("dataverse", dataverse::decode),
    kind::<fo_odata::FoOdataConfig>("fo_odata", fo_odata::decode),
    kind::<azure_search::AzureSearchConfig>("azure_search", azure_search::decode),
    kind::<dataverse_search::DataverseSearchConfig>("dataverse_search", dataverse_search::decode),
    kind::<elasticsearch::ElasticsearchConfig>("elasticsearch", elasticsearch::decode),
    kind::<http::HttpConfig>("http", http::decode),
    kind::<synapse_link_csv::SynapseLinkCsvConfig>("synapse_link_csv", synapse_link_csv::decode),
    kind::<delta::DeltaConfig>("delta", delta::decode),
];

/// The kinds a binary knows: lagwatch's own [`REGISTRY`], and those of other crates joined to
/// it (the emulator's `simulated`). The configuration loader is handed one.
#[derive(Clone, Copy)]
pub struct Registry(&'static [&'static [Entry]]);

impl Registry {
    /// The kinds of `sets`, searched in order (also the order of the "kinds lagwatch knows"
    /// list of an unknown kind's message).
    pub const fn new(sets: &'static [&'static [Entry]]) -> Self {
        Registry(sets)
    }

    /// lagwatch's own kinds.
    pub const LAGWATCH: Registry = Registry(&[REGISTRY]);

    fn entries(self) -> impl Iterator<Item = &'static Entry> {
        self.0.iter().flat_map(|set| set.iter())
    }

    /// Loads and validates a configuration file with these kinds.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, the key path and the reason.
    pub fn load(self, path: &std::path::Path) -> Result<Config, ConfigError> {
        Config::load_with(path, &|key, value| parse(self, key, value))
    }

    /// Validates configuration text with these kinds; `file` is only used in messages.
    ///
    /// # Errors
    /// As [`Registry::load`].
    pub fn from_yaml(self, file: &str, text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml_with(file, text, &|key, value| parse(self, key, value))
    }

    /// Loads and validates a configuration file with these kinds, returning every error of
    /// the file (`check-config`); `options` says whether secrets are resolved.
    ///
    /// # Errors
    /// [`ConfigErrors`], each naming the file, the key path and the reason.
    pub fn check(
        self,
        path: &std::path::Path,
        options: LoadOptions,
    ) -> Result<Config, ConfigErrors> {
        Config::load_all_with(path, &|key, value| parse(self, key, value), options)
    }

    /// As [`Registry::check`], for configuration text; `file` is only used in messages.
    ///
    /// # Errors
    /// As [`Registry::check`].
    pub fn check_yaml(
        self,
        file: &str,
        text: &str,
        options: LoadOptions,
    ) -> Result<Config, ConfigErrors> {
        Config::check_with(file, text, &|key, value| parse(self, key, value), options)
    }
}

/// The kind of a parsed system, which builds its connectors.
///
/// # Errors
/// An [`Issue`] at `systems.<name>` when no [`Entry`] of a registry decoded it (a spec decoded
/// by a loader of its own).
pub fn kind_of<'a>(name: &str, declared: &'a Declared) -> Result<&'a dyn SystemKind, Issue> {
    let spec: &dyn Any = declared.spec();
    declared
        .origin()
        .downcast_ref::<Entry>()
        .and_then(|entry| (entry.cast)(spec))
        .ok_or_else(|| {
            Issue::new(
                format!("systems.{name}"),
                format!("kind {} has no builder in this binary", declared.kind()),
            )
        })
}

impl Declared {
    /// Builds the connectors of a parsed system through its kind ([`SystemKind::build`]).
    ///
    /// # Errors
    /// As [`kind_of`] and [`SystemKind::build`].
    pub fn build(&self, name: &str, cx: &BuildContext, gate: Arc<Gate>) -> Result<System, Issue> {
        kind_of(name, self)?.build(name, cx, gate)
    }
}

/// The configuration loader with lagwatch's own kinds: the loader itself (`config`) is handed
/// the registry rather than importing it.
impl Config {
    /// Loads and validates a configuration file with lagwatch's own kinds
    /// ([`Registry::LAGWATCH`]).
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, the key path and the reason.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        Registry::LAGWATCH.load(path)
    }

    /// Validates configuration text; `file` is only used in messages.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_yaml(file: &str, text: &str) -> Result<Config, ConfigError> {
        Registry::LAGWATCH.from_yaml(file, text)
    }
}

/// Types one `systems.<name>` block by its `kind`.
///
/// # Errors
/// An [`Issue`] for a missing or unknown kind, or for the kind's own config errors.
pub fn parse(
    kinds: Registry,
    key: &str,
    value: serde_json::Value,
) -> Result<(Declared, Limits), Issue> {
    let has_kind = value.as_object().is_some_and(|m| m.contains_key("kind"));
    if !has_kind && let Some(issue) = misindented(kinds, key) {
        return Err(issue);
    }
    let serde_json::Value::Object(mut map) = value else {
        return Err(Issue::new(
            key,
            "a system must be a mapping with at least a kind",
        ));
    };
    let kind = match map.remove("kind") {
        Some(serde_json::Value::String(k)) => k,
        Some(_) => {
            return Err(Issue::new(
                format!("{key}.kind"),
                "the kind must be a string",
            ));
        }
        None => return Err(Issue::new(format!("{key}.kind"), "required key is missing")),
    };
    let Some(entry) = kinds.entries().find(|k| k.name == kind) else {
        let known: Vec<&str> = kinds.entries().map(|k| k.name).collect();
        // The emulator's kind, in builds with the `demo` feature only (not the container's).
        let hint = if kind == "simulated" {
            " (simulated is the emulator's kind, in builds with the default demo feature; the container image has none)"
        } else {
            ""
        };
        return Err(Issue::new(
            format!("{key}.kind"),
            format!(
                "unknown kind \"{kind}\"; the kinds lagwatch knows are: {}{hint}",
                known.join(", ")
            ),
        ));
    };
    let overrides = match map.remove("limits") {
        None => LimitsOverride::default(),
        Some(v) => config::decode(&format!("{key}.limits"), v)?,
    };
    let spec = (entry.decode)(key, serde_json::Value::Object(map)).map_err(|mut issue| {
        // The kind's own struct does not know the keys every system has.
        let direct = issue
            .key
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| !rest.contains(['.', '[']));
        if direct
            && issue
                .reason
                .starts_with("unknown key; the keys allowed here are:")
        {
            issue.reason.push_str(", and on every system: kind, limits");
        }
        issue
    })?;
    let limits = overrides.over(spec.default_limits());
    let lkey = format!("{key}.limits");
    if limits.max_concurrency == 0 {
        return Err(Issue::new(
            format!("{lkey}.max_concurrency"),
            "at least 1 request must be allowed in flight",
        ));
    }
    if limits.requests == 0 || limits.per.get().is_zero() {
        return Err(Issue::new(
            format!("{lkey}.requests"),
            "the request budget must allow at least 1 request per window longer than 0s",
        ));
    }
    let spec: Box<dyn SystemSpec> = spec;
    Ok((Declared::new(spec, entry), limits))
}

/// A system without a kind named like a key of some kind's block (a `fields:` indented one
/// level too little, under `systems:` instead of under its system): says so, naming the kinds
/// that have such a key.
fn misindented(kinds: Registry, key: &str) -> Option<Issue> {
    let name = key.rsplit('.').next().unwrap_or(key);
    let owners: Vec<&str> = kinds
        .entries()
        .filter(|e| allowed_keys(e).iter().any(|k| k == name))
        .map(|e| e.name)
        .collect();
    if owners.is_empty() {
        return None;
    }
    Some(Issue::new(
        key,
        format!(
            "looks mis-indented: `{name}` is a key of a system (of kind {}), not a system itself (a system has a kind); indent it under the system it belongs to",
            owners.join(", ")
        ),
    ))
}

/// The keys a kind's block allows besides `kind` and `limits`, as its decoder lists them for
/// an unknown key.
fn allowed_keys(entry: &Entry) -> Vec<String> {
    let probe = serde_json::json!({ "\u{1}": null });
    match (entry.decode)("k", probe) {
        Err(issue) => issue
            .reason
            .strip_prefix("unknown key; the keys allowed here are: ")
            .map(|list| list.split(", ").map(str::to_string).collect())
            .unwrap_or_default(),
        Ok(_) => Vec::new(),
    }
}

/// Decodes a kind's config struct; the helper every kind's `decode` starts with.
///
/// # Errors
/// As [`config::decode`].
pub fn decode_as<T: serde::de::DeserializeOwned>(
    key: &str,
    value: serde_json::Value,
) -> Result<T, Issue> {
    config::decode(key, value)
}

/// Checks that `url` at `key` is an absolute `http(s)` URL with a host; `what` describes the
/// expected URL with an example, for the message. `http` is allowed for emulators and
/// in-cluster services.
///
/// # Errors
/// An [`Issue`] at `key` quoting the value.
pub fn check_url(key: &str, url: &str, what: &str) -> Result<(), Issue> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Ok(()),
        _ => Err(Issue::new(key, format!("\"{url}\" is not {what}"))),
    }
}

/// Checks that `url` at `key` is a base URL lagwatch adds its own paths to, not one with an
/// API path pasted after it: the first path segment named in `markers` (`api`, `data`,
/// `indexes`; a marker ending in `*` matches a prefix, as `_*`) and all after it, a query or a
/// fragment are errors saying what to remove and, from the marker, why. Other path segments
/// stay (an emulator's or a proxy's prefix). `example` is the URL written right. Run after
/// [`check_url`].
///
/// # Errors
/// An [`Issue`] at `key` naming what to remove.
pub fn check_base_url(
    key: &str,
    url: &str,
    example: &str,
    markers: &[(&str, &str)],
) -> Result<(), Issue> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(());
    };
    let path = parsed.path();
    let mut at: usize = 0;
    let mut cut: Option<(usize, &str)> = None;
    for segment in path.split('/') {
        let lower = segment.to_ascii_lowercase();
        let hit = markers.iter().find(|(m, _)| match m.strip_suffix('*') {
            Some(prefix) => !segment.is_empty() && lower.starts_with(prefix),
            None => lower == *m,
        });
        if let Some((_, why)) = hit {
            cut = Some((at.saturating_sub(1), why));
            break;
        }
        at += segment.len() + 1;
    }
    let mut extra = cut
        .map(|(from, _)| path.get(from..).unwrap_or_default().trim_end_matches('/'))
        .unwrap_or_default()
        .to_string();
    if let Some(q) = parsed.query() {
        extra.push('?');
        extra.push_str(q);
    }
    if let Some(f) = parsed.fragment() {
        extra.push('#');
        extra.push_str(f);
    }
    if extra.is_empty() {
        return Ok(());
    }
    let why = cut.map(|(_, why)| format!(": {why}")).unwrap_or_default();
    Err(Issue::new(
        key,
        format!("\"{url}\" is more than the base URL; remove {extra}{why} (write it as {example})"),
    ))
}

/// Checks that each `(field, value)` under `key` is a name made of letters, digits and `_`
/// (OData entity sets and properties, Dataverse logical names), which are then safe to place
/// in URLs and filters unquoted. `what` names the kind of name in the message.
///
/// # Errors
/// An [`Issue`] at `key.field` quoting the value.
pub fn check_names(key: &str, what: &str, names: &[(&str, &str)]) -> Result<(), Issue> {
    for (field, v) in names {
        if !is_name(v) {
            return Err(Issue::new(
                format!("{key}.{field}"),
                format!("\"{v}\" is not {what} (letters, digits, _)"),
            ));
        }
    }
    Ok(())
}

/// Whether `v` is a non-empty name of letters, digits and `_`, safe unquoted in URLs, OData
/// filters and JSON field lists (see [`check_names`]).
pub fn is_name(v: &str) -> bool {
    !v.is_empty() && v.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// The [`HttpSystem`](crate::net::HttpSystem) of system `name`, authenticated with its decoded
/// `auth:` block. `scope` gives the Entra token scope when the method needs one; `style` says
/// how an API key is sent when the block does not name a header.
///
/// # Errors
/// An [`Issue`] under `systems.<name>.auth` when the credential cannot be built.
pub fn http_system(
    name: &str,
    cx: &BuildContext,
    gate: &Arc<Gate>,
    credential: Option<&crate::auth::Credential>,
    scope: impl FnOnce() -> Result<String, Issue>,
    style: Option<crate::auth::ApiKeyStyle>,
) -> Result<crate::net::HttpSystem, Issue> {
    let key = format!("systems.{name}.auth");
    let credential =
        credential.ok_or_else(|| Issue::new(&key, "the auth block was not decoded"))?;
    let auth = credential.http_auth(&key, cx.http.clone(), scope, style)?;
    Ok(crate::net::HttpSystem::new(
        name,
        cx.http.clone(),
        gate.clone(),
        cx.metrics.clone(),
        auth,
    ))
}

/// The scope for an Entra token: the configured one, else derived from `url` (errors at
/// `systems.<name>.url`).
///
/// # Errors
/// An [`Issue`] when no scope can be derived from the URL.
pub fn scope_or_derived(name: &str, scope: Option<&str>, url: &str) -> Result<String, Issue> {
    match scope {
        Some(s) => Ok(s.to_string()),
        None => crate::auth::scope_for(url)
            .map_err(|e| Issue::new(format!("systems.{name}.url"), e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kind no registry of this crate knows.
    #[derive(Debug)]
    struct Foreign;

    impl SystemSpec for Foreign {
        fn kind(&self) -> &'static str {
            "foreign"
        }
        fn can_write(&self) -> Result<(), String> {
            Ok(())
        }
    }

    /// Not a registry entry: what a loader of its own might record as the origin.
    static NOT_AN_ENTRY: u8 = 0;

    const YAML: &str = "instance: t\nsystems:\n  a: { kind: foreign }\n  b: { kind: foreign }\npaths:\n  - { source: a, target: b }\n";

    #[test]
    fn the_loader_takes_the_kinds_it_is_handed() {
        let foreign = |_key: &str, _value: serde_json::Value| -> Result<_, Issue> {
            let spec: Box<dyn SystemSpec> = Box::new(Foreign);
            Ok((Declared::new(spec, &NOT_AN_ENTRY), Limits::default()))
        };
        let config = Config::from_yaml_with("t.yaml", YAML, &foreign).expect("loads");
        assert_eq!(config.systems["a"].kind(), "foreign");
        // lagwatch's own registry does not know it, and says so at the system's key.
        let e = Config::from_yaml("t.yaml", YAML).expect_err("unknown kind");
        assert!(e.to_string().contains("systems.a.kind"), "{e}");
        // A spec from another loader cannot be built through a registry.
        let issue = kind_of("a", &config.systems["a"]).expect_err("no builder");
        assert_eq!(issue.key, "systems.a");
        let parsed = Config::from_yaml(
            "t.yaml",
            "instance: t\nsystems:\n  a: { kind: http, write: { method: PUT, url: \"http://127.0.0.1:9/r/{id}\" }, read: { url: \"http://127.0.0.1:9/r/{id}\" }, auth: { method: none } }\n  b: { kind: elasticsearch, url: \"http://127.0.0.1:9\", index: x, payload_field: payload, auth: { method: none } }\npaths:\n  - { source: a, target: b }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            kind_of("b", &parsed.systems["b"]).map(|k| k.kind()).ok(),
            Some("elasticsearch")
        );
    }

    /// A kind from another crate joins lagwatch's registry and builds like its own.
    #[test]
    fn a_joined_registry_knows_both_sets_in_order() {
        static EXTRA: &[Entry] = &[kind::<http::HttpConfig>("also_http", http::decode)];
        static BOTH: Registry = Registry::new(&[EXTRA, REGISTRY]);
        let names: Vec<&str> = BOTH.entries().map(|e| e.name).collect();
        assert_eq!(names.first(), Some(&"also_http"));
        assert_eq!(names.len(), REGISTRY.len() + 1);
        let e = BOTH
            .from_yaml("t.yaml", YAML)
            .expect_err("foreign is no kind of either");
        assert!(e.to_string().contains("are: also_http, dataverse,"), "{e}");
    }
}
