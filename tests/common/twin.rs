//! The smallest emulated estate with a path: Dataverse `crm/accounts` replicated to `crm2`
//! with a fixed lag, and the monitor's systems for both (client-secret auth read from a file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lagwatch_emulator::{Emulator, Scenario};
use tokio_util::sync::{CancellationToken, DropGuard};

/// The emulator of [`scenario`] served on a loopback port from `rt`: the emulator, its origin,
/// and a guard that stops it when dropped.
pub fn serve(
    rt: &tokio::runtime::Runtime,
    secret: &str,
    lag: &str,
) -> (Arc<Emulator>, String, DropGuard) {
    let emulator = Emulator::new(Scenario::from_yaml(&scenario(secret, lag)).expect("scenario"));
    let (origin, guard) = serve_emulator(rt, emulator.clone());
    (emulator, origin, guard)
}

/// `emulator` (any scenario) served on a loopback port from `rt`: its origin, and a guard that
/// stops it when dropped.
pub fn serve_emulator(
    rt: &tokio::runtime::Runtime,
    emulator: Arc<Emulator>,
) -> (String, DropGuard) {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    let s = stop.clone();
    rt.spawn(async move { emulator.serve(listener, s).await });
    (origin, stop.drop_guard())
}

/// Writes the client secret and a monitor configuration into `dir` (instance `instance`,
/// `state_dir` under `dir`, the systems `crm` and `crm2` on `origin`, then `paths`, YAML list
/// items); returns the configuration file.
pub fn monitor_config(
    dir: &Path,
    origin: &str,
    secret: &str,
    instance: &str,
    paths: &str,
) -> PathBuf {
    let state = format!("state_dir: {}\n", dir.join("state").display());
    write_config(
        dir,
        origin,
        secret,
        &format!("instance: {instance}\n{state}"),
        "",
        paths,
    )
}

/// [`monitor_config`] without a `state_dir`: no ledger, so shutdown deletes every sentinel.
pub fn monitor_config_without_state(
    dir: &Path,
    origin: &str,
    secret: &str,
    instance: &str,
    paths: &str,
) -> PathBuf {
    monitor_config_with_systems(dir, origin, secret, instance, "", paths)
}

/// [`monitor_config_without_state`] with more `systems` (YAML map entries, indented by two)
/// after `crm` and `crm2`.
pub fn monitor_config_with_systems(
    dir: &Path,
    origin: &str,
    secret: &str,
    instance: &str,
    systems: &str,
    paths: &str,
) -> PathBuf {
    write_config(
        dir,
        origin,
        secret,
        &format!("instance: {instance}\n"),
        systems,
        paths,
    )
}

/// Writes the client secret and a monitor configuration into `dir`: `head` (top-level keys,
/// each line ending in a newline), the systems `crm` and `crm2` on `origin` and then `systems`
/// (YAML map entries, indented by two), then `paths` (YAML list items); returns the
/// configuration file.
pub fn write_config(
    dir: &Path,
    origin: &str,
    secret: &str,
    head: &str,
    systems: &str,
    paths: &str,
) -> PathBuf {
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, secret).expect("secret");
    let cfg = dir.join("lagwatch.yaml");
    std::fs::write(
        &cfg,
        format!(
            "{head}systems:{crm}{crm2}{systems}\npaths:\n{paths}",
            crm = dataverse("crm", origin, &secret_file),
            crm2 = dataverse("crm2", origin, &secret_file),
        ),
    )
    .expect("config");
    cfg
}

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
    dataverse_signed(
        name,
        origin,
        &format!(
            "{{ method: client_secret, tenant_id: contoso, client_id: lagwatch-test, \
             client_secret: 'file:{}', authority: '{origin}/entra' }}",
            secret_file.display()
        ),
    )
}

/// The monitor's `dataverse` system `name` on the emulated environment of that name at
/// `origin`: its `accounts` table (id `accountid`, key `name`, payload `description`), signing
/// in with `auth` (a flow-style `auth:` value, such as [`Served::auth`]).
pub fn dataverse_signed(name: &str, origin: &str, auth: &str) -> String {
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
    auth: {auth}
"#
    )
}

/// An emulated estate with lakes, served over HTTP from its own runtime: what the lake tests
/// that run the engine against the emulator's lakes share.
pub struct LakeEstate {
    pub rt: tokio::runtime::Runtime,
    pub emulator: Arc<Emulator>,
    /// Where the lakes are written (`file://{root}/<container>`).
    pub root: String,
    /// The configuration so far: `instance` and `systems:` with the Dataverse `crm`; the test
    /// adds its lake systems and `paths:`.
    pub yaml: String,
    _lakes: tempfile::TempDir,
    _dir: tempfile::TempDir,
    _stop: DropGuard,
}

