//! The steps of the dependency policy (`scripts/deny`, run first by `scripts/test`) that judge
//! Cargo.lock against outside data, run against data made here.
//!
//! `scripts/audit` (RustSec advisories, cargo-audit) against advisory databases built as git
//! repositories in the RustSec layout, whose advisories name crates of this project's own
//! Cargo.lock: the real database lives on github.com, which CI cannot reach. They show what the
//! step does with a database (fails on a vulnerable or unsound version, passes a patched one),
//! with a bad one, and without one. They need cargo-audit in `.tools/`
//! (`scripts/install-test-tools`): without it they skip, unless `LAGWATCH_REQUIRE_TOOLS=1`,
//! where they fail.
//!
//! `scripts/check-yanked` against a sparse index served by wiremock: a yanked version fails,
//! an index it cannot read (or that lacks the version) warns, or fails when required.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool_present() -> bool {
    let present = root().join(".tools/cargo-audit/bin/cargo-audit").exists();
    if !present {
        crate::common::tools::missing("cargo-audit", "is not installed");
    }
    present
}

/// The version of `name` in this project's Cargo.lock.
fn locked_version(name: &str) -> String {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).expect("Cargo.lock");
    let needle = format!("name = \"{name}\"\nversion = \"");
    let at = lock.find(&needle).expect("crate in Cargo.lock") + needle.len();
    lock[at..].split('"').next().expect("version").to_string()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// One advisory: (id, crate, informational kind or "" for a vulnerability, patched ranges).
type Advisory<'a> = (&'a str, &'a str, &'a str, &'a str);

/// A fresh advisory database (a git repository in the RustSec layout) holding `advisories`.
fn database(advisories: &[Advisory]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    git(dir.path(), &["init", "--quiet", "--initial-branch=main"]);
    for (id, krate, informational, patched) in advisories {
        let folder = dir.path().join("crates").join(krate);
        std::fs::create_dir_all(&folder).expect("crate folder");
        let informational = if informational.is_empty() {
            String::new()
        } else {
            format!("informational = \"{informational}\"\n")
        };
        std::fs::write(
            folder.join(format!("{id}.md")),
            format!(
                "```toml\n[advisory]\nid = \"{id}\"\npackage = \"{krate}\"\ndate = \"2026-11-01\"\n\
                 {informational}\n[versions]\npatched = [{patched}]\n```\n\n\
                 # A test advisory for {krate}\n\nMade by tests/it/dependency_policy.rs.\n"
            ),
        )
        .expect("advisory");
    }
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "--quiet", "-m", "advisories"]);
    dir
}

fn audit(env: &[(&str, &str)]) -> (Output, String) {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/audit")).current_dir(root());
    for var in [
        "LAGWATCH_ADVISORY_DB",
        "LAGWATCH_ADVISORY_DB_URL",
        "LAGWATCH_ADVISORY_CACHE",
        "LAGWATCH_REQUIRE_ADVISORIES",
    ] {
        cmd.env_remove(var);
    }
    run(cmd, env)
}

/// Runs `cmd` with `env` set; its output, and stdout and stderr as one text.
fn run(mut cmd: Command, env: &[(&str, &str)]) -> (Output, String) {
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the script runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn a_locked_version_with_a_vulnerability_fails_and_is_named() {
    if !tool_present() {
        return;
    }
    let tokio = locked_version("tokio");
    let db = database(&[("RUSTSEC-2099-0001", "tokio", "", "\">= 99.0.0\"")]);
    let (out, text) = audit(&[("LAGWATCH_ADVISORY_DB", db.path().to_str().unwrap())]);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("RUSTSEC-2099-0001"), "{text}");
    assert!(text.contains(&format!("Version:   {tokio}")), "{text}");
    assert!(text.contains("1 vulnerability found"), "{text}");
}

#[test]
fn patched_versions_and_crates_not_used_pass() {
    if !tool_present() {
        return;
    }
    let tokio = locked_version("tokio");
    let db = database(&[
        // Our version is the first patched one.
        ("RUSTSEC-2099-0002", "tokio", "", &format!("\">= {tokio}\"")),
        (
            "RUSTSEC-2099-0003",
            "a-crate-lagwatch-does-not-use",
            "",
            "\">= 9.0.0\"",
        ),
        // Informational "unmaintained" is reported, not a failure.
        ("RUSTSEC-2099-0004", "tokio", "unmaintained", ""),
    ]);
    let (out, text) = audit(&[("LAGWATCH_ADVISORY_DB", db.path().to_str().unwrap())]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Loaded 3 security advisories"), "{text}");
    assert!(!text.contains("RUSTSEC-2099-0002"), "{text}");
}

#[test]
fn unsound_code_in_a_locked_version_fails() {
    if !tool_present() {
        return;
    }
    let db = database(&[("RUSTSEC-2099-0005", "tokio", "unsound", "\">= 99.0.0\"")]);
    let (out, text) = audit(&[("LAGWATCH_ADVISORY_DB", db.path().to_str().unwrap())]);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("RUSTSEC-2099-0005"), "{text}");
}

