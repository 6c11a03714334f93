//! lagwatch measures replication lag of eventually-consistent integrations with active probes.
//!
//! Crate map, by layer from the bottom (ARCHITECTURE.md has the table a test enforces, the
//! data flow and the invariants):
//! - [`sentinel`], [`percent`], [`config`] (the YAML file, strict typing, errors naming file, key
//!   and reason), [`connector`] (the roles `Source`, `Target`, `Inventory` and their errors).
//! - [`metrics`] (every exported metric, declared once), [`clock`] (offsets from `Date`
//!   headers), [`gate`] (throttling, concurrency, request budget), [`shutdown`], [`logging`].
//! - [`auth`]: Entra ID tokens (secret, certificate, workload and managed identity), their
//!   cache, and what a request carries. [`net`]: the HTTP layer of every HTTP connector.
//! - [`systems`] (the kinds and their registry), [`lake`] (reading analytics lakes with
//!   cursors), [`ledger`] (the probe ledger).
//! - [`probe`] (the engine, its schedule, estimator and traces), [`reconcile`].
//! - [`app`], [`status`], [`path_page`], [`contracts`] and [`report`] (consistency over a
//!   window), [`chart`], [`http`], [`web`], [`supervisor`] (reload).
//!
//! The command line is the `lagwatch` package's binary; the emulated Dynamics 365 estate, with
//! the `simulated` kind, is the `lagwatch-emulator` crate, built on this crate's public API
//! only (this crate knows nothing of it).

pub mod app;
pub mod auth;
pub mod chart;
pub mod clock;
pub mod config;
pub mod connector;
pub mod contracts;
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
pub mod report;
pub mod sentinel;
pub mod shutdown;
pub mod status;
pub mod supervisor;
pub mod systems;
pub mod web;

/// Source revision this binary was built from (`LAGWATCH_REVISION` or git at build time).
pub const REVISION: &str = env!("LAGWATCH_REVISION");
