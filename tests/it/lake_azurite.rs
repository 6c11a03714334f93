//! The `synapse_link_csv` kind reading an export from Azure Storage, here Azurite's blob
//! service (the Microsoft emulator, npm package `azurite`, installed by
//! `scripts/install-test-tools` into `.tools/azurite`): the container is uploaded with Put
//! Blob signed with the emulator's public account key, then read by the kind built from YAML
//! with an `http://127.0.0.1:<port>/devstoreaccount1/<container>/<folder>` URL, with Shared Key,
//! a SAS token and anonymous access; a wrong key is an auth error; listings follow `NextMarker`
//! pages; the table layout (`layout: table`) is polled with Get Blob Properties, one listing and
//! `Range` reads of what was appended to a partition blob; a Delta table written there by the
//! emulator's `DeltaWriter` is read by the `delta` kind from its log. The emulator's `BlobSink` writes,
//! appends, renames and deletes blobs there that lagwatch's `BlobStore` reads back, and an
//! emulator writing its lake through it is read by the kind, which finds each sentinel when its
//! folder closes, with the ground truth's sink instant; an emulator's seeded lake replicas
//! (incremental CSV and Delta) written there are listed by the reconciliation inventory, in
//! bounded `Range` reads, with exactly the keys and versions the seed says. Each test starts
//! its own Azurite on a
//! free port and stops it (by its process) when it ends. Without Azurite the tests skip, unless
//! `LAGWATCH_REQUIRE_TOOLS=1` (CI), where they fail.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::blob::DEV_KEY;
use common::lake::MODEL;
use lagwatch::auth::Auth;
use lagwatch::config::Secret;
use lagwatch::connector::{ConnectorError, Lookup, Target};
use lagwatch::lake::LakeStore;
use lagwatch::lake::blob::{
    API_VERSION, BlobAuth, BlobLocation, BlobStore, SharedKey, encode_path,
};
use lagwatch::metrics::Metrics;
use lagwatch::sentinel::SentinelId;
use lagwatch_emulator::lake::folder_name;
use lagwatch_emulator::{BlobSink, BlobSinkError, Emulator, EmulatorOptions, LakeSink, Scenario};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use tokio::time::Instant;

/// The emulator's well-known account (a public constant of Azurite and the docs, as is its key,
/// `DEV_KEY`).
const ACCOUNT: &str = "devstoreaccount1";

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
            common::tools::missing("Azurite", "is not installed");
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
                    common::tools::missing(
                        "Azurite",
                        &format!("({}) cannot run: {e}", bin.display()),
                    );
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

    /// `x-ms-blob-type` of a blob (`BlockBlob`, `AppendBlob`), from a signed Get Blob
    /// Properties; `None` when it does not exist.
    async fn blob_type(&self, container: &str, name: &str) -> Option<String> {
        let url = url::Url::parse(&format!(
            "{}/{container}/{}",
            self.base(),
            encode_path(name)
        ))
        .unwrap();
        let mut h = HeaderMap::new();
        let date = Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        h.insert("x-ms-date", HeaderValue::from_str(&date).unwrap());
        h.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
        let auth = self.key.authorization("HEAD", &url, &h);
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        let resp = self.http.head(url).headers(h).send().await.unwrap();
        if resp.status().as_u16() == 404 {
            return None;
        }
        assert_eq!(resp.status().as_u16(), 200, "HEAD {container}/{name}");
        resp.headers()
            .get("x-ms-blob-type")
            .map(|v| v.to_str().unwrap().to_string())
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
    target_from_yaml(&format!(
        "kind: synapse_link_csv\n    url: {url}\n    table: account\n    key_column: name\n    \
         payload_column: description\n    auth: {auth}\n    layout: {layout}\n"
    ))
}

