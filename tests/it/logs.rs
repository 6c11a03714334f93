//! What `lagwatch run` logs when things fail: every probe that did not converge, every failed
//! sentinel write and delete, at WARN, with the path, the sentinel key, the outcome and an
//! error message naming the failing request (method, host and path, never its query string);
//! a transport error names its cause and the address. Both `--log.format`s, against the
//! emulator with faults injected (`/_faults`) and a target on a closed loopback port; and a
//! broken declared guarantee, with the sentinel that broke it.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::demo::Demo;
use common::logs::{Record, get, records, wait_for};
use lagwatch::sentinel::SentinelId;
use serde_json::{Value, json};

const SECRET: &str = "logs-test-secret";
const INSTANCE: &str = "logs";
const WAIT: Duration = Duration::from_secs(40);

/// The twin estate (`crm` replicated to `crm2` 1 s later) on a loopback port.
struct Estate {
    /// Stops the emulator (before its runtime goes).
    _stop: tokio_util::sync::DropGuard,
    rt: tokio::runtime::Runtime,
    origin: String,
    /// Its `host:port`, as error messages name it.
    host: String,
    dir: tempfile::TempDir,
}

impl Estate {
    fn start() -> Estate {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let (_, origin, stop) = common::twin::serve(&rt, SECRET, "1s");
        Estate {
            host: origin.trim_start_matches("http://").to_string(),
            origin,
            rt,
            dir: tempfile::tempdir().expect("dir"),
            _stop: stop,
        }
    }

    /// `lagwatch run <args>` on `crm`, `crm2` and `systems` with `paths`; its log file.
    fn run(&self, systems: &str, paths: &str, args: &[&str]) -> (Demo, PathBuf) {
        let cfg = common::twin::monitor_config_with_systems(
            self.dir.path(),
            &self.origin,
            SECRET,
            INSTANCE,
            systems,
            paths,
        );
        common::demo::run_logged(&cfg, args, "info")
    }

    /// Adds a fault to the emulator, or with `Value::Null` clears them all.
    fn fault(&self, fault: Value) {
        let http = reqwest::Client::new();
        let request = if fault.is_null() {
            http.delete(format!("{}/_faults", self.origin))
        } else {
            http.post(format!("{}/_faults", self.origin)).json(&fault)
        };
        let r = self.rt.block_on(request.send()).expect("fault request");
        assert!(r.status().is_success(), "{fault}: {}", r.status());
    }
}

/// A WARN of a probe on `crm → target` that ended `outcome`.
fn probe_warning(r: &Record, target: &str, outcome: &str) -> bool {
    get(r, "level") == "warn"
        && get(r, "source") == "crm"
        && get(r, "target") == target
        && get(r, "outcome") == outcome
}

/// The sentinel key of a record: one of this instance's, as written into the source.
fn assert_sentinel(r: &Record) {
    let key = get(r, "sentinel");
    assert!(
        key.starts_with(&format!("lagwatch-{INSTANCE}-")) && SentinelId::parse(key).is_some(),
        "{r:?}"
    );
}

/// Waits for the WARN of a failed write or delete into `crm` (its message starts with `msg`),
/// checks it names one of this instance's sentinels and the outcome `error`; that sentinel and
/// the error message.
fn source_failure(log: &Path, msg: &str) -> (SentinelId, String) {
    let r = wait_for(log, msg, WAIT, |r| {
        get(r, "level") == "warn" && get(r, "msg").starts_with(msg)
    });
    assert_sentinel(&r);
    assert_eq!((get(&r, "source"), get(&r, "outcome")), ("crm", "error"));
    let sentinel = SentinelId::parse(get(&r, "sentinel")).expect("a sentinel key");
    (sentinel, get(&r, "error").to_string())
}

