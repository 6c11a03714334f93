//! The `auth:` block of any HTTP system: an Entra ID method, or the static credential that
//! some services take instead (an API key, a user and password).
//!
//! Why one block for every kind: users learn one shape, and `method` says which credential it
//! is. Each kind says which methods its service accepts ([`Accepts`]), so a Dataverse system
//! asked to use a password gets a clear error at load time instead of a 401 at run time.
//!
//! ```yaml
//! auth: { method: client_secret, tenant_id: …, client_id: …, client_secret: env:NAME }
//! auth: { method: api_key, key: env:SEARCH_QUERY_KEY }          # header set by the kind
//! auth: { method: api_key, key: file:/run/secrets/k, header: X-Api-Key }
//! auth: { method: basic, username: lagwatch, password: env:ES_PASSWORD }
//! auth: { method: shared_key, account_key: env:LAKE_ACCOUNT_KEY }  # Azure Storage only
//! auth: { method: sas, token: file:/run/secrets/lake-sas }         # Azure Storage only
//! auth: { method: none }
//! ```
//!
//! `shared_key` and `sas` are not headers the HTTP layer can add once: a Shared Key signature
//! covers each request's date, path and query, and a SAS token goes into each URL. The storage
//! kinds apply them per request ([`crate::lake::blob`]); [`Credential::http_auth`] refuses them.

use std::sync::Arc;

use base64::Engine as _;
use reqwest::header::HeaderName;
use serde::Deserialize;
use serde_json::Value;

use super::{Auth, EntraBearer};
use super::{AuthConfig, TokenCache};
use crate::config::{self, Issue, Secret};

/// The Entra ID methods, handled by [`AuthConfig`].
const ENTRA: &[&str] = &[
    "client_secret",
    "client_certificate",
    "workload_identity",
    "managed_identity",
];

/// Which credentials a kind's service takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepts {
    pub entra: bool,
    pub api_key: bool,
    pub basic: bool,
    pub none: bool,
    /// Azure Storage's own credentials: `shared_key` (account key) and `sas`.
    pub storage: bool,
}

impl Accepts {
    /// Dataverse, F&O, Dataverse search: Entra ID only.
    pub const ENTRA: Accepts = Accepts {
        entra: true,
        api_key: false,
        basic: false,
        none: false,
        storage: false,
    };

    /// Azure AI Search: Entra ID or an API key.
    pub const ENTRA_OR_KEY: Accepts = Accepts {
        entra: true,
        api_key: true,
        basic: false,
        none: false,
        storage: false,
    };
    /// Elasticsearch / OpenSearch: an API key, a user and password, or nothing.
    pub const STATIC: Accepts = Accepts {
        entra: false,
        api_key: true,
        basic: true,
        none: true,
        storage: false,
    };
    /// The generic `http` kind: anything.
    pub const ANY: Accepts = Accepts {
        entra: true,
        api_key: true,
        basic: true,
        none: true,
        storage: false,
    };

    /// Azure Storage (the lake kinds): Entra ID, the account key, a SAS token, or nothing (a
    /// container with anonymous read access, an emulator).
    pub const STORAGE: Accepts = Accepts {
        entra: true,
        api_key: false,
        basic: false,
        none: true,
        storage: true,
    };

    fn methods(self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.entra {
            m.extend_from_slice(ENTRA);
        }
        if self.api_key {
            m.push("api_key");
        }
        if self.basic {
            m.push("basic");
        }
        if self.storage {
            m.extend_from_slice(&["shared_key", "sas"]);
        }
        if self.none {
            m.push("none");
        }
        m
    }
}

/// How an API key is sent when the config does not name a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiKeyStyle {
    /// Header name, e.g. `api-key` (Azure AI Search) or `Authorization` (Elasticsearch).
    pub header: &'static str,
    /// Written before the key unless the key already starts with it, e.g. `ApiKey `.
    pub prefix: &'static str,
}

