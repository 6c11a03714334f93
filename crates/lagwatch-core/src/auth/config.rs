//! The `auth:` block of a system: which credential, and its settings.
//!
//! A flat mapping with a `method` and the settings of that method, so every mistake gets a key
//! path: unknown keys are rejected by serde, and [`AuthConfig::validate`] names the key that a
//! method is missing or does not use.
//!
//! ```yaml
//! auth:                                  # an app registration with a secret
//!   method: client_secret
//!   tenant_id: 00000000-0000-0000-0000-000000000001
//!   client_id: 11111111-2222-3333-4444-555555555555
//!   client_secret: env:LAGWATCH_CLIENT_SECRET   # or file:/run/secrets/entra
//!   authority: https://login.microsoftonline.com  # optional; http allowed for emulators
//!
//! auth:                                  # an app registration with a certificate
//!   method: client_certificate
//!   tenant_id: 00000000-0000-0000-0000-000000000001
//!   client_id: 11111111-2222-3333-4444-555555555555
//!   certificate: file:/run/secrets/lagwatch-app.pem  # the certificate and its unencrypted
//!                                        # RSA key (PKCS#8 or PKCS#1) in one PEM; or env:NAME
//!   authority: https://login.microsoftonline.com  # optional; http allowed for emulators
//!
//! auth:                                  # Kubernetes with Azure Workload Identity
//!   method: workload_identity            # tenant_id, client_id, token_file and authority
//!                                        # default to AZURE_TENANT_ID, AZURE_CLIENT_ID,
//!                                        # AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST
//!
//! auth:                                  # the Azure host's identity
//!   method: managed_identity
//!   client_id: 11111111-2222-3333-4444-555555555555  # optional: a user-assigned identity
//!   endpoint: http://169.254.169.254/metadata/identity/oauth2/token  # optional IMDS override
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::certificate::{ClientCertificate, pem_reference};
use super::entra::{DEFAULT_AUTHORITY, token_url, valid_tenant};
use super::managed::{IMDS_ENDPOINT, endpoint_url};
use super::{AuthError, Redacted};
use crate::config::{Issue, Secret};

/// How a system gets its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecret,
    WorkloadIdentity,
    ManagedIdentity,
    ClientCertificate,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecret => "client_secret",
            AuthMethod::WorkloadIdentity => "workload_identity",
            AuthMethod::ManagedIdentity => "managed_identity",
            AuthMethod::ClientCertificate => "client_certificate",
        }
    }
}

/// The `auth:` block as written. `Debug` is safe: the secret is a redacting [`Secret`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub method: AuthMethod,
    /// Directory (tenant) id or domain: `client_secret`, `client_certificate`,
    /// `workload_identity`.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Application (client) id; for `managed_identity` the client id of a user-assigned
    /// identity.
    #[serde(default)]
    pub client_id: Option<String>,
    /// `env:NAME` or `file:/path`: `client_secret` only.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// `file:/path` (or `env:NAME`) of a PEM text with the certificate and its unencrypted RSA
    /// private key: `client_certificate` only. Read at load time; checked by [`Self::validate`].
    #[serde(default, deserialize_with = "pem_reference")]
    pub certificate: Option<Secret>,
    /// The projected federated token: `workload_identity` only.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Entra authority host: `client_secret`, `client_certificate`, `workload_identity`.
    #[serde(default)]
    pub authority: Option<String>,
    /// IMDS URL override: `managed_identity` only.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// What [`super::build`] will construct, with environment defaults resolved.
pub(crate) enum Plan {
    ClientSecret {
        authority: String,
        tenant_id: String,
        client_id: String,
        secret: Secret,
    },
    ClientCertificate {
        authority: String,
        tenant_id: String,
        client_id: String,
        certificate: Arc<ClientCertificate>,
    },
    WorkloadIdentity {
        authority: String,
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    },
    Imds {
        endpoint: String,
        client_id: Option<String>,
    },
    AppService {
        endpoint: String,
        header: Redacted,
        client_id: Option<String>,
    },
    /// A credential whose secret was not read (`check-config --no-resolve`): checked as far as
    /// it can be without it; a token request fails.
    Unresolved { reference: String },
}

impl AuthConfig {
    /// Checks that the chosen method has what it needs and nothing it does not use; `key` is
    /// the path of the block (`systems.crm.auth`). Environment defaults (workload identity,
    /// managed-identity endpoints) are read now, so `check-config` run where lagwatch runs
    /// tells the truth.
    ///
    /// # Errors
    /// An [`Issue`] naming the missing, unused or wrong key.
    pub fn validate(&self, key: &str) -> Result<(), Issue> {
        self.plan(key, &|name| std::env::var(name).ok()).map(|_| ())
    }

