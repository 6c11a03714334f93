//! `lagwatch demo`: the emulated estate and lagwatch watching it, in one process.
//!
//! Why this shape: the demo must show what lagwatch does in production, so it goes through
//! the real connectors, auth and HTTP stack, not through in-process shortcuts. The emulator
//! serves the estate of `examples/scenarios/demo.yaml` on a free loopback port; the monitor
//! loads `examples/demo.yaml`, which is an ordinary configuration written for `lagwatch
//! emulate` on its default address. Two textual substitutions adapt it before parsing:
//!
//! - the origin [`EMULATOR_ORIGIN`] becomes the emulator's actual address, and
//! - every `env:LAGWATCH_DEMO_…` secret reference becomes a `file:` reference to a private
//!   file holding the scenario's fake credential, so the process environment is never
//!   modified (other threads may be reading it) and no secret is ever written into YAML.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Emulator, EmulatorError, Scenario};
use lagwatch::config::{Config, ConfigError};

/// The demo configuration, shipped as `examples/demo.yaml`.
pub const DEMO_CONFIG: &str = include_str!("../../../examples/demo.yaml");

/// The address `examples/demo.yaml` expects the emulator at (`lagwatch emulate`'s default).
pub const EMULATOR_ORIGIN: &str = "http://127.0.0.1:9470";

/// Where `examples/demo.yaml` expects the emulated lake (`lagwatch emulate --lake-dir`).
pub const LAKE_URL_ROOT: &str = "file:///tmp/lagwatch-demo-lake/";

/// The secrets `examples/demo.yaml` references, and their values in the demo scenario.
/// They are fake and only open the emulator.
pub const DEMO_SECRETS: &[(&str, &str)] = &[
    ("LAGWATCH_DEMO_CLIENT_SECRET", "demo-only-secret"),
    ("LAGWATCH_DEMO_SEARCH_KEY", "demo-search-admin-key"),
    ("LAGWATCH_DEMO_ES_PASSWORD", "demo-password"),
];

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the built-in demo scenario is invalid: {0}")]
    Scenario(#[from] EmulatorError),
    #[error("the built-in demo configuration is invalid: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot start the emulator on loopback: {0}")]
    Listen(#[source] std::io::Error),
    #[error("cannot write the demo's credential files in {dir}: {source}")]
    Secrets {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running emulated estate (the configuration that monitors it comes with it from
/// [`Demo::start`]).
pub struct Demo {
    /// Where the emulator listens, e.g. `http://127.0.0.1:41234`.
    pub emulator_url: String,
    pub emulator: Arc<Emulator>,
    server: JoinHandle<std::io::Result<()>>,
    secrets: SecretDir,
}

impl Demo {
    /// Starts the emulator on `127.0.0.1:0` (serving until `shutdown`) and returns it with
    /// the monitor's configuration for it.
    ///
    /// # Errors
    /// [`DemoError`] if the built-in files are broken, loopback cannot be bound, or the
    /// credential files cannot be written.
    pub async fn start(shutdown: CancellationToken) -> Result<(Demo, Config), DemoError> {
        let secrets = SecretDir::create()?;
        let lake_root = secrets.path.join("lake");
        let emulator = Emulator::with_lake_root(Scenario::demo()?, &lake_root);
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(DemoError::Listen)?;
        let addr = listener.local_addr().map_err(DemoError::Listen)?;
        let emulator_url = format!("http://{addr}");
        let yaml = adapt(DEMO_CONFIG, &emulator_url, &secrets.path, &lake_root);
        let mut config = Config::from_yaml("examples/demo.yaml (built in)", &yaml)?;
        // The demo's probe ledger and remembered discrepancies live with its other private
        // files, so /readyz and lagwatch_ledger_up show a working ledger; removed on exit.
        config
            .state_dir
            .get_or_insert_with(|| secrets.path.join("state"));
        let server = {
            let emulator = emulator.clone();
            tokio::spawn(async move { emulator.serve(listener, shutdown).await })
        };
        Ok((
            Demo {
                emulator_url,
                emulator,
                server,
                secrets,
            },
            config,
        ))
    }

    /// Waits for the emulator to stop (after `shutdown`), stops its lake writer, and removes
    /// the credential files and the lake.
    pub async fn finish(self) {
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "The demo emulator stopped with an error."),
            Err(e) => tracing::warn!(error = %e, "The demo emulator task failed."),
        }
        self.emulator.stop_lake().await;
        drop(self.secrets);
    }
}

/// `examples/demo.yaml` pointed at an emulator on `origin` writing its lake under `lake`, with
/// its secrets read from `dir`.
pub fn adapt(yaml: &str, origin: &str, dir: &Path, lake: &Path) -> String {
    let lake_url = url::Url::from_directory_path(lake)
        .map(|u| u.to_string())
        .unwrap_or_else(|()| format!("file://{}/", lake.display()));
    let mut out = yaml
        .replace(EMULATOR_ORIGIN, origin)
        .replace(LAKE_URL_ROOT, &lake_url);
    for (name, _) in DEMO_SECRETS {
        let file = dir.join(name);
        out = out.replace(&format!("env:{name}"), &format!("file:{}", file.display()));
    }
    out
}

/// A directory only this user can read, holding one file per demo secret; removed on drop.
struct SecretDir {
    path: PathBuf,
}

impl SecretDir {
    fn create() -> Result<SecretDir, DemoError> {
        let path = std::env::temp_dir().join(format!(
            "lagwatch-demo-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let fail = |source| DemoError::Secrets {
            dir: path.display().to_string(),
            source,
        };
        create_private_dir(&path).map_err(fail)?;
        let dir = SecretDir { path };
        for (name, value) in DEMO_SECRETS {
            write_private(&dir.path.join(name), value).map_err(|source| DemoError::Secrets {
                dir: dir.path.display().to_string(),
                source,
            })?;
        }
        Ok(dir)
    }
}

impl Drop for SecretDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(unix)]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().mode(0o700).create(path)
}

#[cfg(not(unix))]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir(path)
}

fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_is_pointed_at_the_emulator_and_its_secret_files() {
        let dir = Path::new("/run/demo");
        let yaml = adapt(
            DEMO_CONFIG,
            "http://127.0.0.1:5555",
            dir,
            Path::new("/run/demo/lake"),
        );
        assert!(!yaml.contains(EMULATOR_ORIGIN));
        assert!(!yaml.contains("env:LAGWATCH_DEMO_"));
        assert!(yaml.contains("url: http://127.0.0.1:5555/crm\n"));
        assert!(yaml.contains("url: file:///run/demo/lake/dataverse-demo-crm\n"));
        for (name, value) in DEMO_SECRETS {
            assert!(yaml.contains(&format!("file:/run/demo/{name}")), "{name}");
            // Only the header comment, telling how to run it by hand, names the fake values.
            assert!(
                yaml.lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .all(|l| !l.contains(value)),
                "the demo config holds no secret"
            );
        }
    }

    #[tokio::test]
    async fn the_demo_starts_an_emulator_and_loads_its_config() {
        let stop = CancellationToken::new();
        let (demo, config) = Demo::start(stop.clone()).await.expect("demo starts");
        assert!(demo.emulator_url.starts_with("http://127.0.0.1:"));
        let names: Vec<&str> = config.systems.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["crm", "crm2", "es", "fabric", "fno", "lake", "search"]
        );
        let dir = demo.secrets.path.clone();
        assert!(dir.join("LAGWATCH_DEMO_CLIENT_SECRET").exists());
        stop.cancel();
        demo.finish().await;
        assert!(!dir.exists(), "credential files removed");
    }
}
