//! The pluggable roles: a [`Source`] takes sentinel writes, a [`Target`] is read for them, and
//! an [`inventory::Inventory`] lists a table for reconciliation.
//!
//! A connector does exactly one call per method: no sleeping, retrying, polling or timing. The
//! probe engine owns the clock, deadlines and schedules, so every kind is measured the same way.
//! "Not there yet" is a value ([`Lookup::Absent`]), not an error; errors are classified by
//! [`ConnectorError::kind`] into a small fixed set that may be used as a label.

pub mod inventory;
pub mod status;

use std::fmt;
use std::sync::Arc;
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

/// The rows of one record a change-log target has shown, in the target's own order: what
/// `updates: every` (each version arrives once) is checked on.
///
/// Why a count and a window: the log of a record written every few seconds grows without end,
/// so a target keeps only the newest rows, and a reader tells the rows it has not seen yet by
/// how many there have been in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowLog {
    /// How many rows of the record the target has shown since it started reading.
    pub rows: u64,
    /// The payloads of the newest of them (at most [`RowLog::KEPT`]), oldest first; `None`
    /// for a row without content.
    pub recent: std::collections::VecDeque<Option<String>>,
}

impl RowLog {
    /// Rows kept per record: at a canary every 15 s, an hour.
    pub const KEPT: usize = 256;

    /// Appends one row.
    pub fn push(&mut self, payload: Option<String>) {
        if self.recent.len() >= Self::KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(payload);
        self.rows += 1;
    }

    /// The rows after the first `seen` (those a reader that saw `seen` has not), oldest
    /// first; as many of them as are kept. A log shorter than `seen` was started again (the
    /// target forgot the record): all its rows are new.
    pub fn after(&self, seen: u64) -> impl Iterator<Item = Option<&str>> {
        let new = if self.rows < seen {
            self.rows
        } else {
            self.rows - seen
        };
        let new = usize::try_from(new)
            .unwrap_or(usize::MAX)
            .min(self.recent.len());
        self.recent
            .iter()
            .skip(self.recent.len() - new)
            .map(Option::as_deref)
    }
}

/// Why a call failed. Display text may carry server detail; it never carries secrets.
///
/// `Auth` and `Transport` keep the error beneath them, when there is one, as their
/// [`source`](std::error::Error::source): the token service's [`AuthError`] (with its Entra
/// error code), the HTTP client's error (connect, TLS, timeout; without the URL, which may
/// carry a SAS token) or a lake store's. Code that must act on the cause downcasts it rather
/// than parsing the message.
///
/// [`AuthError`]: crate::auth::AuthError
#[derive(Debug, Clone)]
pub enum ConnectorError {
    Throttled { retry_after: Option<Duration> },
    Auth(Cause),
    Transport(Cause),
    Unavailable { status: u16, detail: String },
    BadResponse { status: u16, detail: String },
    Timeout,
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectorError::Throttled { retry_after } => {
                write!(f, "throttled by the system (retry after {retry_after:?})")
            }
            ConnectorError::Auth(c) => write!(f, "authentication failed: {c}"),
            ConnectorError::Transport(c) => write!(f, "transport error: {c}"),
            ConnectorError::Unavailable { status, detail } => {
                write!(f, "system unavailable (HTTP {status}): {detail}")
            }
            ConnectorError::BadResponse { status, detail } => {
                write!(f, "unexpected response (HTTP {status}): {detail}")
            }
            ConnectorError::Timeout => f.write_str("no answer within the request timeout"),
        }
    }
}

impl std::error::Error for ConnectorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectorError::Auth(c) | ConnectorError::Transport(c) => c.error(),
            _ => None,
        }
    }
}

/// What an `Auth` or `Transport` error says (its message, which dereferences to `str`), and
/// the error that caused it, when there is one.
#[derive(Debug, Clone)]
pub struct Cause {
    message: String,
    error: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Cause {
    /// A message of our own, with no error beneath it (an HTTP answer, a bad setting).
    pub fn new(message: impl Into<String>) -> Self {
        Cause {
            message: message.into(),
            error: None,
        }
    }

    /// `message` (which says what `error` means here) over the error that caused it. `error`
    /// must not print secrets: it reaches whoever walks the error's sources.
    pub fn with_error(
        message: impl Into<String>,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Cause {
            message: message.into(),
            error: Some(Arc::new(error)),
        }
    }

    /// The error beneath the message, if any.
    pub fn error(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }

    /// The same cause with another message (the error beneath is kept).
    #[must_use]
    pub fn reworded(self, message: impl Into<String>) -> Self {
        Cause {
            message: message.into(),
            ..self
        }
    }
}

impl std::ops::Deref for Cause {
    type Target = str;