#[test]
fn a_database_given_that_is_not_one_fails_whatever_else_is_set() {
    if !tool_present() {
        return;
    }
    let empty = tempfile::tempdir().expect("temp dir");
    let (out, text) = audit(&[("LAGWATCH_ADVISORY_DB", empty.path().to_str().unwrap())]);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("is not a git checkout of the advisory database"),
        "{text}"
    );
}

#[test]
fn the_database_is_fetched_from_its_url_and_an_unreachable_one_warns_or_fails() {
    if !tool_present() {
        return;
    }
    // Fetched: a clone of the URL into the cache, then audited.
    let db = database(&[("RUSTSEC-2099-0006", "tokio", "", "\">= 99.0.0\"")]);
    let cache = tempfile::tempdir().expect("temp dir");
    let cache_dir = cache.path().join("advisory-db");
    let url = format!("file://{}", db.path().display());
    let env = [
        ("LAGWATCH_ADVISORY_DB_URL", url.as_str()),
        ("LAGWATCH_ADVISORY_CACHE", cache_dir.to_str().unwrap()),
    ];
    let (out, text) = audit(&env);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("RUSTSEC-2099-0006"), "{text}");
    assert!(cache_dir.join("crates/tokio/RUSTSEC-2099-0006.md").exists());

    // The URL gone: the copy fetched before is used, and says so.
    let moved = cache.path().join("moved");
    std::fs::rename(db.path(), &moved).expect("move the database away");
    let (out, text) = audit(&env);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("could not refresh the advisory database"),
        "{text}"
    );
    assert!(text.contains("RUSTSEC-2099-0006"), "{text}");
    std::fs::rename(&moved, db.path()).expect("move it back");

    // Unreachable (a host that never resolves): a loud warning, exit 0 ...
    let nowhere = cache.path().join("nowhere");
    let env = [
        (
            "LAGWATCH_ADVISORY_DB_URL",
            "https://advisory-db.invalid/advisory-db.git",
        ),
        ("LAGWATCH_ADVISORY_CACHE", nowhere.to_str().unwrap()),
    ];
    let (out, text) = audit(&env);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("WARNING: RustSec advisories NOT checked"),
        "{text}"
    );
    assert!(text.contains("advisory-db.invalid"), "{text}");
    // ... and a failure where CI asks for advisories.
    let mut env = env.to_vec();
    env.push(("LAGWATCH_REQUIRE_ADVISORIES", "1"));
    let (out, text) = audit(&env);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("could not be fetched"), "{text}");
}

/// `scripts/check-yanked` against a sparse index served here (the crates.io layout: one file
/// per crate, one JSON line per version).
fn check_yanked(lock: &Path, env: &[(&str, &str)]) -> (Output, String) {
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("scripts/check-yanked"))
        .arg(lock)
        .env_remove("LAGWATCH_REQUIRE_ADVISORIES");
    run(cmd, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yanked_version_fails_and_an_unreadable_index_warns_or_fails() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let index = MockServer::start().await;
    let versions = |yanked_one: &str| {
        ["1.0.0", "1.0.1"]
            .iter()
            .map(|v| {
                format!(
                    "{{\"name\":\"tokio\",\"vers\":\"{v}\",\"deps\":[],\"cksum\":\"00\",\"features\":{{}},\"yanked\":{}}}\n",
                    *v == yanked_one
                )
            })
            .collect::<String>()
    };
    Mock::given(method("GET"))
        .and(path("/to/ki/tokio"))
        .respond_with(ResponseTemplate::new(200).set_body_string(versions("1.0.0")))
        .mount(&index)
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let lock = |version: &str| {
        let f = dir.path().join(format!("Cargo-{version}.lock"));
        std::fs::write(
            &f,
            format!(
                "version = 4\n\n[[package]]\nname = \"tokio\"\nversion = \"{version}\"\n\
                 source = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n\
                 [[package]]\nname = \"lagwatch\"\nversion = \"0.1.0\"\n"
            ),
        )
        .expect("lock");
        f
    };
    let uri = index.uri();
    let at = [("LAGWATCH_CRATES_INDEX", uri.as_str())];
    let run = |lock: PathBuf, env: Vec<(&'static str, String)>| {
        tokio::task::block_in_place(|| {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            check_yanked(&lock, &env)
        })
    };
    let owned = |env: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        env.iter().map(|(k, v)| (*k, v.to_string())).collect()
    };

    let (out, text) = run(lock("1.0.0"), owned(&at));
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("yanked from crates.io: tokio 1.0.0"),
        "{text}"
    );

    let (out, text) = run(lock("1.0.1"), owned(&at));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 crate versions from crates.io"), "{text}");

    // A version the index does not list cannot be judged: a warning, not a pass in silence.
    let (out, text) = run(lock("9.9.9"), owned(&at));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("WARNING: 1 crate(s) NOT checked"), "{text}");

    let nowhere = [("LAGWATCH_CRATES_INDEX", "https://index.invalid/")];
    let (out, text) = run(lock("1.0.1"), owned(&nowhere));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("WARNING: 1 crate(s) NOT checked"), "{text}");
    let mut required = owned(&nowhere);
    required.push(("LAGWATCH_REQUIRE_ADVISORIES", "1".to_string()));
    let (out, text) = run(lock("1.0.1"), required);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("ERROR: 1 crate(s) NOT checked"), "{text}");
}
