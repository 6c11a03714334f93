//! HTTP basic auth against the bcrypt hashes of `basic_auth_users`, and the response headers
//! of `http_server_config.headers`, as one axum middleware.
//!
//! bcrypt is slow on purpose (tens of milliseconds at cost 10), too slow to pay on every
//! scrape: a successful check is remembered under a SHA-256 of user, hash and password, as
//! exporter-toolkit does. The hash is part of the key, so changing a user's hash in the file
//! forgets the old password at once; removing the user does too, since the user is looked up
//! in the file before the cache is. Failures are never remembered. The password is never
//! logged.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::{WebConfig, WebSecurity};

/// Paths answered without credentials: Kubernetes probes cannot easily send them, and these
/// say no more than "alive" and how many paths are probing.
pub const OPEN_PATHS: &[&str] = &["/healthz", "/readyz"];

/// Most remembered successes; the set is emptied when full (a handful of scrapers fit).
const CACHE_CAPACITY: usize = 1024;

/// Remembered successful verifications.
#[derive(Debug, Default)]
pub struct Cache {
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl Cache {
    fn key(user: &str, hash: &str, password: &str) -> [u8; 32] {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for part in [user, hash, password] {
            // Length-prefixed, so no two different triples hash the same bytes.
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let mut out = [0; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}

/// `Authorization: Basic …` as (user, password).
fn credentials(request: &Request) -> Option<(String, String)> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Whether `user` and `password` match `config`. Blocking (bcrypt).
fn verify(config: &WebConfig, cache: &Cache, user: &str, password: &str) -> bool {
    let Some(hash) = config.users.get(user) else {
        // Spend the time of a real check (against some configured user's hash, at its cost;
        // the result is ignored), so response times do not tell which user names exist.
        if let Some(decoy) = config.users.values().next() {
            let _ = bcrypt::verify(password, decoy);
        }
        return false;
    };
    let key = Cache::key(user, hash, password);
    if cache
        .verified
        .lock()
        .expect("auth cache poisoned")
        .contains(&key)
    {
        return true;
    }
    let ok = bcrypt::verify(password, hash).unwrap_or(false);
    if ok {
        let mut verified = cache.verified.lock().expect("auth cache poisoned");
        if verified.len() >= CACHE_CAPACITY {
            verified.clear();
        }
        verified.insert(key);
    }
    ok
}

enum Decision {
    /// Answer, adding the headers of this file (none when the file is broken and the path
    /// is open).
    Allow(Option<WebConfig>),
    Deny(WebConfig),
    Broken,
}

/// The middleware: reads the web-config file, checks credentials unless the path is open,
/// adds the configured headers.
pub async fn layer(State(web): State<Arc<WebSecurity>>, request: Request, next: Next) -> Response {
    let open = OPEN_PATHS.contains(&request.uri().path());
    let creds = credentials(&request);
    let checker = web.clone();
    let decision = tokio::task::spawn_blocking(move || {
        let config = match checker.current() {
            Ok(c) => c,
            // Liveness and readiness are about the process, not this file: a probe that
            // failed over it would restart a pod into a start-up that refuses the file.
            Err(_) if open => return Decision::Allow(None),
            Err(e) => {
                tracing::error!(error = %e, "The web config is invalid now: answering 500 until it is fixed.");
                return Decision::Broken;
            }
        };
        if open || !config.requires_auth() {
            return Decision::Allow(Some(config));
        }
        match creds {
            Some((user, password)) if verify(&config, &checker.cache, &user, &password) => {
                Decision::Allow(Some(config))
            }
            _ => Decision::Deny(config),
        }
    })
    .await
    .unwrap_or(Decision::Broken);
    let (mut response, config) = match decision {
        Decision::Allow(config) => (next.run(request).await, config),
        Decision::Deny(config) => {
            let mut response = (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"lagwatch\", charset=\"UTF-8\""),
            );
            (response, Some(config))
        }
        Decision::Broken => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the web config file is invalid; see the log\n",
            )
                .into_response();
        }
    };
    for (name, value) in config.map(|c| c.headers).unwrap_or_default() {
        response.headers_mut().insert(name, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(user: &str, password: &str) -> WebConfig {
        WebConfig {
            tls: None,
            users: BTreeMap::from([(user.to_string(), bcrypt::hash(password, 4).unwrap())]),
            headers: Vec::new(),
        }
    }

    #[test]
    fn verifies_and_remembers_only_successes() {
        let cache = Cache::default();
        let c = config("alice", "s3cret");
        assert!(!verify(&c, &cache, "alice", "wrong"));
        assert!(!verify(&c, &cache, "bob", "s3cret"));
        assert!(cache.verified.lock().unwrap().is_empty());
        assert!(verify(&c, &cache, "alice", "s3cret"));
        assert_eq!(cache.verified.lock().unwrap().len(), 1);
        assert!(verify(&c, &cache, "alice", "s3cret"));
        // A new hash for the same password is a new key: the old success does not carry over.
        let rotated = config("alice", "other");
        assert!(!verify(&rotated, &cache, "alice", "s3cret"));
    }

    #[test]
    fn cache_keys_separate_the_parts() {
        assert_ne!(Cache::key("ab", "h", "c"), Cache::key("a", "h", "bc"));
    }
}
