//! The registry of system kinds: how a `kind:` in YAML becomes a [`Source`] and/or [`Target`].
//!
//! A kind is its file implementing [`SystemKind`] for its config struct and one line in
//! [`REGISTRY`], plus its conformance backend, tests and docs (ARCHITECTURE.md, "Where to add
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
pub mod simulated;
pub mod synapse_link_csv;
pub mod wire;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use crate::config::system::{SystemSpec, Systems};
use crate::config::{self, Config, ConfigError, Issue};
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
        }
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
    /// The shared in-process world of `simulated` systems (sources and their replicas).
    pub landscape: Arc<simulated::Landscape>,
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
            landscape: Arc::new(simulated::Landscape::new()),
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

type Decoder = fn(&str, serde_json::Value) -> Result<Box<dyn SystemKind>, Issue>;

/// Turns a parsed system back into its kind (the config keeps it as a [`SystemSpec`]).
type Cast = fn(&dyn Any) -> Option<&dyn SystemKind>;

fn cast<T: SystemKind>(spec: &dyn Any) -> Option<&dyn SystemKind> {
    spec.downcast_ref::<T>().map(|k| k as &dyn SystemKind)
}

/// One kind of the registry: its `kind:` name, the decoder of its config block, and the way
/// back from the parsed block (its config struct `T`) to the kind that builds it.
pub struct Entry {
    pub name: &'static str,
    decode: Decoder,
    cast: Cast,
}

const fn kind<T: SystemKind>(name: &'static str, decode: Decoder) -> Entry {
    Entry {
        name,
        decode,
        cast: cast::<T>,
    }
}

/// Every kind lagwatch knows, a line each.
pub const REGISTRY: &[Entry] = &[
    kind::<simulated::SimulatedConfig>("simulated", simulated::decode),
    kind::<dataverse::DataverseConfig>("dataverse", dataverse::decode),
    kind::<fo_odata::FoOdataConfig>("fo_odata", fo_odata::decode),
    kind::<azure_search::AzureSearchConfig>("azure_search", azure_search::decode),
    kind::<dataverse_search::DataverseSearchConfig>("dataverse_search", dataverse_search::decode),
    kind::<elasticsearch::ElasticsearchConfig>("elasticsearch", elasticsearch::decode),
    kind::<http::HttpConfig>("http", http::decode),
    kind::<synapse_link_csv::SynapseLinkCsvConfig>("synapse_link_csv", synapse_link_csv::decode),
    kind::<delta::DeltaConfig>("delta", delta::decode),
];

/// The kind of a parsed system, which builds its connectors.
///
/// # Errors
/// An [`Issue`] at `systems.<name>` when no kind of the registry made it (a spec decoded by
/// another registry).
pub fn kind_of<'a>(name: &str, spec: &'a dyn SystemSpec) -> Result<&'a dyn SystemKind, Issue> {
    let any: &dyn Any = spec;
    REGISTRY.iter().find_map(|k| (k.cast)(any)).ok_or_else(|| {
        Issue::new(
            format!("systems.{name}"),
            format!("kind {} has no builder in this binary", spec.kind()),
        )
    })
}

impl dyn SystemSpec {
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
    /// Loads and validates a configuration file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, the key path and the reason.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        Config::load_with(path, &parse)
    }

    /// Validates configuration text; `file` is only used in messages.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_yaml(file: &str, text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml_with(file, text, &parse)
    }
}

/// Types one `systems.<name>` block by its `kind`.
///
/// # Errors
/// An [`Issue`] for a missing or unknown kind, or for the kind's own config errors.
pub fn parse(key: &str, value: serde_json::Value) -> Result<(Box<dyn SystemSpec>, Limits), Issue> {
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
    let Some(entry) = REGISTRY.iter().find(|k| k.name == kind) else {
        let known: Vec<&str> = REGISTRY.iter().map(|k| k.name).collect();
        return Err(Issue::new(
            format!("{key}.kind"),
            format!(
                "unknown kind \"{kind}\"; the kinds lagwatch knows are: {}",
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
    Ok((spec, limits))
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

    const YAML: &str = "instance: t\nsystems:\n  a: { kind: foreign }\n  b: { kind: foreign }\npaths:\n  - { source: a, target: b }\n";

    #[test]
    fn the_loader_takes_the_kinds_it_is_handed() {
        let foreign = |_key: &str, _value: serde_json::Value| -> Result<_, Issue> {
            Ok((Box::new(Foreign) as Box<dyn SystemSpec>, Limits::default()))
        };
        let config = Config::from_yaml_with("t.yaml", YAML, &foreign).expect("loads");
        assert_eq!(config.systems["a"].kind(), "foreign");
        // lagwatch's own registry does not know it, and says so at the system's key.
        let e = Config::from_yaml("t.yaml", YAML).expect_err("unknown kind");
        assert!(e.to_string().contains("systems.a.kind"), "{e}");
        // A spec from another registry cannot be built through this one.
        let issue = kind_of("a", config.systems["a"].as_ref()).expect_err("no builder");
        assert_eq!(issue.key, "systems.a");
        let parsed = Config::from_yaml(
            "t.yaml",
            "instance: t\nsystems:\n  a: { kind: simulated }\n  b: { kind: simulated, replica_of: a, lag: { distribution: fixed, value: 1s } }\npaths:\n  - { source: a, target: b }\n",
        )
        .expect("simulated loads");
        assert_eq!(
            kind_of("a", parsed.systems["a"].as_ref())
                .map(|k| k.kind())
                .ok(),
            Some("simulated")
        );
    }
}
