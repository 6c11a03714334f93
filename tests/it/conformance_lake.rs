//! The contract every lake kind meets, on lakes written file by file as each layout documents
//! them, read from a local folder (`file://`) and from a fake of the Blob REST API.
//!
//! A lake target is not asked "is this key there?" in one request: each lookup brings a cursor
//! up to date with what the lake gained since the last one and answers from what it has read.
//! So the contract is about a change. The target first reads the lake as lagwatch finds it at
//! start-up (that lookup must answer `Absent`); then the layout's writer makes one change, and
//! the next lookup must answer for it as every HTTP kind answers (`tests/it/conformance.rs`):
//! the change without the sentinel (business rows and another sentinel, which must be found,
//! so the change was read) is `Absent`; with it, `Present` with content that matches; with it
//! holding other content, `Present` with content that does not; a change that is not the
//! documented layout (a file the cursor rejects) is `BadResponse` with the `200` it was read
//! with, never an error status of the store taken for garbage.
//!
//! The other states come from the store, not the layout, and are played by the Blob REST fake:
//! throttling (`429` with `Retry-After`, as OneLake sends it, and Azure Storage's
//! `503 ServerBusy`), refused credentials (`403 AuthenticationFailed`, and the `401` a rejected
//! token gets) and an answer slower than the engine's deadline. A lookup is a scan of several
//! requests, so each of them is refused in turn, in a fresh lake: whichever request is refused,
//! the call ends there — `Throttled` with the Retry-After, `Auth`, or abandoned at the
//! deadline — having sent exactly the requests up to the refused one (nothing is retried: an
//! account key cannot be refreshed), and the next call, the store answering again, finds the
//! sentinel: a refused or abandoned scan does no harm. The walk ends with a lookup whose scan
//! needed no more requests, which must find the sentinel too.
//!
//! The fake (`common::blob::FolderContainer`) serves the very folder the local runs read and
//! answers only the documented reads (List Blobs, Get Blob whole or by range, Get Blob
//! Properties), each signed with the account key, and `418` to anything else, so a kind cannot
//! pass by asking the wrong question. Targets are built from YAML as `lagwatch run` builds them.
//!
//! A new lake kind adds one `LakeBackend` here.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::blob::{DEV_ACCOUNT, DEV_KEY, FolderContainer, storage_error};
use common::lake::{DeltaTable, MODEL, csv_row, now_ms};
use lagwatch::connector::{ConnectorError, Lookup, Target};
use lagwatch::sentinel::{Sentinel, SentinelId};
use lagwatch_emulator::lake::folder_name;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// What the lake (the first four) or its store (the rest) is doing when the target is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Absent,
    Present,
    Mismatch,
    Malformed,
    Throttled,
    ServerBusy,
    Forbidden,
    Unauthorized,
    Slow,
}

/// The states a layout's writer makes.
const LAKE_STATES: [State; 4] = [
    State::Absent,
    State::Present,
    State::Mismatch,
    State::Malformed,
];

/// The states the Blob REST fake plays.
const STORE_STATES: [State; 5] = [
    State::Throttled,
    State::ServerBusy,
    State::Forbidden,
    State::Unauthorized,
    State::Slow,
];

/// Seconds of `Retry-After` the throttling fake sends.
const RETRY_AFTER: u64 = 12;

/// The engine's deadline in the `Slow` state, and how late the slow answer comes.
const DEADLINE: Duration = Duration::from_millis(300);
const SLOW: Duration = Duration::from_secs(3);

/// The folder of the container that holds the lake (the URL's path after the container).
const PREFIX: &str = "exports/contoso";

/// Where the lake is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    /// A local folder, `file://`.
    Local,
    /// The Blob REST fake serving the same folder, with Shared Key.
    Blob,
}

impl Store {
    fn label(self) -> &'static str {
        match self {
            Store::Local => "on file://",
            Store::Blob => "over Blob REST",
        }
    }
}