/// A parsed `auth:` block. `Debug` is safe: secrets are redacting [`Secret`]s.
#[derive(Debug, Clone)]
pub enum Credential {
    Entra(AuthConfig),
    ApiKey {
        key: Secret,
        header: Option<String>,
    },
    Basic {
        username: String,
        password: Secret,
    },
    /// An Azure Storage account key (base64, checked at load time).
    SharedKey {
        account_key: Secret,
    },
    /// An Azure Storage SAS token, normalised to `sv=…&sig=…` (no leading `?`).
    Sas {
        token: Secret,
    },
    None,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyBlock {
    #[allow(dead_code)]
    method: String,
    /// `env:NAME` or `file:/path`.
    key: Secret,
    header: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicBlock {
    #[allow(dead_code)]
    method: String,
    username: String,
    password: Secret,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedKeyBlock {
    #[allow(dead_code)]
    method: String,
    /// `env:NAME` or `file:/path`: key1 or key2 of the storage account.
    account_key: Secret,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SasBlock {
    #[allow(dead_code)]
    method: String,
    /// `env:NAME` or `file:/path`: the token, `sv=…&sig=…`, with or without a leading `?`.
    token: Secret,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoneBlock {
    #[allow(dead_code)]
    method: String,
}

impl Credential {
    /// Types and checks an `auth:` block found at `key` (`systems.search.auth`) for a kind
    /// whose service takes `accepts`.
    ///
    /// # Errors
    /// An [`Issue`] naming the key: a missing or unknown method, one the kind does not take,
    /// or what the method's own settings lack.
    pub fn decode(key: &str, value: Value, accepts: Accepts) -> Result<Credential, Issue> {
        let allowed = accepts.methods();
        let method = match value.get("method") {
            Some(Value::String(m)) => m.clone(),
            Some(_) => {
                return Err(Issue::new(
                    format!("{key}.method"),
                    "the method must be a string",
                ));
            }
            None if value.is_object() => {
                return Err(Issue::new(
                    format!("{key}.method"),
                    format!(
                        "required key is missing; the methods this kind takes are: {}",
                        allowed.join(", ")
                    ),
                ));
            }
            None => {
                return Err(Issue::new(
                    key,
                    "auth must be a mapping with a method, such as method: client_secret",
                ));
            }
        };
        if !allowed.contains(&method.as_str()) {
            let known = ENTRA.contains(&method.as_str())
                || matches!(
                    method.as_str(),
                    "api_key" | "basic" | "none" | "shared_key" | "sas"
                );
            let why = if known {
                format!("this kind does not take method {method}")
            } else {
                format!("unknown method \"{method}\"")
            };
            return Err(Issue::new(
                format!("{key}.method"),
                format!("{why}; the methods it takes are: {}", allowed.join(", ")),
            ));
        }
        match method.as_str() {
            "api_key" => {
                let b: ApiKeyBlock = config::decode(key, value)?;
                if let Some(h) = &b.header
                    && HeaderName::from_bytes(h.as_bytes()).is_err()
                {
                    return Err(Issue::new(
                        format!("{key}.header"),
                        format!("\"{h}\" is not a valid header name"),
                    ));
                }
                if b.key.is_resolved() && b.key.expose().trim().is_empty() {
                    return Err(Issue::new(
                        format!("{key}.key"),
                        format!("the key read from {} is empty", b.key.reference()),
                    ));
                }
                Ok(Credential::ApiKey {
                    key: b.key,
                    header: b.header,
                })
            }
            "basic" => {
                let b: BasicBlock = config::decode(key, value)?;
                if b.username.is_empty() || b.username.contains(':') {
                    return Err(Issue::new(
                        format!("{key}.username"),
                        "a user name must be non-empty and cannot contain ':'",
                    ));
                }
                Ok(Credential::Basic {
                    username: b.username,
                    password: b.password,
                })
            }
            "none" => {
                let _: NoneBlock = config::decode(key, value)?;
                Ok(Credential::None)
            }
            "shared_key" => {
                let b: SharedKeyBlock = config::decode(key, value)?;
                if !b.account_key.is_resolved() {
                    return Ok(Credential::SharedKey {
                        account_key: b.account_key,
                    });
                }
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(b.account_key.expose().trim())
                    .unwrap_or_default();
                if decoded.is_empty() {
                    return Err(Issue::new(
                        format!("{key}.account_key"),
                        format!(
                            "the key read from {} is not a base64 account key (key1 or key2 \
                             under the storage account's Access keys)",
                            b.account_key.reference()
                        ),
                    ));
                }
                Ok(Credential::SharedKey {
                    account_key: b.account_key,
                })
            }
            "sas" => {
                let b: SasBlock = config::decode(key, value)?;
                if !b.token.is_resolved() {
                    return Ok(Credential::Sas { token: b.token });
                }
                let token = sas_token(b.token.expose()).map_err(|why| {
                    Issue::new(
                        format!("{key}.token"),
                        format!("the token read from {} {why}", b.token.reference()),
                    )
                })?;
                Ok(Credential::Sas {
                    token: Secret::runtime(token, b.token.reference()),
                })
            }
            _ => {
                let c: AuthConfig = config::decode(key, value)?;
                c.validate(key)?;
                Ok(Credential::Entra(c))
            }
        }
    }

    /// The method name, for `check-config` output.
    pub fn method(&self) -> &'static str {
        match self {
            Credential::Entra(c) => c.method.as_str(),
            Credential::ApiKey { .. } => "api_key",
            Credential::Basic { .. } => "basic",
            Credential::SharedKey { .. } => "shared_key",
            Credential::Sas { .. } => "sas",
            Credential::None => "none",
        }
    }

    /// What the HTTP layer sends. `scope` is asked for only by Entra methods (it may fail for
    /// a URL it cannot be derived from); `style` says how a key without its own header goes.
    ///
    /// # Errors
    /// An [`Issue`] at `key` when the token source cannot be built or the scope derived.
    pub fn http_auth(
        &self,
        key: &str,
        http: reqwest::Client,
        scope: impl FnOnce() -> Result<String, Issue>,
        style: Option<ApiKeyStyle>,
    ) -> Result<Auth, Issue> {
        match self {
            Credential::Entra(c) => {
                let source = super::build(c, http).map_err(|e| Issue::new(key, e.to_string()))?;
                let bearer = EntraBearer::new(TokenCache::new(source), scope()?);
                Ok(Auth::Bearer(Arc::new(bearer)))
            }
            Credential::ApiKey { key: k, header } => {
                let (name, value) = match (header, style) {
                    (Some(h), _) => (h.as_str(), k.clone()),
                    (None, Some(s)) => {
                        let v = if k.expose().starts_with(s.prefix) {
                            k.clone()
                        } else {
                            Secret::runtime(format!("{}{}", s.prefix, k.expose()), k.reference())
                        };
                        (s.header, v)
                    }
                    (None, None) => {
                        return Err(Issue::new(
                            format!("{key}.header"),
                            "say which header carries the key, e.g. header: X-Api-Key",
                        ));
                    }
                };
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    Issue::new(
                        format!("{key}.header"),
                        format!("\"{name}\" is not a valid header name"),
                    )
                })?;
                Ok(Auth::Header { name, value })
            }
            Credential::Basic { username, password } => Ok(Auth::Basic {
                user: username.clone(),
                password: password.clone(),
            }),
            Credential::SharedKey { .. } | Credential::Sas { .. } => Err(Issue::new(
                format!("{key}.method"),
                format!(
                    "{} is applied to each request by the storage kinds; this kind cannot use it",
                    self.method()
                ),
            )),
            Credential::None => Ok(Auth::None),
        }
    }
}

/// A SAS token as written in a secret (`?sv=…&sig=…` or `sv=…&sig=…`), normalised without the
/// `?`; the reason (never quoting the token) when it is not one.
fn sas_token(raw: &str) -> Result<String, &'static str> {
    let t = raw.trim();
    if t.contains("://") {
        return Err("is a URL; give only the SAS token, the part after the ?");
    }
    let t = t.strip_prefix('?').unwrap_or(t);
    if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c == '#') {
        return Err("is not a SAS token (sv=…&sig=…, without spaces)");
    }
    let names: Vec<&str> = t
        .split('&')
        .map(|kv| kv.split_once('=').map_or(kv, |(k, _)| k))
        .collect();
    if !names.contains(&"sig") || !names.contains(&"sv") {
        return Err("is not a SAS token: it needs at least sv= and sig=");
    }
    Ok(t.to_string())
}