    fn deref(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Cause::new(message)
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        Cause::new(message)
    }
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
        let about_cause = |c: Cause| {
            let m = about(c.message.clone());
            c.reworded(m)
        };
        match self {
            ConnectorError::Auth(c) => ConnectorError::Auth(about_cause(c)),
            ConnectorError::Transport(c) => ConnectorError::Transport(about_cause(c)),
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

/// What a system said when it acknowledged an update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Updated {
    /// The system's own clock when it answered (its `Date` header, whole seconds): the stamp
    /// a last-writer-wins rule on that system's clock would give the change, as far as lagwatch
    /// can see it. F&O data entities share no modified-on field, so the answer's time is the
    /// one stamp every kind has.
    pub server_time: Option<DateTime<Utc>>,
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
    /// Writes the sentinel whether or not its record exists (an upsert), for the update
    /// canary, whose one record is written again with every version, and for conflict
    /// probes, which write one record on both sides of a link. Only called when the kind's
    /// configuration said it can (`SystemSpec::can_update`).
    async fn update(&self, _sentinel: &Sentinel) -> Result<Updated, ConnectorError> {
        Err(ConnectorError::BadResponse {
            status: 0,
            detail: "this kind does not update records".to_string(),
        })
    }
    /// The row version the system gave the sentinel's record (Dataverse `versionnumber`), for
    /// a path whose platform status has a version watermark to compare it with; `None` for a
    /// kind without row versions.
    async fn version_of(&self, _id: &SentinelId) -> Result<Option<u64>, ConnectorError> {
        Ok(None)
    }
    /// Writes `child` as a record that references `parent` (a lookup to it), for a causal pair:
    /// the child is written only after the parent was acknowledged. Only called when the
    /// kind's configuration said it can (`SystemSpec::can_link`).
    async fn write_child(
        &self,
        _child: &Sentinel,
        _parent: &SentinelId,
    ) -> Result<(), ConnectorError> {
        Err(ConnectorError::BadResponse {
            status: 0,
            detail: "this kind does not write records that reference others".to_string(),
        })
    }
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

    /// Whether [`lookup_together`](Self::lookup_together) answers from one read of the
    /// target (one query for every key, one search request, one lake scan), so that what it
    /// says of the keys held at one moment. A causal violation seen in one read is certain;
    /// from separate lookups it is only suspected.
    fn reads_together(&self) -> bool {
        false
    }

    /// Whether the target claims to apply a source's writes in the order they were made (a
    /// change-log lake, which exports a table's changes in order), so a later sentinel seen
    /// before an earlier one is an order inversion. Only asked of kinds that read together.
    fn applies_in_order(&self) -> bool {
        false
    }

    /// Whether the target is a change log that shows every row written for a record, in its
    /// order (a lake of incremental update folders), so [`lookup_log`](Self::lookup_log)
    /// can tell a lost or repeated version from a skipped one.
    fn keeps_versions(&self) -> bool {
        false
    }

    /// Every row of `id` the target has shown, from one read of it (the newest row is what a
    /// lookup would answer). Only called when [`keeps_versions`](Self::keeps_versions) says
    /// the kind can.
    async fn lookup_log(&self, _id: &SentinelId) -> Result<RowLog, ConnectorError> {
        Err(ConnectorError::BadResponse {
            status: 0,
            detail: "this kind does not keep every version of a record".to_string(),
        })
    }

    /// Looks up every sentinel of `ids` in one request, answers in the same order. Only
    /// called when [`reads_together`](Self::reads_together) says the kind can.
    async fn lookup_together(&self, _ids: &[SentinelId]) -> Result<Vec<Lookup>, ConnectorError> {
        Err(ConnectorError::BadResponse {
            status: 0,
            detail: "this kind does not look up several records in one read".to_string(),
        })
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
    fn a_row_log_tells_the_rows_a_reader_has_not_seen() {
        let mut log = RowLog::default();
        for i in 0..(RowLog::KEPT + 4) {
            log.push(Some(i.to_string()));
        }
        let after = |seen| {
            log.after(seen)
                .map(|p| p.unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        let total = RowLog::KEPT as u64 + 4;
        assert_eq!(
            after(total - 2),
            [
                (RowLog::KEPT + 2).to_string(),
                (RowLog::KEPT + 3).to_string()
            ]
        );
        assert!(after(total).is_empty());
        // More new rows than are kept: the kept ones.
        assert_eq!(after(0).len(), RowLog::KEPT);
        assert_eq!(after(0)[0], "4");
        // A reader that saw more than the log holds (the target started again): all new.
        let mut short = RowLog::default();
        short.push(None);
        assert_eq!(short.after(10).count(), 1);
    }

    #[test]
    fn every_error_kind_is_listed_for_the_zero_series() {
        let all = [
            ConnectorError::Throttled { retry_after: None },
            ConnectorError::Auth(Cause::new("")),
            ConnectorError::Transport(Cause::new("")),
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
