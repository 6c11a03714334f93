//! One owner per state, and processes that share a source: the `state_dir` lock (a second
//! `run`, and `reconcile` into the service's directory, refused naming the holder's PID),
//! another live process under the same instance name (`lagwatch_instance_conflict`, a WARN
//! line, neither deleting the other's sentinels), `--instance`, and shards that split the
//! paths of one file exactly (`--shard`, `shard:`, `check-config --shard`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common;
use crate::common::demo::{Demo, output, run_logged, terminate};

/// A configuration of simulated systems (no network): `src` and `paths` replicas of it, each
/// a path, with `extra` (top-level keys) first.
fn simulated(dir: &Path, instance: &str, paths: usize, extra: &str) -> PathBuf {
    let mut text = format!("instance: {instance}\n{extra}systems:\n  src: {{ kind: simulated }}\n");
    for i in 0..paths {
        text.push_str(&format!(
            "  r{i}: {{ kind: simulated, replica_of: src, lag: {{ distribution: fixed, value: 100ms }} }}\n"
        ));
    }
    text.push_str("paths:\n");
    for i in 0..paths {
        text.push_str(&format!(
            "  - {{ source: src, target: r{i}, interval: 5s }}\n"
        ));
    }
    let file = dir.join("lagwatch.yaml");
    std::fs::write(&file, text).expect("config");
    file
}

fn start(config: &Path, args: &[&str]) -> Demo {
    run_logged(config, args, "info").0
}

#[test]
fn a_second_process_on_a_state_dir_is_refused_naming_the_holder_and_reconcile_needs_its_own() {
    let dir = common::temp_dir("lagwatch-lock-");
    let state = dir.path().join("state");
    let cfg = simulated(
        dir.path(),
        "locked",
        1,
        &format!("state_dir: {}\n", state.display()),
    );
    let cfg_s = cfg.to_str().expect("utf-8");
    let first = start(&cfg, &[]);
    let pid = first.child.id();
    let lock = std::fs::read_to_string(state.join("lagwatch.lock")).expect("lock file");
    assert_eq!(lock.trim(), pid.to_string(), "the lock file holds the PID");

    let refused = |what: &str| {
        let (code, _, err) = output(&["run", "--listen", "127.0.0.1:0", "--config", cfg_s]);
        assert_eq!(code, Some(2), "{what}: {err}");
        assert!(
            err.contains(&format!("PID {pid}")) && err.contains(&state.display().to_string()),
            "{what}: names the directory and the holder: {err}"
        );
    };
    refused("second run");

    // A reload keeps the lock.
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(500));
    refused("after a reload");

    // reconcile without --state-dir would write into the service's directory.
    let (code, _, err) = output(&["reconcile", "--config", cfg_s, "--path", "src/r0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("PID {pid}")) && err.contains("--state-dir"),
        "says who holds it and to pass --state-dir: {err}"
    );
    // With a directory of its own it gets past the lock (and on to the missing entry).
    let own = dir.path().join("reconcile-state");
    let (code, _, err) = output(&[
        "reconcile",
        "--config",
        cfg_s,
        "--path",
        "src/r0",
        "--state-dir",
        own.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        !err.contains("in use") && err.contains("no reconciliation of src/r0"),
        "{err}"
    );

    terminate(first);
    let second = start(&cfg, &[]);
    let lock = std::fs::read_to_string(state.join("lagwatch.lock")).expect("lock file");
    assert_eq!(
        lock.trim(),
        second.child.id().to_string(),
        "free once its holder stopped"
    );
    terminate(second);
}

#[test]
fn two_live_processes_under_one_instance_name_are_a_conflict_and_leave_each_others_sentinels() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let secret = "ownership-secret";
    // A lag above the interval: sentinels of both processes are always in the source.
    let (_emulator, origin, _stop) = common::twin::serve(&rt, secret, "3s");
    let paths = "  - { source: crm, target: crm2, interval: 1s, objective: 10s, timeout: 30s }\n";
    let (a_dir, b_dir, c_dir) = (
        common::temp_dir("lagwatch-conflict-a-"),
        common::temp_dir("lagwatch-conflict-b-"),
        common::temp_dir("lagwatch-conflict-c-"),
    );
    let a_cfg = common::twin::monitor_config(a_dir.path(), &origin, secret, "twin", paths);
    let b_cfg = common::twin::monitor_config(b_dir.path(), &origin, secret, "twin", paths);
    let c_cfg = common::twin::monitor_config(c_dir.path(), &origin, secret, "twin", paths);
    let (a, a_log) = run_logged(&a_cfg, &[], "info");
    let (b, _) = run_logged(&b_cfg, &[], "info");
    // The same file, another name on the command line: a proper HA member.
    let (c, _) = run_logged(&c_cfg, &["--instance", "twin-c"], "info");
    let c_started = std::time::Instant::now();
    let conflict = |d: &Demo| common::scrape(d.addr, "lagwatch_instance_conflict ");
    assert_eq!(conflict(&a), Some(0.0), "exported at 0 from the start");
    for (name, d) in [("a", &a), ("b", &b)] {
        common::wait_until(
            &format!("{name} sees the other process of its name"),
            Duration::from_secs(45),
            || conflict(d) == Some(1.0),
        );
    }
    let warned = common::logs::wait_for(&a_log, "the WARN line", Duration::from_secs(5), |r| {
        common::logs::get(r, "level") == "warn"
            && common::logs::get(r, "msg").contains("under this instance name")
    });
    assert_eq!(common::logs::get(&warned, "source"), "crm", "{warned:?}");
    assert!(
        common::logs::get(&warned, "sentinel").starts_with("lagwatch-twin-"),
        "{warned:?}"
    );
    // Every probe of all three converges: none deleted another's sentinel.
    let converged = |d: &Demo| common::probes(d.addr, "crm", "crm2", "converged");
    for (name, d) in [("a", &a), ("b", &b), ("c", &c)] {
        common::wait_until(
            &format!("{name} converges"),
            Duration::from_secs(30),
            || converged(d) >= 5.0,
        );
        for outcome in ["timeout", "error", "halted"] {
            assert_eq!(
                common::probes(d.addr, "crm", "crm2", outcome),
                0.0,
                "{name}: {outcome}"
            );
        }
    }
    // Its first check is 10 s after its start (twice the interval, at least 10 s).
    std::thread::sleep(Duration::from_secs(13).saturating_sub(c_started.elapsed()));
    assert_eq!(conflict(&c), Some(0.0), "another name is no conflict");
    let (_, _, body) = common::http_get(c.addr, "/api/v1/paths");
    assert!(body.contains("\"instance\":\"twin-c\""), "{body}");
    for d in [a, b, c] {
        terminate(d);
    }
}