/// The `auth:` field of a kind's config struct. Serde keeps the block as written; the kind's
/// `decode` then calls [`AuthBlock::resolve`] with the block's key, so every error inside it
/// carries the full key path (`systems.search.auth.key`), which serde alone could not give.
#[derive(Clone, Default)]
pub struct AuthBlock {
    raw: Value,
    credential: Option<Credential>,
}

impl<'de> Deserialize<'de> for AuthBlock {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(AuthBlock {
            raw: Value::deserialize(d)?,
            credential: None,
        })
    }
}

/// Only the resolved credential (which redacts its secrets), never the block as written.
impl std::fmt::Debug for AuthBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AuthBlock").field(&self.credential).finish()
    }
}

impl AuthBlock {
    /// Types the block found at `key` for a kind whose service takes `accepts`.
    ///
    /// # Errors
    /// As [`Credential::decode`].
    pub fn resolve(&mut self, key: &str, accepts: Accepts) -> Result<&Credential, Issue> {
        let credential = Credential::decode(key, self.raw.clone(), accepts)?;
        Ok(self.credential.insert(credential))
    }

    /// The credential, once [`AuthBlock::resolve`] succeeded.
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    /// The method name for `check-config` output (`?` before resolution).
    pub fn method(&self) -> &'static str {
        self.credential.as_ref().map_or("?", Credential::method)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SEARCH: Accepts = Accepts::ENTRA_OR_KEY;

    fn err(v: Value, accepts: Accepts) -> String {
        match Credential::decode("systems.s.auth", v, accepts) {
            Err(i) => format!("{}: {}", i.key, i.reason),
            Ok(c) => panic!("accepted {c:?}"),
        }
    }

