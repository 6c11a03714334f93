//! One token per scope, renewed before it expires, one renewal at a time.
//!
//! - A cached token is handed out until `REFRESH_MARGIN` (5 minutes) before it expires, or
//!   half its lifetime for tokens shorter than 10 minutes, so a short-lived token is not
//!   refetched on every call. Entra tokens live 60 to 90 minutes.
//! - Renewals of one scope are serialised by a per-scope `tokio::sync::Mutex`. Callers that
//!   waited for a renewal take its outcome, the new token or its error, instead of sending
//!   their own request: a wave of N callers costs one token request, even when it fails.
//! - If a renewal fails while the current token is still valid, the current token keeps being
//!   used (with a warning) and the renewal is tried again after `RETRY_AFTER_FAILED_REFRESH`:
//!   a short Entra outage inside the margin costs nothing.
//! - [`TokenCache::invalidate`] after a `401` drops the token only if it is still the one that
//!   was refused, so concurrent 401s of one wave cause one refetch, not one each.
//!
//! Time is `tokio::time::Instant`, so tests drive expiry with paused time.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{AccessToken, AuthError, TokenSource};

/// Renew this long before expiry.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// After a failed early renewal, keep the current token this long before trying again.
pub const RETRY_AFTER_FAILED_REFRESH: Duration = Duration::from_secs(10);

/// A per-scope token cache in front of a [`TokenSource`]. Cloning shares the cache.
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