/// One lake layout: how its writer lays out the lake lagwatch finds at start-up, one change of
/// rows, and a change that is not the documented layout.
trait LakeBackend {
    /// `kind/layout`, for messages.
    fn name(&self) -> &'static str;
    /// The system's keys but `url` and `auth`: `kind: …`, then the others indented by 4.
    fn yaml(&self) -> &'static str;
    /// The lake as lagwatch finds it at start-up, without any sentinel, at `root`.
    fn base(&self, root: &Path);
    /// One change, as the layout's writer makes it: `rows` (key, payload) become readable.
    fn change(&self, root: &Path, rows: &[(String, String)]);
    /// A change the cursor must refuse to read (`LakeError::Malformed`).
    fn malformed(&self, root: &Path);
}

/// The rows of a change in `state`: business rows and `other`, and `s` unless `Absent`.
fn rows(state: State, s: &Sentinel, other: &Sentinel) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = (1..=3)
        .map(|i| (format!("business-{i:04}"), "Contoso, Seattle".to_string()))
        .collect();
    rows.push((other.id.key().to_string(), other.payload.clone()));
    match state {
        State::Absent => {}
        State::Mismatch => rows.push((s.id.key().to_string(), s.payload.to_uppercase())),
        _ => rows.push((s.id.key().to_string(), s.payload.clone())),
    }
    rows
}

/// The Blob REST fake's switch: which request (from 0) of the next call gets which state.
#[derive(Default)]
struct Switch {
    sent: AtomicUsize,
    fault: Mutex<Option<(usize, State)>>,
    /// The request that got the fault (`METHOD path`).
    refused: Mutex<Option<String>>,
}

/// [`FolderContainer`], with the request the switch names answered as its state.
struct Faulty {
    container: FolderContainer,
    switch: Arc<Switch>,
}

impl Respond for Faulty {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let n = self.switch.sent.fetch_add(1, Ordering::SeqCst);
        let fault = *self.switch.fault.lock().unwrap();
        let Some((_, state)) = fault.filter(|(at, _)| *at == n) else {
            return self.container.respond(req);
        };
        *self.switch.refused.lock().unwrap() = Some(format!("{} {}", req.method, req.url.path()));
        match state {
            State::Throttled => ResponseTemplate::new(429)
                .insert_header("Retry-After", RETRY_AFTER.to_string().as_str()),
            State::ServerBusy => storage_error(
                503,
                "ServerBusy",
                "Operations per second is over the account limit.",
            ),
            State::Forbidden => storage_error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of Authorization \
                 header is formed correctly including the signature.",
            ),
            State::Unauthorized => storage_error(
                401,
                "InvalidAuthenticationInfo",
                "Server failed to authenticate the request. Please refer to the information in \
                 the www-authenticate header.",
            )
            .insert_header(
                "WWW-Authenticate",
                "Bearer authorization_uri=https://login.microsoftonline.com/contoso/oauth2/authorize \
                 resource_id=https://storage.azure.com",
            ),
            State::Slow => self.container.respond(req).set_delay(SLOW),
            other => unreachable!("{other:?} is not a state of the store"),
        }
    }
}

/// A lake under test: its folder, the Blob REST fake serving it (if read over Blob REST), and
/// the target built from YAML, which has read the lake as found at start-up.
struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    fake: Option<(MockServer, Arc<Switch>)>,
    target: Arc<dyn Target>,
}

