//! Conflict probes end to end: lagwatch updates one canary row in the emulated Dataverse and,
//! through OData, in the emulated F&O at once, reads both until they agree, and judges what it
//! saw against the declared policy. The emulated dual-write link resolves the conflict by its
//! own policy on each environment's own clock, and its truth (`/_truth/links/…`) says which
//! value each side holds: every outcome is produced on purpose here and must be reported
//! exactly, the time to agreement within its stated bounds.

use std::sync::Arc;
use std::time::Duration;

use lagwatch::probe::conflict::{ConflictProbe, Side};
use lagwatch::sentinel::Sentinel;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::common;

/// The emulated estate: Dataverse `crm` and F&O `fin`, linked both ways by dual-write with the
/// emulator's conflict policy `policy`; `fin`'s clock is `skew` off true time.
fn scenario(policy: &str, skew: &str) -> String {
    common::twin::linked_scenario(
        "lagwatch-app",
        "conflict-secret",
        policy,
        skew,
        "{ distribution: uniform, min: 300ms, max: 600ms }",
    )
}

/// lagwatch watching the pair with `policy`, `spread` apart.
fn monitor(base: &str, auth: &str, policy: &str, spread: &str) -> String {
    format!(
        r#"
instance: cfl
systems:
  crm:
    kind: dataverse
    url: {base}/crm
    table: accounts
    id_column: accountid
    key_column: name
    payload_column: description
    scope: https://crm.crm.dynamics.com/.default
    auth: {auth}
  fno:
    kind: fo_odata
    url: {base}/fno/fin
    entity_set: CustomersV3
    key_field: OrganizationName
    payload_field: AddressDescription
    data_area_id: usmf
    fields: {{ CustomerGroupId: "30" }}
    scope: https://fin.operations.dynamics.com/.default
    auth: {auth}
paths:
  - {{ source: crm, target: fno, interval: 1h, update_interval: 0s, pair_interval: 0s }}
conflicts:
  - between: [crm, fno]
    policy: {policy}
    spread: {spread}
    timeout: 6s
    interval: 1m
"#
    )
}

/// What one probe reported, and the emulator's truth about the canary row after it.
struct Probed {
    probe: ConflictProbe,
    truth: Value,
    /// How many probes of the measured one's outcome the metrics counted, besides the first.
    counted: f64,
}

