//! A lake replica of a seeded table starts with the replica's copy of the seeded rows, drift
//! included, in every layout: read back through the lake kinds' inventory and folded as the
//! reconciliation runner folds a change log (last row per key, delete markers drop the key),
//! the keys, versions and values are exactly what `emulator::seed` says the replica holds.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lagwatch::connector::inventory::{Inventory, InventoryQuery, InventoryRow, InventoryShape};
use lagwatch::lake::delta_inventory::DeltaInventory;
use lagwatch::lake::inventory::{CsvInventory, CsvLayout};
use lagwatch::lake::{LakeStore, LocalStore};
use lagwatch_emulator::lake_delta::table_root;
use lagwatch_emulator::seed::{
    Drift, DriftPlan, RowFate, created_age_secs, generated_fields, replica_copy, row_id,
};
use lagwatch_emulator::{Emulator, Scenario};
use tokio::time::advance;

const SCENARIO: &str = r#"
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, description: string, customertypecode: int, active: bool }
        seed:
          rows: ROWS
          values: { customertypecode: 3 }
          deleted: 10
          in_flight: 5
lakes:
  inc: { container: seed-incremental }
  app: { container: seed-append, layout: table, update_mode: append_only }
  inp: { container: seed-inplace, layout: table, partition: month }
  fab: { container: seed-fabric, layout: delta }
replicas:
  to_inc:
    source: crm/accounts
    target: { kind: lake, lake: inc, table: account }
    lag: { distribution: uniform, min: 1s, max: 2s }
    folder_interval: 10s
    drift: { missing: 7, stale: 5, extra: 3, changed: 4 }
  to_app:
    source: crm/accounts
    target: { kind: lake, lake: app, table: account }
    lag: { distribution: uniform, min: 1s, max: 2s }
    drift: { missing: 2, stale: 1, extra: 10, changed: 1 }
  to_inp:
    source: crm/accounts
    target: { kind: lake, lake: inp, table: account }
    lag: { distribution: uniform, min: 1s, max: 2s }
  to_fab:
    source: crm/accounts
    target: { kind: lake, lake: fab, table: account }
    lag: { distribution: uniform, min: 1s, max: 2s }
    folder_interval: 10s
    drift: { missing: 1, stale: 2, extra: 1, changed: 3 }
"#;

const COLUMNS: &[&str] = &[
    "Id",
    "versionnumber",
    "name",
    "description",
    "customertypecode",
    "active",
    "accountid",
    "modifiedon",
    "createdon",
];

/// The replica's table as the runner folds a change log: last row per key, deleted keys gone.
async fn fold(inv: &dyn Inventory) -> (BTreeMap<String, Vec<Option<String>>>, usize) {
    assert_eq!(inv.shape(), InventoryShape::Changes);
    let q = InventoryQuery {
        table: None,
        columns: COLUMNS.iter().map(|c| c.to_string()).collect(),
        changed_since: None,
        page_size: 5000,
    };
    inv.check(&q).expect("query");
    let mut table = BTreeMap::new();
    let mut deletes = 0;
    let mut next: Option<String> = None;
    loop {
        let page = inv.page(&q, next.as_deref()).await.expect("page");
        for InventoryRow { values, deleted } in page.rows {
            let key = values[0].clone().expect("every lake row has an Id");
            if deleted {
                deletes += 1;
                table.remove(&key);
            } else {
                table.insert(key, values);
            }
        }
        match page.next {
            Some(n) => next = Some(n),
            None => return (table, deletes),
        }
    }
}

/// What seed.rs says replica `replica` holds: key → the values of [`COLUMNS`].
fn expected(
    s: &Scenario,
    replica: &str,
    started: chrono::DateTime<chrono::Utc>,
) -> (BTreeMap<String, Vec<Option<String>>>, u64) {
    let table = &s.dataverse["crm"].tables["accounts"];
    let seed = table.seed.clone().expect("seeded");
    let drift: Drift = s.replicas[replica].drift.unwrap_or_default();
    let plan = DriftPlan::new(&seed, drift).expect("plan");
    let mut out = BTreeMap::new();
    let mut deleted = 0;
    for i in 0..seed.rows {
        let fate = plan.replica_fate(i);
        deleted += u64::from(fate == RowFate::Deleted);
        let fields = generated_fields(&table.columns, &seed, i);
        let Some((copy, version)) = replica_copy(&fields, "accountid", i, fate) else {
            continue;
        };
        let id = row_id("crm", "accounts", i).to_string();
        let created = (started - chrono::Duration::seconds(created_age_secs(seed.rows, i) as i64))
            .timestamp();
        let modified = if fate == RowFate::Stale {
            created
        } else {
            created + 1
        };
        let time = |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .expect("time")
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        };
        let text = |c: &str| lagwatch::connector::inventory::json_text(&copy[c]);
        out.insert(
            id.clone(),
            vec![
                Some(id.clone()),
                Some(version.to_string()),
                text("name"),
                text("description"),
                text("customertypecode"),
                text("active"),
                Some(id),
                Some(time(modified)),
                Some(time(created)),
            ],
        );
    }
    (out, deleted)
}