impl World {
    async fn new(backend: &dyn LakeBackend, store: Store, who: &str) -> World {
        let dir = common::temp_dir("lagwatch-conformance-lake-");
        let container = dir.path().join("container");
        let root = container.join(PREFIX);
        std::fs::create_dir_all(&root).unwrap();
        backend.base(&root);
        let (url, auth, fake) = match store {
            Store::Local => {
                let url = url::Url::from_file_path(&root).unwrap().to_string();
                (url, String::new(), None)
            }
            Store::Blob => {
                let server = MockServer::start().await;
                let switch = Arc::new(Switch::default());
                let container = FolderContainer::new(&container, "lake");
                Mock::given(wiremock::matchers::any())
                    .respond_with(Faulty {
                        container,
                        switch: switch.clone(),
                    })
                    .mount(&server)
                    .await;
                let key = dir.path().join("account-key");
                std::fs::write(&key, DEV_KEY).unwrap();
                let url = format!("{}/{DEV_ACCOUNT}/lake/{PREFIX}", server.uri());
                let auth = format!(
                    "    auth: {{ method: shared_key, account_key: \"file:{}\" }}\n",
                    key.display()
                );
                (url, auth, Some((server, switch)))
            }
        };
        let yaml = format!("{}    url: {url}\n{auth}", backend.yaml());
        let target = common::lake::system(&yaml).0.target.expect("a target");
        let start = target.lookup(&SentinelId::new("conf")).await;
        assert!(
            matches!(start, Ok(Lookup::Absent)),
            "{who}: the lake as found at start-up answered {start:?}"
        );
        World {
            _dir: dir,
            root,
            fake,
            target,
        }
    }

    /// Arms the fake: request `at` of the next call gets `state` (`None`: no fault).
    fn arm(&self, fault: Option<(usize, State)>) {
        let (_, switch) = self.fake.as_ref().expect("the Blob REST fake");
        switch.sent.store(0, Ordering::SeqCst);
        *switch.fault.lock().unwrap() = fault;
        *switch.refused.lock().unwrap() = None;
    }

    /// Requests sent since the fake was armed, and the one refused, if any.
    fn sent(&self) -> (usize, Option<String>) {
        let (_, switch) = self.fake.as_ref().expect("the Blob REST fake");
        let refused = switch.refused.lock().unwrap().clone();
        (switch.sent.load(Ordering::SeqCst), refused)
    }
}

/// A sentinel of this run and another one.
fn sentinels() -> (Sentinel, Sentinel) {
    (
        Sentinel::new("conf", 1, Utc::now()),
        Sentinel::new("conf", 2, Utc::now()),
    )
}

fn present(s: &Sentinel, result: &Result<Lookup, ConnectorError>) -> bool {
    matches!(result, Ok(Lookup::Present { payload: Some(p) }) if s.matches(p))
}

/// Every state the layout makes, read from `store`.
async fn lake_conformance(backend: &dyn LakeBackend, store: Store) {
    for state in LAKE_STATES {
        let who = format!("{} {} in state {state:?}", backend.name(), store.label());
        let w = World::new(backend, store, &who).await;
        let (s, other) = sentinels();
        match state {
            State::Malformed => backend.malformed(&w.root),
            _ => backend.change(&w.root, &rows(state, &s, &other)),
        }
        let result = w.target.lookup(&s.id).await;
        let ok = match (state, &result) {
            (State::Absent, Ok(Lookup::Absent)) => true,
            (State::Present, Ok(Lookup::Present { payload: Some(p) })) => s.matches(p),
            (State::Mismatch, Ok(Lookup::Present { payload: Some(p) })) => !s.matches(p),
            (State::Malformed, Err(ConnectorError::BadResponse { status: 200, .. })) => true,
            _ => false,
        };
        assert!(ok, "{who} answered {result:?}");
        if state == State::Absent {
            let seen = w.target.lookup(&other.id).await;
            assert!(
                present(&other, &seen),
                "{who}: the other sentinel of the change answered {seen:?}"
            );
        }
    }
}

/// Whether `result` is the error the contract asks for in the store state `state`.
fn refused_as_expected(state: State, result: &Result<Lookup, ConnectorError>) -> bool {
    match (state, result) {
        (State::Throttled, Err(ConnectorError::Throttled { retry_after })) => {
            *retry_after == Some(Duration::from_secs(RETRY_AFTER))
        }
        // Azure Storage's documented ServerBusy carries no Retry-After.
        (State::ServerBusy, Err(ConnectorError::Throttled { .. })) => true,
        (State::Forbidden | State::Unauthorized, Err(ConnectorError::Auth(_))) => true,
        (State::Slow, Err(ConnectorError::Timeout)) => true,
        _ => false,
    }
}