/// The target system `lake` built from YAML; `block` is its body, keys indented by 4.
fn target_from_yaml(block: &str) -> (Arc<dyn Target>, Metrics) {
    let (system, metrics) = common::lake::system(block);
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
            .map(|s| m.requests("lake", "lookup", s))
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
    assert_eq!(metrics.requests("lake", "lookup", "4xx"), 0);
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
    let pages = metrics.requests("lake", "lookup", "2xx");
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
    assert_eq!(metrics.requests("lake", "lookup", "4xx"), 1);
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

/// lagwatch's own reader of `container`, signed with the account key.
fn reader(az: &Azurite, container: &str) -> BlobStore {
    let metrics = Metrics::new();
    let http = common::fakes::http_system_with("lake", Auth::None, &metrics);
    let location = BlobLocation::parse(&format!("{}/{container}", az.base())).unwrap();
    let key = SharedKey::new(ACCOUNT, DEV_KEY).unwrap();
    BlobStore::new(http, location, BlobAuth::SharedKey(key))
}

#[tokio::test]
async fn the_blob_sink_writes_appends_renames_and_deletes_what_blob_store_reads() {
    let Some(az) = Azurite::start().await else {
        return;
    };
    let c = "sink-unit";
    let sink = BlobSink::new(&az.base(), ACCOUNT, DEV_KEY).unwrap();
    let store = reader(&az, c);
    // Folders are implicit: nothing is created, not even the container.
    sink.create_dir(&format!("{c}/f/account")).await.unwrap();
    assert_eq!(az.blob_type(c, "f").await, None);

    // The first write creates the container.
    sink.write(&format!("{c}/f/model.json"), b"{}")
        .await
        .unwrap();
    assert_eq!(store.get("f/model.json").await.unwrap().unwrap(), b"{}");
    sink.write(&format!("{c}/f/model.json"), b"{\"v\":2}")
        .await
        .unwrap();
    assert_eq!(
        store.get("f/model.json").await.unwrap().unwrap(),
        b"{\"v\":2}"
    );
    assert_eq!(
        az.blob_type(c, "f/model.json").await.as_deref(),
        Some("BlockBlob")
    );

    // write_atomic is one put: a blob at the default temporary name is left alone (the
    // default temp + rename would have replaced and deleted it).
    sink.write(&format!("{c}/Changelog/.changelog.info.tmp"), b"untouched")
        .await
        .unwrap();
    for name in ["2026-11-02T10.15.00.000Z", "2026-11-02T10.15.30.000Z"] {
        sink.write_atomic(&format!("{c}/Changelog/changelog.info"), name.as_bytes())
            .await
            .unwrap();
        assert_eq!(
            store
                .get("Changelog/changelog.info")
                .await
                .unwrap()
                .unwrap(),
            name.as_bytes()
        );
    }
    assert_eq!(
        store
            .get("Changelog/.changelog.info.tmp")
            .await
            .unwrap()
            .unwrap(),
        b"untouched"
    );

    // Appends create an append blob, then add to it; odd names round-trip.
    let csv = "f/account/2026-11-02T10:15 a+b.csv";
    sink.append(&format!("{c}/{csv}"), b"a,1\n").await.unwrap();
    sink.append(&format!("{c}/{csv}"), b"b,\"x\"\"y\"\n")
        .await
        .unwrap();
    sink.append(&format!("{c}/{csv}"), b"").await.unwrap();
    assert_eq!(
        store.get(csv).await.unwrap().unwrap(),
        b"a,1\nb,\"x\"\"y\"\n"
    );
    assert_eq!(az.blob_type(c, csv).await.as_deref(), Some("AppendBlob"));
    // An empty append still makes the file.
    sink.append(&format!("{c}/f/account/empty.csv"), b"")
        .await
        .unwrap();
    assert_eq!(
        store.get("f/account/empty.csv").await.unwrap().unwrap(),
        b""
    );
    // Block and append semantics do not mix: appending to a block blob is refused.
    let e = sink
        .append(&format!("{c}/f/model.json"), b"x")
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("HTTP 409") && text.contains("InvalidBlobType"),
        "{text}"
    );
    let inner = e.get_ref().and_then(|e| e.downcast_ref::<BlobSinkError>());
    assert_eq!(inner.and_then(BlobSinkError::code), Some("InvalidBlobType"));

    let listing = store.list("f").await.unwrap();
    assert_eq!(listing.dirs, ["account"]);
    assert_eq!(
        listing
            .files
            .iter()
            .map(|f| (f.name.as_str(), f.size))
            .collect::<Vec<_>>(),
        [("model.json", 7)]
    );

    // Rename: the content moves, the old name is gone.
    sink.rename(&format!("{c}/f/model.json"), &format!("{c}/g/model.json"))
        .await
        .unwrap();
    assert_eq!(store.get("f/model.json").await.unwrap(), None);
    assert_eq!(
        store.get("g/model.json").await.unwrap().unwrap(),
        b"{\"v\":2}"
    );
    let e = sink
        .rename(&format!("{c}/f/model.json"), &format!("{c}/h"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");

    // Delete: gone; twice, or in a container that does not exist, is fine.
    sink.delete(&format!("{c}/{csv}")).await.unwrap();
    assert_eq!(store.get(csv).await.unwrap(), None);
    sink.delete(&format!("{c}/{csv}")).await.unwrap();
    sink.delete("no-such-container/x").await.unwrap();

    assert_eq!(
        sink.url(&format!("{c}/{csv}")),
        format!("{}/{c}/f/account/2026-11-02T10%3A15%20a%2Bb.csv", az.base())
    );
    for bad in ["", "sink-unit", "sink-unit/../x", "Bad_Container/x"] {
        let e = sink.write(bad, b"x").await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}: {e}");
    }
}

#[tokio::test]
async fn a_blob_sink_with_a_wrong_key_fails_without_showing_it() {
    let Some(az) = Azurite::start().await else {
        return;
    };
    let wrong = "V3JvbmdXcm9uZ1dyb25nV3JvbmdXcm9uZ1dyb25nV3JvbmdXcm9uZw==";
    let sink = BlobSink::for_account_url(&az.base(), wrong).unwrap();
    let e = sink.write("lake/model.json", b"{}").await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    let text = format!("{e} {e:?}");
    assert!(
        text.contains("create container lake: HTTP 403 AuthorizationFailure")
            || text.contains("create container lake: HTTP 403 AuthenticationFailed"),
        "{text}"
    );
    assert!(
        !text.contains(wrong) && !text.contains("Signature"),
        "{text}"
    );
    // Nothing was written.
    assert_eq!(az.blob_type("lake", "model.json").await, None);
}

/// A lake replica whose rows sink 1 to 3 s after their commit into 2 s folders.
const LAKE_SCENARIO: &str = r#"
credentials:
  - { tenant: contoso, client_id: app-1, client_secret: s3cret }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, description: string }
