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

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::config::{self, Issue};
use crate::config::{Limits, LimitsOverride};
use crate::connector::{Source, Target};
use crate::gate::Gate;
use crate::metrics::Metrics;

/// A configured system kind: what it can do and how to build it.
pub trait SystemKind: fmt::Debug + Send + Sync + 'static {
    /// The `kind:` value, also used in messages.
    fn kind(&self) -> &'static str;
    /// `Ok` if sentinels can be written into it, else the reason why not.
    fn can_write(&self) -> Result<(), String>;
    /// `Ok` if sentinels can be looked up in it, else the reason why not.
    fn can_read(&self) -> Result<(), String> {
        Ok(())
    }
    /// Admission limits when the system's `limits:` does not say otherwise: the system's
    /// documented service protection, with room to spare.
    fn default_limits(&self) -> Limits {
        Limits::default()
    }
    /// As [`Target::synchronous_within`](crate::connector::Target::synchronous_within), known
    /// from the configuration so a path's timeout can be checked against it.
    fn synchronous_within(&self) -> Option<std::time::Duration> {
        None
    }
    /// `Ok` if its rows can be listed for reconciliation (its built [`System`] then has an
    /// `inventory`), else the reason why not.
    fn can_list(&self) -> Result<(), String> {
        Err("this kind does not list its rows".to_string())
    }
    /// One line for `check-config` output; secrets must stay redacted.
    fn describe(&self) -> String {
        format!("{self:?}")
    }
    /// Checks references to other systems once all are parsed (default: none).
    ///
    /// # Errors
    /// An [`Issue`] naming the key under `systems.<name>` that refers to something wrong.
    fn validate(&self, _name: &str, _systems: &Systems) -> Result<(), Issue> {
        Ok(())
    }
    /// Builds the connectors. Opens no connection; reachability is checked by probing. `gate`
    /// is the system's admission control: connectors report each request they send and each
    /// throttling answer to it.
    ///
    /// # Errors
    /// An [`Issue`] naming the key under `systems.<name>` that makes it impossible.
    fn build(&self, name: &str, cx: &BuildContext, gate: Arc<Gate>) -> Result<System, Issue>;
}

/// All parsed systems by name.
pub type Systems = std::collections::BTreeMap<String, Box<dyn SystemKind>>;

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

/// Every kind lagwatch knows: `kind:` name and the decoder of its config block.
pub const REGISTRY: &[(&str, Decoder)] = &[
    ("simulated", simulated::decode),
    ("dataverse", dataverse::decode),
    ("fo_odata", fo_odata::decode),
    ("azure_search", azure_search::decode),
    ("dataverse_search", dataverse_search::decode),
    ("elasticsearch", elasticsearch::decode),
    ("http", http::decode),
    ("synapse_link_csv", synapse_link_csv::decode),
    ("delta", delta::decode),
];

/// Types one `systems.<name>` block by its `kind`.
///
/// # Errors
/// An [`Issue`] for a missing or unknown kind, or for the kind's own config errors.
pub fn parse(key: &str, value: serde_json::Value) -> Result<(Box<dyn SystemKind>, Limits), Issue> {
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
    let Some((_, decoder)) = REGISTRY.iter().find(|(k, _)| *k == kind) else {
        let known: Vec<&str> = REGISTRY.iter().map(|(k, _)| *k).collect();
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
    let spec = decoder(key, serde_json::Value::Object(map)).map_err(|mut issue| {
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
