//! A dual-write map that stops running is reported as `halted`, not as lag: lagwatch writes
//! sentinels into Dataverse and looks for them in F&O through the emulator over HTTP, while the
//! emulated map is paused for a while and then resumes.

use std::sync::Arc;
use std::time::Duration;

use lagwatch::probe::Outcome;
use lagwatch::status::PathStatus;
use tokio_util::sync::CancellationToken;

use crate::common;

const SCENARIO: &str = r#"
credentials:
  - { tenant: contoso, client_id: lagwatch-app, client_secret: s3cret-for-tests }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, description: string, customertypecode: int }
fno:
  fin: { default_company: dat }
replicas:
  fno:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: CustomersV3, company: usmf }
    key: name
    filter: customertypecode eq 3
    map: { name: OrganizationName, description: Description }
    lag: { distribution: fixed, value: 200ms }
    paused: [ { start: 0s, duration: 7s } ]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_map_is_halted_and_its_resume_converges_again() {
    let served = common::twin::Served::start(SCENARIO, "lagwatch-app", "s3cret-for-tests").await;
    let (base, auth) = (&served.base, &served.auth);
    let yaml = format!(
        r#"
instance: halted
systems:
  crm:
    kind: dataverse
    url: {base}/crm
    table: accounts
    id_column: accountid
    key_column: name
    payload_column: description
    fields: {{ customertypecode: 3 }}
    scope: https://crm.crm.dynamics.com/.default
    auth: {auth}
  fno:
    kind: fo_odata
    url: {base}/fno/fin
    entity_set: CustomersV3
    key_field: OrganizationName
    payload_field: Description
    data_area_id: usmf
    sync_grace: 2s
    scope: https://fin.operations.dynamics.com/.default
    auth: {auth}
paths:
  - {{ source: crm, target: fno, interval: 1s, timeout: 20s, objective: 1s }}
"#
    );
    let app = Arc::new(common::app(&yaml));
    let mut rx = app.engine.subscribe();
    let stop = CancellationToken::new();
    let run = tokio::spawn(app.engine.clone().run(stop.clone()));

    let mut outcomes = Vec::new();
    let mut states = std::collections::BTreeSet::new();
    // The state, by its label (as the status page and the API show it).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    // Until the map has been seen halted and then converging for three probes in a row.
    while outcomes
        .iter()
        .rev()
        .take_while(|(o, _)| *o == Outcome::Converged)
        .count()
        < 3
        || !outcomes.iter().any(|(o, _)| *o == Outcome::Halted)
    {
        let r = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("outcomes so far: {outcomes:?}"))
            .expect("engine publishes");
        for v in lagwatch::status::views(&app.engine) {
            states.insert(v.state.label());
        }
        outcomes.push((r.outcome, r.estimate.map(|e| e.lag)));
    }
    let text = app.engine.metrics().render();
    stop.cancel();
    run.await.unwrap();
    served.stop().await;

    assert!(
        outcomes
            .iter()
            .all(|(o, _)| matches!(o, Outcome::Halted | Outcome::Converged)),
        "only halted and converged: {outcomes:?}"
    );
    assert!(states.contains(PathStatus::Halted.label()), "{states:?}");
    let count = |outcome: &str| -> f64 {
        let series =
            format!("lagwatch_probes_total{{outcome=\"{outcome}\",source=\"crm\",target=\"fno\"}}");
        text.lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing"))
    };
    let halted = outcomes
        .iter()
        .filter(|(o, _)| *o == Outcome::Halted)
        .count();
    assert_eq!(count("halted"), halted as f64);
    // A halted sentinel has no lag: only converged ones reach the histogram.
    let converged = outcomes.len() - halted;
    assert!(text.contains(&format!(
        "lagwatch_lag_seconds_count{{source=\"crm\",target=\"fno\"}} {converged}"
    )));
    assert!(
        outcomes
            .iter()
            .all(|(o, lag)| (*o == Outcome::Halted) == lag.is_none()),
        "{outcomes:?}"
    );
}
