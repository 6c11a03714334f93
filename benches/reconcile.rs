//! Reconciliation cost against table size: does memory stay flat as the table grows?
//!
//! For 10,000, 100,000 and 1,000,000 seeded rows in a Dataverse table, the emulator (a child
//! `lagwatch emulate` process, so its memory is not counted) serves the source and two replica
//! environments over loopback HTTP: `clean` (an exact copy) and `drifted` (100 rows drifted:
//! 25 missing, 25 stale, 25 extra, 25 changed). lagwatch reconciles each through its
//! Dataverse connector (5,000-row pages, Entra token, gate) and the bench reports wall time,
//! requests sent, rows read, bytes spilled by the sort, and the peak resident memory of this
//! process during the run (`VmHWM`, reset before each run through `/proc/self/clear_refs`).
//! The drifted replica is reconciled twice, the second run after the settle window, so its
//! extras are judged too, and the counts found are checked against the drift injected.
//!
//! `cargo bench --bench reconcile`   (about a minute at 1,000,000 rows on 2 cores)

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lagwatch::app::App;
use lagwatch::reconcile::diff::Kind;
use tokio_util::sync::CancellationToken;

const SIZES: [u64; 3] = [10_000, 100_000, 1_000_000];
const SECRET: &str = "bench-secret";

fn scenario(rows: u64) -> String {
    let table = "accounts:\n        id: accountid\n        columns: { name: string, accountnumber: string, customertypecode: int, description: string }";
    format!(
        r#"
credentials:
  - {{ tenant: contoso, client_id: bench, client_secret: {SECRET} }}
dataverse:
  crm:
    tables:
      {table}
        seed: {{ rows: {rows}, values: {{ customertypecode: 3 }}, deleted: 25 }}
  clean:
    tables:
      {table}
  drifted:
    tables:
      {table}
replicas:
  clean:
    source: crm/accounts
    target: {{ kind: dataverse, env: clean, table: accounts }}
    key: name
    lag: {{ distribution: fixed, value: 1s }}
  drifted:
    source: crm/accounts
    target: {{ kind: dataverse, env: drifted, table: accounts }}
    key: name
    lag: {{ distribution: fixed, value: 1s }}
    drift: {{ missing: 25, stale: 25, extra: 25, changed: 25 }}
"#
    )
}

fn config(origin: &str, secret: &std::path::Path) -> String {
    let system = |name: &str| {
        format!(
            r#"
  {name}:
    kind: dataverse
    url: {origin}/{name}
    table: accounts
    id_column: accountid
    key_column: name
    payload_column: description
    scope: https://{name}.crm.dynamics.com/.default
    limits: {{ requests: 100000, per: 5m }}
    auth: {{ method: client_secret, tenant_id: contoso, client_id: bench, client_secret: "file:{secret}", authority: {origin}/entra }}
"#,
            secret = secret.display()
        )
    };
    let entry = r#"
    reconcile:
      - name: accounts
        settle_floor: 1s
        page_size: 5000
        source: { key: name, version: versionnumber, changed: modifiedon, compare: [accountnumber, description] }
        target: { key: name, version: versionnumber, compare: [accountnumber, description] }
"#;
    format!(
        "instance: bench\nsystems:{}{}{}\npaths:\n  - source: crm\n    target: clean\n    objective: 500ms\n    timeout: 1s\n    request_timeout: 2m{entry}  - source: crm\n    target: drifted\n    objective: 500ms\n    timeout: 1s\n    request_timeout: 2m{entry}",
        system("crm"),
        system("clean"),
        system("drifted"),
    )
}

/// Peak resident memory of this process since the last reset, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn reset_peak_rss() {
    // "5" resets the peak RSS (VmHWM) to the current RSS (Linux 4.0+).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Emulator(Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_emulator(dir: &std::path::Path, rows: u64) -> (Emulator, String) {
    let file = dir.join(format!("scenario-{rows}.yaml"));
    std::fs::write(&file, scenario(rows)).expect("scenario");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_lagwatch"))
        .args([
            "emulate",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--scenario",
        ])
        .arg(&file)
        .arg("--lake-dir")
        .arg(dir.join(format!("lake-{rows}")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("lagwatch emulate starts");
    let origin = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the emulator listens");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Emulator(child), origin)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("secret");
    println!(
        "| rows per side | replica | run | wall time | requests | rows read (source + replica) | spilled to disk | peak RSS (this process) | found |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for rows in SIZES {
        let (_emulator, origin) = start_emulator(dir.path(), rows);
        let cfg = lagwatch_emulator::REGISTRY
            .from_yaml("bench.yaml", &config(&origin, &secret))
            .expect("config");
        let app = App::build(cfg).expect("app");
        let cancel = CancellationToken::new();
        for (replica, runs) in [("clean", 1), ("drifted", 2)] {
            let entry = app.reconciler.find("crm", replica, None)[0].clone();
            for run in 1..=runs {
                if run > 1 {
                    // Past the settle window (the 1 s timeout, as no probe ran, plus 1 s for
                    // whole-second modifiedon).
                    tokio::time::sleep(Duration::from_millis(2200)).await;
                }
                reset_peak_rss();
                let t0 = Instant::now();
                let out = entry.run_once(&cancel).await.expect("run");
                let wall = t0.elapsed();
                let peak = peak_rss();
                let t = &out.tally;
                let found = Kind::ALL
                    .iter()
                    .map(|k| format!("{} {}", k.label(), t.count(*k, false) + t.count(*k, true)))
                    .collect::<Vec<_>>()
                    .join(", ");
                println!(
                    "| {rows} | {replica} | {run} | {:.2} s | {} | {} + {} | {} | {} | {found} |",
                    wall.as_secs_f64(),
                    out.source.pages + out.target.pages,
                    out.source.rows,
                    out.target.rows,
                    mib(out.source.spilled_bytes + out.target.spilled_bytes),
                    mib(peak),
                );
                if replica == "clean" {
                    assert_eq!(t.total(), 0, "{t:?}");
                } else if run == 2 {
                    for k in Kind::ALL {
                        assert_eq!(t.count(k, true), 25, "{k:?}: {t:?}");
                    }
                }
            }
        }
    }
}