fn csv(root: &Path, container: &str, layout: CsvLayout) -> CsvInventory {
    let store: Arc<dyn LakeStore> = Arc::new(LocalStore::new(root.join(container)));
    // Small pages: the seeded files are read in many ranges.
    CsvInventory::new(store, "account", layout).with_page_bytes(16 * 1024)
}

fn seeded_scenario(rows: u64) -> Scenario {
    Scenario::from_yaml(&SCENARIO.replace("ROWS", &rows.to_string()))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(start_paused = true)]
async fn every_layout_holds_the_replicas_seeded_rows_with_their_exact_drift() {
    let dir = common::temp_dir("lagwatch-lake-seed-");
    let scenario = seeded_scenario(1000);
    let emu = Emulator::with_lake_root(scenario.clone(), dir.path());
    emu.flush_lake().await.expect("lake");
    let started = emu.wall_time(emu.landscape().started_at());

    // The initial-sync folder is being written: not readable yet.
    let inc = csv(dir.path(), "seed-incremental", CsvLayout::Incremental);
    let (rows, _) = fold(&inc).await;
    assert!(rows.is_empty(), "the open folder is not read");
    advance(Duration::from_secs(10)).await;
    emu.flush_lake().await.expect("flush");

    for (replica, inv, deletes_written) in [
        ("to_inc", Box::new(inc) as Box<dyn Inventory>, true),
        (
            "to_app",
            Box::new(csv(dir.path(), "seed-append", CsvLayout::Table)),
            true,
        ),
        (
            "to_inp",
            Box::new(csv(dir.path(), "seed-inplace", CsvLayout::Table)),
            false,
        ),
        (
            "to_fab",
            Box::new(DeltaInventory::new(
                Arc::new(LocalStore::new(
                    dir.path().join(table_root("seed-fabric", "account")),
                )),
                "fab",
            )),
            true,
        ),
    ] {
        let (got, deletes) = fold(inv.as_ref()).await;
        let (want, deleted) = expected(&scenario, replica, started);
        assert!(want.len() > 900, "{replica}: most rows are held");
        assert_eq!(got.len(), want.len(), "{replica}: keys");
        for (k, w) in &want {
            assert_eq!(got.get(k), Some(w), "{replica}: row {k}");
        }
        assert_eq!(
            deletes as u64,
            if deletes_written { deleted } else { 0 },
            "{replica}: deletes that arrived are delete rows after the row (in place: no row)"
        );
    }
    emu.stop_lake().await;
}

const LATER: &str = r#"
credentials:
  - { tenant: contoso, client_id: app-1, client_secret: s3cret }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, description: string, customertypecode: int, active: bool }
        seed: { rows: 300, deleted: 4 }
lakes:
  inc: { container: later-incremental }
  inp: { container: later-inplace, layout: table }
  fab: { container: later-fabric, layout: delta }
replicas:
  to_inc:
    source: crm/accounts
    target: { kind: lake, lake: inc, table: account }
    lag: { distribution: fixed, value: 5s }
    folder_interval: 10s
    drift: { missing: 3, extra: 1 }
  to_inp:
    source: crm/accounts
    target: { kind: lake, lake: inp, table: account }
    lag: { distribution: fixed, value: 5s }
    drift: { stale: 3, extra: 2 }
  to_fab:
    source: crm/accounts
    target: { kind: lake, lake: fab, table: account }
    lag: { distribution: fixed, value: 5s }
    folder_interval: 10s
    drift: { changed: 3 }
"#;

async fn send(
    emu: &Emulator,
    method: &str,
    uri: &str,
    token: &str,
    body: &str,
) -> serde_json::Value {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("prefer", "return=representation")
        .body(axum::body::Body::from(body.to_string()))
        .expect("request");
    let resp = emu.handle(req).await;
    let status = resp.status();
    assert!(status.is_success(), "{method} {uri}: {status}");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
}

/// The replica's seeded rows as folded from the lake: each must be what seed.rs says.
fn assert_seeded(
    got: &BTreeMap<String, Vec<Option<String>>>,
    s: &Scenario,
    replica: &str,
    started: chrono::DateTime<chrono::Utc>,
    others: usize,
) {
    let (want, _) = expected(s, replica, started);
    assert_eq!(got.len(), want.len() + others, "{replica}: keys");
    for (k, w) in &want {
        assert_eq!(got.get(k), Some(w), "{replica}: row {k}");
    }
}

