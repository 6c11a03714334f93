//! A system's request limits as configured: what `gate` enforces, in the configuration's own
//! vocabulary so that the loader needs nothing from the layers that use them.

use serde::Deserialize;

use super::Dur;

/// Limits of one system. Each kind has defaults (`SystemKind::default_limits`); a system's
/// `limits:` block overrides them key by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests in flight at once (Dataverse allows 52 per user; stay well under).
    pub max_concurrency: u32,
    /// Requests allowed per `per` window (Dataverse allows 6,000 per 5 minutes per user).
    pub requests: u32,
    pub per: Dur,
    /// Pause after a 429 that carries no Retry-After.
    pub default_retry_after: Dur,
    /// Longest pause a Retry-After can impose: a proxy or a bug asking for a day would
    /// otherwise stop monitoring a system for a day. Dataverse's documented penalties are at
    /// most 5 minutes.
    pub max_retry_after: Dur,
}

/// A `limits:` block as written: every key optional, laid over the kind's defaults.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsOverride {
    pub max_concurrency: Option<u32>,
    pub requests: Option<u32>,
    pub per: Option<Dur>,
    pub default_retry_after: Option<Dur>,
    pub max_retry_after: Option<Dur>,
}

impl LimitsOverride {
    pub fn over(self, base: Limits) -> Limits {
        Limits {
            max_concurrency: self.max_concurrency.unwrap_or(base.max_concurrency),
            requests: self.requests.unwrap_or(base.requests),
            per: self.per.unwrap_or(base.per),
            default_retry_after: self.default_retry_after.unwrap_or(base.default_retry_after),
            max_retry_after: self.max_retry_after.unwrap_or(base.max_retry_after),
        }
    }
}

fn default_concurrency() -> u32 {
    8
}
fn default_requests() -> u32 {
    1000
}
fn default_per() -> Dur {
    Dur::secs(300)
}
fn default_retry_after() -> Dur {
    Dur::secs(30)
}
fn default_max_retry_after() -> Dur {
    Dur::secs(900)
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrency: default_concurrency(),
            requests: default_requests(),
            per: default_per(),
            default_retry_after: default_retry_after(),
            max_retry_after: default_max_retry_after(),
        }
    }
}