/// The paths a `check-config --shard` prints as measured, and those it says another shard owns.
fn shard_listing(cfg: &str, shard: &str) -> (BTreeSet<String>, BTreeSet<(String, u32)>) {
    let (code, out, err) = output(&["check-config", cfg, "--shard", shard]);
    assert_eq!(code, Some(0), "{err}");
    let mut own = BTreeSet::new();
    let mut other = BTreeSet::new();
    for line in out.lines() {
        let line = line.trim();
        if let Some((path, owner)) = line.split_once(": owned by shard ") {
            other.insert((path.to_string(), owner.parse().expect("a shard index")));
        } else if let Some((path, _)) = line.split_once(": every ") {
            own.insert(path.to_string());
        }
    }
    (own, other)
}

#[test]
fn shards_of_one_file_split_its_paths_exactly_and_say_so() {
    let dir = common::temp_dir("lagwatch-shards-");
    let cfg = simulated(dir.path(), "sharded", 12, "");
    let cfg_s = cfg.to_str().expect("utf-8");
    let all: BTreeSet<String> = (0..12).map(|i| format!("src -> r{i}")).collect();
    let mut union = BTreeSet::new();
    let mut owners = std::collections::BTreeMap::new();
    for i in 0..3u32 {
        let (own, other) = shard_listing(cfg_s, &format!("{i}/3"));
        assert!(
            union.is_disjoint(&own),
            "shard {i} measures a path another does: {own:?}"
        );
        union.extend(own.iter().cloned());
        assert_eq!(
            own.len() + other.len(),
            12,
            "shard {i}: every path listed once"
        );
        for p in &own {
            owners.insert(p.clone(), i);
        }
        for (p, k) in other {
            assert_ne!(k, i, "{p}");
            if let Some(&seen) = owners.get(&p) {
                assert_eq!(seen, k, "{p}: the shards agree on its owner");
            }
        }
    }
    assert_eq!(union, all, "every path has a shard");

    // A running shard measures and exports only its own paths, and lists the others.
    let (own, _) = shard_listing(cfg_s, "1/3");
    let shard = start(&cfg, &["--shard", "1/3"]);
    assert_eq!(
        common::scrape(shard.addr, "lagwatch_shard_info{index=\"1\",total=\"3\"} "),
        Some(1.0)
    );
    assert_eq!(
        common::scrape(shard.addr, "lagwatch_total_shards "),
        Some(3.0)
    );
    let (_, _, body) = common::http_get(shard.addr, "/api/v1/paths");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["shard"], serde_json::json!({"index": 1, "total": 3}));
    let measured: BTreeSet<String> = v["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .map(|p| {
            format!(
                "{} -> {}",
                p["source"].as_str().unwrap(),
                p["target"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(measured, own);
    let others = v["other_shards"].as_array().expect("other_shards");
    assert_eq!(others.len(), 12 - own.len());
    assert!(
        others.iter().all(|p| p["owned_by_shard"] != 1),
        "{others:?}"
    );
    let (_, _, page) = common::http_get(shard.addr, "/");
    assert!(
        page.contains(&format!(
            "shard 1/3 (the other shards measure {})",
            others.len()
        )),
        "the status page names the shard"
    );
    for p in all.difference(&own) {
        let row = format!("<tr><td>{}</td>", p.replace("->", "→"));
        assert!(page.contains(&row), "{p} under other shards on the page");
    }
    let (_, _, metrics) = common::http_get(shard.addr, "/metrics");
    for p in all.difference(&own) {
        let target = p.trim_start_matches("src -> ");
        assert!(
            !metrics.contains(&format!("target=\"{target}\"")),
            "{p} belongs to another shard, yet is exported"
        );
    }
    terminate(shard);
}

#[test]
fn a_bad_shard_is_refused_naming_the_flag_or_the_key() {
    let dir = common::temp_dir("lagwatch-bad-shard-");
    let cfg = simulated(dir.path(), "bad", 1, "");
    let cfg_s = cfg.to_str().expect("utf-8");
    let (code, _, err) = output(&["run", "--config", cfg_s, "--shard", "3/3"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--shard") && err.contains("3 is not below 3"),
        "{err}"
    );
    let (code, _, err) = output(&["run", "--config", cfg_s, "--instance", "Not_Valid"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--instance") && err.contains("Not_Valid"),
        "{err}"
    );
    let file = simulated(dir.path(), "bad", 1, "shard: { index: 2, total: 2 }\n");
    let (code, _, err) = output(&["check-config", file.to_str().expect("utf-8")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("lagwatch.yaml: shard.index: the index counts from 0"),
        "{err}"
    );
}

#[test]
fn a_restart_after_a_crash_is_not_another_process() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let secret = "restart-secret";
    let (_emulator, origin, _stop) = common::twin::serve(&rt, secret, "3s");
    let dir = common::temp_dir("lagwatch-restart-");
    let paths = "  - { source: crm, target: crm2, interval: 1s, objective: 10s, timeout: 30s }\n";
    let cfg = common::twin::monitor_config(dir.path(), &origin, secret, "phoenix", paths);
    let first = start(&cfg, &[]);
    common::wait_until("first converges", Duration::from_secs(30), || {
        common::probes(first.addr, "crm", "crm2", "converged") >= 2.0
    });
    // SIGKILL, and its ledger lost: its in-flight sentinels stay in the source, unknown to the
    // next process, younger than the timeout (so not swept) when that one first checks.
    drop(first);
    std::fs::remove_dir_all(dir.path().join("state")).expect("remove state");
    let (second, log) = run_logged(&cfg, &[], "info");
    let started = std::time::Instant::now();
    common::wait_until("the restart converges", Duration::from_secs(30), || {
        common::probes(second.addr, "crm", "crm2", "converged") >= 2.0
    });
    // Its first instance check is 10 s after its start.
    std::thread::sleep(Duration::from_secs(13).saturating_sub(started.elapsed()));
    assert_eq!(
        common::scrape(second.addr, "lagwatch_instance_conflict "),
        Some(0.0),
        "the predecessor's sentinels are not another process's"
    );
    assert!(
        !common::logs::records(&log)
            .iter()
            .any(|r| common::logs::get(r, "msg").contains("under this instance name")),
        "no conflict logged"
    );
    terminate(second);
}
