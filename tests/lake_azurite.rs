//! The `synapse_link_csv` kind reading an export from Azure Storage, here Azurite's blob
//! service (the Microsoft emulator, npm package `azurite`, installed by
//! `scripts/install-test-tools` into `.tools/azurite`): the container is uploaded with Put
//! Blob signed with the emulator's public account key, then read by the kind built from YAML
//! with an `http://127.0.0.1:<port>/devstoreaccount1/<container>/<folder>` URL, with Shared Key,
//! a SAS token and anonymous access; a wrong key is an auth error; listings follow `NextMarker`
//! pages; the table layout (`layout: table`) is polled with Get Blob Properties, one listing and
//! `Range` reads of what was appended to a partition blob. Each test starts its own Azurite on
//! a free port and stops it (by its process) when it ends. Without Azurite the tests skip,
//! unless `LAGWATCH_REQUIRE_TOOLS=1` (CI), where they fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lagwatch::config::{Config, Secret};
use lagwatch::connector::{ConnectorError, Lookup, Target};
use lagwatch::lake::LakeStore;
use lagwatch::lake::blob::{
    API_VERSION, BlobAuth, BlobLocation, BlobStore, SharedKey, encode_path,
};
use lagwatch::metrics::Metrics;
use lagwatch::net::Auth;
use lagwatch::sentinel::SentinelId;
use lagwatch::systems::BuildContext;
use reqwest::header::{HeaderMap, HeaderValue};

/// The emulator's well-known account and key (public constants of Azurite and the docs).
const ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

const MODEL: &str = r#"{"name":"cdm","version":"1.0","entities":[
 {"$type":"LocalEntity","name":"account","attributes":[
  {"name":"Id","dataType":"guid"},{"name":"SinkCreatedOn","dataType":"dateTime"},
  {"name":"SinkModifiedOn","dataType":"dateTime"},{"name":"name","dataType":"string"},
  {"name":"description","dataType":"string"},{"name":"versionnumber","dataType":"int64"},
  {"name":"IsDelete","dataType":"boolean"}]}]}"#;

