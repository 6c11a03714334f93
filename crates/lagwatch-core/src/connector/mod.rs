//! The pluggable roles: a [`Source`] takes sentinel writes, a [`Target`] is read for them, and
//! an [`inventory::Inventory`] lists a table for reconciliation.
//!
//! A connector does exactly one call per method: no sleeping, retrying, polling or timing. The
//! probe engine owns the clock, deadlines and schedules, so every kind is measured the same way.
//! "Not there yet" is a value ([`Lookup::Absent`]), not an error; errors are classified by
//! [`ConnectorError::kind`] into a small fixed set that may be used as a label.

pub mod inventory;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::sentinel::{Sentinel, SentinelId};

/// What one read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Absent,
    /// Found. `payload` is the content as stored, if the system returns it.
    Present {
        payload: Option<String>,
    },
}

/// Why a call failed. Display text may carry server detail; it never carries secrets.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    #[error("throttled by the system (retry after {retry_after:?})")]
    Throttled { retry_after: Option<Duration> },
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("transport error: {0}")]
    Transport(String),
    #[error("system unavailable (HTTP {status}): {detail}")]
    Unavailable { status: u16, detail: String },
    #[error("unexpected response (HTTP {status}): {detail}")]
    BadResponse { status: u16, detail: String },
    #[error("no answer within the request timeout")]
    Timeout,
}

impl ConnectorError {
    /// Bounded label value: `throttled`, `auth`, `transport`, `unavailable`, `bad_response`,
    /// `timeout`.
    /// Every value [`kind`](Self::kind) can take, so the error series exist at 0 from start-up.
    pub const KINDS: [&'static str; 6] = [
        "throttled",
        "auth",
        "transport",
        "unavailable",
        "bad_response",
        "timeout",
    ];

    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorError::Throttled { .. } => "throttled",
            ConnectorError::Auth(_) => "auth",
            ConnectorError::Transport(_) => "transport",
            ConnectorError::Unavailable { .. } => "unavailable",
            ConnectorError::BadResponse { .. } => "bad_response",
            ConnectorError::Timeout => "timeout",
        }
    }

    /// The same error with `what` (the request, a lake path) before its message: `{what}:
    /// {message}`. Kind and status stay; `Throttled` and `Timeout` carry no message and are
    /// returned as they are, as is every error when `what` is empty.
    #[must_use]
    pub fn context(self, what: &str) -> ConnectorError {
        if what.is_empty() {
            return self;
        }
        let about = |m: String| format!("{what}: {m}");
        match self {
            ConnectorError::Auth(m) => ConnectorError::Auth(about(m)),
            ConnectorError::Transport(m) => ConnectorError::Transport(about(m)),
            ConnectorError::Unavailable { status, detail } => ConnectorError::Unavailable {
                status,
                detail: about(detail),
            },
            ConnectorError::BadResponse { status, detail } => ConnectorError::BadResponse {
                status,
                detail: about(detail),
            },
            e @ (ConnectorError::Throttled { .. } | ConnectorError::Timeout) => e,
        }
    }

    /// HTTP status class for `lagwatch_requests_total{status}`.
    pub fn status_class(&self) -> &'static str {
        match self {
            ConnectorError::Throttled { .. } => "4xx",
            ConnectorError::Auth(_) => "4xx",
            ConnectorError::Transport(_) | ConnectorError::Timeout => "transport_error",
            ConnectorError::Unavailable { status, .. }
            | ConnectorError::BadResponse { status, .. } => status_class(*status),
        }
    }
}

/// Maps an HTTP status to its class label.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// A system sentinels are written into.
#[async_trait]
pub trait Source: Send + Sync + 'static {
    /// Writes the sentinel once and returns when the system acknowledged it. The engine
    /// timestamps around this call.
    async fn write(&self, sentinel: &Sentinel) -> Result<(), ConnectorError>;
    /// Reads the sentinel back from the source itself (read-your-own-writes check).
    async fn read(&self, id: &SentinelId) -> Result<Lookup, ConnectorError>;
    /// Deletes the sentinel; deleting one that is already gone is not an error.
    async fn delete(&self, id: &SentinelId) -> Result<(), ConnectorError>;
    /// Sentinels whose key starts with `prefix` written before `before`, for the start-up sweep.
    async fn list_own(
        &self,
        prefix: &str,
        before: DateTime<Utc>,
    ) -> Result<Vec<SentinelId>, ConnectorError>;
}

/// A system sentinels are looked up in.
#[async_trait]
pub trait Target: Send + Sync + 'static {
    /// Exactly one lookup.
    async fn lookup(&self, id: &SentinelId) -> Result<Lookup, ConnectorError>;

    /// For a target that replication writes in the same transaction as the source (dual-write
    /// while its map runs): how long after the source acknowledged a sentinel it may still be
    /// missing. Missing later means the replication is not running, which the engine reports
    /// as its own outcome (`halted`) instead of a lag. `None`: an asynchronous target, where
    /// missing only ever means "not yet".
    fn synchronous_within(&self) -> Option<std::time::Duration> {
        None
    }

    /// Whether the target records when its own pipeline applied a record (a lake's
    /// `SinkCreatedOn`), so `applied_at` is worth asking and the apply-lag series exist.
    fn records_apply_time(&self) -> bool {
        false
    }

    /// When the target's pipeline applied the sentinel, by the target's clock, if it recorded
    /// it; asked once after a lookup found the sentinel. No call to the system.
    async fn applied_at(&self, _id: &SentinelId) -> Option<DateTime<Utc>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_is_listed_for_the_zero_series() {
        let all = [
            ConnectorError::Throttled { retry_after: None },
            ConnectorError::Auth(String::new()),
            ConnectorError::Transport(String::new()),
            ConnectorError::Unavailable {
                status: 503,
                detail: String::new(),
            },
            ConnectorError::BadResponse {
                status: 200,
                detail: String::new(),
            },
            ConnectorError::Timeout,
        ];
        let kinds: Vec<&str> = all.iter().map(ConnectorError::kind).collect();
        assert_eq!(kinds, ConnectorError::KINDS);
    }
}