struct Inner {
    source: Arc<dyn TokenSource>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    /// Held while a renewal is in flight.
    refresh: tokio::sync::Mutex<()>,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    cached: Option<Cached>,
    /// Finished fetch attempts; a waiter that sees it change shares that attempt's outcome.
    attempts: u64,
    last_error: Option<AuthError>,
    /// After a failed early renewal: no new attempt before this.
    retry_not_before: Option<Instant>,
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SlotState {
    /// A token that needs no renewal now.
    fn usable(&self, now: Instant) -> Option<AccessToken> {
        let c = self.cached.as_ref()?;
        let holding_off = self.retry_not_before.is_some_and(|t| now < t);
        (now < c.refresh_at || (holding_off && now < c.token.expires_at())).then(|| c.token.clone())
    }

    /// A token that the service still accepts, renewal due or not.
    fn valid(&self, now: Instant) -> Option<AccessToken> {
        self.cached
            .as_ref()
            .filter(|c| now < c.token.expires_at())
            .map(|c| c.token.clone())
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scopes: Vec<String> = lock(&self.inner.slots).keys().cloned().collect();
        f.debug_struct("TokenCache")
            .field("scopes", &scopes)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    pub fn new(source: Arc<dyn TokenSource>) -> Self {
        TokenCache {
            inner: Arc::new(Inner {
                source,
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn slot(&self, scope: &str) -> Arc<Slot> {
        lock(&self.inner.slots)
            .entry(scope.to_string())
            .or_default()
            .clone()
    }

    /// A token for `scope`: the cached one, or a fresh one if it is due for renewal.
    ///
    /// # Errors
    /// The [`AuthError`] of the fetch this call made or waited for, when no valid token is
    /// cached.
    pub async fn token(&self, scope: &str) -> Result<AccessToken, AuthError> {
        let slot = self.slot(scope);
        let seen = {
            let st = lock(&slot.state);
            if let Some(token) = st.usable(Instant::now()) {
                return Ok(token);
            }
            st.attempts
        };
        let _renewing = slot.refresh.lock().await;
        {
            let st = lock(&slot.state);
            let now = Instant::now();
            if let Some(token) = st.usable(now) {
                return Ok(token);
            }
            if st.attempts != seen {
                // A renewal finished while this caller waited: take its outcome.
                if let Some(token) = st.valid(now) {
                    return Ok(token);
                }
                if let Some(error) = &st.last_error {
                    return Err(error.clone());
                }
            }
        }
        let fetched = self.inner.source.fetch(scope).await;
        let mut st = lock(&slot.state);
        st.attempts += 1;
        let now = Instant::now();
        match fetched {
            Ok(token) => {
                let lifetime = token.expires_at().saturating_duration_since(now);
                let margin = REFRESH_MARGIN.min(lifetime / 2);
                tracing::debug!(
                    scope,
                    valid_for_s = lifetime.as_secs(),
                    "cached a new token"
                );
                st.cached = Some(Cached {
                    refresh_at: token.expires_at() - margin,
                    token: token.clone(),
                });
                st.last_error = None;
                st.retry_not_before = None;
                Ok(token)
            }
            Err(error) => {
                st.last_error = Some(error.clone());
                if let Some(token) = st.valid(now) {
                    st.retry_not_before = Some(now + RETRY_AFTER_FAILED_REFRESH);
                    tracing::warn!(
                        scope,
                        error = %error,
                        valid_for_s = token.remaining().as_secs(),
                        "token renewal failed; the current token is used until it expires"
                    );
                    Ok(token)
                } else {
                    tracing::warn!(scope, error = %error, kind = error.kind(), "cannot get a token");
                    Err(error)
                }
            }
        }
    }

    /// Forgets the token of `scope` if it is still `token_value` (the one a service just
    /// refused with 401), so the next [`TokenCache::token`] fetches a new one. A token that was
    /// already replaced stays: one 401 wave causes one refetch.
    pub fn invalidate(&self, scope: &str, token_value: &str) {
        let Some(slot) = lock(&self.inner.slots).get(scope).cloned() else {
            return;
        };
        let mut st = lock(&slot.state);
        if st
            .cached
            .as_ref()
            .is_some_and(|c| c.token.expose() == token_value)
        {
            st.cached = None;
            st.retry_not_before = None;
            tracing::debug!(scope, "dropped a refused token");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::StaticTokenSource;

    fn failure() -> AuthError {
        AuthError::Transport {
            endpoint: "test".into(),
            message: "down".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn short_tokens_renew_at_half_life() {
        let source = Arc::new(StaticTokenSource::new(Duration::from_secs(120)));
        let cache = TokenCache::new(source.clone());
        cache.token("s").await.unwrap();
        tokio::time::advance(Duration::from_secs(59)).await;
        cache.token("s").await.unwrap();
        assert_eq!(source.fetches(), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.token("s").await.unwrap().expose(), "static-token-2");
    }

    #[tokio::test(start_paused = true)]
    async fn failed_renewal_keeps_the_valid_token_and_holds_off() {
        let source = Arc::new(StaticTokenSource::new(Duration::from_secs(3600)));
        let cache = TokenCache::new(source.clone());
        let first = cache.token("s").await.unwrap();
        tokio::time::advance(Duration::from_secs(3400)).await; // inside the margin
        source.fail_next(failure());
        assert_eq!(cache.token("s").await.unwrap(), first);
        assert_eq!(cache.token("s").await.unwrap(), first, "held off");
        assert_eq!(source.fetches(), 2);
        tokio::time::advance(RETRY_AFTER_FAILED_REFRESH).await;
        assert_eq!(cache.token("s").await.unwrap().expose(), "static-token-2");
        assert_eq!(source.fetches(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_share_a_failure() {
        let source = Arc::new(
            StaticTokenSource::new(Duration::from_secs(3600)).with_delay(Duration::from_secs(1)),
        );
        source.fail_next(failure());
        let cache = TokenCache::new(source.clone());
        let calls: Vec<_> = (0..10)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.token("s").await })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap_err().kind(), "transport");
        }
        assert_eq!(source.fetches(), 1);
        // A later call tries again.
        assert!(cache.token("s").await.is_ok());
        assert_eq!(source.fetches(), 2);
    }

    #[tokio::test]
    async fn scopes_are_independent_and_debug_shows_no_token() {
        let source = Arc::new(StaticTokenSource::new(Duration::from_secs(3600)));
        let cache = TokenCache::new(source.clone());
        let a = cache.token("a").await.unwrap();
        let b = cache.token("b").await.unwrap();
        assert_ne!(a, b);
        assert_eq!((source.fetches_for("a"), source.fetches_for("b")), (1, 1));
        cache.invalidate("a", "not-the-token");
        cache.invalidate("zzz", a.expose());
        assert_eq!(cache.token("a").await.unwrap(), a);
        let debug = format!("{cache:?}");
        assert!(!debug.contains("static-token"), "{debug}");
    }
}
