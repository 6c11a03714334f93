//! Delete propagation (`deletes`): delete lag, lost deletes and resurrections, measured
//! through real connectors against replicas whose delete behaviour is known exactly.
//!
//! The look-alike here is not the emulator: a small REST API (the generic `http` kind's
//! documented shape: PUT/GET/DELETE by key, 404 when absent) with a replica view that applies
//! writes after a fixed lag and deletes after another, and by the sentinel's number either
//! brings a deleted row back for a while or never deletes it.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use lagwatch::probe::deletes::{DeleteOutcome, DeleteTrace};
use tokio_util::sync::CancellationToken;

const INSERT_LAG: Duration = Duration::from_millis(300);
const DELETE_LAG: Duration = Duration::from_millis(700);
/// A resurrected row shows again during this interval after its delete arrived.
const RESURRECT: (Duration, Duration) = (Duration::from_millis(1200), Duration::from_millis(2500));

/// What the replica does with a row's delete (by the order the rows were written).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Clean,
    Resurrect,
    Dropped,
}

#[derive(Debug)]
struct Row {
    payload: String,
    written: DateTime<Utc>,
    deleted: Option<DateTime<Utc>>,
    fate: Fate,
}

impl Row {
    fn in_replica(&self, now: DateTime<Utc>) -> bool {
        let after =
            |t: DateTime<Utc>, d: Duration| now >= t + chrono::Duration::from_std(d).unwrap();
        if !after(self.written, INSERT_LAG) {
            return false;
        }
        match (self.deleted, self.fate) {
            (None, _) | (Some(_), Fate::Dropped) => true,
            (Some(d), fate) => {
                let gone = d + chrono::Duration::from_std(DELETE_LAG).unwrap();
                now < gone
                    || (fate == Fate::Resurrect
                        && after(gone, RESURRECT.0)
                        && !after(gone, RESURRECT.1))
            }
        }
    }
}

#[derive(Default)]
struct Api {
    rows: Mutex<HashMap<String, Row>>,
}

type Shared = Arc<Api>;

fn found(payload: &str) -> Response {
    axum::Json(serde_json::json!({ "payload": payload })).into_response()
}

async fn put(State(api): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let mut rows = api.rows.lock().unwrap();
    let fate = [Fate::Clean, Fate::Resurrect, Fate::Dropped][rows.len() % 3];
    rows.insert(
        id,
        Row {
            payload: v["payload"].as_str().unwrap_or_default().to_string(),
            written: Utc::now(),
            deleted: None,
            fate,
        },
    );
    StatusCode::CREATED
}

