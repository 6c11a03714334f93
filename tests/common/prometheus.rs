//! A real Prometheus and Alertmanager (Debian packages `prometheus` and
//! `prometheus-alertmanager`, installed by `scripts/install-test-tools`) as the end-to-end
//! tests run them: Prometheus scrapes lagwatch processes every second as the targets of one job
//! `lagwatch`, evaluates the shipped rules of `alerts/` every second and sends their alerts to
//! an Alertmanager that routes every alert to a webhook receiver inside the test.
//!
//! Time is compressed in one place only: the rules are loaded with every `for:` hold divided by
//! 60 (10m → 10s, at least 1s; [`compressed`]), because a test lasts a minute or two, not
//! hours; the expressions, labels and thresholds are the shipped ones.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The Prometheus and Alertmanager binaries.
pub struct Binaries {
    pub prometheus: PathBuf,
    pub alertmanager: PathBuf,
}

/// Both binaries; `None` once [`super::tools::missing`] said the calling test is skipped (it
/// panics instead under `LAGWATCH_REQUIRE_TOOLS=1`).
pub fn binaries() -> Option<Binaries> {
    match (
        binary(&["prometheus"]),
        binary(&["prometheus-alertmanager", "alertmanager"]),
    ) {
        (Some(prometheus), Some(alertmanager)) => Some(Binaries {
            prometheus,
            alertmanager,
        }),
        _ => {
            super::tools::missing("prometheus and alertmanager", "are not installed");
            None
        }
    }
}

/// The first of `names` that runs with `--version`.
fn binary(names: &[&str]) -> Option<PathBuf> {
    names.iter().find_map(|n| {
        Command::new(n)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
            .map(|_| PathBuf::from(n))
    })
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback address with a port free at the time of the call.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// A minimal HTTP receiver for Alertmanager's webhook notifications, served from a thread for
/// the rest of the test.
pub struct Webhook {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<String>>>,
}

impl Webhook {
    pub fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let body = read_request_body(&mut s);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                if let Some(b) = body {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(b);
                }
            }
        });
        Webhook { addr, received }
    }

    /// The bodies POSTed so far, in arrival order.
    pub fn bodies(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The notifications so far, in arrival order, as JSON (a body that is not JSON fails).
    pub fn notifications(&self) -> Vec<Value> {
        self.bodies()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap_or_else(|e| panic!("{e}: {b}")))
            .collect()
    }
}

/// The body of one HTTP/1.1 request (by its Content-Length); `None` if the peer stops first.
fn read_request_body(s: &mut std::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let len = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        if body.len() >= len {
            return Some(body.to_string());
        }
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The rule files of `alerts/` (not their tests).
pub fn rule_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("alerts"))
        .expect("alerts/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "rule files in alerts/");
    files
}

