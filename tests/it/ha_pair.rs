//! An HA pair end to end: two `lagwatch run` processes with different `instance` names (as the
//! pods of a StatefulSet would be, each with its own `state_dir`) monitor the same paths of one
//! emulated estate (`lagwatch emulate`); a real Prometheus scrapes both as two targets of one
//! job `lagwatch` with the shipped rules of `alerts/` and routes to a real Alertmanager, which
//! sends to a webhook receiver in this test (`tests/common/prometheus.rs`: the `for:` holds are
//! divided by 60, nothing else of the rules changes).
//!
//! The estate's crm → crm2 replication stalls 8 s after start and stays stuck; crm → crm3 stays
//! healthy. Alertmanager groups by every label (`group_by: ['...']`), so an alert that each
//! member raises on its own (one series per `instance`) is two notifications: the duplicate an
//! HA pair must not send. Asserted:
//!
//! - **one page**: `LagwatchPathNotConverging` (critical) fires for the stuck path, and every
//!   alert about that path is one alert (no two differ only in `instance` or `pod`), notified
//!   firing exactly once;
//! - **no gap when a member dies**: after one member is killed (SIGKILL, a lost node), every
//!   alert that was firing about the path stays firing in Prometheus at every evaluation
//!   (`ALERTS`, step 1 s: a resolution would leave a stale marker, a hole), keeps its
//!   `startsAt` in Alertmanager (`/api/v2/alerts`), and is never notified resolved nor
//!   notified again;
//! - **no false page**: `LagwatchDown` never fires while one member is up, held past its
//!   (compressed) `for:`; `LagwatchMemberDown`, where the rules have it, fires as a ticket
//!   (not critical); nothing critical is notified about anything but the stuck path (the
//!   healthy path beside it included).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common;
use common::demo::{Demo, run_logged, start, terminate};
use common::prometheus::{Stack, Webhook, loaded_rules, query, query_range, unix_now};

const SECRET: &str = "ha-pair-secret";

/// The alert the stuck path must page with.
const PAGE: &str = "LagwatchPathNotConverging";

/// The members' instance names: a StatefulSet's pod names.
const MEMBERS: [&str; 2] = ["lagwatch-0", "lagwatch-1"];

/// crm/accounts replicated to crm2 (stalled from 8 s on, for longer than the test) and to crm3
/// (healthy), 300 ms each; the app registration the members sign in with.
fn scenario() -> String {
    let table = "{ tables: { accounts: { id: accountid, columns: { name: string, description: string } } } }";
    let replica = |env: &str, outages: &str| {
        format!(
            "  {env}:\n    source: crm/accounts\n    target: {{ kind: dataverse, env: {env}, table: accounts }}\n    \
             key: name\n    lag: {{ distribution: fixed, value: 300ms }}\n{outages}"
        )
    };
    format!(
        "credentials:\n  - {{ tenant: contoso, client_id: lagwatch-test, client_secret: {SECRET} }}\n\
         dataverse:\n  crm: {table}\n  crm2: {table}\n  crm3: {table}\n\
         replicas:\n{}{}",
        replica(
            "crm2",
            "    outages: [ { start: 8s, duration: 1h, mode: stall } ]\n"
        ),
        replica("crm3", ""),
    )
}

/// One member's configuration in `dir`: instance `instance`, its own `state_dir`, both paths
/// probed every second with a 3 s timeout (the page needs staleness of twice that).
fn member_config(dir: &Path, origin: &str, instance: &str) -> PathBuf {
    let crm3 = common::twin::dataverse("crm3", origin, &dir.join("secret"));
    common::twin::write_config(
        dir,
        origin,
        SECRET,
        &format!(
            "instance: {instance}\nstate_dir: {}\n",
            dir.join("state").display()
        ),
        &crm3,
        "  - { source: crm, target: crm2, interval: 1s, timeout: 3s, objective: 1s }\n  \
         - { source: crm, target: crm3, interval: 1s, timeout: 3s, objective: 1s }\n",
    )
}

/// An alert's labels, without `alertstate` (which `ALERTS` adds) and `__name__`.
type Labels = BTreeMap<String, String>;

fn labels(v: &Value) -> Labels {
    v.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !matches!(k.as_str(), "alertstate" | "__name__"))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// The labels that tell the members of a pair apart removed: what must be left unique.
