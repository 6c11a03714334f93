//! The `StatusReader` role: what a platform says about its own sync (Synapse Link's table
//! states, an indexer's execution history, Elasticsearch's refresh counts, …), read beside
//! lagwatch's sentinels so a stuck path can be told apart as "the platform knows" or "the
//! platform claims healthy".
//!
//! A reader makes read-only requests of documented status surfaces through its system's
//! `net::HttpSystem` (gate, budget, credentials, request metrics), one call per `read`, and
//! never calls anything that triggers work. It reports a [`Claim`]; the engine keeps the
//! claims, corrects their times by the system's clock offset and judges them against the
//! canary (`probe::platform`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ConnectorError;

/// A platform's own state, normalised. The raw words stay in [`Claim::raw`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    /// The platform says it is syncing without error (Synapse Link's `InProgress`, a
    /// `Created` Delta table, an indexer whose last run succeeded, …).
    Healthy,
    /// It reports a failure (a failed table, a `transientFailure` or `persistentFailure` run).
    Error,
    /// Deliberately stopped for now (a paused profile, table or map).
    Paused,
    /// Not running: never started, deleted, initialising, or no runs at all.
    NotRunning,
    /// An answer lagwatch cannot map (an undocumented code): exported raw, judged as nothing.
    Unknown,
}

impl ClaimState {
    /// Every state, in the order of the `state` label of `lagwatch_platform_state`.
    pub const ALL: [ClaimState; 5] = [
        ClaimState::Healthy,
        ClaimState::Error,
        ClaimState::Paused,
        ClaimState::NotRunning,
        ClaimState::Unknown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ClaimState::Healthy => "healthy",
            ClaimState::Error => "error",
            ClaimState::Paused => "paused",
            ClaimState::NotRunning => "not_running",
            ClaimState::Unknown => "unknown",
        }
    }
}

/// What one read of a status surface says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    pub state: ClaimState,
    /// The platform's own words for it, e.g. `syncstate=2 (InProgress)`,
    /// `lastResult.status=transientFailure`, for operators who look there.
    pub raw: String,
    /// The latest instant, on the platform's clock, it says data was synced (written to the
    /// lake, converted to Delta, indexed, refreshed). `None`: it does not say.
    pub last_sync: Option<DateTime<Utc>>,
    /// A version the platform says it has synced up to, in the source's row-version space
    /// (Dataverse `versionnumber`): Dataverse search's watermark, a Delta table's
    /// `maxrecordversion`. `None`: the surface has none.
    pub watermark: Option<u64>,
    /// A count that grows with every sync, for surfaces without a time (Elasticsearch's
    /// `refresh.external_total`); the engine turns an increase between two reads into a sync
    /// between them.
    pub syncs: Option<u64>,
    /// The platform's error message, when it gives one.
    pub detail: Option<String>,
}

/// A status surface of one system, read on the engine's schedule.
#[async_trait]
pub trait StatusReader: Send + Sync + 'static {
    /// The surface's name as configured and as the `surface` label (`synapse_link`, …).
    fn surface(&self) -> &'static str;
    /// One read of the surface (it may take several requests, e.g. profile then table).
    async fn read(&self) -> Result<Claim, ConnectorError>;
}

/// The status surfaces of one built system: a reader for a configured surface, sharing the
/// system's HTTP client, gate and credentials.
pub trait StatusSurfaces: Send + Sync + 'static {
    /// # Errors
    /// Why this system cannot read `surface` (the loader checked the kind offers it, so only
    /// a surface that needs something the system's configuration lacks).
    fn reader(
        &self,
        surface: &crate::config::platform::Surface,
    ) -> Result<std::sync::Arc<dyn StatusReader>, String>;
}