lakes:
  dl: { container: dataverse-contoso-blob }
replicas:
  lake:
    source: crm/accounts
    target: { kind: lake, lake: dl, table: account }
    key: name
    lag: { distribution: uniform, min: 1s, max: 3s }
    folder_interval: 2s
"#;

const LAKE_INTERVAL: Duration = Duration::from_secs(2);

#[tokio::test]
async fn the_emulator_writes_its_lake_to_azurite_and_the_kind_reads_it_when_folders_close() {
    let Some(az) = Azurite::start().await else {
        return;
    };
    let c = "dataverse-contoso-blob";
    let sink = Arc::new(BlobSink::new(&az.base(), ACCOUNT, DEV_KEY).unwrap());
    let emu = Emulator::with_options(
        Scenario::from_yaml(LAKE_SCENARIO).unwrap_or_else(|e| panic!("{e}")),
        EmulatorOptions {
            lake_sink: Some(sink.clone()),
            ..EmulatorOptions::default()
        },
    );
    emu.flush_lake().await.expect("lake written to Azurite");
    assert_eq!(emu.lake_root(), None, "no local directory");
    let store = reader(&az, c);
    assert!(
        store
            .get("Changelog/changelog.info")
            .await
            .unwrap()
            .is_some()
    );

    let key = secret(&az.dir, "key", DEV_KEY);
    let (lake, _) = lake_target(
        &format!("{}/{c}", az.base()),
        &format!("{{ method: shared_key, account_key: \"{key}\" }}"),
    );
    let token =
        common::entra::token_in_process(&emu, "app-1", "s3cret", "https://crm.crm.dynamics.com")
            .await;

    // Sentinels written into Dataverse; each is absent right after its write (it sinks 1 s
    // later at the earliest).
    let mut sentinels = Vec::new();
    for i in 0..3 {
        let id = SentinelId::new("lake");
        let payload = format!("payload {i}, \"quoted\"");
        common::entra::create_account(&emu, &token, id.key(), &payload).await;
        assert_eq!(lake.lookup(&id).await.unwrap(), Lookup::Absent);
        sentinels.push((id, payload));
        tokio::time::sleep(Duration::from_millis(700)).await;
    }

    // Poll: a sentinel is found exactly from the close of the folder holding it, with the
    // emulator's sink instant as its SinkCreatedOn; until then it is in Azurite but unread.
    let mut found = std::collections::HashSet::new();
    let mut unread_in_storage = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while found.len() < sentinels.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "found {} of {}",
            found.len(),
            sentinels.len()
        );
        let before = Instant::now();
        emu.flush_lake().await.expect("flush");
        for (id, payload) in &sentinels {
            let truth = emu.truth("lake", id.key()).expect("truth");
            let visible = truth.visible_at.expect("visible_at");
            let sink_at = truth.sink_at.expect("sink_at");
            match lake.lookup(id).await.unwrap() {
                Lookup::Absent => {
                    assert!(
                        visible > before,
                        "{} missing after its folder closed",
                        id.key()
                    );
                    if sink_at <= before {
                        let folder = folder_name(emu.wall_time(visible - LAKE_INTERVAL));
                        let dir = format!("{folder}/account");
                        let mut text = String::new();
                        for f in store.list(&dir).await.unwrap().files {
                            let bytes = store.get(&format!("{dir}/{}", f.name)).await.unwrap();
                            text.push_str(&String::from_utf8_lossy(&bytes.unwrap_or_default()));
                        }
                        assert!(text.contains(id.key()), "{} appended to {dir}", id.key());
                        unread_in_storage += 1;
                    }
                }
                Lookup::Present { payload: got } => {
                    assert!(
                        Instant::now() >= visible,
                        "{} read before its folder closed",
                        id.key()
                    );
                    assert_eq!(got.as_deref(), Some(payload.as_str()));
                    let want = emu.wall_time(sink_at);
                    let got = lake.applied_at(id).await.expect("SinkCreatedOn");
                    let behind = (want - got).num_nanoseconds().expect("small");
                    assert!(
                        (0..100).contains(&behind),
                        "SinkCreatedOn {got} is the truth's sink_at {want} to 100 ns"
                    );
                    found.insert(id.key().to_string());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        unread_in_storage > 0,
        "a sentinel was seen in an open folder's CSV and not reported"
    );

    // The closed folder's model.json names its CSV by blob URL; CSVs are append blobs,
    // manifests and changelog.info block blobs; no temporary blobs were left.
    let truth = emu.truth("lake", sentinels[0].0.key()).expect("truth");
    let folder = folder_name(emu.wall_time(truth.visible_at.expect("visible") - LAKE_INTERVAL));
    let model: Value = serde_json::from_slice(
        &store
            .get(&format!("{folder}/model.json"))
            .await
            .unwrap()
            .expect("model.json"),
    )
    .expect("JSON");
    let location = model["entities"][0]["partitions"][0]["location"]
        .as_str()
        .expect("a partition")
        .to_string();
    let csv = location
        .strip_prefix(&format!("{}/{c}/", az.base()))
        .unwrap_or_else(|| panic!("{location} is a blob URL in {c}"));
    assert!(csv.starts_with(&format!("{folder}/account/")), "{csv}");
    assert_eq!(az.blob_type(c, csv).await.as_deref(), Some("AppendBlob"));
    for block in [
        "model.json".to_string(),
        format!("{folder}/model.json"),
        "Changelog/changelog.info".to_string(),
    ] {
        assert_eq!(
            az.blob_type(c, &block).await.as_deref(),
            Some("BlockBlob"),
            "{block}"
        );
    }
    assert_eq!(store.list("Changelog").await.unwrap().files.len(), 1);
    emu.stop_lake().await;
}

#[tokio::test]
async fn emulate_writes_the_lake_to_a_blob_url_with_the_key_from_the_environment() {
    let Some(az) = Azurite::start().await else {
        return;
    };
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenarios/lake.yaml");
    let emulate = |key: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lagwatch"));
        cmd.args(["emulate", "--listen", "127.0.0.1:0", "--scenario"])
            .arg(&scenario)
            .args(["--lake-blob-url", &az.base()])
            .env_remove(lagwatch_emulator::cli::LAKE_KEY_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(key) = key {
            cmd.env(lagwatch_emulator::cli::LAKE_KEY_ENV, key);
        }
        cmd
    };

    // Without the key in the environment: refused before anything is written.
    let out = emulate(None).output().expect("lagwatch runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(lagwatch_emulator::cli::LAKE_KEY_ENV),
        "{stderr}"
    );

    let mut child = emulate(Some(DEV_KEY)).spawn().expect("lagwatch runs");
    let store = reader(&az, "dataverse-contoso-unq1234");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut open = None;
    while open.is_none() && std::time::Instant::now() < deadline {
        open = store.get("Changelog/changelog.info").await.ok().flatten();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let open = String::from_utf8(open.unwrap_or_else(|| panic!("no changelog.info; {stdout}")))
        .expect("UTF-8");
    assert!(
        stdout.contains(&format!("writing lakes to {}", az.base())),
        "{stdout}"
    );
    assert!(
        store
            .get(&format!("{open}/model.json"))
            .await
            .unwrap()
            .is_some()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!format!("{stdout}{stderr}").contains(DEV_KEY));
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
    assert_eq!(metrics.requests("lake", "lookup", "4xx"), 0);

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

/// The `delta` kind built from YAML for a table at `url`.
fn delta_target(url: &str, auth: &str) -> (Arc<dyn Target>, Metrics) {
    target_from_yaml(&format!(
        "kind: delta\n    url: {url}\n    key_column: name\n    payload_column: description\n    \
         auth: {auth}\n"
    ))
}

#[tokio::test]
async fn a_delta_table_in_azurite_is_read_from_its_log_through_compaction_and_checkpoint() {
    use lagwatch_emulator::delta::{Cell, DeltaSchema, DeltaType, DeltaWriter};
    let Some(az) = Azurite::start().await else {
        return;
    };
    let root = "fabric-contoso/deltalake/account";
    let sink = Arc::new(BlobSink::new(&az.base(), ACCOUNT, DEV_KEY).unwrap());
    let mut w = DeltaWriter::new(sink, root).with_tombstone_retention(Duration::ZERO);
    w.create(
        DeltaSchema::new([
            ("Id", DeltaType::String),
            ("SinkCreatedOn", DeltaType::Timestamp),
            ("name", DeltaType::String),
            ("description", DeltaType::String),
        ])
        .unwrap(),
    )
    .await
    .unwrap();
    let sink_at: DateTime<Utc> = "2026-11-27T03:00:00.123456Z".parse().unwrap();
    let row = |name: &str, description: &str| {
        vec![
            Some(Cell::Str(uuid::Uuid::now_v7().to_string())),
            Some(Cell::Timestamp(sink_at)),
            Some(Cell::Str(name.to_string())),
            Some(Cell::Str(description.to_string())),
        ]
    };
    let business: Vec<_> = (0..20).map(|i| row(&format!("Account {i}"), "x")).collect();
    w.append(&business).await.unwrap();

    let key = secret(&az.dir, "key", DEV_KEY);
    let auth = format!("{{ method: shared_key, account_key: \"{key}\" }}");
    let url = format!("{}/{root}", az.base());
    let (lake, metrics) = delta_target(&url, &auth);
    let id = SentinelId::new("lake");
    assert_eq!(lake.lookup(&id).await.unwrap(), Lookup::Absent);
    // Idle: the next commit and _last_checkpoint, both absent; nothing listed or read.
    let before = counters(&metrics);
    assert_eq!(lake.lookup(&id).await.unwrap(), Lookup::Absent);
    let after = counters(&metrics);
    assert_eq!(
        (
            after.requests - before.requests,
            after.read - before.read,
            after.listed - before.listed
        ),
        (2, 0, 0)
    );

    // One commit with the sentinel: the commit, its data file, then the idle pair.
    w.append(&[row(id.key(), "p1")]).await.unwrap();
    let before = counters(&metrics);
    assert_eq!(
        lake.lookup(&id).await.unwrap(),
        Lookup::Present {
            payload: Some("p1".into())
        }
    );
    let after = counters(&metrics);
    assert_eq!(after.requests - before.requests, 4);
    let file = w.files().last().map(|f| f.size).unwrap();
    assert!(after.read - before.read > u64::try_from(file).unwrap());
    assert_eq!(lake.applied_at(&id).await, Some(sink_at));

    // Compacted, checkpointed, log expired and vacuumed: a lagwatch starting now finds the
    // sentinel from the checkpoint and the compacted file; the running one reads only the log.
    w.compact().await.unwrap().expect("compacted");
    let cp = w.checkpoint().await.unwrap();
    w.expire_log(cp).await.unwrap();
    w.vacuum(Duration::ZERO).await.unwrap();
    let before = counters(&metrics);
    assert!(matches!(
        lake.lookup(&id).await.unwrap(),
        Lookup::Present { .. }
    ));
    let after = counters(&metrics);
    let compacted = w.files().last().map(|f| f.size).unwrap();
    assert!(
        after.read - before.read < u64::try_from(compacted).unwrap(),
        "the compacted file is not read again"
    );
    let (fresh, _) = delta_target(&url, &auth);
    assert_eq!(
        fresh.lookup(&id).await.unwrap(),
        Lookup::Present {
            payload: Some("p1".into())
        }
    );
}

/// Seeded lake replicas in the incremental and the Delta layout, with drift.
const SEEDED_SCENARIO: &str = r#"
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, description: string }
        seed: { rows: 3000, deleted: 20, in_flight: 5 }
lakes:
  dl: { container: dataverse-contoso-seeded }
  fab: { container: fabric-contoso-seeded, layout: delta }
replicas:
  to_dl:
    source: crm/accounts
    target: { kind: lake, lake: dl, table: account }
    lag: { distribution: uniform, min: 1s, max: 3s }
    folder_interval: 2s
    drift: { missing: 7, stale: 5, extra: 3, changed: 4 }
  to_fab:
    source: crm/accounts
    target: { kind: lake, lake: fab, table: account }
    lag: { distribution: uniform, min: 1s, max: 3s }
    folder_interval: 2s
    drift: { missing: 2, extra: 20 }
"#;

/// Every page of `inv`, folded as a change log: key (`Id`) → `versionnumber`.
async fn fold_versions(
    inv: &dyn lagwatch::connector::inventory::Inventory,
) -> std::collections::BTreeMap<String, String> {
    let q = lagwatch::connector::inventory::InventoryQuery {
        table: None,
        columns: vec!["Id".into(), "versionnumber".into()],
        changed_since: None,
        page_size: 5000,
    };
    let mut held = std::collections::BTreeMap::new();
    let mut next: Option<String> = None;
    loop {
        let page = inv.page(&q, next.as_deref()).await.expect("page");
        for r in page.rows {
            let key = r.values[0].clone().expect("Id");
            if r.deleted {
                held.remove(&key);
            } else {
                held.insert(key, r.values[1].clone().expect("version"));
            }
        }
        match page.next {
            Some(n) => next = Some(n),
            None => return held,
        }
    }
}

/// What seed.rs says replica `replica` of [`SEEDED_SCENARIO`] holds: key → version.
fn seeded_versions(s: &Scenario, replica: &str) -> std::collections::BTreeMap<String, String> {
    use lagwatch_emulator::seed::{DriftPlan, replica_copy, row_id};
    let seed = s.dataverse["crm"].tables["accounts"]
        .seed
        .clone()
        .expect("seed");
    let plan = DriftPlan::new(&seed, s.replicas[replica].drift.unwrap_or_default()).unwrap();
    (0..seed.rows)
        .filter_map(|i| {
            let (_, v) = replica_copy(
                &serde_json::Map::new(),
                "accountid",
                i,
                plan.replica_fate(i),
            )?;
            Some((row_id("crm", "accounts", i).to_string(), v.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn seeded_lake_replicas_in_azurite_are_listed_by_the_inventory_in_bounded_ranges() {
    use lagwatch::lake::inventory::{CsvInventory, CsvLayout};
    let Some(az) = Azurite::start().await else {
        return;
    };
    let scenario = Scenario::from_yaml(SEEDED_SCENARIO).unwrap_or_else(|e| panic!("{e}"));
    let sink = Arc::new(BlobSink::new(&az.base(), ACCOUNT, DEV_KEY).unwrap());
    let emu = Emulator::with_options(
        scenario.clone(),
        EmulatorOptions {
            lake_sink: Some(sink),
            ..EmulatorOptions::default()
        },
    );
    emu.flush_lake().await.expect("seeded into Azurite");
    // The initial-sync folder closes when the next one opens.
    tokio::time::sleep(LAKE_INTERVAL + Duration::from_millis(200)).await;
    emu.flush_lake().await.expect("flush");

    // CSV: lagwatch's blob reader, 8 KiB ranges of the seeded file (Range: bytes=a-b).
    let store: Arc<dyn LakeStore> = Arc::new(reader(&az, "dataverse-contoso-seeded"));
    let inv = CsvInventory::new(store, "account", CsvLayout::Incremental).with_page_bytes(8192);
    let got = fold_versions(&inv).await;
    assert_eq!(got, seeded_versions(&scenario, "to_dl"));

    // Delta: the kind from YAML, its inventory metered like its probes.
    let key = secret(&az.dir, "key", DEV_KEY);
    let (system, metrics) = common::lake::system(&format!(
        "kind: delta\n    url: {}/fabric-contoso-seeded/deltalake/account\n    \
         key_column: name\n    auth: {{ method: shared_key, account_key: \"{key}\" }}\n",
        az.base()
    ));
    let inv = system.inventory.expect("an inventory");
    let got = fold_versions(inv.as_ref()).await;
    assert_eq!(got, seeded_versions(&scenario, "to_fab"));
    assert!(metrics.lake_bytes_read.with_label_values(&["lake"]).get() > 0);
    emu.stop_lake().await;
}