impl LakeEstate {
    /// Serves `scenario` (its credentials must take `secret`) with its lakes in a new
    /// temporary folder; the monitor's instance is `instance`.
    pub fn start(scenario: &str, secret: &str, instance: &str) -> LakeEstate {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let lakes = super::temp_dir("lagwatch-lakes-");
        let dir = super::temp_dir("lagwatch-lakes-cfg-");
        let emulator = {
            let _in_rt = rt.enter();
            Emulator::with_lake_root(
                Scenario::from_yaml(scenario).expect("scenario"),
                lakes.path(),
            )
        };
        let (origin, stop) = serve_emulator(&rt, emulator.clone());
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, secret).expect("the secret file");
        let yaml = format!(
            "instance: {instance}\nsystems:{}",
            dataverse("crm", &origin, &secret_file)
        );
        LakeEstate {
            rt,
            emulator,
            root: lakes.path().display().to_string(),
            yaml,
            _lakes: lakes,
            _dir: dir,
            _stop: stop,
        }
    }
}

/// An emulator serving a scenario on a loopback port of the calling runtime, and the `auth:`
/// block (client secret from a file, the emulator's Entra) the monitor's systems sign in with:
/// what the tests that run the engine against it over HTTP from their own runtime share.
pub struct Served {
    pub emulator: Arc<Emulator>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A flow-style YAML `auth:` value for `client_id` with the scenario's `secret`.
    pub auth: String,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Serves `scenario`, whose credentials take `client_id` (tenant `contoso`) and `secret`.
    pub async fn start(scenario: &str, client_id: &str, secret: &str) -> Served {
        let emulator =
            Emulator::new(Scenario::from_yaml(scenario).unwrap_or_else(|e| panic!("{e}")));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let stop = CancellationToken::new();
        let server = {
            let (emulator, stop) = (emulator.clone(), stop.clone());
            tokio::spawn(async move { emulator.serve(listener, stop).await })
        };
        let dir = super::temp_dir("lagwatch-served-");
        let file = dir.path().join("secret");
        std::fs::write(&file, secret).expect("the secret file");
        let auth = format!(
            "{{ method: client_secret, tenant_id: contoso, client_id: {client_id}, client_secret: 'file:{}', authority: '{base}/entra' }}",
            file.display()
        );
        Served {
            emulator,
            base,
            auth,
            stop,
            server,
            _dir: dir,
        }
    }

    /// An HTTP client and bearer tokens for the Dataverse (`crm`) and F&O (`fin`) resources,
    /// for `client_id` with `secret`: what a test speaking to the emulated APIs itself needs.
    pub async fn signed_in(
        &self,
        client_id: &str,
        secret: &str,
    ) -> (reqwest::Client, String, String) {
        let http = reqwest::Client::new();
        let token = |resource| super::entra::token(&http, &self.base, client_id, secret, resource);
        let crm = token("https://crm.crm.dynamics.com").await;
        let fin = token("https://fin.operations.dynamics.com").await;
        (http, crm, fin)
    }

    /// `GET /_truth/{path}` of the emulator, as JSON.
    pub async fn truth(&self, path: &str) -> serde_json::Value {
        reqwest::get(format!("{}/_truth/{path}", self.base))
            .await
            .expect("the truth")
            .json()
            .await
            .expect("the truth is JSON")
    }

    /// Stops the emulator and checks it stopped cleanly.
    pub async fn stop(self) {
        self.stop.cancel();
        self.server
            .await
            .expect("the emulator task")
            .expect("the emulator stops cleanly");
    }
}

/// An estate whose Dataverse `crm/accounts` and F&O `fin/CustomersV3` are one dual-write map
/// both ways (replicas `fno` and `fno_back`, link `customers` with the emulator's conflict
/// `policy`), `lag` (a YAML lag distribution) each way, and `fin`'s clock `fin_skew` off.
pub fn linked_scenario(
    client: &str,
    secret: &str,
    policy: &str,
    fin_skew: &str,
    lag: &str,
) -> String {
    format!(
        r#"
credentials:
  - {{ tenant: contoso, client_id: {client}, client_secret: {secret} }}
dataverse:
  crm:
    tables:
      accounts: {{ id: accountid, columns: {{ name: string, accountnumber: string, description: string }} }}
fno:
  fin:
    clock_skew: {fin_skew}
    default_company: dat
    entities:
      CustomersV3: {{ key: CustomerAccount, mandatory: [OrganizationName], number_sequence: DW }}
replicas:
  fno:
    source: crm/accounts
    target: {{ kind: fno, env: fin, entity: CustomersV3, company: usmf }}
    key: name
    map: {{ accountnumber: CustomerAccount, name: OrganizationName, description: AddressDescription }}
    lag: {lag}
  fno_back:
    source: fno:fin/CustomersV3
    target: {{ kind: dataverse, env: crm, table: accounts }}
    key: OrganizationName
    map: {{ OrganizationName: name, CustomerAccount: accountnumber, AddressDescription: description }}
    lag: {lag}
links:
  customers: {{ replicas: [fno, fno_back], policy: {policy} }}
"#
    )
}
