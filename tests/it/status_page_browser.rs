//! The status page in a real browser: headless Chromium (Debian package `chromium`, installed by
//! `scripts/install-test-tools`) loads the demo's `/`, and every path of the demo is on the
//! rendered page as a row with its state, the same paths `/api/v1/paths` lists. A screenshot is
//! kept as a test artifact (`target/tmp/status-page.png`). Without Chromium the test skips,
//! unless `LAGWATCH_REQUIRE_TOOLS=1` (CI), where it fails.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::demo::{start_demo, terminate};

/// The states the page can show (the same as `lagwatch_path_state`).
const STATES: &[&str] = &lagwatch::metrics::series::STATES;

/// `LAGWATCH_CHROMIUM`, else `chromium` or `chromium-browser` on `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("LAGWATCH_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser"]
        .into_iter()
        .find_map(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|_| PathBuf::from(name))
        })
}

/// Runs headless Chromium on `url` with `extra` arguments, in a fresh profile; returns stdout.
fn headless(browser: &PathBuf, url: &str, extra: &[String]) -> String {
    let profile = tempdir("profile");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tempdir(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("lagwatch-chromium-{tag}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&p).expect("temp dir");
    p
}

/// `(path, state)` of every row of a rendered page, in page order.
fn rows(dom: &str) -> Vec<(String, String)> {
    dom.split("<tr data-path=\"")
        .skip(1)
        .filter_map(|row| {
            let (path, rest) = row.split_once('"')?;
            let state = rest
                .split("<span class=\"state ")
                .nth(1)?
                .split('"')
                .next()?;
            Some((path.replace("-&gt;", "->"), state.to_string()))
        })
        .collect()
}

#[test]
fn the_status_page_renders_every_demo_path_with_its_state_in_chromium() {
    let Some(browser) = chromium() else {
        common::tools::missing("chromium", "is not installed");
        return;
    };
    let demo = start_demo();
    // Wait until every path has left `idle`, so the page shows real states.
    let deadline = Instant::now() + Duration::from_secs(90);
    let api: BTreeMap<String, String> = loop {
        let (status, _, body) = common::http_get(demo.addr, "/api/v1/paths");
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let paths: BTreeMap<String, String> = v["paths"]
            .as_array()
            .expect("paths")
            .iter()
            .map(|p| {
                (
                    format!(
                        "{}->{}",
                        p["source"].as_str().unwrap_or_default(),
                        p["target"].as_str().unwrap_or_default()
                    ),
                    p["state"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        if paths.len() == 7 && paths.values().all(|s| s != "idle") {
            break paths;
        }
        assert!(Instant::now() < deadline, "paths still idle: {paths:?}");
        std::thread::sleep(Duration::from_secs(1));
    };
    // And until every reconciliation ran once (the first run is 10 s after start).
    let reconciliations: Vec<serde_json::Value> = loop {
        let (_, _, body) = common::http_get(demo.addr, "/api/v1/reconciliations");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let all = v["reconciliations"].as_array().cloned().unwrap_or_default();
        if !all.is_empty() && all.iter().all(|r| !r["last_run"].is_null()) {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "reconciliations not run: {all:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let url = format!("http://{}/", demo.addr);
    let dom = headless(&browser, &url, &["--dump-dom".to_string()]);
    // Every reconciliation is a row linking to its keys, and the link answers. (The DOM
    // serializer escapes `>` and `&` in attribute values.)
    let unescaped = dom.replace("&gt;", ">").replace("&amp;", "&");
    for r in &reconciliations {
        let row = format!(
            "<tr data-reconcile=\"{}->{}/{}\">",
            r["source"].as_str().unwrap_or_default(),
            r["target"].as_str().unwrap_or_default(),
            r["table"].as_str().unwrap_or_default()
        );
        assert!(unescaped.contains(&row), "no row {row}");
        let link = r["discrepancies_url"].as_str().expect("a link");
        assert!(
            unescaped.contains(&format!("href=\"{link}\"")),
            "no link {link}"
        );
        let (status, _, body) = common::http_get(demo.addr, link);
        assert_eq!(status, 200, "{link}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert!(v["total"].is_u64(), "{link}: {body}");
    }
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        &browser,
        &url,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1400,900".to_string(),
        ],
    );
    terminate(demo);

    assert!(dom.contains("<title>"), "a rendered document: {dom:.200}");
    let rendered = rows(&dom);
    let on_page: Vec<&str> = rendered.iter().map(|(p, _)| p.as_str()).collect();
    let listed: Vec<&str> = api.keys().map(String::as_str).collect();
    let mut sorted = on_page.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, listed, "every path of the API is a row, once");
    for (path, state) in &rendered {
        assert!(STATES.contains(&state.as_str()), "{path}: state {state}");
        assert_ne!(state, "idle", "{path} had left idle before the page loaded");
    }
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        png.len() > 10_000,
        "a page, not a blank: {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}
