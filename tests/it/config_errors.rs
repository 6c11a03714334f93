//! Every rule of the configuration checker, one broken file each (`testdata/config/bad/`), with
//! the exact message a user sees: the file, the key path, and a sentence saying why.
//!
//! The messages are frozen on purpose: changing one is a user-visible change and should show
//! up in review as an edit to this table.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One broken file and the error it must produce.
struct Case {
    /// File name under `testdata/config/bad/`.
    file: &'static str,
    /// The key path the error names; `None` for YAML syntax errors, which have none.
    key: Option<&'static str>,
    /// The sentence after the key (for syntax errors, after the file).
    reason: &'static str,
}

const fn case(file: &'static str, key: &'static str, reason: &'static str) -> Case {
    Case {
        file,
        key: Some(key),
        reason,
    }
}

const fn syntax(file: &'static str, reason: &'static str) -> Case {
    Case {
        file,
        key: None,
        reason,
    }
}

const CASES: &[Case] = &[
    // Unknown keys, at every depth.
    case(
        "unknown_key_top.yaml",
        "interval",
        "unknown key; the keys allowed here are: instance, server, defaults, systems, paths, conflicts, state_dir, tls, shard (`interval` is a key of a path (under paths:) and of defaults: the block looks mis-indented)",
    ),
    case(
        "unknown_key_defaults.yaml",
        "defaults.timout",
        "unknown key; the keys allowed here are: interval, timeout, objective, max_in_flight, confirm, retention, request_timeout, poll, contract, delete_sample, update_interval, pair_interval",
    ),
    case(
        "unknown_key_server.yaml",
        "server.port",
        "unknown key; the keys allowed here are: listen",
    ),
    case(
        "unknown_key_path.yaml",
        "paths[1].objectve",
        "unknown key; the keys allowed here are: source, target, interval, timeout, objective, max_in_flight, confirm, retention, request_timeout, poll, contract, delete_sample, update_interval, pair_interval, reconcile, platform_status",
    ),
    case(
        "unknown_key_poll.yaml",
        "paths[0].poll.max_interval",
        "unknown key; the keys allowed here are: first, factor, max_gap, jitter, precision",
    ),
    case(
        "unknown_key_system.yaml",
        "systems.primary.latency",
        "unknown key; the keys allowed here are: replica_of, write_latency, read_latency, lag, drop_probability, mismatch_probability, flap_probability, delete_drop_probability, resurrect_probability, resurrect_after, resurrect_for, child_first_probability, child_first_for, stale_read_probability, outages, throttle, seed, and on every system: kind, limits",
    ),
    case(
        "unknown_key_lag.yaml",
        "systems.replica.lag.p95",
        "unknown key; the keys allowed here are: distribution, value, min, max, median, p99",
    ),
    case(
        "unknown_key_outage.yaml",
        "systems.replica.outages[0].length",
        "unknown key; the keys allowed here are: start, duration, every, mode",
    ),
    // Missing keys.
    case(
        "empty.yaml",
        "(top level)",
        "the file must be a mapping with the keys instance, systems and paths",
    ),
    case(
        "missing_instance.yaml",
        "instance",
        "required key is missing",
    ),
    case("missing_systems.yaml", "systems", "required key is missing"),
    case("missing_paths.yaml", "paths", "required key is missing"),
    case(
        "missing_path_source.yaml",
        "paths[0].source",
        "required key is missing",
    ),
    case(
        "missing_path_target.yaml",
        "paths[0].target",
        "required key is missing",
    ),
    case(
        "missing_kind.yaml",
        "systems.replica.kind",
        "required key is missing",
    ),
    case(
        "missing_replica_lag.yaml",
        "systems.replica.lag",
        "a replica needs a lag distribution",
    ),
    case(
        "missing_lag_distribution.yaml",
        "systems.replica.lag.distribution",
        "required key is missing",
    ),
    case(
        "limits_zero_concurrency.yaml",
        "systems.primary.limits.max_concurrency",
        "at least 1 request must be allowed in flight",
    ),
    case(
        "unknown_key_limits.yaml",
        "systems.primary.limits.window",
        "unknown key; the keys allowed here are: max_concurrency, requests, per, default_retry_after, max_retry_after",
    ),
    case(
        "replica_of_unknown.yaml",
        "systems.replica.replica_of",
        "unknown system \"primry\"; a replica copies a simulated source defined under systems",
    ),
    case(
        "replica_of_replica.yaml",
        "systems.chained.replica_of",
        "\"replica\" is not a simulated source (a simulated system without replica_of)",
    ),
    case(
        "missing_lag_field.yaml",
        "systems.replica.lag.p99",
        "required key is missing for a log_normal distribution",
    ),
    // Values that do not parse.
    case(
        "bad_duration.yaml",
        "paths[0].timeout",
        "invalid duration \"5 mins\": write a number and a unit (ms, s, m, h, d) with no spaces, such as 30s, 15m or 1h30m",
    ),
    case(
        "wrong_type_duration.yaml",
        "defaults.interval",
        "the duration 30 has no unit: write a number and a unit (ms, s, m, h, d) with no spaces, such as 30s",
    ),
    case(
        "wrong_type_number.yaml",
        "paths[0].max_in_flight",
        "expected a whole number, found the text \"lots\"",
    ),
    case(
        "wrong_type_instance.yaml",
        "instance",
        "expected a string, found the number 2024 (put it in quotes to use it as text)",
    ),
    case(
        "wrong_type_paths.yaml",
        "paths",
        "expected a list, found a mapping",
    ),
    case(
        "wrong_type_path_entry.yaml",
        "paths[0]",
        "expected a mapping, found the text \"primary -> replica\"",
    ),
    case(
        "bad_listen.yaml",
        "server.listen",
        "invalid address: write an IP address and a port, such as 0.0.0.0:9464 (host names are not accepted)",
    ),
    case(
        "unknown_kind.yaml",
        "systems.replica.kind",
        "unknown kind \"salesforce\"; the kinds lagwatch knows are: simulated, dataverse, fo_odata, azure_search, dataverse_search, elasticsearch, http, synapse_link_csv, delta",
    ),
    // The Dynamics 365 and search kinds.
    case(
        "fo_odata_source_timeout_within_grace.yaml",
        "paths[0].timeout",
        "the timeout (45s) must be longer than the sync_grace of system \"fno\" (1m), or a stopped replication is reported as a timeout instead of halted",
    ),
    // Platform status surfaces.
    case(
        "platform_status_not_offered.yaml",
        "paths[0].platform_status.surface",
        "neither the target \"replica\" (no status surface) nor the source \"primary\" (no status surface) offers azure_search_indexer",
    ),
    case(
        "platform_status_interval_short.yaml",
        "paths[0].platform_status.interval",
        "10s is shorter than 30s: status surfaces change at the pace of their syncs, and every read costs the system's request budget",
    ),
    case(
        "platform_status_unknown_key.yaml",
        "paths[0].platform_status.indexr",
        "unknown key; the keys allowed here are: indexer, and on every surface: surface, interval, grace",
    ),
    case(
        "platform_status_unknown_surface.yaml",
        "paths[0].platform_status.surface",
        "unknown surface \"search_everything\"; the surfaces are: synapse_link, fabric_link, dataverse_search, azure_search_indexer, elasticsearch_refresh, dual_write",
    ),
    // Conflict probes.
    case(
        "conflict_one_system.yaml",
        "conflicts[0].between",
        "name exactly two systems linked both ways, such as [crm, fno] (found 1)",
    ),
    case(
        "conflict_unknown_policy.yaml",
        "conflicts[0].policy",
        "unknown policy \"first_writer_wins\"; write last_writer_wins, manual, or source_wins: <one of the two systems>",
    ),
    case(
        "conflict_source_wins_other.yaml",
        "conflicts[0].policy.source_wins",
        "\"lake\" is not one of the two systems (crm, fno)",
    ),
    case(
        "conflict_timeout_over_interval.yaml",
        "conflicts[0].timeout",
        "spread plus timeout (0s + 5m) is longer than the interval (1m): a probe must end before the next one writes the same row",
    ),
    case(
        "conflict_duplicate_pair.yaml",
        "conflicts[1].between",
        "fno and crm already have a conflict probe: one per pair",
    ),
    case(
        "conflict_dataverse_second.yaml",
        "conflicts[0].between",
        "system \"crm\" (kind dataverse) cannot be the second system of a conflict probe, which finds the canary row the link copied there: it addresses a record by the id lagwatch gave it when it created it, and a copy a link made has an id of its own; name it first in between, so the canary row is created there",
    ),
    case(
        "conflict_fno_without_payload.yaml",
        "conflicts[0].between",
        "system \"fno\" (kind fo_odata) cannot take part in a conflict probe, which updates one row on both sides: an update is written into payload_field, which is not set",
    ),
    case(
        "fo_odata_source_without_company.yaml",
        "paths[0].source",
        "system \"fno\" (kind fo_odata) cannot be a source: set data_area_id: the legal entity (company) sentinels are created in",
    ),
    case(
        "fo_odata_source_without_customer_group.yaml",
        "paths[0].source",
        "system \"fno\" (kind fo_odata) cannot be a source: CustomersV3 needs CustomerGroupId on create: set fields.CustomerGroupId",
    ),
    case(
        "fo_odata_source_key_is_entity_key.yaml",
        "paths[0].source",
        "system \"fno\" (kind fo_odata) cannot be a source: key_field CustomerAccount is the entity key (at most 20 characters), which F&O's number sequence assigns; put the sentinel key in a text field the map carries, such as OrganizationName",
    ),
    case(
        "fo_odata_bad_company.yaml",
        "systems.fno.data_area_id",
        "\"us-mf\" is not a legal entity id (1 to 4 letters or digits, e.g. usmf)",
    ),
    case(
        "fo_odata_timeout_within_grace.yaml",
        "paths[0].timeout",
        "the timeout (45s) must be longer than the sync_grace of system \"fno\" (1m), or a stopped replication is reported as a timeout instead of halted",
    ),
    case(
        "lake_azure_url.yaml",
        "systems.lake.auth",
        "required for a lake in Azure Storage: an Entra method (client_secret, client_certificate, workload_identity, managed_identity), shared_key, sas, or none for anonymous read access",
    ),
    case(
        "lake_bad_layout.yaml",
        "systems.lake.layout",
        "unknown value \"tables\"; the values allowed here are: incremental, table",
    ),
    case(
        "search_basic_auth.yaml",
        "systems.search.auth.method",
        "this kind does not take method basic; the methods it takes are: client_secret, client_certificate, workload_identity, managed_identity, api_key",
    ),
    case(
        "search_bad_index.yaml",
        "systems.search.index",
        "\"Sentinels\" is not an index name (lower-case letters, digits, -)",
    ),
    case(
        "es_searchable_without_key_field.yaml",
        "systems.es.key_field",
        "searchable mode finds the sentinel with a term query on this keyword field; name it (e.g. key or key.keyword)",
    ),
    case(
        "es_unknown_auth_key.yaml",
        "systems.es.auth.passwd",
        "unknown key; the keys allowed here are: method, username, password",
    ),
    case(
        "http_unknown_placeholder.yaml",
        "systems.api.lookup.url",
        "unknown placeholder {key}; the placeholders here are: {id}, {uuid}",
    ),
    case(
        "http_pointer_in_write.yaml",
        "systems.api.write.payload_pointer",
        "payload_pointer belongs in read and lookup, not here",
    ),
    case(
        "http_without_lookup.yaml",
        "systems.api.lookup",
        "an http system needs a lookup (or read) request: how to find a sentinel in it",
    ),
    case(
        "dataverse_search_bad_entity.yaml",
        "systems.crm-search.entity",
        "\"lw sentinel\" is not a Dataverse logical name (letters, digits, _)",
    ),
    case(
        "unknown_distribution.yaml",
        "systems.replica.lag.distribution",
        "unknown value \"normal\"; the values allowed here are: fixed, uniform, log_normal",
    ),
    case(
        "unknown_outage_mode.yaml",
        "systems.replica.outages[0].mode",
        "unknown value \"down\"; the values allowed here are: stall, unavailable",
    ),
    case(
        "bad_probability.yaml",
        "systems.replica.drop_probability",
        "a probability is between 0 and 1, not 5",
    ),
    case(
        "bad_instance_name.yaml",
        "instance",
        "\"Prod EU\" is not a valid instance name: use 1 to 32 lowercase letters, digits or dashes; it is written into every sentinel and must stay the same across restarts",
    ),
    // Rules between keys.
    case(
        "unknown_system.yaml",
        "paths[1].target",
        "unknown system \"replca\"; the systems defined are: primary, replica",
    ),
    case(
        "source_is_replica.yaml",
        "paths[0].source",
        "system \"replica\" (kind simulated) cannot be a source: it is a read-only replica of \"primary\"; write to \"primary\" instead",
    ),
    case(
        "timeout_below_first_poll.yaml",
        "paths[0].timeout",
        "the timeout (200ms) must be longer than the first poll (250ms), or no sentinel is ever read",
    ),
    case(
        "timeout_below_poll_first_override.yaml",
        "paths[0].timeout",
        "the timeout (3s) must be longer than the first poll (5s), or no sentinel is ever read",
    ),
    case(
        "contract_objective_twice.yaml",
        "paths[0].contract.visibility",
        "the objective is given twice: as objective and as contract.visibility; keep one",
    ),
    case(
        "contract_unknown_guarantee.yaml",
        "paths[0].contract.consistent_prefix",
        "unknown key; the keys allowed here are: visibility, monotonic_reads, deletes, causal, updates",
    ),
    case(
        "contract_updates_without_canary.yaml",
        "paths[0].contract.updates",
        "updates: latest is measured by the update canary, which this path does not run; give it an update_interval (a source that can write a record again, a target that returns its content)",
    ),
    case(
        "contract_updates_every.yaml",
        "paths[0].contract.updates",
        "updates: every (a change log: every version arrives once) cannot be measured on system \"replica\" (kind simulated): a read shows one version of a record (a snapshot), which may skip versions legally; updates: every needs a change log (synapse_link_csv with incremental update folders); declare updates: latest, or leave it out",
    ),
    case(
        "update_interval_without_content.yaml",
        "paths[0].update_interval",
        "system \"fno\" (kind fo_odata) cannot show a canary's newer versions: it has no payload_field (a field the dual-write map fills from the sentinel's payload column), so a canary's version cannot be read; leave update_interval out",
    ),
    case(
        "update_interval_table_layout.yaml",
        "paths[0].update_interval",
        "system \"lake\" (kind synapse_link_csv) cannot show a canary's newer versions: the table layout's reader reads what was appended to a partition file, and in in-place mode an update rewrites its row where it was already read, so a canary's newer versions may not show; use layout: incremental; leave update_interval out",
    ),
    case(
        "contract_causal_without_pairs.yaml",
        "paths[0].contract.causal",
        "system \"primary\" (kind dataverse) cannot write a causal pair: it has no parent_column (a lookup of the sentinel table to itself) to reference a parent with",
    ),
    case(
        "delete_sample_zero.yaml",
        "paths[0].delete_sample",
        "delete_sample must be at least 1 (1: every sentinel's delete is watched, 4: one in four)",
    ),
    case(
        "contract_deletes_zero.yaml",
        "paths[0].contract.deletes",
        "a delete cannot be gone within 0s; give how long the target may take",
    ),
    case(
        "contract_visibility_over_timeout.yaml",
        "paths[0].contract.visibility",
        "the objective (15m) is longer than the timeout (10m): lags above the timeout are never measured",
    ),
    case(
        "objective_over_timeout.yaml",
        "paths[0].objective",
        "the objective (15m) is longer than the timeout (10m): lags above the timeout are never measured",
    ),
    case(
        "duplicate_path.yaml",
        "paths[1]",
        "duplicate path primary -> replica: paths[0] already measures it",
    ),
    // Reconciliation entries.
    case(
        "reconcile_key_arity.yaml",
        "paths[0].reconcile[0].target.key",
        "1 key column(s) here but 2 on the source: both sides need the same number, in the same order",
    ),
    case(
        "reconcile_without_changed.yaml",
        "paths[0].reconcile[0].source.changed",
        "required: the settle window needs to know when each source row last changed (Dataverse: modifiedon)",
    ),
    case(
        "reconcile_cannot_list.yaml",
        "paths[0].reconcile[0].source",
        "system \"primary\" (kind simulated) cannot be reconciled: this kind does not list its rows",
    ),
    case(
        "reconcile_unknown_key.yaml",
        "paths[0].reconcile[0].source.normalise",
        "unknown key; the keys allowed here are: table, key, version, changed, compare, normalize",
    ),
    case(
        "reconcile_bad_normalize.yaml",
        "paths[0].reconcile[0].source.normalize[1]",
        "unknown value \"casefold\"; the values allowed here are: trim, lowercase, collapse_spaces, empty_is_null",
    ),
    // Outgoing TLS: the private CA files.
    case(
        "tls_ca_file_missing.yaml",
        "tls.ca_files[0]",
        "cannot read testdata/config/bad/no-such-ca.pem: No such file or directory (os error 2)",
    ),
    case(
        "tls_ca_not_a_certificate.yaml",
        "tls.ca_files[0]",
        "testdata/config/bad/tls_ca_not_a_certificate.yaml: no certificate in it (expected one or more PEM blocks \"-----BEGIN CERTIFICATE-----\")",
    ),
    // A block indented one level too little, under systems: as if it were a system.
    case(
        "misindented_fields.yaml",
        "systems.fields",
        "looks mis-indented: `fields` is a key of a system (of kind dataverse, fo_odata), not a system itself (a system has a kind); indent it under the system it belongs to",
    ),
    case(
        "misindented_path_key.yaml",
        "systems.timeout",
        "looks mis-indented: `timeout` is a key of a path (under paths:) and of defaults, not a system (a system has a kind); indent it under the block it belongs to",
    ),
    // Base URLs with an API path pasted after them (each kind's documented base URL).
    case(
        "url_dataverse_web_api.yaml",
        "systems.crm.url",
        "\"https://contoso.crm4.dynamics.com/api/data/v9.2\" is more than the base URL; remove /api/data/v9.2: lagwatch adds the Web API path (/api/data/v9.2) itself; api_version sets its version (write it as https://contoso.crm.dynamics.com)",
    ),
    case(
        "url_fo_data.yaml",
        "systems.fno.url",
        "\"https://contoso.operations.dynamics.com/data/CustomersV3\" is more than the base URL; remove /data/CustomersV3: lagwatch adds /data/<entity_set> itself (write it as https://contoso.operations.dynamics.com)",
    ),
    case(
        "url_search_indexes.yaml",
        "systems.search.endpoint",
        "\"https://contoso-search.search.windows.net/indexes/sentinels/docs\" is more than the base URL; remove /indexes/sentinels/docs: the index is the system's index key, and lagwatch adds /indexes/<index>/docs itself (write it as https://contoso.search.windows.net)",
    ),
    case(
        "url_elasticsearch_index.yaml",
        "systems.es.url",
        "\"https://es.contoso.internal:9200/d365-sentinels/_search\" is more than the base URL; remove /d365-sentinels/_search: the index is the system's index key, and lagwatch adds /<index>/_doc and /<index>/_search itself (write it as https://es.example.com:9200)",
    ),
    // YAML syntax.
    syntax(
        "yaml_tab_after_url.yaml",
        "not valid YAML: found a tab at line 53, column 1: YAML indents with spaces only; replace the tab with spaces",
    ),
    syntax(
        "yaml_duplicate_key.yaml",
        "not valid YAML: duplicate mapping key `primary` is not allowed here at line 9, column 3",
    ),
    syntax(
        "yaml_unclosed_bracket.yaml",
        "not valid YAML: unclosed bracket '[' at line 9, column 8",
    ),
];