    pub(crate) fn plan(
        &self,
        key: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Plan, Issue> {
        let method = self.method.as_str();
        let at = |field: &str| format!("{key}.{field}");
        let unused = |field: &str, present: bool| {
            if present {
                Err(Issue::new(
                    at(field),
                    format!("{field} is not used by method {method}; remove it"),
                ))
            } else {
                Ok(())
            }
        };
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let non_empty = |field: &str, value: &Option<String>| -> Result<Option<String>, Issue> {
            match value {
                Some(v) if v.trim().is_empty() => {
                    Err(Issue::new(at(field), format!("{field} is empty")))
                }
                Some(v) => Ok(Some(v.trim().to_string())),
                None => Ok(None),
            }
        };
        let tenant = |value: Option<String>, field: &str| -> Result<String, Issue> {
            let value = value.unwrap_or_default();
            if valid_tenant(&value) {
                Ok(value)
            } else {
                Err(Issue::new(
                    at(field),
                    format!("\"{value}\" is not a tenant id (a GUID) or a domain name"),
                ))
            }
        };
        let authority_ok = |authority: &str, field: &str, tenant_id: &str| {
            token_url(authority, tenant_id)
                .map(|_| ())
                .map_err(|e| Issue::new(at(field), config_reason(e)))
        };

        match self.method {
            AuthMethod::ClientCertificate => {
                unused("client_secret", self.client_secret.is_some())?;
                unused("token_file", self.token_file.is_some())?;
                unused("endpoint", self.endpoint.is_some())?;
                let missing = |field: &str| {
                    Issue::new(
                        at(field),
                        format!("method client_certificate needs {field}"),
                    )
                };
                let tenant_id =
                    non_empty("tenant_id", &self.tenant_id)?.ok_or_else(|| missing("tenant_id"))?;
                let tenant_id = tenant(Some(tenant_id), "tenant_id")?;
                let client_id =
                    non_empty("client_id", &self.client_id)?.ok_or_else(|| missing("client_id"))?;
                let pem = self.certificate.as_ref().ok_or_else(|| {
                    Issue::new(
                        at("certificate"),
                        "method client_certificate needs certificate, a reference such as file:/path/to/cert-and-key.pem (the certificate and its unencrypted RSA private key in one PEM file)",
                    )
                })?;
                let authority = non_empty("authority", &self.authority)?
                    .unwrap_or_else(|| DEFAULT_AUTHORITY.to_string());
                authority_ok(&authority, "authority", &tenant_id)?;
                if !pem.is_resolved() {
                    return Ok(Plan::Unresolved {
                        reference: pem.reference().to_string(),
                    });
                }
                let certificate =
                    ClientCertificate::from_pem(pem.expose().as_bytes()).map_err(|why| {
                        Issue::new(at("certificate"), format!("{}: {why}", pem.reference()))
                    })?;
                Ok(Plan::ClientCertificate {
                    authority,
                    tenant_id,
                    client_id,
                    certificate: Arc::new(certificate),
                })
            }
            AuthMethod::ClientSecret => {
                unused("token_file", self.token_file.is_some())?;
                unused("endpoint", self.endpoint.is_some())?;
                unused("certificate", self.certificate.is_some())?;
                let missing = |field: &str| {
                    Issue::new(at(field), format!("method client_secret needs {field}"))
                };
                let tenant_id =
                    non_empty("tenant_id", &self.tenant_id)?.ok_or_else(|| missing("tenant_id"))?;
                let tenant_id = tenant(Some(tenant_id), "tenant_id")?;
                let client_id =
                    non_empty("client_id", &self.client_id)?.ok_or_else(|| missing("client_id"))?;
                let secret = self.client_secret.clone().ok_or_else(|| {
                    Issue::new(
                        at("client_secret"),
                        "method client_secret needs client_secret, a reference such as env:NAME or file:/path",
                    )
                })?;
                let authority = non_empty("authority", &self.authority)?
                    .unwrap_or_else(|| DEFAULT_AUTHORITY.to_string());
                authority_ok(&authority, "authority", &tenant_id)?;
                Ok(Plan::ClientSecret {
                    authority,
                    tenant_id,
                    client_id,
                    secret,
                })
            }
            AuthMethod::WorkloadIdentity => {
                unused("client_secret", self.client_secret.is_some())?;
                unused("endpoint", self.endpoint.is_some())?;
                unused("certificate", self.certificate.is_some())?;
                let from = |field: &str, own: Option<String>, var: &str| {
                    own.or_else(|| env(var)).ok_or_else(|| {
                        Issue::new(
                            at(field),
                            format!(
                                "method workload_identity needs {field}: set it here or in the environment variable {var} (the Azure Workload Identity webhook sets it in labelled pods)"
                            ),
                        )
                    })
                };
                let tenant_id = from(
                    "tenant_id",
                    non_empty("tenant_id", &self.tenant_id)?,
                    "AZURE_TENANT_ID",
                )?;
                let tenant_id = tenant(Some(tenant_id), "tenant_id")?;
                let client_id = from(
                    "client_id",
                    non_empty("client_id", &self.client_id)?,
                    "AZURE_CLIENT_ID",
                )?;
                let token_file = from(
                    "token_file",
                    self.token_file
                        .as_ref()
                        .map(|p| p.to_string_lossy().into_owned()),
                    "AZURE_FEDERATED_TOKEN_FILE",
                )?;
                let authority = non_empty("authority", &self.authority)?
                    .or_else(|| env("AZURE_AUTHORITY_HOST"))
                    .unwrap_or_else(|| DEFAULT_AUTHORITY.to_string());
                authority_ok(&authority, "authority", &tenant_id)?;
                Ok(Plan::WorkloadIdentity {
                    authority,
                    tenant_id,
                    client_id,
                    token_file: PathBuf::from(token_file),
                })
            }
            AuthMethod::ManagedIdentity => {
                unused("tenant_id", self.tenant_id.is_some())?;
                unused("client_secret", self.client_secret.is_some())?;
                unused("token_file", self.token_file.is_some())?;
                unused("authority", self.authority.is_some())?;
                unused("certificate", self.certificate.is_some())?;
                let client_id = non_empty("client_id", &self.client_id)?;
                if let Some(endpoint) = non_empty("endpoint", &self.endpoint)? {
                    endpoint_url(&endpoint, "the managed identity endpoint")
                        .map_err(|e| Issue::new(at("endpoint"), config_reason(e)))?;
                    return Ok(Plan::Imds {
                        endpoint,
                        client_id,
                    });
                }
                managed_from_env(&at("method"), client_id, &env)
            }
        }
    }
}

/// The sentence of a configuration error, without the "misconfigured" prefix.
fn config_reason(e: AuthError) -> String {
    match e {
        AuthError::Config(reason) => reason,
        other => other.to_string(),
    }
}

/// Picks the managed-identity endpoint from the environment, as the Azure SDKs do.
fn managed_from_env(
    key: &str,
    client_id: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, Issue> {
    let unsupported = |what: &str| {
        Err(Issue::new(
            key,
            format!(
                "managed identity on {what} is not supported yet (its environment variables are set); run where IMDS or the App Service identity endpoint is available, or use client_secret or workload_identity"
            ),
        ))
    };
    match (
        env("IDENTITY_ENDPOINT"),
        env("IDENTITY_HEADER"),
        env("IDENTITY_SERVER_THUMBPRINT"),
        env("IMDS_ENDPOINT"),
        env("MSI_ENDPOINT"),
    ) {
        (Some(_), Some(_), Some(_), _, _) => unsupported("Service Fabric"),
        (Some(endpoint), Some(header), None, _, _) => {
            endpoint_url(&endpoint, "IDENTITY_ENDPOINT")
                .map_err(|e| Issue::new(key, config_reason(e)))?;
            Ok(Plan::AppService {
                endpoint,
                header: Redacted::new(header),
                client_id,
            })
        }
        (Some(_), None, _, Some(_), _) => unsupported("Azure Arc"),
        (Some(_), None, _, None, _) => Err(Issue::new(
            key,
            "IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not; both come from the App Service identity",
        )),
        (None, _, _, _, Some(_)) => unsupported("Cloud Shell or Azure ML (MSI_ENDPOINT)"),
        (None, _, _, _, None) => Ok(Plan::Imds {
            endpoint: IMDS_ENDPOINT.to_string(),
            client_id,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::decode;

    fn parse(yaml: serde_json::Value) -> Result<AuthConfig, Issue> {
        decode("systems.crm.auth", yaml)
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn plan(cfg: &AuthConfig, env: &[(&str, &str)]) -> Result<Plan, Issue> {
        cfg.plan("systems.crm.auth", &env_of(env))
    }

    #[test]
    fn workload_identity_defaults_come_from_the_environment() {
        let cfg = parse(serde_json::json!({"method": "workload_identity"})).unwrap();
        let e = plan(&cfg, &[]).err().unwrap();
        assert_eq!(e.key, "systems.crm.auth.tenant_id");
        assert!(e.reason.contains("AZURE_TENANT_ID"), "{}", e.reason);
        let e = plan(
            &cfg,
            &[("AZURE_TENANT_ID", "t1"), ("AZURE_CLIENT_ID", "c1")],
        )
        .err()
        .unwrap();
        assert_eq!(e.key, "systems.crm.auth.token_file");
        assert!(e.reason.contains("AZURE_FEDERATED_TOKEN_FILE"));
        let full = [
            ("AZURE_TENANT_ID", "t1"),
            ("AZURE_CLIENT_ID", "c1"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"),
        ];
        let Ok(Plan::WorkloadIdentity {
            authority,
            tenant_id,
            client_id,
            token_file,
        }) = plan(&cfg, &full)
        else {
            panic!("expected workload identity")
        };
        assert_eq!(authority, "https://login.microsoftonline.us/");
        assert_eq!((tenant_id.as_str(), client_id.as_str()), ("t1", "c1"));
        assert_eq!(token_file, PathBuf::from("/var/run/token"));
        // Explicit settings win over the environment.
        let cfg = parse(serde_json::json!({
            "method": "workload_identity", "tenant_id": "t2", "client_id": "c2",
            "token_file": "/own", "authority": "http://127.0.0.1:1/entra"
        }))
        .unwrap();
        let Ok(Plan::WorkloadIdentity {
            authority,
            tenant_id,
            token_file,
            ..
        }) = plan(&cfg, &full)
        else {
            panic!()
        };
        assert_eq!(authority, "http://127.0.0.1:1/entra");
        assert_eq!(tenant_id, "t2");
        assert_eq!(token_file, PathBuf::from("/own"));
    }

    #[test]
    fn client_certificate_plans_with_the_default_authority() {
        use crate::auth::certificate::test_pki::{TestKey, pem};
        let key = TestKey::shared();
        let dir = std::env::temp_dir().join(format!("lagwatch-plan-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("app.pem");
        let cert = key.current_certificate();
        std::fs::write(
            &f,
            format!("{}{}", key.pkcs8_pem(), pem("CERTIFICATE", &cert)),
        )
        .unwrap();
        let cfg = parse(serde_json::json!({
            "method": "client_certificate", "tenant_id": "contoso.onmicrosoft.com",
            "client_id": "c1", "certificate": format!("file:{}", f.display()),
        }))
        .unwrap();
        let Ok(Plan::ClientCertificate {
            authority,
            tenant_id,
            client_id,
            certificate,
        }) = plan(&cfg, &[])
        else {
            panic!("expected client_certificate")
        };
        assert_eq!(authority, DEFAULT_AUTHORITY);
        assert_eq!(tenant_id, "contoso.onmicrosoft.com");
        assert_eq!(client_id, "c1");
        assert_eq!(certificate.thumbprint().len(), 40);
        let cfg = parse(serde_json::json!({
            "method": "client_certificate", "tenant_id": "t1", "client_id": "c1",
            "certificate": format!("file:{}", f.display()), "token_file": "/x",
        }))
        .unwrap();
        let e = plan(&cfg, &[]).err().unwrap();
        assert_eq!(e.key, "systems.crm.auth.token_file");
    }

    #[test]
    fn managed_identity_endpoint_follows_the_environment() {
        let cfg =
            parse(serde_json::json!({"method": "managed_identity", "client_id": "u1"})).unwrap();
        let Ok(Plan::Imds {
            endpoint,
            client_id,
        }) = plan(&cfg, &[])
        else {
            panic!()
        };
        assert_eq!(endpoint, IMDS_ENDPOINT);
        assert_eq!(client_id.as_deref(), Some("u1"));
        let Ok(Plan::AppService {
            endpoint, header, ..
        }) = plan(
            &cfg,
            &[
                ("IDENTITY_ENDPOINT", "http://localhost:4141/msi/token"),
                ("IDENTITY_HEADER", "hdr-secret"),
            ],
        )
        else {
            panic!()
        };
        assert_eq!(endpoint, "http://localhost:4141/msi/token");
        assert_eq!(header.expose(), "hdr-secret");
        assert!(!format!("{header:?}").contains("hdr-secret"));
        for (env, what) in [
            (
                vec![
                    ("IDENTITY_ENDPOINT", "http://x"),
                    ("IMDS_ENDPOINT", "http://y"),
                ],
                "Azure Arc",
            ),
            (
                vec![
                    ("IDENTITY_ENDPOINT", "https://x"),
                    ("IDENTITY_HEADER", "h"),
                    ("IDENTITY_SERVER_THUMBPRINT", "ab"),
                ],
                "Service Fabric",
            ),
            (vec![("MSI_ENDPOINT", "http://x")], "Cloud Shell"),
            (vec![("IDENTITY_ENDPOINT", "http://x")], "IDENTITY_HEADER"),
        ] {
            let e = plan(&cfg, &env).err().unwrap();
            assert_eq!(e.key, "systems.crm.auth.method");
            assert!(e.reason.contains(what), "{}", e.reason);
        }
    }
}
