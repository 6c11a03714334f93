//! Every configuration under `examples/` is one a user may copy: it must load, build, and pass
//! `lagwatch check-config`.

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