async fn read(State(api): State<Shared>, Path(id): Path<String>) -> Response {
    match api.rows.lock().unwrap().get(&id) {
        Some(r) if r.deleted.is_none() => found(&r.payload),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn delete(State(api): State<Shared>, Path(id): Path<String>) -> StatusCode {
    match api.rows.lock().unwrap().get_mut(&id) {
        Some(r) if r.deleted.is_none() => {
            r.deleted = Some(Utc::now());
            StatusCode::NO_CONTENT
        }
        _ => StatusCode::NOT_FOUND,
    }
}

async fn replica(State(api): State<Shared>, Path(id): Path<String>) -> Response {
    match api.rows.lock().unwrap().get(&id) {
        Some(r) if r.in_replica(Utc::now()) => found(&r.payload),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// When the row was gone for good, relative to lagwatch's acknowledgement of its delete: after
/// its resurrection, for a resurrected one (as a write's lag is measured to its last miss).
fn truth_lag(row: &Row, acked: DateTime<Utc>) -> Duration {
    let mut gone = row.deleted.expect("deleted") + chrono::Duration::from_std(DELETE_LAG).unwrap();
    if row.fate == Fate::Resurrect {
        gone += chrono::Duration::from_std(RESURRECT.1).unwrap();
    }
    (gone - acked).to_std().unwrap_or(Duration::ZERO)
}

#[test]
fn delete_lag_lost_deletes_and_resurrections_match_a_replica_with_known_deletes() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let api: Shared = Arc::default();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/items/{id}", get(read).put(put).delete(delete))
        .route("/replica/items/{id}", get(replica))
        .with_state(api.clone());
    rt.spawn(async move { axum::serve(listener, router).await });
    let _in_rt = rt.enter();

    let app = common::app(&format!(
        r#"
instance: del
systems:
  api:
    kind: http
    write: {{ method: PUT, url: "{base}/items/{{id}}", body: '{{"payload":"{{payload}}"}}' }}
    read: {{ url: "{base}/items/{{id}}", payload_pointer: /payload }}
    delete: {{ method: DELETE, url: "{base}/items/{{id}}" }}
    auth: {{ method: none }}
  replica:
    kind: http
    lookup: {{ url: "{base}/replica/items/{{id}}", payload_pointer: /payload }}
    auth: {{ method: none }}
paths:
  - source: api
    target: replica
    interval: 1s
    timeout: 5s
    confirm: 4s                  # reads every 1.33 s after the first absent one
    delete_sample: 1             # every delete watched
    contract: {{ visibility: 2s, deletes: 8s }}
"#
    ));
    let stop = CancellationToken::new();
    let engine = app.engine.clone();
    let run = rt.spawn(engine.run(stop.clone()));
    rt.block_on(tokio::time::sleep(Duration::from_secs(24)));
    stop.cancel();
    rt.block_on(run).unwrap();

    let path = &app.engine.paths()[0];
    let state = path.state();
    let rows = api.rows.lock().unwrap();
    let watched = common::watched_deletes(&state, "del");
    let deletes: Vec<(Fate, &Row, &DeleteTrace)> = watched
        .iter()
        .map(|(key, d)| {
            let row = &rows[key];
            (row.fate, row, d)
        })
        .collect();
    for fate in [Fate::Clean, Fate::Resurrect, Fate::Dropped] {
        assert!(
            deletes.iter().filter(|(f, ..)| *f == fate).count() >= 2,
            "at least two watched deletes of each fate: {deletes:#?}"
        );
    }
    let (mut lost, mut resurrected) = (0, 0);
    for (fate, row, d) in &deletes {
        match fate {
            Fate::Clean | Fate::Resurrect => {
                assert_eq!(d.outcome, DeleteOutcome::Gone, "{fate:?} {d:?}");
                let est = d.estimate.expect("a delete that arrived has a lag");
                let truth = truth_lag(row, d.acked_at);
                assert!(
                    est.contains(truth, Duration::from_millis(20)),
                    "{fate:?}: truth {truth:?} outside {est:?}"
                );
                if *fate == Fate::Clean {
                    assert!(truth <= DELETE_LAG, "{truth:?}");
                    assert_eq!(d.resurrections, 0, "{d:?}");
                } else {
                    assert_eq!(d.resurrections, 1, "seen back once: {d:?}");
                }
            }
            Fate::Dropped => {
                assert_eq!(d.outcome, DeleteOutcome::Lost, "{d:?}");
                assert!(d.estimate.is_none(), "a lost delete has no lag: {d:?}");
                assert_eq!(d.resurrections, 0);
            }
        }
        lost += usize::from(d.outcome == DeleteOutcome::Lost);
        resurrected += usize::from(d.resurrections);
    }
    let m = app.engine.metrics().paths.get("api", "replica").unwrap();
    assert_eq!(m.deletes_lost.get() as usize, lost);
    // A resurrection counts when it is seen; a delete's trace is kept when its watch ends, so
    // watches that the stop cut short can have counted one without a trace. Each resurrected
    // row comes back once.
    let deleted_and_resurrected = rows
        .values()
        .filter(|r| r.fate == Fate::Resurrect && r.deleted.is_some())
        .count();
    let counted = m.resurrections.get() as usize;
    assert!(
        (resurrected..=deleted_and_resurrected).contains(&counted),
        "{counted} counted, {resurrected} traced, {deleted_and_resurrected} deleted rows come back"
    );
    let arrived = deletes
        .iter()
        .filter(|(_, _, d)| d.outcome == DeleteOutcome::Gone)
        .count();
    assert_eq!(
        m.delete_lag.as_ref().unwrap().count() as usize,
        arrived,
        "every delete that arrived is in the histogram, no other"
    );
    // The declared guarantee counts both kinds of breach.
    let i = lagwatch::config::Contract::DELETES;
    assert_eq!(m.contract_violations(i) as usize, lost + counted);
}

/// The same on the simulated landscape, whose ground truth knows when each delete arrived,
/// was dropped or undone: every watched delete's outcome, lag and resurrections against it.
#[tokio::test(start_paused = true)]
async fn every_watched_delete_agrees_with_the_simulated_truth() {
    let app = common::app(
        r#"
instance: t
systems:
  src: { kind: simulated, seed: 5 }
  clean: { kind: simulated, replica_of: src, lag: { distribution: log_normal, median: 3s, p99: 12s } }
  dropper: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 5s }, delete_drop_probability: 0.5 }
  riser: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 5s }, resurrect_probability: 0.5, resurrect_after: 2s, resurrect_for: 4s }
defaults:
  interval: 20s
  timeout: 1m
  objective: 30s
  confirm: 10s                   # reads every 3.3 s after the first absent one
  delete_sample: 1
  contract: { deletes: 40s }
paths:
  - { source: src, target: clean }
  - { source: src, target: dropper }
  - { source: src, target: riser }
"#,
    );
    common::run_for(&app, Duration::from_secs(15 * 60)).await;

    let landscape = lagwatch_emulator::simulated::landscape(&app);
    let slack = Duration::from_millis(50);
    for path in app.engine.paths() {
        let target = path.spec.target.as_str();
        let state = path.state();
        let (mut lost, mut gone, mut resurrected) = (0, 0, 0);
        for (key, d) in &common::watched_deletes(&state, "t") {
            let truth = landscape.truth(target, key).expect("the truth of the key");
            if !common::delete_settled_as_truth(target, key, d, truth.delete_dropped, &truth) {
                lost += 1;
                continue;
            }
            gone += 1;
            let deleted = truth.deleted_at.expect("deleted");
            // Gone for good: after its resurrection, for a resurrected row.
            let end = truth.resurrected.map_or(truth.gone_at, |(_, to)| Some(to));
            let lag = end.expect("gone").saturating_duration_since(deleted);
            let est = d.estimate.expect("a lag");
            assert!(
                est.contains(lag, slack),
                "{target} {key}: truth {lag:?} outside {est:?}"
            );
            // Never a resurrection the truth does not have. One the reads stepped over (no
            // read between the delete arriving and the row coming back, or none while it was
            // back) cannot be seen; the estimate above still spans it.
            assert!(
                d.resurrections <= u16::from(truth.resurrected.is_some()),
                "{target} {key}: {truth:?} {d:?}"
            );
            resurrected += usize::from(d.resurrections);
        }
        assert!(gone >= 5, "{target}: {gone} deletes arrived");
        match target {
            "clean" => assert_eq!((lost, resurrected), (0, 0)),
            "dropper" => assert!(lost >= 3 && resurrected == 0, "{lost}"),
            _ => assert!(lost == 0 && resurrected >= 3, "{resurrected}"),
        }
        let m = app.engine.metrics().paths.get("src", target).unwrap();
        assert_eq!(m.deletes_lost.get() as usize, lost, "{target}");
        assert!(m.resurrections.get() as usize >= resurrected, "{target}");
    }
}