fn required() -> bool {
    std::env::var("LAGWATCH_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// `azurite-blob`: `LAGWATCH_AZURITE_BLOB`, else the project-local install, else `PATH`.
fn azurite_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("LAGWATCH_AZURITE_BLOB") {
        return Some(PathBuf::from(p));
    }
    let local =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/azurite/node_modules/.bin/azurite-blob");
    if local.exists() {
        return Some(local);
    }
    let on_path = Command::new("azurite-blob")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    on_path.then(|| PathBuf::from("azurite-blob"))
}

/// One Azurite blob service, stopped (its process killed) on drop.
struct Azurite {
    child: Child,
    port: u16,
    dir: PathBuf,
    http: reqwest::Client,
    key: SharedKey,
}

impl Azurite {
    /// A running emulator, or `None` (with the reason printed) when Azurite is not installed.
    async fn start() -> Option<Azurite> {
        let Some(bin) = azurite_binary() else {
            assert!(
                !required(),
                "Azurite is required (LAGWATCH_REQUIRE_TOOLS=1) but not installed: run \
                 scripts/install-test-tools"
            );
            eprintln!(
                "skipping: Azurite is not installed (scripts/install-test-tools installs it)"
            );
            return None;
        };
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let dir = std::env::temp_dir().join(format!(
                "lagwatch-azurite-{}-{port}-{}",
                std::process::id(),
                rand_suffix()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let log = std::fs::File::create(dir.join("azurite.log")).unwrap();
            let child = Command::new(&bin)
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                // In memory (its own rule: then no --location); anything else it writes
                // lands in its working directory, the temp dir.
                .args(["--silent", "--disableTelemetry", "--inMemoryPersistence"])
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn();
            let child = match child {
                Ok(c) => c,
                Err(e) => {
                    assert!(!required(), "Azurite ({}) cannot run: {e}", bin.display());
                    eprintln!("skipping: Azurite ({}) cannot run: {e}", bin.display());
                    let _ = std::fs::remove_dir_all(&dir);
                    return None;
                }
            };
            let mut az = Azurite {
                child,
                port,
                dir,
                http: lagwatch::net::client().unwrap(),
                key: SharedKey::new(ACCOUNT, DEV_KEY).unwrap(),
            };
            if az.wait_listening().await {
                return Some(az);
            }
            last_log = std::fs::read_to_string(az.dir.join("azurite.log")).unwrap_or_default();
            drop(az);
        }
        panic!("Azurite did not start listening: {last_log}");
    }

    async fn wait_listening(&mut self) -> bool {
        for _ in 0..300 {
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// One PUT signed with the account key; panics unless it answers `201`.
    async fn put(&self, url: &str, extra: &[(&'static str, &str)], body: Vec<u8>) {
        let url = url::Url::parse(url).unwrap();
        let mut h = HeaderMap::new();
        let date = Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        h.insert("x-ms-date", HeaderValue::from_str(&date).unwrap());
        h.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
        h.insert(
            "content-length",
            HeaderValue::from_str(&body.len().to_string()).unwrap(),
        );
        for (k, v) in extra {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        let auth = self.key.authorization("PUT", &url, &h);
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        let resp = self
            .http
            .put(url.clone())
            .headers(h)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status.as_u16(), 201, "PUT {url}: {text}");
    }

    /// Create Container; `public` gives anonymous read access to blobs and listings.
    async fn container(&self, name: &str, public: bool) {
        let extra: &[(&str, &str)] = if public {
            &[("x-ms-blob-public-access", "container")]
        } else {
            &[]
        };
        self.put(
            &format!("{}/{name}?restype=container", self.base()),
            extra,
            Vec::new(),
        )
        .await;
    }

    /// Put Blob (block blob) `name` in `container`.
    async fn blob(&self, container: &str, name: &str, body: impl Into<Vec<u8>>) {
        self.put(
            &format!("{}/{container}/{}", self.base(), encode_path(name)),
            &[("x-ms-blob-type", "BlockBlob")],
            body.into(),
        )
        .await;
    }

    /// An account SAS for the blob service, signed with the account key (string-to-sign of
    /// version 2020-12-06 and later): `sp` permissions on containers and objects.
    fn account_sas(&self, permissions: &str) -> String {
        let expiry = (Utc::now() + chrono::Duration::hours(1))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let to_sign = format!("{ACCOUNT}\n{permissions}\nb\nco\n\n{expiry}\n\n\n{API_VERSION}\n\n");
        let sig = self.key.sign(&to_sign);
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "sv={API_VERSION}&ss=b&srt=co&sp={permissions}&se={}&sig={}",
            enc(&expiry),
            enc(&sig)
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// A secret file (`file:` reference) in `dir`.
fn secret(dir: &Path, name: &str, value: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, value).unwrap();
    format!("file:{}", p.display())
}

fn row(key: &str, payload: &str) -> String {
    format!(
        "{},2026-11-02T10:15:07.1234567Z,2026-11-02T10:15:07.1234567Z,\"{key}\",\"{payload}\",1,False\n",
        uuid::Uuid::now_v7()
    )
}

/// Folder names `minutes_ago` before now, as the export names them.
fn folder(minutes_ago: i64) -> (String, DateTime<Utc>) {
    let t = Utc::now() - chrono::Duration::minutes(minutes_ago);
    let t = DateTime::from_timestamp(t.timestamp(), 0).unwrap();
    (t.format("%Y-%m-%dT%H.%M.%S.000Z").to_string(), t)
}

/// The `lake` target built from YAML as `lagwatch run` builds it, with its metrics.
fn lake_target(url: &str, auth: &str) -> (Arc<dyn Target>, Metrics) {
    lake_target_with(url, auth, "incremental")
}

/// [`lake_target`] with a `layout`.
fn lake_target_with(url: &str, auth: &str, layout: &str) -> (Arc<dyn Target>, Metrics) {
    let yaml = format!(
        "instance: test\n\
         systems:\n  crm:\n    kind: simulated\n  lake:\n    kind: synapse_link_csv\n    \
         url: {url}\n    table: account\n    key_column: name\n    payload_column: description\n    \
         auth: {auth}\n    layout: {layout}\n\
         paths:\n  - source: crm\n    target: lake\n    timeout: 2h\n    objective: 30m\n"
    );
    let config = Config::from_yaml("lake.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    let metrics = Metrics::new();
    let cx = BuildContext::new(metrics.clone());
    let gate = cx.gate("lake", config.limits["lake"]);
    let system = config.systems["lake"]
        .build("lake", &cx, gate)
        .unwrap_or_else(|e| panic!("{}: {}", e.key, e.reason));
    (system.target.expect("a target"), metrics)
}

struct Counters {
    listed: u64,
    read: u64,
    requests: u64,
}

fn counters(m: &Metrics) -> Counters {
    Counters {
        listed: m.lake_objects_listed.with_label_values(&["lake"]).get(),
        read: m.lake_bytes_read.with_label_values(&["lake"]).get(),
        requests: ["2xx", "4xx", "5xx", "transport_error"]
            .iter()
            .map(|s| m.requests.with_label_values(&["lake", "lookup", s]).get())
            .sum(),
    }
}

#[tokio::test]
async fn the_kind_reads_a_synapse_link_export_in_azurite_with_shared_key() {
    let Some(az) = Azurite::start().await else {
        return;
    };
    let c = "dataverse-contoso-unq1";
    let root = "exports/contoso";
    az.container(c, false).await;
    let (f1, t1) = folder(3);
    let (f2, t2) = folder(2);
    let (f3, _) = folder(1);
    let id = SentinelId::new("lake");
    let later = SentinelId::new("lake");
    // The export under a folder of the container, with neighbours that must not matter.
    az.blob(c, "elsewhere/Changelog/changelog.info", "garbage")
        .await;
    az.blob(
        c,
        &format!("{root}/OptionsetMetadata/StateMetadata.csv"),
        "1,a\n",
    )
    .await;
    az.blob(c, &format!("{root}/{f1}/model.json"), MODEL).await;
    az.blob(
        c,
        &format!("{root}/{f1}/account/2026.csv"),
        row(id.key(), "p1"),
    )
    .await;
    az.blob(c, &format!("{root}/Changelog/changelog.info"), f1.as_str())
        .await;

    let key = secret(&az.dir, "key", DEV_KEY);
    let url = format!("{}/{c}/{root}", az.base());
    let (lake, metrics) = lake_target(
        &url,
        &format!("{{ method: shared_key, account_key: \"{key}\" }}"),
    );
    // The sentinel is in the folder changelog.info names: being written, so not read.
    assert_eq!(lake.lookup(&id).await.unwrap(), Lookup::Absent);
    let last_folder = metrics.lake_last_folder.with_label_values(&["lake"]);
    assert_eq!(last_folder.get(), 0.0);

    // The export moves on: F1 is complete.
    az.blob(c, &format!("{root}/{f2}/model.json"), MODEL).await;
    az.blob(c, &format!("{root}/Changelog/changelog.info"), f2.as_str())
        .await;
    assert_eq!(
        lake.lookup(&id).await.unwrap(),
        Lookup::Present {
            payload: Some("p1".into())
        }
    );
    assert_eq!(last_folder.get(), t1.timestamp() as f64);
    assert_eq!(
        lake.applied_at(&id).await.map(|t| t.timestamp()),
        Some(
            "2026-11-02T10:15:07Z"
                .parse::<DateTime<Utc>>()
                .unwrap()
                .timestamp()
        )
    );

    // Nothing changed: one request, for changelog.info, and no listing.
    let before = counters(&metrics);
    assert_eq!(lake.lookup(&later).await.unwrap(), Lookup::Absent);
    let after = counters(&metrics);
    assert_eq!(after.requests - before.requests, 1);
    assert_eq!(after.read - before.read, f2.len() as u64);
    assert_eq!(after.listed, before.listed);

    // F2 completes with a sentinel: the root listing and F2's files, nothing of F1.
    let csv = row(later.key(), "p2");
    az.blob(c, &format!("{root}/{f2}/account/2026.csv"), csv.as_str())
        .await;
    az.blob(c, &format!("{root}/{f3}/model.json"), MODEL).await;
    az.blob(c, &format!("{root}/Changelog/changelog.info"), f3.as_str())
        .await;
    let before = counters(&metrics);
    assert_eq!(
        lake.lookup(&later).await.unwrap(),
        Lookup::Present {
            payload: Some("p2".into())
        }
    );
    let after = counters(&metrics);
    assert_eq!(
        after.read - before.read,
        (f3.len() + MODEL.len() + csv.len()) as u64
    );
    // Root: Changelog, OptionsetMetadata, F1, F2, F3; then F2/account: one file.
    assert_eq!(after.listed - before.listed, 5 + 1);
    // changelog.info, root listing, F2/account listing, model.json, 2026.csv.
    assert_eq!(after.requests - before.requests, 5);
    assert_eq!(last_folder.get(), t2.timestamp() as f64);
    assert_eq!(
        metrics
            .requests
            .with_label_values(&["lake", "lookup", "4xx"])
            .get(),
        0
    );
}

#[tokio::test]
async fn listings_follow_next_marker_pages_and_odd_names_round_trip() {
    let Some(az) = Azurite::start().await else {
        return;
    };
    let c = "paged";
    az.container(c, false).await;
    for i in 0..7 {
        az.blob(c, &format!("d/file-{i}.csv"), vec![b'x'; i]).await;
    }
    for s in ["s1", "s2", "s3"] {
        az.blob(c, &format!("d/{s}/inner.csv"), "1").await;
    }
    let odd = "2026-11-02T10:15:00.000Z/a b+c&d=é.csv";
    az.blob(c, &format!("d/{odd}"), "odd").await;
    let metrics = Metrics::new();
    let http = common::fakes::http_system_with("lake", Auth::None, &metrics);
    let location = BlobLocation::parse(&format!("{}/{c}", az.base())).unwrap();
    let key = SharedKey::new(ACCOUNT, DEV_KEY).unwrap();
    let store = BlobStore::new(http, location, BlobAuth::SharedKey(key)).with_page_size(2);
    let listing = store.list("d").await.unwrap();
    assert_eq!(listing.dirs, ["2026-11-02T10:15:00.000Z", "s1", "s2", "s3"]);
    let names: Vec<(String, u64)> = listing
        .files
        .iter()
        .map(|f| (f.name.clone(), f.size))
        .collect();
    let want: Vec<(String, u64)> = (0..7).map(|i| (format!("file-{i}.csv"), i)).collect();
    assert_eq!(names, want);
    let pages = metrics
        .requests
        .with_label_values(&["lake", "lookup", "2xx"])
        .get();
    assert_eq!(pages, 6, "11 entries (4 folders, 7 files) in pages of 2");
    assert_eq!(
        store.get(&format!("d/{odd}")).await.unwrap().unwrap(),
        b"odd"
    );
    let l = store.list("d/2026-11-02T10:15:00.000Z").await.unwrap();
    assert_eq!(l.files[0].name, "a b+c&d=é.csv");
    assert_eq!(store.get("d/missing.csv").await.unwrap(), None);
    assert_eq!(
        store.list("nothing-here").await.unwrap(),
        Default::default()
    );
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_that_shows_no_key() {
    let Some(az) = Azurite::start().await else {
        return;
    };
    az.container("lake", false).await;
    az.blob(
        "lake",
        "Changelog/changelog.info",
        "2026-11-02T10.15.00.000Z",
    )
    .await;
    let wrong = "V3JvbmdXcm9uZ1dyb25nV3JvbmdXcm9uZ1dyb25nV3JvbmdXcm9uZw==";
    let key = secret(&az.dir, "wrong", wrong);
    let (lake, metrics) = lake_target(
        &format!("{}/lake", az.base()),
        &format!("{{ method: shared_key, account_key: \"{key}\" }}"),
    );
    let e = lake.lookup(&SentinelId::new("lake")).await.unwrap_err();
    assert_eq!(e.kind(), "auth", "{e}");
    let text = e.to_string();
    assert!(
        text.contains("Changelog/changelog.info: HTTP 403"),
        "{text}"
    );
    assert!(!text.contains(wrong) && !text.contains(DEV_KEY), "{text}");
    assert_eq!(
        metrics
            .requests
            .with_label_values(&["lake", "lookup", "4xx"])
            .get(),
        1
    );
}

#[tokio::test]
async fn a_sas_token_reads_the_export_and_never_shows_up() {
    let Some(az) = Azurite::start().await else {
        return;
    };
    az.container("sas", false).await;
    let (f1, _) = folder(3);
    let (f2, _) = folder(2);
    let id = SentinelId::new("lake");
    az.blob("sas", &format!("{f1}/model.json"), MODEL).await;
    az.blob("sas", &format!("{f1}/account/2026.csv"), row(id.key(), "s"))
        .await;
    az.blob("sas", "Changelog/changelog.info", f2.as_str())
        .await;
    let url = format!("{}/sas", az.base());

    let token = az.account_sas("rl");
    let file = secret(&az.dir, "sas", &format!("?{token}"));
    let (lake, _) = lake_target(&url, &format!("{{ method: sas, token: \"{file}\" }}"));
    assert_eq!(
        lake.lookup(&id).await.unwrap(),
        Lookup::Present {
            payload: Some("s".into())
        }
    );

    // Read without list: the root listing is refused, and neither the error nor the metrics
    // carry the token's signature.
    let read_only = az.account_sas("r");
    let sig = read_only.split("sig=").nth(1).unwrap().to_string();
    let file = secret(&az.dir, "sas-r", &read_only);
    let (lake, metrics) = lake_target(&url, &format!("{{ method: sas, token: \"{file}\" }}"));
    let e = lake.lookup(&id).await.unwrap_err();
    assert_eq!(e.kind(), "auth", "{e}");
    let text = format!("{e} {e:?}");
    assert!(!text.contains(&sig) && !text.contains("sig="), "{text}");
    assert!(!metrics.render().contains(&sig));
    // The token secret's own rendering is redacted.
    let s = Secret::runtime(read_only.clone(), "file:sas");
    assert!(!format!("{s:?} {s}").contains(&sig));
}

#[tokio::test]
async fn a_public_container_is_read_without_credentials() {
    let Some(az) = Azurite::start().await else {
        return;
    };
    az.container("public", true).await;
    let (f1, _) = folder(3);
    let (f2, _) = folder(2);
    let id = SentinelId::new("lake");
    az.blob("public", &format!("{f1}/model.json"), MODEL).await;
    az.blob(
        "public",
        &format!("{f1}/account/2026.csv"),
        row(id.key(), "n"),
    )
    .await;
    az.blob("public", "Changelog/changelog.info", f2.as_str())
        .await;
    let (lake, _) = lake_target(&format!("{}/public", az.base()), "{ method: none }");
    assert!(matches!(lake.lookup(&id).await, Ok(Lookup::Present { .. })));
    // The same without public access is refused: anonymous requests are really anonymous.
    az.container("private", false).await;
    az.blob("private", "Changelog/changelog.info", f2.as_str())
        .await;
    let (lake, _) = lake_target(&format!("{}/private", az.base()), "{ method: none }");
    let e = lake.lookup(&id).await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Auth(m) if m.contains("HTTP 403 AuthorizationFailure")),
        "{e:?}"
    );
}

#[tokio::test]
async fn the_table_layout_is_polled_with_range_reads_of_what_was_appended() {
    let Some(az) = Azurite::start().await else {
        return;
    };
    let c = "dataverse-contoso-tables";
    let root = "exports/contoso";
    az.container(c, false).await;
    let part = format!("{root}/account/2026.csv");
    let mut csv: String = (0..1000)
        .map(|i| row(&format!("business-{i}"), "Contoso account"))
        .collect();
    az.blob(c, &format!("{root}/model.json"), MODEL).await;
    az.blob(c, &part, csv.as_str()).await;

    // The store's range reads and properties against the real service.
    let key = SharedKey::new(ACCOUNT, DEV_KEY).unwrap();
    let store = BlobStore::new(
        common::fakes::http_system("lake", Auth::None),
        BlobLocation::parse(&format!("{}/{c}/{root}", az.base())).unwrap(),
        BlobAuth::SharedKey(key),
    );
    let len = csv.len() as u64;
    assert_eq!(
        store
            .get_range("account/2026.csv", len - 10)
            .await
            .unwrap()
            .unwrap(),
        &csv.as_bytes()[csv.len() - 10..]
    );
    for past in [len, len + 100] {
        assert_eq!(
            store
                .get_range("account/2026.csv", past)
                .await
                .unwrap()
                .unwrap(),
            b"",
            "416 at {past}"
        );
    }
    assert_eq!(store.get_range("account/none.csv", 0).await.unwrap(), None);
    let stat = store.stat("model.json").await.unwrap().expect("model.json");
    assert_eq!(stat.size, MODEL.len() as u64);
    assert!(
        stat.version.is_some() && stat.modified.is_some(),
        "{stat:?}"
    );
    // The properties and the listing name the same version.
    let at_root = store.list("").await.unwrap();
    assert_eq!(at_root.files, std::slice::from_ref(&stat));
    assert_eq!(store.stat("none.json").await.unwrap(), None);
    let listed = store.list("account").await.unwrap();
    assert_eq!(listed.files[0].size, len);
    assert!(listed.files[0].version.is_some());

    let key = secret(&az.dir, "key", DEV_KEY);
    let (lake, metrics) = lake_target_with(
        &format!("{}/{c}/{root}", az.base()),
        &format!("{{ method: shared_key, account_key: \"{key}\" }}"),
        "table",
    );
    let id = SentinelId::new("lake");
    // Start-up: model.json's properties and body, the table's listing, 64 bytes of the file.
    let before = counters(&metrics);
    assert_eq!(lake.lookup(&id).await.unwrap(), Lookup::Absent);
    let after = counters(&metrics);
    assert_eq!(after.requests - before.requests, 4);
    assert_eq!(after.read - before.read, MODEL.len() as u64 + 64);
    // Idle: Get Blob Properties of model.json and one listing; nothing read.
    let before = counters(&metrics);
    assert_eq!(lake.lookup(&id).await.unwrap(), Lookup::Absent);
    let after = counters(&metrics);
    assert_eq!(
        (after.requests - before.requests, after.read - before.read),
        (2, 0)
    );
    assert_eq!(after.listed - before.listed, 1 + 1);

    // The export appends the sentinel (here: the blob put again, longer).
    let sentinel = row(id.key(), "t1");
    csv.push_str(&sentinel);
    az.blob(c, &part, csv.as_str()).await;
    let before = counters(&metrics);
    assert_eq!(
        lake.lookup(&id).await.unwrap(),
        Lookup::Present {
            payload: Some("t1".into())
        }
    );
    let after = counters(&metrics);
    assert_eq!(
        after.requests - before.requests,
        3,
        "properties, listing, range read"
    );
    assert_eq!(after.read - before.read, 64 + sentinel.len() as u64);
    let last = metrics.lake_last_folder.with_label_values(&["lake"]).get();
    assert!(
        (Utc::now().timestamp() as f64 - last).abs() < 600.0,
        "{last}"
    );
    assert_eq!(
        metrics
            .requests
            .with_label_values(&["lake", "lookup", "4xx"])
            .get(),
        0
    );

    // Rewritten in place (a row updated before the point read, a sentinel inserted among the
    // rows): the range read finds the fingerprint gone, and the file is read whole, once.
    let second = SentinelId::new("lake");
    let mut rows: Vec<String> = csv.lines().map(|l| format!("{l}\n")).collect();
    rows[5] = row(
        "business-5",
        "Contoso account, now with a longer description",
    );
    rows.insert(100, row(second.key(), "t2"));
    let rewritten: String = rows.concat();
    az.blob(c, &part, rewritten.as_str()).await;
    let before = counters(&metrics);
    assert_eq!(
        lake.lookup(&second).await.unwrap(),
        Lookup::Present {
            payload: Some("t2".into())
        }
    );
    let after = counters(&metrics);
    let tail = rewritten.len() as u64 - (csv.len() as u64 - 64);
    assert_eq!(after.read - before.read, tail + rewritten.len() as u64);
    assert_eq!(after.requests - before.requests, 4);
    // Shorter than the point read (rows deleted): read whole without a range read.
    let third = SentinelId::new("lake");
    let mut rows: Vec<String> = rewritten
        .lines()
        .skip(10)
        .map(|l| format!("{l}\n"))
        .collect();
    rows.push(row(third.key(), "t3"));
    let shorter: String = rows.concat();
    az.blob(c, &part, shorter.as_str()).await;
    let before = counters(&metrics);
    assert!(matches!(
        lake.lookup(&third).await,
        Ok(Lookup::Present { .. })
    ));
    let after = counters(&metrics);
    assert_eq!(after.read - before.read, shorter.len() as u64);
    assert_eq!(after.requests - before.requests, 3);
    // Presence is what is measured: the first sentinel stays found though its row is gone.
    assert!(matches!(lake.lookup(&id).await, Ok(Lookup::Present { .. })));
}