/// Every state of the Blob REST store in `states`, at each request of a scan that finds the
/// sentinel in turn.
async fn store_conformance(backend: &dyn LakeBackend, states: &[State]) {
    for &state in states {
        for at in 0.. {
            let who = format!("{} over Blob REST in state {state:?}", backend.name());
            let w = World::new(backend, Store::Blob, &who).await;
            let (s, other) = sentinels();
            backend.change(&w.root, &rows(State::Present, &s, &other));
            w.arm(Some((at, state)));
            let result = match tokio::time::timeout(DEADLINE, w.target.lookup(&s.id)).await {
                Ok(r) => r,
                Err(_) => Err(ConnectorError::Timeout),
            };
            let (sent, refused) = w.sent();
            w.arm(None);
            let Some(request) = refused else {
                // The scan needed `at` requests or fewer: each has been refused once.
                assert!(at > 0, "{who}: the lookup sent no request");
                assert!(
                    present(&s, &result),
                    "{who}: with no request refused, the lookup answered {result:?}"
                );
                break;
            };
            let who = format!("{who}, request {at} of the scan ({request})");
            assert!(
                refused_as_expected(state, &result),
                "{who}: answered {result:?}"
            );
            assert_eq!(sent, at + 1, "{who}: requests sent by a refused call");
            let again = w.target.lookup(&s.id).await;
            assert!(
                present(&s, &again),
                "{who}: the next call, the store answering again, answered {again:?}"
            );
            assert!(at < 20, "{who}: the scan does not end");
        }
    }
}

// ---------------------------------------------------------------- synapse_link_csv/incremental

/// Synapse Link incremental update folders: `Changelog/changelog.info` names the folder being
/// written; a change is rows in that folder, readable once the next folder opens.
struct Incremental {
    open: String,
    next: String,
}

impl Incremental {
    /// Folders of the last minutes: lagwatch skips folders that closed before it started.
    fn new() -> Self {
        let t = Utc::now() - chrono::Duration::minutes(2);
        Incremental {
            open: folder_name(t),
            next: folder_name(t + chrono::Duration::minutes(1)),
        }
    }

    fn open_folder(root: &Path, folder: &str) {
        std::fs::create_dir_all(root.join(folder)).unwrap();
        std::fs::write(root.join(folder).join("model.json"), MODEL).unwrap();
        std::fs::create_dir_all(root.join("Changelog")).unwrap();
        std::fs::write(root.join("Changelog/changelog.info"), folder).unwrap();
    }

    fn close_with(&self, root: &Path, csv: &str) {
        let dir = root.join(&self.open).join("account");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("2026.csv"), csv).unwrap();
        Incremental::open_folder(root, &self.next);
    }
}

impl LakeBackend for Incremental {
    fn name(&self) -> &'static str {
        "synapse_link_csv/incremental"
    }
    fn yaml(&self) -> &'static str {
        "kind: synapse_link_csv\n    table: account\n    key_column: name\n    \
         payload_column: description\n    layout: incremental\n"
    }
    fn base(&self, root: &Path) {
        Incremental::open_folder(root, &self.open);
    }
    fn change(&self, root: &Path, rows: &[(String, String)]) {
        let csv: String = rows.iter().map(|(k, p)| csv_row(k, p)).collect();
        self.close_with(root, &csv);
    }
    /// A row with fewer fields than `model.json` lists columns.
    fn malformed(&self, root: &Path) {
        self.close_with(root, "only,three,fields\n");
    }
}

#[tokio::test]
async fn synapse_link_csv_incremental_meets_the_lake_contract_on_a_local_folder() {
    lake_conformance(&Incremental::new(), Store::Local).await;
}

#[tokio::test]
async fn synapse_link_csv_incremental_meets_the_lake_contract_over_blob_rest() {
    lake_conformance(&Incremental::new(), Store::Blob).await;
}

