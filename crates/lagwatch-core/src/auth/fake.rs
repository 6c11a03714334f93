//! A token source for tests of other modules: no network, counted fetches, scripted failures.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{AccessToken, AuthError, TokenSource};

/// Issues `"{prefix}-{n}"` tokens valid for a fixed lifetime, counts fetches per scope, and
/// returns queued errors first. An optional delay (tokio time, so paused-time tests control
/// it) makes concurrent callers overlap.
#[derive(Debug)]
pub struct StaticTokenSource {
    prefix: String,
    lifetime: Duration,
    delay: Duration,
    issued: AtomicUsize,
    fetches: Mutex<HashMap<String, usize>>,
    failures: Mutex<VecDeque<AuthError>>,
}

impl StaticTokenSource {
    /// Tokens `static-token-1`, `static-token-2`, … valid for `lifetime` each.
    pub fn new(lifetime: Duration) -> Self {
        Self::with_prefix("static-token", lifetime)
    }

    pub fn with_prefix(prefix: &str, lifetime: Duration) -> Self {
        StaticTokenSource {
            prefix: prefix.to_string(),
            lifetime,
            delay: Duration::ZERO,
            issued: AtomicUsize::new(0),
            fetches: Mutex::new(HashMap::new()),
            failures: Mutex::new(VecDeque::new()),
        }
    }

    /// Every fetch takes this long before answering.
    #[must_use]
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The next fetch fails with `error` (queued in order).
    pub fn fail_next(&self, error: AuthError) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(error);
    }

    /// Fetches so far, over all scopes (failed ones included).
    pub fn fetches(&self) -> usize {
        self.counts().values().sum()
    }

    /// Fetches so far for one scope.
    pub fn fetches_for(&self, scope: &str) -> usize {
        self.counts().get(scope).copied().unwrap_or(0)
    }

    fn counts(&self) -> HashMap<String, usize> {
        self.fetches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl TokenSource for StaticTokenSource {
    async fn fetch(&self, scope: &str) -> Result<AccessToken, AuthError> {
        *self
            .fetches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(scope.to_string())
            .or_default() += 1;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let failure = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front();
        if let Some(error) = failure {
            return Err(error);
        }
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(AccessToken::new(
            format!("{}-{n}", self.prefix),
            Instant::now() + self.lifetime,
        ))
    }
}