    #[test]
    fn methods_a_kind_does_not_take_are_named() {
        assert_eq!(
            err(
                json!({"method":"basic","username":"u","password":"env:PATH"}),
                Accepts::ENTRA
            ),
            "systems.s.auth.method: this kind does not take method basic; the methods it \
             takes are: client_secret, client_certificate, workload_identity, managed_identity"
        );
        assert_eq!(
            err(json!({"method":"apikey"}), SEARCH),
            "systems.s.auth.method: unknown method \"apikey\"; the methods it takes are: \
             client_secret, client_certificate, workload_identity, managed_identity, api_key"
        );
        assert!(err(json!({}), SEARCH).starts_with("systems.s.auth.method: required key"));
        assert!(
            err(
                json!({"method":"api_key","key":"env:PATH","user":"x"}),
                SEARCH
            )
            .starts_with("systems.s.auth.user: unknown key")
        );
    }

    /// A secret file holding `text`, as a `file:` reference.
    fn secret_file(text: &str) -> String {
        let path = std::env::temp_dir().join(format!(
            "lagwatch-cred-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::write(&path, text).unwrap();
        format!("file:{}", path.display())
    }

    #[test]
    fn storage_methods_only_where_accepted_and_checked_at_load() {
        let store = Accepts::STORAGE;
        assert_eq!(
            err(json!({"method":"basic"}), store),
            "systems.s.auth.method: this kind does not take method basic; the methods it \
             takes are: client_secret, client_certificate, workload_identity, managed_identity, \
             shared_key, sas, none"
        );
        assert_eq!(
            err(json!({"method":"sas","token":"env:PATH"}), SEARCH),
            "systems.s.auth.method: this kind does not take method sas; the methods it takes \
             are: client_secret, client_certificate, workload_identity, managed_identity, api_key"
        );
        let bad_key = secret_file("not base64!");
        assert!(
            err(json!({"method":"shared_key","account_key": bad_key}), store)
                .starts_with("systems.s.auth.account_key: the key read from file:")
        );
        assert!(
            err(json!({"method":"shared_key","key":"env:PATH"}), store).starts_with(
                "systems.s.auth.key: unknown key; the keys allowed here are: method, account_key"
            )
        );
        let key = secret_file("RGV2ZWxvcG1lbnQga2V5\n");
        let c = Credential::decode(
            "k",
            json!({"method":"shared_key","account_key": key}),
            store,
        )
        .unwrap();
        assert_eq!(c.method(), "shared_key");
        assert!(
            c.http_auth("k", reqwest::Client::new(), || unreachable!(), None)
                .is_err()
        );

        for (token, why) in [
            (
                "https://a.blob.core.windows.net/c?sv=1&sig=SECRETSIG",
                "is a URL",
            ),
            ("sv=2024-11-04&sp=rl", "needs at least sv= and sig="),
            ("sv=1&sig=SECRET SIG", "is not a SAS token"),
        ] {
            let e = err(json!({"method":"sas","token": secret_file(token)}), store);
            assert!(
                e.starts_with("systems.s.auth.token: the token read from file:"),
                "{e}"
            );
            assert!(e.contains(why) && !e.contains("SECRET"), "{e}");
        }
        let c = Credential::decode(
            "k",
            json!({"method":"sas","token": secret_file("?sv=2024-11-04&ss=b&sig=abc%3D\n")}),
            store,
        )
        .unwrap();
        let Credential::Sas { token } = &c else {
            panic!("{c:?}")
        };
        assert_eq!(token.expose(), "sv=2024-11-04&ss=b&sig=abc%3D");
        assert!(!format!("{c:?}").contains("abc"));
    }

    #[test]
    fn api_keys_take_the_kind_header_and_prefix_unless_told_otherwise() {
        let es = ApiKeyStyle {
            header: "Authorization",
            prefix: "ApiKey ",
        };
        let c = Credential::ApiKey {
            key: Secret::runtime("abc", "test"),
            header: None,
        };
        let auth = c
            .http_auth("k", reqwest::Client::new(), || unreachable!(), Some(es))
            .expect("auth");
        let Auth::Header { name, value } = auth else {
            panic!("{auth:?}")
        };
        assert_eq!(
            (name.as_str(), value.expose()),
            ("authorization", "ApiKey abc")
        );
        let c = Credential::ApiKey {
            key: Secret::runtime("ApiKey abc", "test"),
            header: None,
        };
        let Auth::Header { value, .. } = c
            .http_auth("k", reqwest::Client::new(), || unreachable!(), Some(es))
            .expect("auth")
        else {
            panic!()
        };
        assert_eq!(value.expose(), "ApiKey abc");
        let c = Credential::ApiKey {
            key: Secret::runtime("abc", "test"),
            header: Some("X-Api-Key".into()),
        };
        let Auth::Header { name, value } = c
            .http_auth("k", reqwest::Client::new(), || unreachable!(), Some(es))
            .expect("auth")
        else {
            panic!()
        };
        assert_eq!((name.as_str(), value.expose()), ("x-api-key", "abc"));
    }
}
