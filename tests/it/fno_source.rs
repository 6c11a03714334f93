//! The map's other direction, end to end: lagwatch creates its sentinels in the emulated F&O
//! (`CustomersV3`, through OData over HTTP), reads them back there, and looks for them in
//! Dataverse, where the emulated dual-write copies them. Every converged lag is the truth's
//! within the stated bound; a paused map is `halted`, not a lag; every sentinel is deleted from
//! F&O afterwards, by the entity key its number sequence gave it.

use std::sync::Arc;
use std::time::Duration;

use lagwatch::probe::Outcome;
use tokio_util::sync::CancellationToken;

use crate::common;

const SCENARIO: &str = r#"
credentials:
  - { tenant: contoso, client_id: lagwatch-app, client_secret: fno-source-secret }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, description: string, accountnumber: string }
fno:
  fin:
    default_company: dat
    entities:
      CustomersV3:
        key: CustomerAccount
        mandatory: [OrganizationName, CustomerGroupId]
        number_sequence: DW
replicas:
  fno_back:
    source: fno:fin/CustomersV3
    target: { kind: dataverse, env: crm, table: accounts }
    key: OrganizationName
    map: { OrganizationName: name, Description: description, CustomerAccount: accountnumber }
    lag: { distribution: uniform, min: 200ms, max: 900ms }
    paused: [ { start: 12s, duration: 8s } ]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f_and_o_sentinels_reach_dataverse_with_their_true_lag_and_a_paused_map_is_halted() {
    let served = common::twin::Served::start(SCENARIO, "lagwatch-app", "fno-source-secret").await;
    let (emu, base, auth) = (&served.emulator, &served.base, &served.auth);
    let yaml = format!(
        r#"
instance: fsrc
systems:
  fno:
    kind: fo_odata
    url: {base}/fno/fin
    entity_set: CustomersV3
    key_field: OrganizationName
    payload_field: Description
    data_area_id: usmf
    fields: {{ CustomerGroupId: "30" }}
    sync_grace: 3s
    scope: https://fin.operations.dynamics.com/.default
    auth: {auth}
  crm:
    kind: dataverse
    url: {base}/crm
    table: accounts
    id_column: accountid
    key_column: name
    payload_column: description
    scope: https://crm.crm.dynamics.com/.default
    auth: {auth}
paths:
  - {{ source: fno, target: crm, interval: 1s, timeout: 20s, objective: 2s, retention: 0s }}
"#
    );
    let app = Arc::new(common::app(&yaml));
    let mut rx = app.engine.subscribe();
    let stop = CancellationToken::new();
    let run = tokio::spawn(app.engine.clone().run(stop.clone()));
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Until the paused map has been halted and the resumed one converged three times in a row.
    while records
        .iter()
        .rev()
        .take_while(|r: &&lagwatch::probe::ProbeRecord| r.outcome == Outcome::Converged)
        .count()
        < 3
        || !records.iter().any(|r| r.outcome == Outcome::Halted)
    {
        let r = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("outcomes so far: {records:?}"))
            .expect("engine publishes");
        records.push(r);
    }
    // Let the last deletes go out before stopping.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = app.engine.metrics().render();
    stop.cancel();
    run.await.unwrap();

    assert!(
        records
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Converged | Outcome::Halted)),
        "only converged and halted: {records:?}"
    );
    let mut converged = 0;
    for r in records.iter().filter(|r| r.outcome == Outcome::Converged) {
        let truth = emu
            .truth("fno_back", r.sentinel.key())
            .unwrap_or_else(|| panic!("ground truth for {}", r.sentinel));
        let truth_lag = truth
            .visible_at
            .expect("arrived")
            .saturating_duration_since(truth.committed_at);
        let est = r.estimate.expect("a converged probe has an estimate");
        assert!(
            est.contains(truth_lag, Duration::from_millis(1)),
            "measured {:?} ± {:?}, truth {truth_lag:?}",
            est.lag,
            est.uncertainty
        );
        converged += 1;
    }
    assert!(converged >= 5, "{converged} converged: {records:?}");
    for r in records.iter().filter(|r| r.outcome == Outcome::Halted) {
        let truth = emu
            .truth("fno_back", r.sentinel.key())
            .expect("a halted sentinel was written");
        let arrived = truth
            .visible_at
            .map(|v| v.saturating_duration_since(truth.committed_at));
        assert!(
            arrived.is_none_or(|lag| lag > Duration::from_secs(3)),
            "halted, but the truth has it in Dataverse within the grace: {arrived:?}"
        );
    }
    for (op, status) in [("write", "2xx"), ("read", "2xx"), ("delete", "2xx")] {
        let series = format!(
            "lagwatch_requests_total{{operation=\"{op}\",status=\"{status}\",system=\"fno\"}}"
        );
        assert!(text.contains(&series), "{series}\n{text}");
    }
    assert!(
        !text.contains("operation=\"write\",status=\"4xx\""),
        "F&O accepted every create\n{text}"
    );
    // Every sentinel whose probe ended was deleted from F&O (by the entity key its number
    // sequence gave it): the truth has the delete, which dual-write carries to Dataverse.
    for r in &records {
        let truth = emu.truth("fno_back", r.sentinel.key()).expect("written");
        assert!(truth.deleted_at.is_some(), "{} is still in F&O", r.sentinel);
    }
    served.stop().await;
}
