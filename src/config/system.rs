//! What the loader knows of a configured system, whatever its kind: the roles it can play,
//! its default limits, its references to other systems. The kinds themselves (and how they
//! build connectors) live in `systems`, which hands the loader its registry, so that this
//! layer needs nothing above it.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;

use super::{Issue, Limits};

/// A system as configured: what the loader checks before anything is built.
pub trait SystemSpec: fmt::Debug + Send + Sync + Any {
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
    /// `Ok` if its rows can be listed for reconciliation (its built `System` then has an
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
}

/// All parsed systems by name.
pub type Systems = BTreeMap<String, Box<dyn SystemSpec>>;

/// Types one `systems.<name>` block by its `kind:` (the registry of `systems`), with the
/// system's limits laid over its kind's defaults.
pub type Decode<'a> =
    &'a dyn Fn(&str, serde_json::Value) -> Result<(Box<dyn SystemSpec>, Limits), Issue>;
