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
    /// For a target that replication writes in the same transaction as the source (dual-write
    /// while its map runs): how long after the source acknowledged a sentinel it may still be
    /// missing. Missing later means the replication is not running, which the engine reports
    /// as its own outcome (`halted`) instead of a lag. `None`: an asynchronous target.
    fn synchronous_within(&self) -> Option<std::time::Duration> {
        None
    }
    /// For a source whose writes a replication applies to targets of kind `target_kind` in the
    /// same transaction (F&O, whose dual-write map writes Dataverse while it runs): how long a
    /// sentinel may be missing there after the acknowledgement before the link counts as
    /// stopped. `None`: asynchronous.
    fn dual_writes_to(&self, _target_kind: &str) -> Option<std::time::Duration> {
        None
    }
    /// Whether the kind promises monotonic reads (a record once seen is never missing from a
    /// later read), the default of `contract.monotonic_reads` on the paths reading it.
    fn monotonic_reads(&self) -> bool {
        false
    }
    /// `Ok` if a read can show a sentinel missing after an earlier read found it (so monotonic
    /// reads can be measured), else the reason why not.
    fn observes_regressions(&self) -> Result<(), String> {
        Ok(())
    }
    /// `Ok` if a lookup returns the newest version of a record the target holds, so an update
    /// canary's versions can be read there (k-staleness, `updates: latest`), else the reason
    /// why not. The default: wherever a read can show a regression.
    fn shows_versions(&self) -> Result<(), String> {
        self.observes_regressions()
    }
    /// `Ok` if the target is a change log whose reader sees every row written for a record,
    /// in order (so `updates: every` can be measured: a lost or a repeated version), else the
    /// reason why not.
    fn keeps_versions(&self) -> Result<(), String> {
        Err("a read shows one version of a record (a snapshot), which may skip versions legally; updates: every needs a change log (synapse_link_csv with incremental update folders)".to_string())
    }
    /// `Ok` if a lookup answers absent once a deleted sentinel is gone (so delete propagation
    /// can be measured on the paths reading it), else the reason why not.
    fn observes_deletes(&self) -> Result<(), String> {
        Ok(())
    }
    /// `Ok` if a sentinel's record can be written again with new content (`Source::update`),
    /// so the paths from it can run an update canary, else the reason why not.
    fn can_update(&self) -> Result<(), String> {
        Err("this kind does not update records".to_string())
    }
    /// The platform status surfaces (`platform_status.surface`) lagwatch can read through
    /// this system, by name (`config::platform::Surface::name`).
    fn status_surfaces(&self) -> &'static [&'static str] {
        &[]
    }
    /// `Ok` if the system reads and updates a sentinel's record that a replication created
    /// there (by the sentinel key), as the second system of a conflict probe must, else why
    /// not.
    fn updates_copies(&self) -> Result<(), String> {
        Ok(())
    }
    /// `Ok` if a record can be written with a reference (a lookup) to another one
    /// (`Source::write_child`), so the paths from it can check causal pairs, else the reason
    /// why not.
    fn can_link(&self) -> Result<(), String> {
        Err("this kind does not write records that reference others".to_string())
    }
    /// Whether the kind promises that a record never shows before the record it references
    /// (dual-write applies a row only once its lookups resolve), the default of
    /// `contract.causal` on the paths reading it.
    fn causal(&self) -> bool {
        false
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

/// A parsed system: what the loader checks, and the registry entry that decoded it. The entry
/// is opaque here (it knows how to build the system, which this layer must not); the layer that
/// builds turns it back into the kind, so kinds from outside this crate (the emulator's
/// `simulated`) build as lagwatch's own do.
pub struct Declared {
    spec: Box<dyn SystemSpec>,
    origin: &'static (dyn Any + Send + Sync),
}

impl Declared {
    /// `spec` as decoded by the registry entry `origin`.
    pub fn new(spec: Box<dyn SystemSpec>, origin: &'static (dyn Any + Send + Sync)) -> Self {
        Declared { spec, origin }
    }

    /// The registry entry that decoded this system.
    pub fn origin(&self) -> &'static (dyn Any + Send + Sync) {
        self.origin
    }

    /// The system's configuration, as its kind's config struct.
    pub fn spec(&self) -> &dyn SystemSpec {
        self.spec.as_ref()
    }
}

impl std::ops::Deref for Declared {
    type Target = dyn SystemSpec;

    fn deref(&self) -> &Self::Target {
        self.spec.as_ref()
    }
}

impl fmt::Debug for Declared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.spec.fmt(f)
    }
}

/// All parsed systems by name.
pub type Systems = BTreeMap<String, Declared>;

/// Types one `systems.<name>` block by its `kind:` (the registry of `systems`), with the
/// system's limits laid over its kind's defaults.
pub type Decode<'a> = &'a dyn Fn(&str, serde_json::Value) -> Result<(Declared, Limits), Issue>;