#[tokio::test]
async fn synapse_link_csv_incremental_meets_the_store_contract_over_blob_rest() {
    store_conformance(&Incremental::new(), &STORE_STATES).await;
}

// ---------------------------------------------------------------- synapse_link_csv/table

/// The Synapse Link table layout: `model.json` and one CSV file per partition, appended to.
struct TableLayout;

const PARTITION: &str = "account/2026.csv";

impl TableLayout {
    fn append(root: &Path, csv: &str) {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(root.join(PARTITION))
            .unwrap();
        f.write_all(csv.as_bytes()).unwrap();
    }
}

impl LakeBackend for TableLayout {
    fn name(&self) -> &'static str {
        "synapse_link_csv/table"
    }
    fn yaml(&self) -> &'static str {
        "kind: synapse_link_csv\n    table: account\n    key_column: name\n    \
         payload_column: description\n    layout: table\n"
    }
    fn base(&self, root: &Path) {
        std::fs::write(root.join("model.json"), MODEL).unwrap();
        std::fs::create_dir_all(root.join("account")).unwrap();
        let csv: String = (0..3)
            .map(|i| csv_row(&format!("business-old-{i}"), "Fabrikam, Berlin"))
            .collect();
        std::fs::write(root.join(PARTITION), csv).unwrap();
    }
    fn change(&self, root: &Path, rows: &[(String, String)]) {
        let csv: String = rows.iter().map(|(k, p)| csv_row(k, p)).collect();
        TableLayout::append(root, &csv);
    }
    /// A row with fewer fields than `model.json` lists columns, followed by another row (a
    /// short last row is a write in progress, not garbage).
    fn malformed(&self, root: &Path) {
        let csv = format!("only,three,fields\n{}", csv_row("business-0009", "x"));
        TableLayout::append(root, &csv);
    }
}

#[tokio::test]
async fn synapse_link_csv_table_meets_the_lake_contract_on_a_local_folder() {
    lake_conformance(&TableLayout, Store::Local).await;
}

#[tokio::test]
async fn synapse_link_csv_table_meets_the_lake_contract_over_blob_rest() {
    lake_conformance(&TableLayout, Store::Blob).await;
}

#[tokio::test]
async fn synapse_link_csv_table_meets_the_store_contract_over_blob_rest() {
    store_conformance(&TableLayout, &STORE_STATES).await;
}

// ---------------------------------------------------------------- delta

/// A Delta table: a change is one commit adding one Parquet data file.
struct Delta;

impl LakeBackend for Delta {
    fn name(&self) -> &'static str {
        "delta"
    }
    fn yaml(&self) -> &'static str {
        "kind: delta\n    key_column: name\n    payload_column: description\n"
    }
    fn base(&self, root: &Path) {
        DeltaTable::create_at(root);
    }
    fn change(&self, root: &Path, rows: &[(String, String)]) {
        let mut t = DeltaTable::open(root, 0);
        let sink = Utc::now().timestamp_micros();
        let rows: Vec<_> = rows
            .iter()
            .map(|(k, p)| (k.clone(), p.clone(), sink))
            .collect();
        let add = t.data("part-00001.snappy.parquet", &rows, true, now_ms());
        t.commit(&[add]);
    }
    /// A commit file that is not JSON lines.
    fn malformed(&self, root: &Path) {
        std::fs::write(
            root.join("_delta_log/00000000000000000001.json"),
            "{not json\n",
        )
        .unwrap();
    }
}

#[tokio::test]
async fn delta_meets_the_lake_contract_on_a_local_folder() {
    lake_conformance(&Delta, Store::Local).await;
}

#[tokio::test]
async fn delta_meets_the_lake_contract_over_blob_rest() {
    lake_conformance(&Delta, Store::Blob).await;
}

#[tokio::test]
async fn delta_meets_the_store_contract_over_blob_rest() {
    store_conformance(&Delta, &STORE_STATES).await;
}