/// A rule file with every `for:` hold divided by 60 (at least 1 s). The only change the tests
/// make to the shipped rules: a line-wise rewrite of `for: <duration>` lines, so it cannot touch
/// an expression, a label or an annotation.
pub fn compressed(text: &str) -> String {
    text.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            let Some(value) = trimmed.strip_prefix("for:") else {
                return line.to_string();
            };
            let indent = &line[..line.len() - trimmed.len()];
            let hold =
                humantime::parse_duration(value.trim().trim_matches('"')).expect("a for: duration");
            let secs = (hold.as_secs() / 60).max(1);
            format!("{indent}for: {secs}s")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Instant query; the `result` array.
pub fn query(prom: SocketAddr, q: &str) -> Vec<Value> {
    api(prom, &format!("/api/v1/query?query={}", encode(q)))["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Range query from `start` to `end` (Unix seconds) every `step` seconds; the `result` array
/// (a matrix: each series with its `values`, `[time, "value"]`).
pub fn query_range(prom: SocketAddr, q: &str, start: f64, end: f64, step: f64) -> Vec<Value> {
    api(
        prom,
        &format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step}",
            encode(q)
        ),
    )["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The `data` of a Prometheus API answer (status 200 asserted).
pub fn api(prom: SocketAddr, path: &str) -> Value {
    let (status, _, body) = super::http_get(prom, path);
    assert_eq!(status, 200, "{path}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    v["data"].clone()
}

fn encode(q: &str) -> String {
    url::form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

/// Now, in Unix seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Every loaded rule as Prometheus's `/api/v1/rules` shows it (`name`, `health`, `duration`
/// (the compressed hold, in seconds), `labels`, `query`, …).
pub fn loaded_rules(prom: SocketAddr) -> Vec<Value> {
    api(prom, "/api/v1/rules")["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Waits up to 30 s for `/-/ready` at `addr`; panics if `proc` exits first.
pub fn wait_ready(addr: SocketAddr, what: &str, proc: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(addr).is_ok() && super::http_get(addr, "/-/ready").0 == 200
        {
            return;
        }
        if let Ok(Some(code)) = proc.0.try_wait() {
            panic!("{what} exited: {code}");
        }
        assert!(Instant::now() < deadline, "{what} ready within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `binary` with `args`, its output discarded, once ready at `addr` (`/-/ready`).
fn serve(binary: &Path, args: &[String], addr: SocketAddr) -> Proc {
    let what = binary.display().to_string();
    let mut proc = Proc(
        Command::new(binary)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} starts: {e}")),
    );
    wait_ready(addr, &what, &mut proc);
    proc
}

/// A running Alertmanager and Prometheus, stopped (and their files removed) when dropped.
pub struct Stack {
    pub prometheus: SocketAddr,
    pub alertmanager: SocketAddr,
    // Dropped in this order: Prometheus, Alertmanager, then their directory.
    _prometheus: Proc,
    _alertmanager: Proc,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// Alertmanager routing every alert to `hook`, grouped by `group_by` (a YAML list; `['...']`
    /// makes each alert its own group), waiting 1 s before a group's first notification and
    /// 1 s between updates, repeating after an hour; then Prometheus scraping `targets` every
    /// second as job `lagwatch` with the rules of `alerts/` (compressed), sending to it.
    pub fn start(
        bin: &Binaries,
        targets: &[SocketAddr],
        hook: SocketAddr,
        group_by: &str,
    ) -> Stack {
        let dir = super::temp_dir("lagwatch-prometheus-");
        let at = |name: &str| dir.path().join(name).display().to_string();

        let alertmanager = free_addr();
        std::fs::write(
            at("alertmanager.yml"),
            format!(
                "route:\n  receiver: test\n  group_by: {group_by}\n  \
                 group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
                 receivers:\n  - name: test\n    webhook_configs:\n      - url: http://{hook}/\n"
            ),
        )
        .expect("alertmanager.yml");
        let am = serve(
            &bin.alertmanager,
            &[
                format!("--config.file={}", at("alertmanager.yml")),
                format!("--storage.path={}", at("am")),
                format!("--web.listen-address={alertmanager}"),
                "--cluster.listen-address=".to_string(),
            ],
            alertmanager,
        );

        std::fs::create_dir_all(at("rules")).expect("rules dir");
        for f in rule_files() {
            let text = std::fs::read_to_string(&f).expect("a rule file");
            let name = f.file_name().expect("a file name");
            std::fs::write(dir.path().join("rules").join(name), compressed(&text))
                .expect("a compressed rule file");
        }
        let prometheus = free_addr();
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            at("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}/*.yml\n\
                 alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{alertmanager}']\n\
                 scrape_configs:\n  - job_name: lagwatch\n    static_configs:\n      - targets: [{}]\n",
                at("rules"),
                targets.join(", ")
            ),
        )
        .expect("prometheus.yml");
        let prom = serve(
            &bin.prometheus,
            &[
                format!("--config.file={}", at("prometheus.yml")),
                format!("--storage.tsdb.path={}", at("tsdb")),
                format!("--web.listen-address={prometheus}"),
                "--enable-feature=exemplar-storage".to_string(),
            ],
            prometheus,
        );
        Stack {
            prometheus,
            alertmanager,
            _prometheus: prom,
            _alertmanager: am,
            _dir: dir,
        }
    }

    /// The alerts Alertmanager holds (API v2 `/api/v2/alerts`: `labels`, `startsAt`,
    /// `status.state`, …).
    pub fn alertmanager_alerts(&self) -> Vec<Value> {
        let (status, _, body) = super::http_get(self.alertmanager, "/api/v2/alerts");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body)
            .unwrap_or_else(|e| panic!("{e}: {body}"))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
