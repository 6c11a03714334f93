//! The contract between the emulated lake in its Delta layout (Link to Fabric's shape) and
//! lagwatch's Delta reader: what the emulator commits at the end of each refresh interval, the
//! reader's cursor finds, only from that commit on, with the payload and `SinkCreatedOn` the
//! emulator's ground truth states — through appends, compactions and checkpoints.

use crate::common::{self, entra};

use std::sync::Arc;
use std::time::Duration;

use lagwatch::lake::LocalStore;
use lagwatch::lake::delta::{DeltaCursor, DeltaSpec};
use lagwatch_emulator::lake_delta::table_root;
use lagwatch_emulator::{Emulator, Scenario};
use tokio::time::{Instant, advance};

const SCENARIO: &str = r#"
credentials:
  - { tenant: contoso, client_id: app-1, client_secret: s3cret }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, description: string }
lakes:
  fabric: { container: fabric-contoso, layout: delta }
replicas:
  lake:
    source: crm/accounts
    target: { kind: lake, lake: fabric, table: account }
    key: name
    lag: { distribution: uniform, min: 1s, max: 50s }
    folder_interval: 10s               # the refresh interval
"#;

#[tokio::test(start_paused = true)]
async fn the_delta_reader_finds_each_row_from_the_commit_of_its_refresh() {
    let dir = common::temp_dir("lagwatch-delta-contract-");
    let emu: Arc<Emulator> =
        Emulator::with_lake_root(Scenario::from_yaml(SCENARIO).expect("scenario"), dir.path());
    emu.flush_lake().await.expect("lake");
    let token = entra::crm_token(&emu).await;
    let table = dir.path().join(table_root("fabric-contoso", "account"));
    let store = LocalStore::new(&table);
    let mut cursor = DeltaCursor::new(
        DeltaSpec {
            key_column: "name".into(),
            payload_column: Some("description".into()),
            key_prefix: "lagwatch-t-".into(),
        },
        emu.wall_time(Instant::now()) - chrono::Duration::seconds(1),
        Duration::from_secs(3600),
    );
    let payload = "{\"instance\":\"t\",\"seq\":1}, with \"quotes\"\nand a newline";
    let mut keys = Vec::new();
    for i in 0..40 {
        let key = format!("lagwatch-t-{i}");
        entra::create_account(&emu, &token, &key, payload).await;
        keys.push(key);
        advance(Duration::from_secs(4)).await;
        if i % 3 == 0 {
            emu.flush_lake().await.expect("flush");
            cursor.scan(&store).await.expect("scan");
        }
    }
    // Poll every second for 4 minutes: each key is found exactly from its truth's visible_at.
    let mut scans_from_nothing = 0;
    for _ in 0..240 {
        emu.flush_lake().await.expect("flush");
        let scan = cursor.scan(&store).await.expect("scan");
        scans_from_nothing += usize::from(scan.commits == 0);
        let now = Instant::now();
        for key in &keys {
            let t = emu.truth("lake", key).expect("truth");
            let visible = t.visible_at.expect("visible");
            match cursor.found(key) {
                Some(f) => {
                    assert!(now >= visible, "{key} read before its refresh committed");
                    assert_eq!(f.payload.as_deref(), Some(payload));
                    let sink = emu.wall_time(t.sink_at.expect("sink"));
                    let got = f.sink_at.expect("SinkCreatedOn");
                    // Parquet timestamps are microseconds.
                    assert_eq!((sink - got).num_microseconds(), Some(0), "{key}");
                }
                None => assert!(now < visible, "{key} missing after its refresh committed"),
            }
        }
        advance(Duration::from_secs(1)).await;
    }
    assert!(keys.iter().all(|k| cursor.found(k).is_some()));
    assert!(
        scans_from_nothing > 100,
        "idle polls happened between refreshes"
    );
    // The table went through compactions and checkpoints on the way.
    let log: Vec<String> = std::fs::read_dir(table.join("_delta_log"))
        .expect("log")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        log.iter().any(|n| n.ends_with(".checkpoint.parquet")),
        "{log:?}"
    );
    assert!(log.iter().any(|n| n == "_last_checkpoint"), "{log:?}");
    let compactions = log
        .iter()
        .filter(|n| n.ends_with(".json"))
        .filter(|n| {
            std::fs::read_to_string(table.join("_delta_log").join(n))
                .is_ok_and(|t| t.contains("\"dataChange\":false"))
        })
        .count();
    assert!(compactions >= 2, "{compactions} compactions");
    // A cursor started now, from the checkpoint, finds what is in the table.
    let mut fresh = DeltaCursor::new(
        DeltaSpec {
            key_column: "name".into(),
            payload_column: None,
            key_prefix: "lagwatch-t-".into(),
        },
        emu.wall_time(Instant::now()) - chrono::Duration::hours(1),
        Duration::from_secs(3600),
    );
    let scan = fresh.scan(&store).await.expect("scan");
    assert!(scan.from_checkpoint);
    assert!(keys.iter().all(|k| fresh.found(k).is_some()));
}
