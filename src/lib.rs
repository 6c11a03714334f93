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
//! - [`systems`] (the kinds; [`systems::simulated`] is the in-process landscape with ground
//!   truth), [`lake`] (reading analytics lakes with cursors), [`ledger`] (the probe ledger).
//! - [`probe`] (the engine, its schedule, estimator and traces), [`reconcile`].
//! - [`app`], [`status`], [`path_page`], [`http`], [`web`], [`supervisor`] (reload).
//! - [`cli`], [`demo`]; above all, [`emulator`]: the emulated Dynamics 365 APIs.

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
