//! Reconciliation: compare a source table with each replica, find what differs, and tell drift
//! (something was lost or went stale) from lag (it is still on its way).
//!
//! - [`inventory`]: the capability a system kind implements to list its rows.
pub mod diff;
pub mod inventory;
pub mod sort;
pub mod spec;