fn without_member(l: &Labels) -> Labels {
    l.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "instance" | "pod"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn about_stuck_path(l: &Labels) -> bool {
    l.get("source").is_some_and(|s| s == "crm") && l.get("target").is_some_and(|t| t == "crm2")
}

/// Panics when two of `sets` are one alert per member (equal but for `instance` or `pod`).
fn one_per_alert(sets: impl IntoIterator<Item = Labels>, what: &str) {
    let mut by_alert: BTreeMap<Labels, BTreeSet<Labels>> = BTreeMap::new();
    for l in sets {
        by_alert.entry(without_member(&l)).or_default().insert(l);
    }
    for copies in by_alert.values() {
        assert_eq!(
            copies.len(),
            1,
            "{what}: one alert per member instead of one for the pair: {copies:#?}"
        );
    }
}

/// Every alert the webhook was told about, with the statuses it was notified with, in order.
fn notified(hook: &Webhook) -> BTreeMap<Labels, Vec<String>> {
    let mut out: BTreeMap<Labels, Vec<String>> = BTreeMap::new();
    for n in hook.notifications() {
        for a in n["alerts"].as_array().into_iter().flatten() {
            out.entry(labels(&a["labels"]))
                .or_default()
                .push(a["status"].as_str().unwrap_or_default().to_string());
        }
    }
    out
}

/// Alertmanager's active alerts about the stuck path, each with its `startsAt`.
fn active_about_stuck_path(stack: &Stack) -> BTreeMap<Labels, String> {
    stack
        .alertmanager_alerts()
        .iter()
        .filter(|a| a["status"]["state"] == "active")
        .map(|a| {
            (
                labels(&a["labels"]),
                a["startsAt"].as_str().unwrap_or("").to_string(),
            )
        })
        .filter(|(l, _)| about_stuck_path(l))
        .collect()
}

/// What Prometheus and Alertmanager hold, for a failure message.
fn state(stack: &Stack, hook: &Webhook) -> String {
    format!(
        "ALERTS: {:#?}\nnotifications: {:#?}",
        query(stack.prometheus, "ALERTS")
            .iter()
            .map(|s| labels(&s["metric"]))
            .collect::<Vec<_>>(),
        notified(hook)
    )
}

/// The (compressed) `for:` of the loaded alert `name`, in seconds; `None` if no rule has it.
fn hold(rules: &[Value], name: &str) -> Option<f64> {
    rules
        .iter()
        .filter(|r| r["type"] == "alerting" && r["name"] == name)
        .filter_map(|r| r["duration"].as_f64())
        .reduce(f64::max)
}

/// Polls `f` every second until it gives a value; panics with `what` and the alerting state
/// after `limit`.
fn poll<T>(
    stack: &Stack,
    hook: &Webhook,
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {limit:?}\n{}",
            state(stack, hook)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn an_ha_pair_pages_once_for_a_stuck_path_and_keeps_paging_without_a_gap_when_a_member_dies() {
    let Some(bin) = common::prometheus::binaries() else {
        return;
    };
    let dir = common::temp_dir("lagwatch-ha-pair-");
    let scenario_file = dir.path().join("scenario.yaml");
    std::fs::write(&scenario_file, scenario()).expect("scenario");
    let emulator = start(&[
        "emulate",
        "--listen",
        "127.0.0.1:0",
        "--scenario",
        scenario_file.to_str().expect("a UTF-8 path"),
    ]);
    let origin = format!("http://{}", emulator.addr);
    let mut members: Vec<(Demo, PathBuf)> = MEMBERS
        .iter()
        .map(|name| {
            let d = dir.path().join(name);
            std::fs::create_dir_all(&d).expect("member dir");
            run_logged(&member_config(&d, &origin, name), &[], "info")
        })
        .collect();
    let targets: Vec<SocketAddr> = members.iter().map(|(m, _)| m.addr).collect();
    let hook = Webhook::start();
    let stack = Stack::start(&bin, &targets, hook.addr, "['...']");
    let prom = stack.prometheus;
    let rules = loaded_rules(prom);
    let down_hold = hold(&rules, "LagwatchDown").expect("LagwatchDown is loaded");
    let member_down_hold = hold(&rules, "LagwatchMemberDown");

    // The page: the first notification of it, once both members see the path stuck.
    let page = poll(
        &stack,
        &hook,
        "a page for the stuck path crm -> crm2",
        Duration::from_secs(120),
        || {
            notified(&hook)
                .into_keys()
                .find(|l| about_stuck_path(l) && l.get("alertname").is_some_and(|n| n == PAGE))
        },
    );
    let paged_at = unix_now();
    assert_eq!(
        page.get("severity").map(String::as_str),
        Some("critical"),
        "{page:?}"
    );
    // Both members measure the stall: each would page on its own.
    let stale = query(
        prom,
        "lagwatch_staleness_seconds{source=\"crm\",target=\"crm2\"} >= 2 * 3",
    );
    assert_eq!(
        stale.len(),
        2,
        "both members see crm -> crm2 stuck: {:?}",
        query(prom, "lagwatch_staleness_seconds")
    );
    // Long enough for a second member's copy of the page to be raised and notified.
    std::thread::sleep(Duration::from_secs(8));
    let pair_paged = |when: &str| {
        let seen = notified(&hook);
        let about: Vec<(&Labels, &Vec<String>)> =
            seen.iter().filter(|(l, _)| about_stuck_path(l)).collect();
        one_per_alert(about.iter().map(|(l, _)| (*l).clone()), when);
        for (l, statuses) in &about {
            assert_eq!(
                statuses.as_slice(),
                ["firing"],
                "{when}: {l:?} notified once, firing, never resolved"
            );
        }
        one_per_alert(active_about_stuck_path(&stack).into_keys(), when);
    };
    pair_paged("with both members up");
    let before = active_about_stuck_path(&stack);
    assert!(before.contains_key(&page), "{before:#?}");

    // A member dies.
    let (mut victim, _) = members.remove(0);
    let victim_addr = victim.addr;
    victim.child.kill().expect("kill a member");
    victim.child.wait().expect("the member ends");
    let killed_at = unix_now();
    poll(
        &stack,
        &hook,
        "Prometheus sees the member down",
        Duration::from_secs(30),
        || {
            (!query(prom, &format!("up{{instance=\"{victim_addr}\"}} == 0")).is_empty())
                .then_some(())
        },
    );
    // Past LagwatchDown's hold (and LagwatchMemberDown's), the pair still pages the same way.
    let window = down_hold.max(member_down_hold.unwrap_or(0.0)) + 10.0;
    let until = Instant::now() + Duration::from_secs_f64(window);
    while Instant::now() < until {
        let now = active_about_stuck_path(&stack);
        for (l, starts) in &before {
            assert_eq!(
                now.get(l),
                Some(starts),
                "{l:?} stays active with the same start while a member is down:\n{}",
                state(&stack, &hook)
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    pair_paged("after a member died");
    let end = unix_now();

    // No gap: every alert that was firing before the kill was firing at every step (1 s, the
    // evaluation interval) from its first firing sample to the end. A resolution writes a stale
    // marker, so a resolved-then-refired alert would miss steps.
    let firing = query_range(
        prom,
        "ALERTS{alertstate=\"firing\",source=\"crm\",target=\"crm2\"}",
        paged_at - 120.0,
        end,
        1.0,
    );
    for l in before.keys() {
        let series = firing
            .iter()
            .find(|s| &labels(&s["metric"]) == l)
            .unwrap_or_else(|| panic!("{l:?} has no firing series: {firing:#?}"));
        let at: Vec<f64> = series["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p[0].as_f64())
            .collect();
        let contiguous = at.windows(2).all(|w| (w[1] - w[0] - 1.0).abs() < 1e-3);
        assert!(
            contiguous
                && at.first().is_some_and(|t| *t < killed_at)
                && at.last().is_some_and(|t| *t > end - 1.5),
            "{l:?} firing at every step from before the kill (at {killed_at}) to the end ({end}): {series}"
        );
    }
    // No second series: over the whole run, one firing series per alert, not one per member.
    one_per_alert(
        firing.iter().map(|s| labels(&s["metric"])),
        "Prometheus's ALERTS",
    );

    // No false page: LagwatchDown never fired, nothing critical but the stuck path was sent.
    let down = query_range(
        prom,
        "ALERTS{alertname=\"LagwatchDown\",alertstate=\"firing\"}",
        paged_at - 120.0,
        end,
        1.0,
    );
    assert!(
        down.is_empty(),
        "LagwatchDown fired with a member up: {:#?}",
        down.iter()
            .map(|s| labels(&s["metric"]))
            .collect::<Vec<_>>()
    );
    for (l, statuses) in notified(&hook) {
        let critical = l.get("severity").is_some_and(|s| s == "critical");
        assert!(
            !critical || about_stuck_path(&l),
            "a false page: {l:?} {statuses:?}"
        );
    }
    // The member's death is a ticket where the rules have one.
    if member_down_hold.is_some() {
        let tickets: Vec<Labels> = notified(&hook)
            .into_keys()
            .filter(|l| {
                l.get("alertname")
                    .is_some_and(|n| n == "LagwatchMemberDown")
            })
            .collect();
        assert!(
            !tickets.is_empty(),
            "LagwatchMemberDown fired\n{}",
            state(&stack, &hook)
        );
        for l in tickets {
            assert_ne!(
                l.get("severity").map(String::as_str),
                Some("critical"),
                "{l:?}"
            );
        }
    }
    // The survivor is still scraped and measures the healthy path (so its silence above was
    // not for want of probes), and every rule evaluates over the pair without error.
    let up = query(prom, "up{job=\"lagwatch\"} == 1");
    assert_eq!(up.len(), 1, "{up:?}");
    let healthy = query(
        prom,
        "increase(lagwatch_probes_total{outcome=\"converged\",source=\"crm\",target=\"crm3\"}[10s]) > 0",
    );
    assert_eq!(
        healthy.len(),
        1,
        "crm -> crm3 converges on the survivor: {healthy:?}"
    );
    for r in loaded_rules(prom) {
        assert_eq!(r["health"], "ok", "{r}");
    }

    drop(stack);
    for (m, _) in members {
        terminate(m);
    }
    terminate(emulator);
}