fn bad_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/config/bad")
}

fn expected_message(path: &Path, c: &Case) -> String {
    match c.key {
        Some(key) => format!("{}: {key}: {}", path.display(), c.reason),
        None => format!("{}: {}", path.display(), c.reason),
    }
}

#[test]
fn every_bad_file_is_in_the_table_and_every_row_has_a_file() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(bad_dir())
        .expect("testdata/config/bad exists")
        .map(|e| {
            e.expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    let in_table: BTreeSet<String> = CASES.iter().map(|c| c.file.to_string()).collect();
    assert_eq!(
        in_table.len(),
        CASES.len(),
        "a file is listed twice in CASES"
    );
    let untested: Vec<_> = on_disk.difference(&in_table).collect();
    let missing: Vec<_> = in_table.difference(&on_disk).collect();
    assert!(
        untested.is_empty(),
        "bad files without a row in CASES: {untested:?}"
    );
    assert!(
        missing.is_empty(),
        "rows in CASES without a file: {missing:?}"
    );
}

#[test]
fn every_bad_file_fails_with_its_exact_message_and_key() {
    let mut failures = Vec::new();
    for c in CASES {
        let path = bad_dir().join(c.file);
        let err = match lagwatch_emulator::REGISTRY.load(&path) {
            Ok(_) => {
                failures.push(format!("{}: loaded without error", c.file));
                continue;
            }
            Err(e) => e,
        };
        let expected = expected_message(&path, c);
        let actual = err.to_string();
        if actual != expected {
            failures.push(format!(
                "{}:\n    expected: {expected}\n    actual:   {actual}",
                c.file
            ));
        }
        if err.key() != c.key {
            failures.push(format!(
                "{}: key() is {:?}, expected {:?}",
                c.file,
                err.key(),
                c.key
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Words that mean a Rust or serde detail leaked into a message meant for YAML writers.
const LEAKS: &[&str] = &[
    "u8",
    "u16",
    "u32",
    "u64",
    "usize",
    "i64",
    "f64",
    "Dur",
    "Raw",
    "Config",
    "Settings",
    "struct",
    "variant",
    "enum",
    "identifier",
    "Option",
    "unit value",
    "serde",
    "Policy",
    "Options",
    "<input>",
    "\n",
];

#[test]
fn no_message_leaks_rust_names() {
    for c in CASES {
        for leak in LEAKS {
            assert!(
                !c.reason.contains(leak),
                "{}: the message mentions {leak:?}: {}",
                c.file,
                c.reason
            );
        }
    }
}

/// What `lagwatch ARGS FILE` printed: exit code, stdout, stderr.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn lagwatch(args: &[&str], file: &Path) -> Ran {
    let out = Command::new(env!("CARGO_BIN_EXE_lagwatch"))
        .args(args)
        .arg(file)
        .output()
        .expect("the binary runs");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn check_config_rejects_every_bad_file_with_exit_code_2() {
    for c in CASES {
        let path = bad_dir().join(c.file);
        let out = lagwatch(&["check-config"], &path);
        let stderr = &out.stderr;
        assert_eq!(
            out.code,
            Some(2),
            "{}: exit status {:?}, stderr: {stderr}",
            c.file,
            out.code
        );
        let file = path.display().to_string();
        assert!(
            stderr.contains(&file),
            "{}: no file name in: {stderr}",
            c.file
        );
        if let Some(key) = c.key {
            assert!(
                stderr.contains(key),
                "{}: no key {key} in: {stderr}",
                c.file
            );
        }
        assert!(
            stderr.contains(c.reason),
            "{}: no reason in: {stderr}",
            c.file
        );
        assert!(
            stderr.contains(&expected_message(&path, c)),
            "{}: stderr is not the message: {stderr}",
            c.file
        );
        assert!(out.stdout.is_empty(), "{}: printed to stdout", c.file);
    }
}

#[test]
fn check_config_accepts_the_demo_and_prints_every_system_and_path() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-simulated.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_lagwatch"))
        .arg("check-config")
        .arg(&demo)
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(
        stdout.contains(&format!("{}: valid", demo.display())),
        "{stdout}"
    );

    let config = lagwatch_emulator::REGISTRY
        .load(&demo)
        .expect("the demo loads");
    assert!(!config.systems.is_empty() && !config.paths.is_empty());
    for (name, system) in &config.systems {
        let line = format!("  {name}: kind {}", system.kind());
        assert!(stdout.contains(&line), "no line {line:?} in:\n{stdout}");
    }
    for p in &config.paths {
        let line = format!("  {} -> {}: every {}", p.source, p.target, p.interval);
        assert!(stdout.contains(&line), "no line {line:?} in:\n{stdout}");
    }
}

fn several(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/config/several")
        .join(file)
}

/// The `error: ` lines of a command's stderr.
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect()
}

#[test]
fn check_config_reports_every_error_of_a_file_at_once() {
    let path = several("four_errors.yaml");
    let out = lagwatch(&["check-config"], &path);
    let stderr = &out.stderr;
    assert_eq!(out.code, Some(2), "{stderr}");
    let file = path.display().to_string();
    let lines = error_lines(stderr);
    let keys = [
        "instance",
        "systems.crm.url",
        "paths[0].timout",
        "paths[2].target",
    ];
    assert_eq!(lines.len(), keys.len(), "{stderr}");
    for (line, key) in lines.iter().zip(keys) {
        assert!(
            line.starts_with(&format!("error: {file}: {key}: ")),
            "expected an error at {key}, got: {line}"
        );
    }
    // paths[1] reads crm, which failed: its errors would only repeat that one.
    assert!(!stderr.contains("paths[1]"), "{stderr}");
    assert!(stderr.contains(&format!("4 errors in {file}")), "{stderr}");
    // The library says the same, each error with its key.
    let errors = lagwatch_emulator::REGISTRY
        .check(&path, lagwatch::config::LoadOptions::default())
        .expect_err("four errors");
    let got: Vec<Option<&str>> = errors.0.iter().map(|e| e.key()).collect();
    assert_eq!(got, keys.map(Some).to_vec());
}

#[test]
fn no_resolve_checks_secret_references_without_reading_them_and_run_still_reads_them() {
    let path = several("secrets.yaml");
    let run = |args: &[&str]| {
        let out = lagwatch(args, &path);
        (out.code, out.stdout, out.stderr)
    };
    // Resolved: every secret that cannot be read is an error, each at its key.
    let (code, _, stderr) = run(&["check-config"]);
    assert_eq!(code, Some(2), "{stderr}");
    for key in [
        "systems.crm.auth.client_secret",
        "systems.crm-copy.auth.certificate",
        "systems.lake.auth.account_key",
        "systems.search.auth.key",
    ] {
        assert!(
            stderr.contains(&format!(": {key}: ")),
            "no {key} in {stderr}"
        );
    }
    // Not resolved: valid, and it says so; the file may come as -c FILE as well.
    let (code, stdout, stderr) = run(&["check-config", "--no-resolve", "-c"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("{}: valid (secrets not resolved)", path.display())),
        "{stdout}"
    );
    assert!(stdout.contains("crm-copy: kind dataverse"), "{stdout}");
    // run resolves, whatever check-config was told.
    let (code, _, stderr) = run(&["run", "--listen", "127.0.0.1:0", "--config"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("LAGWATCH_TEST_NEVER_SET_ENTRA is not set"),
        "{stderr}"
    );
}

#[test]
fn no_resolve_still_refuses_literal_secrets_and_other_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(several("secrets.yaml"))
        .expect("readable")
        .replace("env:LAGWATCH_TEST_NEVER_SET_ENTRA", "hunter2")
        .replace(
            "https://contoso-copy.crm4.dynamics.com",
            "https://contoso-copy.crm4.dynamics.com/api/data/v9.2",
        );
    let path = dir.path().join("literal.yaml");
    std::fs::write(&path, text).expect("written");
    let out = lagwatch(&["check-config", "--no-resolve"], &path);
    let stderr = &out.stderr;
    assert_eq!(out.code, Some(2), "{stderr}");
    assert!(
        stderr.contains("systems.crm.auth.client_secret: secrets must be references"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the literal was echoed: {stderr}"
    );
    assert!(stderr.contains("systems.crm-copy.url: "), "{stderr}");
}