#[test]
fn json_warnings_name_the_path_the_sentinel_the_outcome_and_the_request() {
    let estate = Estate::start();
    let host = &estate.host;
    // crm2 answers every request with a 503 from the start.
    estate.fault(json!({"prefix": "/crm2/", "mode": "status", "status": 503}));
    let (bin, log) = estate.run(
        "",
        "  - { source: crm, target: crm2, interval: 1s, timeout: 3s, objective: 2s }\n",
        &["--log.format=json"],
    );

    // The lookup is `GET …/accounts?$select=…&$filter=name eq '…'`: named without its query.
    let lookup = format!("GET {host}/crm2/api/data/v9.2/accounts: ");
    let unavailable = wait_for(&log, "a probe ended error by the 503s", WAIT, |r| {
        probe_warning(r, "crm2", "error") && get(r, "error").contains("HTTP 503")
    });
    assert_sentinel(&unavailable);
    assert_eq!(get(&unavailable, "msg"), "Probe did not converge.");
    assert!(
        get(&unavailable, "why").starts_with("Unknown: never seen"),
        "{unavailable:?}"
    );
    let error = get(&unavailable, "error");
    assert!(
        error.starts_with("system unavailable (HTTP 503): ") && error.contains(&lookup),
        "the message names method, host and path: {error}"
    );

    // Garbage instead: the connector's own BadResponse names the request too.
    estate.fault(Value::Null);
    estate.fault(json!({"prefix": "/crm2/", "mode": "garbage", "body": "html"}));
    let garbage = wait_for(&log, "a probe ended error by garbage", WAIT, |r| {
        probe_warning(r, "crm2", "error") && get(r, "error").contains("not the expected JSON")
    });
    assert_sentinel(&garbage);
    let error = get(&garbage, "error");
    assert!(
        error.starts_with("unexpected response (HTTP 200): ") && error.contains(&lookup),
        "{error}"
    );

    // The source refuses deletes, then writes: each failure is one WARN with its request.
    estate.fault(Value::Null);
    estate
        .fault(json!({"prefix": "/crm/", "methods": ["DELETE"], "mode": "status", "status": 403}));
    let (sentinel, error) = source_failure(&log, "Sentinel delete failed");
    assert!(
        error.contains(&format!(
            "DELETE {host}/crm/api/data/v9.2/accounts({})",
            sentinel.uuid()
        )) && error.contains("HTTP 403"),
        "{error}"
    );
    estate.fault(Value::Null);
    estate.fault(
        json!({"prefix": "/crm/", "methods": ["PATCH", "POST"], "mode": "status", "status": 500}),
    );
    let (_, error) = source_failure(&log, "Sentinel write failed");
    assert!(
        error.starts_with("system unavailable (HTTP 500): ")
            && ["PATCH", "POST"]
                .iter()
                .any(|m| error.contains(&format!("{m} {host}/crm/api/data/v9.2/accounts"))),
        "{error}"
    );
    estate.fault(Value::Null);
    common::demo::terminate(bin);

    // Every line is one JSON object with the same keys as logfmt; no query string anywhere.
    let all = records(&log);
    assert!(all.iter().all(|r| {
        ["ts", "level", "module", "msg"]
            .iter()
            .all(|k| r.contains_key(*k))
    }));
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        !text.contains("$filter") && !text.contains("%24filter") && !text.contains("$select"),
        "{text}"
    );
    // Converged probes are not logged at info.
    assert!(
        !all.iter()
            .any(|r| get(r, "outcome") == "converged" && get(r, "level") != "debug"),
        "{text}"
    );
}

#[test]
fn a_target_on_a_closed_port_logs_connection_refused_and_the_address_in_logfmt() {
    let estate = Estate::start();
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dead = format!(
        "\n  dead:\n    kind: elasticsearch\n    url: http://127.0.0.1:{port}\n    index: sentinels\n    \
         payload_field: description\n    auth: {{ method: none }}\n"
    );
    // No --log.format: logfmt is the default.
    let (bin, log) = estate.run(
        &dead,
        "  - { source: crm, target: dead, interval: 1s, timeout: 2s, objective: 1s }\n",
        &[],
    );
    let refused = wait_for(&log, "a probe of the dead target", WAIT, |r| {
        probe_warning(r, "dead", "error")
    });
    common::demo::terminate(bin);
    assert_sentinel(&refused);
    let error = get(&refused, "error");
    assert!(
        error.starts_with(&format!(
            "transport error: GET 127.0.0.1:{port}/sentinels/_doc/{}: connection refused (127.0.0.1:{port})",
            get(&refused, "sentinel")
        )),
        "{error}"
    );
    // Every line is `ts=… level=… module=… msg=… key=value…` (records() checks the pairs and
    // the first four keys), with a UTC timestamp and a lower-case level.
    let all = records(&log);
    assert!(all.len() >= 2, "{all:?}");
    for r in &all {
        let ts = get(r, "ts");
        assert!(
            ts.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
            "{r:?}"
        );
        assert!(
            ["trace", "debug", "info", "warn", "error"].contains(&get(r, "level")),
            "{r:?}"
        );
    }
    let raw = std::fs::read_to_string(&log).expect("log");
    let line = raw
        .lines()
        .find(|l| l.contains("connection refused"))
        .expect("the line");
    assert!(
        line.contains(" level=warn ") && line.contains(" target=dead "),
        "{line}"
    );
}

/// A path that declares `monotonic_reads` and whose target shows a sentinel and loses it again
/// logs a WARN naming the path, the guarantee and the sentinel: what the runbook of
/// `LagwatchContractViolated` starts from.
#[test]
fn a_broken_declared_guarantee_is_a_warning_naming_its_sentinel() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("lagwatch.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
instance: {INSTANCE}
systems:
  crm: {{ kind: simulated }}
  search: {{ kind: simulated, replica_of: crm, lag: {{ distribution: fixed, value: 2s }}, flap_probability: 1 }}
paths:
  - {{ source: crm, target: search, interval: 1s, timeout: 20s, objective: 10s, confirm: 2s, contract: {{ monotonic_reads: true }} }}
"#
        ),
    )
    .expect("config");
    let (_lagwatch, log) = common::demo::run_logged(&config, &["--log.format=json"], "info");
    let r = wait_for(&log, "a broken guarantee's warning", WAIT, |r| {
        get(r, "level") == "warn" && get(r, "guarantee") == "monotonic_reads"
    });
    assert_sentinel(&r);
    assert_eq!((get(&r, "source"), get(&r, "target")), ("crm", "search"));
    assert!(
        get(&r, "msg").starts_with("Path broke its declared monotonic_reads guarantee"),
        "{r:?}"
    );
}
