//! Assembly: a validated [`Config`] becomes built systems, an engine and an HTTP server.
//!
//! This is the library's entry point for the binary and for tests: [`App::build`] wires
//! everything without opening a connection, [`App::run`] serves on an already-bound listener
//! until the shutdown token fires.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::probe::{Engine, EngineError};
use crate::reconcile::Reconciler;
use crate::systems::{BuildContext, Shared, System};
use crate::web::WebSecurity;

/// Why lagwatch could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A ready-to-run monitor.
pub struct App {
    pub config: Config,
    pub engine: Arc<Engine>,
    /// Reconciliation entries of every path (none unless configured).
    pub reconciler: Arc<Reconciler>,
    /// What the systems of this build share (see [`BuildContext::shared`]): the emulator's
    /// `simulated` systems keep their landscape, with its ground truth, here.
    pub shared: Shared,
}

impl App {
    /// Builds every system and the engine.
    ///
    /// # Errors
    /// [`AppError::Config`] when a system cannot be built from its config.
    pub fn build(config: Config) -> Result<App, AppError> {
        App::build_with(config, Metrics::new())
    }

    /// As [`App::build`], registering its series in an existing registry: a configuration
    /// reload builds the new monitor into the running registry so counters carry on instead
    /// of resetting (which `rate()` would read as a counter reset of every series).
    ///
    /// # Errors
    /// As [`App::build`].
    pub fn build_with(mut config: Config, metrics: Metrics) -> Result<App, AppError> {
        // Paths (with their reconciliation and status reads) and conflict pairs of other
        // shards are neither built into the engine nor exported.
        config.keep_shard();
        metrics.set_shard(config.shard);
        let cx = BuildContext::with_tls(metrics.clone(), &config.tls).map_err(|issue| {
            ConfigError::Invalid {
                file: config.file.clone(),
                key: issue.key,
                reason: issue.reason,
            }
        })?;
        let mut systems: HashMap<String, System> = HashMap::new();
        for (name, spec) in &config.systems {
            let limits = config.limits.get(name).copied().unwrap_or_default();
            let gate = cx.gate(name, limits);
            let system = spec
                .build(name, &cx, gate)
                .map_err(|issue| ConfigError::Invalid {
                    file: config.file.clone(),
                    key: issue.key,
                    reason: issue.reason,
                })?;
            systems.insert(name.clone(), system);
        }
        let engine = Arc::new(Engine::new(&config, &systems, metrics.clone())?);
        let reconciler =
            Reconciler::build(&config, &systems, engine.paths(), &metrics).map_err(|issue| {
                ConfigError::Invalid {
                    file: config.file.clone(),
                    key: issue.key,
                    reason: issue.reason,
                }
            })?;
        Ok(App {
            config,
            engine,
            reconciler: Arc::new(reconciler),
            shared: cx.shared,
        })
    }

    /// Probes and serves until `shutdown` is cancelled; returns once in-flight cycles cleaned up.
    ///
    /// # Errors
    /// I/O errors of the HTTP listener.
    pub async fn run(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        self.run_secured(listener, None, shutdown).await
    }

    /// As [`App::run`], serving with the TLS and basic auth of a web-config file when given.
    ///
    /// # Errors
    /// I/O errors of the HTTP listener.
    pub async fn run_secured(
        &self,
        listener: TcpListener,
        web: Option<Arc<WebSecurity>>,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let engine = self.engine.clone().run(shutdown.clone());
        let reconciler = tokio::spawn(self.reconciler.clone().run(shutdown.clone()));
        let server = crate::http::serve(
            listener,
            self.engine.clone(),
            self.reconciler.clone(),
            &self.config.instance,
            web,
            shutdown.clone(),
        );
        let (served, ()) = tokio::join!(
            async {
                let r = server.await;
                if r.is_err() {
                    shutdown.cancel();
                }
                r
            },
            engine
        );
        let _ = reconciler.await;
        served
    }
}
