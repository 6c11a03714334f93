//! Every configuration under `examples/` is one a user may copy: it must load, build, and pass
//! `lagwatch check-config`. Every kind has one, and so does every piece `lagwatch init`
//! writes, alone and all together.

use std::path::{Path, PathBuf};
use std::process::Command;

use lagwatch::app::App;

/// Secrets the examples reference (`env:` names) and a stand-in value for tests.
const EXAMPLE_SECRETS: &[&str] = &[
    "LAGWATCH_DATAVERSE_SECRET",
    "LAGWATCH_ENTRA_SECRET",
    "LAGWATCH_SEARCH_KEY",
    "LAGWATCH_ES_PASSWORD",
    "LAGWATCH_DEMO_CLIENT_SECRET",
    "LAGWATCH_DEMO_SEARCH_KEY",
    "LAGWATCH_DEMO_ES_PASSWORD",
    "LAGWATCH_ORDERS_KEY",
    "LAGWATCH_API_KEY",
];

fn provide_example_secrets() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for name in EXAMPLE_SECRETS {
            // SAFETY: set once; these names are read only by configs these tests load, through
            // std's environment access, which is internally synchronised, and no C code in the
            // test binary reads them (other tests in it use other names).
            unsafe { std::env::set_var(name, "example-not-a-real-secret") };
        }
    });
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_examples_are_there() {
    let names: Vec<String> = examples()
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .collect();
    for expected in [
        "demo.yaml",
        "demo-simulated.yaml",
        "minimal.yaml",
        "estate.yaml",
        "d365-estate.yaml",
        "http.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "examples/{expected} is missing; found {names:?}"
        );
    }
}

#[test]
fn every_example_loads_and_builds() {
    provide_example_secrets();
    for path in examples() {
        let config = lagwatch_emulator::REGISTRY
            .load(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!config.paths.is_empty(), "{}: no paths", path.display());
        if let Err(e) = App::build(config) {
            panic!("{}: does not build: {e}", path.display());
        }
    }
}

#[test]
fn every_example_passes_check_config() {
    for path in examples() {
        let out = Command::new(env!("CARGO_BIN_EXE_lagwatch"))
            .envs(
                EXAMPLE_SECRETS
                    .iter()
                    .map(|n| (n, "example-not-a-real-secret")),
            )
            .arg("check-config")
            .arg(&path)
            .output()
            .expect("the binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: check-config failed:\n{stderr}",
            path.display()
        );
        assert!(
            !stdout.contains("example-not-a-real-secret")
                && !stderr.contains("example-not-a-real-secret"),
            "{}: check-config printed a secret",
            path.display()
        );
        assert!(
            stdout.contains(&format!("{}: valid", path.display())),
            "{}: unexpected output:\n{stdout}",
            path.display()
        );
    }
}

#[test]
fn every_kind_has_an_example() {
    provide_example_secrets();
    let mut shown = std::collections::BTreeSet::new();
    for path in examples() {
        let config = lagwatch_emulator::REGISTRY
            .load(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        shown.extend(config.systems.values().map(|s| s.kind().to_string()));
    }
    let kinds = lagwatch::systems::REGISTRY
        .iter()
        .map(|entry| entry.name)
        .chain(["simulated"]);
    for kind in kinds {
        assert!(
            shown.contains(kind),
            "no example under examples/ has a system of kind {kind}; shown: {shown:?}"
        );
    }
}

/// `lagwatch init` with `args`, its output saved as a file in `dir`.
fn init(dir: &Path, args: &[&str]) -> PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_lagwatch"))
        .arg("init")
        .args(args)
        .output()
        .expect("the binary runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "init {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = format!("init{}.yaml", args.join("").replace([',', '-'], "_"));
    let path = dir.join(name);
    std::fs::write(&path, &out.stdout).expect("written");
    path
}

/// `lagwatch check-config` of `path`, with `flags`, without any secret in the environment.
fn check(path: &Path, flags: &[&str], secrets: bool) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lagwatch"));
    cmd.arg("check-config").args(flags).arg(path);
    for name in EXAMPLE_SECRETS {
        if secrets {
            cmd.env(name, "example-not-a-real-secret");
        } else {
            cmd.env_remove(name);
        }
    }
    let out = cmd.output().expect("the binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_piece_lagwatch_init_writes_passes_check_config() {
    use lagwatch::config::starter::Estate;
    let dir = tempfile::tempdir().expect("temp dir");
    let all: Vec<&str> = Estate::ALL.iter().map(|e| e.name()).collect();
    let all = all.join(",");
    let mut runs: Vec<Vec<&str>> = vec![vec![]];
    runs.extend(Estate::ALL.iter().map(|e| vec!["--estate", e.name()]));
    runs.push(vec!["--estate", &all]);
    for args in runs {
        let path = init(dir.path(), &args);
        // Without secrets, as in a CI pipeline.
        let (code, stdout, stderr) = check(&path, &["--no-resolve"], false);
        assert_eq!(code, Some(0), "init {args:?}, --no-resolve: {stderr}");
        assert!(stdout.contains("valid (secrets not resolved)"), "{stdout}");
        // With them, where lagwatch runs; and without, it says which are missing.
        let (code, stdout, stderr) = check(&path, &[], true);
        assert_eq!(code, Some(0), "init {args:?}: {stderr}");
        assert!(!stdout.contains("example-not-a-real-secret"), "{stdout}");
        let (code, _, stderr) = check(&path, &[], false);
        assert_eq!(code, Some(2), "init {args:?} without secrets passed");
        assert!(
            stderr.contains("LAGWATCH_ENTRA_SECRET is not set"),
            "{stderr}"
        );
        // Through the library as well: it loads, builds, and has a path per piece.
        let text = std::fs::read_to_string(&path).expect("readable");
        let config = lagwatch::config::secret::without_resolving(|| {
            lagwatch::systems::Registry::LAGWATCH.from_yaml("init.yaml", &text)
        })
        .unwrap_or_else(|e| panic!("init {args:?}: {e}"));
        let pieces = if args.is_empty() {
            Estate::DEFAULT.len()
        } else {
            args[1].split(',').count()
        };
        assert_eq!(config.paths.len(), pieces, "init {args:?}");
        if let Err(e) = lagwatch::config::secret::without_resolving(|| App::build(config)) {
            panic!("init {args:?}: does not build: {e}");
        }
    }
}

#[test]
fn init_refuses_an_unknown_piece_naming_the_known_ones() {
    let out = Command::new(env!("CARGO_BIN_EXE_lagwatch"))
        .args(["init", "--estate", "dual-write,synapse"])
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown estate \"synapse\""), "{stderr}");
    assert!(stderr.contains("synapse-link"), "{stderr}");
    assert!(out.stdout.is_empty());
}
