//! lagwatch measures replication lag of eventually-consistent integrations with active probes.
//!
//! Crate map (see ARCHITECTURE.md for the data flow and invariants):
//! - [`config`]: the YAML file, strict typing, errors naming file, key and reason.
//! - [`systems`]: the registry of system kinds; each kind builds a [`connector::Source`] and/or
//!   [`connector::Target`]. [`systems::simulated`] is the in-process landscape with ground truth.
//! - [`connector`]: the pluggable roles and their error type.
//! - [`auth`]: Entra ID tokens (client secret, workload and managed identity) and their cache.
//! - [`sentinel`]: sentinel ids, payloads and checksums.
//! - [`gate`]: per-system throttling, concurrency and request budget.
//! - [`lake`]: reading analytics lakes (Synapse Link folders) with a cursor, not re-reading.
//! - [`clock`]: clock offsets of monitored systems from HTTP `Date` headers.
//! - [`probe`]: the engine: groups, cycles, the poll schedule and the lag estimator.
//! - [`reconcile`]: source-versus-replica comparison, discrepancy state and metrics.
//! - [`metrics`]: every exported metric, declared once.
//! - [`net`]: the HTTP layer of every HTTP connector (auth, budget, metrics, errors).
//! - [`status`]: the per-path view behind the status page and the API.
//! - [`http`]: the axum server; [`web`]: its TLS and basic auth (`--web.config.file`).
//! - [`emulator`]: the emulated Dynamics 365 APIs; [`demo`]: the emulator and a monitor of it.
//! - [`app`]: assembly of all of the above; [`supervisor`]: `lagwatch run` with configuration
//!   reload; [`cli`]: the command line; [`logging`]: `--log.format` and the default log filter.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connector;
pub mod demo;
pub mod emulator;
pub mod gate;
pub mod http;
pub mod lake;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod path_page;
pub mod percent;
pub mod probe;
pub mod reconcile;
pub mod sentinel;
pub mod shutdown;
pub mod status;
pub mod supervisor;
pub mod systems;
pub mod web;

/// Source revision this binary was built from (`LAGWATCH_REVISION` or git at build time).
pub const REVISION: &str = env!("LAGWATCH_REVISION");