#[tokio::test(start_paused = true)]
async fn later_changes_come_after_the_seeded_rows_and_keep_them() {
    let dir = common::temp_dir("lagwatch-lake-later-");
    let scenario = Scenario::from_yaml(LATER).unwrap_or_else(|e| panic!("{e}"));
    let emu = Emulator::with_lake_root(scenario.clone(), dir.path());
    emu.flush_lake().await.expect("lake");
    let started = emu.wall_time(emu.landscape().started_at());
    let token = common::entra::crm_token(&emu).await;
    let inc = csv(dir.path(), "later-incremental", CsvLayout::Incremental);
    let inp = csv(dir.path(), "later-inplace", CsvLayout::Table);
    let fab = DeltaInventory::new(
        Arc::new(LocalStore::new(
            dir.path().join(table_root("later-fabric", "account")),
        )),
        "fab",
    );
    let seeded_file = dir.path().join(format!(
        "later-inplace/account/{}.csv",
        (started - chrono::Duration::seconds(3600 + 300)).format("%Y")
    ));
    let seeded_bytes = std::fs::read(&seeded_file).expect("the seeded partition file");

    // One new account per refresh for a minute: the Delta table compacts (every sixth
    // refresh) what came after its sealed seeded files.
    let mut ids = Vec::new();
    for i in 0..7 {
        let row = send(
            &emu,
            "POST",
            "/crm/api/data/v9.2/accounts",
            &token,
            &serde_json::json!({"name": format!("new-{i}"), "description": "fresh"}).to_string(),
        )
        .await;
        ids.push(row["accountid"].as_str().expect("id").to_string());
        advance(Duration::from_secs(10)).await;
        emu.flush_lake().await.expect("flush");
    }
    advance(Duration::from_secs(10)).await;
    emu.flush_lake().await.expect("flush");
    for (replica, inv) in [
        ("to_inc", &inc as &dyn Inventory),
        ("to_inp", &inp),
        ("to_fab", &fab),
    ] {
        let (got, _) = fold(inv).await;
        assert_seeded(&got, &scenario, replica, started, ids.len());
        for id in &ids {
            assert_eq!(got[id][3].as_deref(), Some("fresh"), "{replica}: {id}");
        }
    }
    // In place, new rows were appended behind the seeded ones, which stayed as written.
    let now = std::fs::read(&seeded_file).expect("file");
    assert!(now.starts_with(&seeded_bytes), "appended, not rewritten");

    // An update and a delete rewrite the partition: the seeded rows are generated again,
    // byte for byte.
    let first = ids[0].clone();
    send(
        &emu,
        "PATCH",
        &format!("/crm/api/data/v9.2/accounts({first})"),
        &token,
        r#"{"description": "updated"}"#,
    )
    .await;
    let gone = ids.pop().expect("an id");
    let req = axum::http::Request::builder()
        .method("DELETE")
        .uri(format!("/crm/api/data/v9.2/accounts({gone})"))
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .expect("request");
    assert_eq!(emu.handle(req).await.status(), 204);
    advance(Duration::from_secs(20)).await;
    emu.flush_lake().await.expect("flush");
    let now = std::fs::read(&seeded_file).expect("file");
    assert!(
        now.starts_with(&seeded_bytes),
        "seeded rows rewritten as they were"
    );
    assert!(
        !String::from_utf8_lossy(&now).contains(&gone),
        "the file was rewritten without the deleted row"
    );
    for (replica, inv) in [
        ("to_inc", &inc as &dyn Inventory),
        ("to_inp", &inp),
        ("to_fab", &fab),
    ] {
        let (got, _) = fold(inv).await;
        assert_seeded(&got, &scenario, replica, started, ids.len());
        assert_eq!(got[&first][3].as_deref(), Some("updated"), "{replica}");
        assert!(!got.contains_key(&gone), "{replica}: deleted");
    }
    // Compaction left the sealed seeded files alone and merged the rest.
    let log = std::fs::read_dir(
        dir.path()
            .join(table_root("later-fabric", "account"))
            .join("_delta_log"),
    )
    .expect("log")
    .filter_map(|e| e.ok())
    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
    .collect::<String>();
    assert!(log.contains("OPTIMIZE"), "a compaction ran");
    if let Some(py) = common::delta::PyDelta::find() {
        // delta-rs, the reference reader, reads the table: every change row, i.e. the seeded
        // rows held, each deleted row and its delete row, the seven creates, the update and
        // the delete row.
        let table = py.read(&dir.path().join(table_root("later-fabric", "account")));
        let (want, deleted) = expected(&scenario, "to_fab", started);
        assert_eq!(
            table["num_rows"].as_u64(),
            Some(want.len() as u64 + 2 * deleted + 7 + 2),
            "{}",
            table["history"]
        );
    }
    emu.stop_lake().await;
}

