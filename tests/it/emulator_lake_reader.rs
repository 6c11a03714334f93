//! The contract between the emulated lake (writer) and lagwatch's Synapse Link reader: what
//! the emulator writes, the reader's cursor finds, only once the folder holding it closed,
//! with the payload and `SinkCreatedOn` the emulator's ground truth states.

use crate::common::{self, entra};

use std::sync::Arc;
use std::time::Duration;

use lagwatch::lake::LocalStore;
use lagwatch::lake::synapse::{Cursor, TableSpec};
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
  dl: { container: dataverse-contoso-unq1234 }
replicas:
  lake:
    source: crm/accounts
    target: { kind: lake, lake: dl, table: account }
    key: name
    lag: { distribution: uniform, min: 1s, max: 50s }
    folder_interval: 30s
"#;

#[tokio::test(start_paused = true)]
async fn the_reader_finds_what_the_emulator_wrote_when_its_folder_closed() {
    let dir = common::temp_dir("lagwatch-lake-contract-");
    let emu: Arc<Emulator> =
        Emulator::with_lake_root(Scenario::from_yaml(SCENARIO).expect("scenario"), dir.path());
    emu.flush_lake().await.expect("lake");
    let token = entra::crm_token(&emu).await;
    let store = LocalStore::new(emu.lake_dir("dl").expect("dir"));
    let mut cursor = Cursor::new(
        TableSpec {
            table: "account".into(),
            key_column: "name".into(),
            payload_column: Some("description".into()),
            key_prefix: "lagwatch-t-".into(),
        },
        emu.wall_time(Instant::now()) - chrono::Duration::seconds(1),
        Duration::from_secs(3600),
    );
    let payload = "{\"instance\":\"t\",\"seq\":1}, with \"quotes\"\nand a newline";
    let mut keys = Vec::new();
    for i in 0..8 {
        let key = format!("lagwatch-t-{i}");
        entra::create_account(&emu, &token, &key, payload).await;
        keys.push(key);
        advance(Duration::from_secs(7)).await;
    }
    // Poll every second for 3 minutes: each key is found exactly from its truth's visible_at.
    for _ in 0..180 {
        emu.flush_lake().await.expect("flush");
        cursor.scan(&store).await.expect("scan");
        let now = Instant::now();
        for key in &keys {
            let t = emu.truth("lake", key).expect("truth");
            let visible = t.visible_at.expect("visible");
            match cursor.found(key) {
                Some(f) => {
                    assert!(now >= visible, "{key} read before its folder closed");
                    assert_eq!(f.payload.as_deref(), Some(payload));
                    let sink = emu.wall_time(t.sink_at.expect("sink"));
                    let got = f.sink_at.expect("SinkCreatedOn");
                    assert!((got - sink).num_microseconds().unwrap_or(i64::MAX).abs() < 1);
                }
                None => assert!(now < visible, "{key} missing after its folder closed"),
            }
        }
        advance(Duration::from_secs(1)).await;
    }
    assert!(keys.iter().all(|k| cursor.found(k).is_some()));
}
