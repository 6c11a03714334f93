//! The smallest emulated estate with a path: Dataverse `crm/accounts` replicated to `crm2`
//! with a fixed lag, and the monitor's systems for both (client-secret auth read from a file).

use std::path::Path;

/// The emulator scenario; `secret` is the app registration's client secret.
pub fn scenario(secret: &str, lag: &str) -> String {
    format!(
        r#"
credentials:
  - {{ tenant: contoso, client_id: lagwatch-test, client_secret: {secret} }}
dataverse:
  crm:
    tables:
      accounts: {{ id: accountid, columns: {{ name: string, description: string }} }}
  crm2:
    tables:
      accounts: {{ id: accountid, columns: {{ name: string, description: string }} }}
replicas:
  crm2:
    source: crm/accounts
    target: {{ kind: dataverse, env: crm2, table: accounts }}
    key: name
    lag: {{ distribution: fixed, value: {lag} }}
"#
    )
}

/// The monitor's `dataverse` system `name` on the emulator at `origin`.
pub fn dataverse(name: &str, origin: &str, secret_file: &Path) -> String {
    format!(
        r#"
  {name}:
    kind: dataverse
    url: {origin}/{name}
    table: accounts
    id_column: accountid
    key_column: name
    payload_column: description
    scope: https://{name}.crm.dynamics.com/.default
    auth:
      method: client_secret
      tenant_id: contoso
      client_id: lagwatch-test
      client_secret: file:{secret}
      authority: {origin}/entra
"#,
        secret = secret_file.display()
    )
}