/// Peak resident memory of this process so far (Linux), in MiB.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// A million seeded rows per layout, written streaming and read back through the inventory
/// (keys and versions checked against seed.rs). Slow in a debug build: run it on demand,
/// `LAGWATCH_SEED_ROWS` (default 1,000,000) and `LAGWATCH_SEED_LAKES` (default all four,
/// e.g. `inc,fab`) choose the size.
#[tokio::test(start_paused = true)]
#[ignore = "a million rows per lake: minutes in a debug build"]
async fn a_million_seeded_rows_are_written_streaming_and_read_back() {
    let rows: u64 = std::env::var("LAGWATCH_SEED_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let lakes = std::env::var("LAGWATCH_SEED_LAKES").unwrap_or_else(|_| "inc,app,inp,fab".into());
    let mut scenario = seeded_scenario(rows);
    scenario
        .replicas
        .retain(|name, _| lakes.split(',').any(|l| name == &format!("to_{l}")));
    scenario
        .lakes
        .retain(|name, _| lakes.split(',').any(|l| name == l));
    let dir = common::temp_dir("lagwatch-lake-million-");
    let before = peak_rss_mib();
    let t0 = std::time::Instant::now();
    let emu = Emulator::with_lake_root(scenario.clone(), dir.path());
    emu.flush_lake().await.expect("lake");
    advance(Duration::from_secs(10)).await;
    emu.flush_lake().await.expect("flush");
    eprintln!(
        "{rows} rows into {lakes}: written in {:?}, peak RSS {before:?} MiB before, {:?} MiB after",
        t0.elapsed(),
        peak_rss_mib()
    );
    let started = emu.wall_time(emu.landscape().started_at());
    let table = &scenario.dataverse["crm"].tables["accounts"];
    let seed = table.seed.clone().expect("seeded");
    for (lake, replica) in [
        ("inc", "to_inc"),
        ("app", "to_app"),
        ("inp", "to_inp"),
        ("fab", "to_fab"),
    ] {
        if !lakes.split(',').any(|l| l == lake) {
            continue;
        }
        let t1 = std::time::Instant::now();
        let inv: Box<dyn Inventory> = match lake {
            "inc" => Box::new(
                csv(dir.path(), "seed-incremental", CsvLayout::Incremental)
                    .with_page_bytes(lagwatch::lake::inventory::PAGE_BYTES),
            ),
            "app" => Box::new(
                csv(dir.path(), "seed-append", CsvLayout::Table)
                    .with_page_bytes(lagwatch::lake::inventory::PAGE_BYTES),
            ),
            "inp" => Box::new(
                csv(dir.path(), "seed-inplace", CsvLayout::Table)
                    .with_page_bytes(lagwatch::lake::inventory::PAGE_BYTES),
            ),
            _ => Box::new(DeltaInventory::new(
                Arc::new(LocalStore::new(
                    dir.path().join(table_root("seed-fabric", "account")),
                )),
                "fab",
            )),
        };
        let q = InventoryQuery {
            table: None,
            columns: vec!["Id".into(), "versionnumber".into()],
            changed_since: None,
            page_size: 5000,
        };
        let mut held: std::collections::HashMap<u128, u64> = std::collections::HashMap::new();
        let mut next: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = inv.page(&q, next.as_deref()).await.expect("page");
            pages += 1;
            for r in page.rows {
                let id = uuid::Uuid::parse_str(r.values[0].as_deref().expect("Id"))
                    .expect("uuid")
                    .as_u128();
                if r.deleted {
                    held.remove(&id);
                } else {
                    let v = r.values[1].as_deref().expect("version").parse().expect("n");
                    held.insert(id, v);
                }
            }
            match page.next {
                Some(n) => next = Some(n),
                None => break,
            }
        }
        let drift = scenario.replicas[replica].drift.unwrap_or_default();
        let plan = DriftPlan::new(&seed, drift).expect("plan");
        let mut want = 0;
        for i in 0..rows {
            let fate = plan.replica_fate(i);
            let fields = serde_json::Map::new();
            if let Some((_, v)) = replica_copy(&fields, "accountid", i, fate) {
                want += 1;
                let id = row_id("crm", "accounts", i).as_u128();
                assert_eq!(held.get(&id), Some(&v), "{replica}: row {i}");
            }
        }
        assert_eq!(held.len(), want, "{replica}");
        eprintln!(
            "{replica}: {want} rows read back in {pages} pages, {:?}, peak RSS {:?} MiB",
            t1.elapsed(),
            peak_rss_mib()
        );
    }
    let _ = started;
    emu.stop_lake().await;
}