/// Serves the estate, runs one conflict probe (after `before`, if any, prepared the estate
/// with the canary in place), and reads the truth.
async fn probe_once(
    emulated: &str,
    skew: &str,
    policy: &str,
    spread: &str,
    fault: Option<Value>,
) -> Probed {
    let served =
        common::twin::Served::start(&scenario(emulated, skew), "lagwatch-app", "conflict-secret")
            .await;
    let app = Arc::new(common::app(&monitor(
        &served.base,
        &served.auth,
        policy,
        spread,
    )));
    let prober = app.engine.conflicts()[0].clone();
    let token = CancellationToken::new();
    // A first probe creates the canary row and leaves both sides agreeing; the one measured
    // is the second, on a row present on both sides (and the clocks sampled by then).
    let first = prober.probe(&token).await;
    assert_ne!(first.outcome, "error", "{first:#?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client = reqwest::Client::new();
    if let Some(f) = fault {
        let r = client
            .post(format!("{}/_faults", served.base))
            .json(&f)
            .send()
            .await
            .expect("the fault is set");
        assert!(r.status().is_success());
    }
    let probe = prober.probe(&token).await;
    let truth = served
        .truth(&format!("links/customers/{}", probe.canary))
        .await;
    // Both probes are counted; this one's outcome once more than the first's share of it.
    let counted = common::sample(
        &app,
        "lagwatch_conflict_probes_total",
        &format!("a=\"crm\",b=\"fno\",outcome=\"{}\"", probe.outcome),
    ) - f64::from(u8::from(first.outcome == probe.outcome));
    served.stop().await;
    Probed {
        probe,
        truth,
        counted,
    }
}

/// The version the truth says `env` holds.
fn held(truth: &Value, env: &str, field: &str) -> Option<u64> {
    truth["sides"][env]["values"][field]
        .as_str()
        .and_then(Sentinel::seq_of)
}

/// The canary version the probe wrote on `side`.
fn written(p: &ConflictProbe, side: Side) -> u64 {
    let r = match side {
        Side::A => p.a.as_ref(),
        Side::B => p.b.as_ref(),
    };
    r.expect("the update's report").version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_writer_wins_on_true_clocks_converges_on_the_later_update_within_the_bounds() {
    let p = probe_once("last_writer_wins", "0s", "last_writer_wins", "1s", None).await;
    let probe = &p.probe;
    assert_eq!(probe.outcome, "converged_same", "{probe:#?}");
    assert_eq!(probe.expected, Some(Side::B));
    assert_eq!(probe.agreed_on, Some(Side::B));
    assert_eq!(p.counted, 1.0);
    // The truth: both sides hold fno's (the later) update.
    assert_eq!(p.truth["agree"], Value::Bool(true), "{}", p.truth);
    assert_eq!(
        held(&p.truth, "crm", "description"),
        Some(written(probe, Side::B))
    );
    assert_eq!(
        held(&p.truth, "fin", "AddressDescription"),
        Some(written(probe, Side::B))
    );
    // The time to agreement: b's update reached crm at its delivery instant, which lies in
    // lagwatch's bounds (measured from the later acknowledgement, on the wall clock here).
    let acked = probe.b.as_ref().and_then(|b| b.acked_at).expect("b acked");
    let delivered = p.truth["writes"]
        .as_array()
        .expect("writes")
        .iter()
        .filter(|w| w["side"] == "fin" && w["fate"] == "applied")
        .filter_map(|w| w["delivered_at"].as_str())
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .next_back()
        .expect("fin's update was delivered to crm");
    let truth = (delivered.with_timezone(&chrono::Utc) - acked).as_seconds_f64();
    let (low, high) = (
        probe.agreement_after_seconds.expect("lower bound"),
        probe.agreement_seconds.expect("upper bound"),
    );
    assert!(
        low - 0.05 <= truth && truth <= high + 0.05,
        "truth {truth} s outside [{low}, {high}]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_clock_turns_last_writer_wins_into_a_measured_policy_violation() {
    // fno's clock is 3 s behind, more than the 1 s spread: the link stamps fno's later update
    // earlier than crm's and keeps crm's on both sides.
    let p = probe_once("last_writer_wins", "-3s", "last_writer_wins", "1s", None).await;
    let probe = &p.probe;
    assert_eq!(probe.outcome, "policy_violated", "{probe:#?}");
    assert_eq!(probe.expected, Some(Side::B));
    assert_eq!(probe.agreed_on, Some(Side::A));
    // The servers' own stamps order them the other way round, and the skew shows why.
    assert_eq!(probe.later_by_server_stamps, Some(Side::A), "{probe:#?}");
    let skew = probe.skew_seconds.expect("both clocks measured");
    assert!((2.0..=4.0).contains(&skew), "skew {skew}");
    assert_eq!(p.counted, 1.0);
    assert_eq!(
        held(&p.truth, "crm", "description"),
        Some(written(probe, Side::A))
    );
    assert_eq!(
        held(&p.truth, "fin", "AddressDescription"),
        Some(written(probe, Side::A))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_wins_keeps_the_named_systems_update_of_two_concurrent_ones() {
    let p = probe_once(
        "{ source_wins: crm }",
        "0s",
        "{ source_wins: crm }",
        "0s",
        None,
    )
    .await;
    let probe = &p.probe;
    assert_eq!(probe.outcome, "converged_same", "{probe:#?}");
    assert_eq!(probe.expected, Some(Side::A));
    assert_eq!(probe.agreed_on, Some(Side::A));
    assert_eq!(
        held(&p.truth, "fin", "AddressDescription"),
        Some(written(probe, Side::A))
    );
    // Declared the other way round, the same estate is a violation.
    let p = probe_once(
        "{ source_wins: crm }",
        "0s",
        "{ source_wins: fno }",
        "0s",
        None,
    )
    .await;
    assert_eq!(p.probe.outcome, "policy_violated", "{:#?}", p.probe);
    assert_eq!(p.probe.expected, Some(Side::B));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_made_after_the_other_arrived_is_not_a_conflict_and_wins_under_any_policy() {
    // 1 s apart, with lags under 600 ms: fno shows crm's update before its own is sent.
    let p = probe_once(
        "{ source_wins: crm }",
        "0s",
        "{ source_wins: crm }",
        "1s",
        None,
    )
    .await;
    let probe = &p.probe;
    assert!(probe.sequential, "{probe:#?}");
    assert_eq!(probe.outcome, "converged_same", "{probe:#?}");
    assert_eq!(probe.expected, Some(Side::B));
    assert_eq!(probe.agreed_on, Some(Side::B));
    assert_eq!(
        held(&p.truth, "crm", "description"),
        Some(written(probe, Side::B))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_that_keeps_each_sides_value_is_a_divergence_at_the_timeout() {
    let p = probe_once("diverge", "0s", "last_writer_wins", "0s", None).await;
    let probe = &p.probe;
    assert_eq!(probe.outcome, "diverged", "{probe:#?}");
    assert_eq!(p.counted, 1.0);
    assert_eq!(p.truth["agree"], Value::Bool(false), "{}", p.truth);
    assert_eq!(
        held(&p.truth, "crm", "description"),
        Some(written(probe, Side::A))
    );
    assert_eq!(
        held(&p.truth, "fin", "AddressDescription"),
        Some(written(probe, Side::B))
    );
    assert!(probe.agreement_seconds.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_map_refusing_one_update_is_rejected_not_diverged() {
    let p = probe_once("reject", "0s", "last_writer_wins", "0s", None).await;
    let probe = &p.probe;
    assert_eq!(probe.outcome, "rejected", "{probe:#?}");
    let refused: Vec<&str> = [&probe.a, &probe.b]
        .iter()
        .filter_map(|r| r.as_ref())
        .filter(|r| r.result == "rejected")
        .map(|r| r.error.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(refused.len(), 1, "{probe:#?}");
    assert!(refused[0].contains("Dual-write"), "{}", refused[0]);
    // The truth refused exactly one of this probe's writes, and both sides hold the other.
    let ours = [written(probe, Side::A), written(probe, Side::B)];
    let rejected = p.truth["writes"]
        .as_array()
        .expect("writes")
        .iter()
        .filter(|w| w["fate"] == "rejected")
        .filter_map(|w| {
            w["values"]
                .as_object()?
                .values()
                .find_map(|v| v.as_str().and_then(Sentinel::seq_of))
        })
        .filter(|v| ours.contains(v))
        .count();
    assert_eq!(rejected, 1, "{}", p.truth);
    assert_eq!(p.truth["agree"], Value::Bool(true), "{}", p.truth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_fails_is_an_error_not_a_conflict() {
    let fault = serde_json::json!({
        "prefix": "/fno/", "mode": "status", "status": 503, "methods": ["PATCH"]
    });
    let p = probe_once(
        "last_writer_wins",
        "0s",
        "last_writer_wins",
        "0s",
        Some(fault),
    )
    .await;
    let probe = &p.probe;
    assert_eq!(probe.outcome, "error", "{probe:#?}");
    assert_eq!(probe.b.as_ref().map(|b| b.result), Some("error"));
    assert_eq!(p.counted, 1.0);
}
