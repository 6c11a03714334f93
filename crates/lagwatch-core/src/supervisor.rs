//! Configuration reload: `lagwatch run` keeps one monitor (engine and reconciler) running and
//! replaces it as a whole when SIGHUP or `POST /-/reload` (with `--web.enable-lifecycle`) asks
//! for it.
//!
//! A reload loads the file and builds the new monitor against a throwaway registry first, so
//! a rejected file changes nothing: not the running probes, not a single series. Only then is
//! the running monitor stopped through its ordinary shutdown path (the engine's token: group
//! ticks stop, in-flight cycles release their slots without an outcome and delete their
//! sentinels), the new one built into the *running* registry (counters carry on, no reset for
//! `rate()`), series of paths, systems and reconciliation entries the new file no longer has
//! are removed, and the new monitor is started. The HTTP server and its listener are never
//! touched: handlers read the current monitor per request through [`Live`].

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::{Config, ConfigError, LoadOptions};
use crate::metrics::Metrics;
use crate::probe::Engine;
use crate::reconcile::Reconciler;
use crate::systems::Registry;
use crate::web::WebSecurity;

/// Where `lagwatch run` listens when neither `--listen` nor `server.listen` says.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 9464);

/// The monitor the HTTP handlers read: replaced as a whole on reload, never mutated.
pub struct Current {
    pub engine: Arc<Engine>,
    pub reconciler: Arc<Reconciler>,
    pub instance: Arc<str>,
    /// A configuration before this one was ready. A reload restarts every path's first probe
    /// (up to 10 s away); `/readyz` should not take a working monitor out of its Service for
    /// that.
    pub was_ready: bool,
}

impl Current {
    fn of(app: &App, was_ready: bool) -> Current {
        Current {
            engine: app.engine.clone(),
            reconciler: app.reconciler.clone(),
            instance: Arc::from(app.config.instance.as_str()),
            was_ready,
        }
    }

    /// What `/readyz` answers: every path started its first probe, now or before a reload.
    pub fn ready(&self) -> bool {
        self.was_ready || self.engine.ready()
    }
}

/// A reload request: from SIGHUP (nobody waits for the answer) or from `POST /-/reload`
/// (the handler waits for the outcome text).
pub struct ReloadRequest {
    pub reply: Option<oneshot::Sender<Result<String, String>>>,
}

/// What `POST /-/reload` may do. Reloading over HTTP is opt-in (`--web.enable-lifecycle`, as
/// Prometheus and Alertmanager have it): anyone who can reach the port could otherwise make
/// lagwatch stop every probe in flight and re-read its file, and basic auth is optional.
/// SIGHUP needs access to the process, so it reloads regardless.
#[derive(Clone)]
pub enum HttpReload {
    /// The configuration was not read from a file (`lagwatch demo`, tests): nothing to re-read.
    Unavailable,
    /// `lagwatch run` without `--web.enable-lifecycle`: only SIGHUP reloads.
    Disabled,
    /// `lagwatch run --web.enable-lifecycle`: requests go to the supervisor.
    Enabled(mpsc::Sender<ReloadRequest>),
}

/// The shared handle of the HTTP state: the current monitor, and whether and where
/// `POST /-/reload` asks for a reload.
#[derive(Clone)]
pub struct Live {
    current: Arc<RwLock<Arc<Current>>>,
    reload: HttpReload,
}

impl Live {
    /// A monitor that is never replaced.
    pub fn fixed(engine: Arc<Engine>, reconciler: Arc<Reconciler>, instance: &str) -> Live {
        Live {
            current: Arc::new(RwLock::new(Arc::new(Current {
                engine,
                reconciler,
                instance: Arc::from(instance),
                was_ready: false,
            }))),
            reload: HttpReload::Unavailable,
        }
    }

    /// The monitor in force now. Cheap: one read lock and an `Arc` clone.
    pub fn current(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What `POST /-/reload` may do for this monitor.
    pub fn reloader(&self) -> &HttpReload {
        &self.reload
    }

    fn replace(&self, next: Current) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    }
}

/// Checks what a reload cannot change, comparing the running configuration with the new one.
/// `listen_from_file` is the address configured when the process started, or `None` when
/// `--listen` overrides the file (then the file's `server.listen` does not matter).
///
/// Returns warnings for changes that are accepted but do not apply until a restart.
///
/// # Errors
/// [`ConfigError::Invalid`] naming `instance` when it changed: sentinel ids carry the instance
/// and the start-up sweep only finds this instance's leftovers, so sentinels the old instance
/// failed to delete would never be swept by this process.
pub fn check_change(
    running: &Config,
    new: &Config,
    listen_from_file: Option<SocketAddr>,
) -> Result<Vec<String>, ConfigError> {
    if new.instance != running.instance {
        return Err(ConfigError::Invalid {
            file: new.file.clone(),
            key: "instance".to_string(),
            reason: format!(
                "changed from \"{}\" to \"{}\"; sentinel ids and the start-up sweep are scoped by the instance, so it changes only with a restart",
                running.instance, new.instance
            ),
        });
    }
    if new.state_dir != running.state_dir {
        let shown = |d: &Option<PathBuf>| {
            d.as_ref()
                .map_or_else(|| "none".to_string(), |d| d.display().to_string())
        };
        return Err(ConfigError::Invalid {
            file: new.file.clone(),
            key: "state_dir".to_string(),
            reason: format!(
                "changed from {} to {}; the process locks its state_dir and keeps its ledger there, so it changes only with a restart",
                shown(&running.state_dir),
                shown(&new.state_dir)
            ),
        });
    }
    let mut warnings = Vec::new();
    if let Some(bound) = listen_from_file {
        let wanted = new.server.listen.unwrap_or(DEFAULT_LISTEN);
        if wanted != bound {
            warnings.push(format!(
                "{}: server.listen: changed to {wanted}; lagwatch keeps listening on {bound} until it is restarted",
                new.file
            ));
        }
    }
    Ok(warnings)
}

/// Label sets the running monitor exports and the new one will not: their series are removed
/// so that a removed path does not sit in `/metrics`, dashboards and alerts with its last
/// values forever.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Gone {
    pub paths: Vec<(String, String)>,
    pub sources: Vec<String>,
    pub systems: Vec<String>,
    /// Reconciliation entries: source, target, table.
    pub entries: Vec<(String, String, String)>,
    /// Conflict probe pairs: a, b.
    pub conflicts: Vec<(String, String)>,
    /// Platform status surfaces of paths: source, target, surface.
    pub surfaces: Vec<(String, String, String)>,
}

/// What `old` has and `new` has not, sorted.
fn gone<T: Ord + Clone>(
    old: impl IntoIterator<Item = T>,
    new: impl IntoIterator<Item = T>,
) -> Vec<T> {
    let new: BTreeSet<T> = new.into_iter().collect();
    let old: BTreeSet<T> = old.into_iter().collect();
    old.difference(&new).cloned().collect()
}

impl Gone {
    /// The difference between two built monitors.
    pub fn between(old: &App, new: &App) -> Gone {
        let paths = |a: &App| -> Vec<(String, String)> {
            a.engine
                .paths()
                .iter()
                .map(|p| (p.spec.source.clone(), p.spec.target.clone()))
                .collect()
        };
        let sources = |a: &App| -> Vec<String> {
            a.engine
                .paths()
                .iter()
                .map(|p| p.spec.source.clone())
                .collect()
        };
        let surfaces = |a: &App| -> Vec<(String, String, String)> {
            a.engine
                .platform()
                .iter()
                .map(|w| {
                    (
                        w.path.spec.source.clone(),
                        w.path.spec.target.clone(),
                        w.spec.surface.name().to_string(),
                    )
                })
                .collect()
        };
        let conflicts = |a: &App| -> Vec<(String, String)> {
            a.config
                .conflicts
                .iter()
                .map(|c| (c.a.clone(), c.b.clone()))
                .collect()
        };
        let entries = |a: &App| -> Vec<(String, String, String)> {
            a.reconciler
                .entries()
                .iter()
                .map(|e| (e.source.clone(), e.target.clone(), e.spec.name.clone()))
                .collect()
        };
        Gone {
            paths: gone(paths(old), paths(new)),
            sources: gone(sources(old), sources(new)),
            systems: gone(
                old.config.systems.keys().cloned(),
                new.config.systems.keys().cloned(),
            ),
            entries: gone(entries(old), entries(new)),
            conflicts: gone(conflicts(old), conflicts(new)),
            surfaces: gone(surfaces(old), surfaces(new)),
        }
    }

    fn forget(&self, metrics: &Metrics) {
        for (s, t) in &self.paths {
            metrics.forget_path(s, t);
        }
        for s in &self.sources {
            metrics.forget_source(s);
        }
        for s in &self.systems {
            metrics.forget_system(s);
        }
        for (s, t, table) in &self.entries {
            metrics.reconcile.forget(s, t, table);
        }
        for (a, b) in &self.conflicts {
            metrics.conflict.forget(a, b);
        }
        for (s, t, surface) in &self.surfaces {
            metrics.platform.forget(s, t, surface);
        }
    }
}

/// A started monitor and how to stop it.
struct Running {
    app: App,
    stop: CancellationToken,
    engine: JoinHandle<()>,
    reconciler: JoinHandle<()>,
}

impl Running {
    /// Starts the engine and reconciler of `app` on a child of the process's shutdown token, so
    /// SIGTERM stops them exactly as it did before reloads existed.
    fn start(app: App, shutdown: &CancellationToken) -> Running {
        let stop = shutdown.child_token();
        let engine = tokio::spawn(app.engine.clone().run(stop.clone()));
        let reconciler = tokio::spawn(app.reconciler.clone().run(stop.clone()));
        Running {
            app,
            stop,
            engine,
            reconciler,
        }
    }

    /// Stops through the ordinary shutdown path and waits until in-flight cycles cleaned up.
    async fn stop(self) -> App {
        self.stop.cancel();
        if let Err(e) = self.engine.await {
            tracing::error!(error = %e, "The probe engine ended abnormally.");
        }
        if let Err(e) = self.reconciler.await {
            tracing::error!(error = %e, "The reconciler ended abnormally.");
        }
        self.app
    }
}

/// Runs `lagwatch run`: serves, probes, and reloads its configuration file on request.
pub struct Supervisor {
    file: PathBuf,
    kinds: Registry,
    listen_from_file: Option<SocketAddr>,
    lifecycle: bool,
    overrides: crate::config::Overrides,
}

impl Supervisor {
    /// `file` is re-read on every reload with the kinds the binary knows (those it was first
    /// loaded with); `listen_from_file` as in [`check_change`]. `POST /-/reload` stays refused
    /// until [`Supervisor::enable_lifecycle`].
    pub fn new(file: PathBuf, kinds: Registry, listen_from_file: Option<SocketAddr>) -> Supervisor {
        Supervisor {
            file,
            kinds,
            listen_from_file,
            lifecycle: false,
            overrides: crate::config::Overrides::default(),
        }
    }

    /// What the command line overrides (`--instance`, `--shard`): applied to the file again on
    /// every reload.
    #[must_use]
    pub fn overrides(mut self, overrides: crate::config::Overrides) -> Supervisor {
        self.overrides = overrides;
        self
    }

    /// Whether `POST /-/reload` reloads (`--web.enable-lifecycle`); otherwise it answers 403
    /// and only SIGHUP reloads.
    #[must_use]
    pub fn enable_lifecycle(mut self, enabled: bool) -> Supervisor {
        self.lifecycle = enabled;
        self
    }

    /// Whether `POST /-/reload` reloads, for the start-up log line.
    pub fn lifecycle(&self) -> bool {
        self.lifecycle
    }

    /// Serves `app` on `listener` until `shutdown` is cancelled, reloading on SIGHUP and, with
    /// the lifecycle API enabled, on `POST /-/reload`; returns once the last monitor's
    /// in-flight cycles cleaned up.
    ///
    /// # Errors
    /// I/O errors of the HTTP listener.
    pub async fn run(
        self,
        app: App,
        listener: TcpListener,
        web: Option<Arc<WebSecurity>>,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        // SIGHUP is installed before anything is served, so a signal sent as soon as the
        // process says where it listens is a reload, never the default (terminate).
        let mut hangups = crate::shutdown::on_hangup();
        // Without the lifecycle API the sender is dropped here and `requests` only ever
        // yields `None`, which the loop below skips: SIGHUP and shutdown still reach it.
        let (tx, mut requests) = mpsc::channel::<ReloadRequest>(8);
        let live = Live {
            current: Arc::new(RwLock::new(Arc::new(Current::of(&app, false)))),
            reload: if self.lifecycle {
                HttpReload::Enabled(tx)
            } else {
                HttpReload::Disabled
            },
        };
        let metrics = app.engine.metrics().clone();
        let server = {
            let live = live.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let r = crate::http::serve_live(listener, live, web, shutdown.clone()).await;
                if r.is_err() {
                    shutdown.cancel();
                }
                r
            })
        };
        let mut running = Running::start(app, &shutdown);
        loop {
            let request = tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(()) = hangups.recv() => ReloadRequest { reply: None },
                Some(r) = requests.recv() => r,
            };
            running = self
                .reload(running, &live, &metrics, &shutdown, request)
                .await;
        }
        drop(running.stop().await);
        match server.await {
            Ok(served) => served,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Loads and builds the file without touching the running monitor.
    fn prepare(&self, running: &Config) -> Result<(App, Vec<String>), String> {
        // Every error of the file, as check-config reports them, on one line.
        let mut config = self
            .kinds
            .check(&self.file, LoadOptions::default())
            .map_err(|errors| {
                let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
                lines.join("; ")
            })?;
        config.apply(&self.overrides).map_err(|e| e.to_string())?;
        // Errors of the build name the file as check-config names it.
        config.file = self.file.display().to_string();
        let warnings =
            check_change(running, &config, self.listen_from_file).map_err(|e| e.to_string())?;
        // A throwaway registry: a file that fails half-way through building must not leave
        // series of its paths behind in the real one.
        let app = App::build_with(config, Metrics::new()).map_err(|e| e.to_string())?;
        Ok((app, warnings))
    }

    async fn reload(
        &self,
        running: Running,
        live: &Live,
        metrics: &Metrics,
        shutdown: &CancellationToken,
        request: ReloadRequest,
    ) -> Running {
        let file = self.file.display().to_string();
        tracing::info!(file = %file, "Reloading the configuration.");
        let (candidate, warnings) = match self.prepare(&running.app.config) {
            Ok(prepared) => prepared,
            Err(text) => {
                tracing::error!(error = %text, "Configuration reload rejected; the running configuration stays in force.");
                metrics.config_reloaded(false);
                reply(request, Err(text));
                return running;
            }
        };
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let was_ready = live.current().ready();
        let old = running.stop().await;
        let gone = Gone::between(&old, &candidate);
        let App { config, .. } = candidate;
        match App::build_with(config, metrics.clone()) {
            Ok(app) => {
                gone.forget(metrics);
                live.replace(Current::of(&app, was_ready));
                let paths = app.engine.paths().len();
                let next = Running::start(app, shutdown);
                metrics.config_reloaded(true);
                tracing::info!(file = %file, paths, "Configuration reloaded.");
                let mut text = format!("{file}: reloaded, {paths} paths\n");
                for w in &warnings {
                    text.push_str(&format!("warning: {w}\n"));
                }
                reply(request, Ok(text));
                next
            }
            Err(e) => {
                // The same configuration built a moment ago; if it fails now (a file it reads
                // changed in between), the old monitor goes back to work.
                let text = e.to_string();
                tracing::error!(error = %text, "Configuration reload failed while starting; the previous configuration is running again.");
                metrics.config_reloaded(false);
                reply(request, Err(text));
                Running::start(old, shutdown)
            }
        }
    }
}

fn reply(request: ReloadRequest, outcome: Result<String, String>) {
    if let Some(tx) = request.reply {
        // The client may have gone away; the outcome is in the log and the metric anyway.
        let _ = tx.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        let mut c = Config::from_yaml("new.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
        c.file = "new.yaml".to_string();
        c
    }

    const BASE: &str = r#"
instance: one
systems:
  src: { kind: http, write: { method: PUT, url: "http://127.0.0.1:9/r/{id}" }, read: { url: "http://127.0.0.1:9/r/{id}" }, auth: { method: none } }
  a: { kind: elasticsearch, url: "http://127.0.0.1:9", index: a, payload_field: payload, auth: { method: none } }
  b: { kind: elasticsearch, url: "http://127.0.0.1:9", index: b, payload_field: payload, auth: { method: none } }
paths:
  - { source: src, target: a }
  - { source: src, target: b }
"#;

    #[test]
    fn an_instance_change_is_refused_naming_the_key() {
        let running = config(BASE);
        let new = config(&BASE.replace("instance: one", "instance: two"));
        let err = check_change(&running, &new, None).unwrap_err();
        assert_eq!(err.key(), Some("instance"));
        let text = err.to_string();
        assert!(
            text.starts_with("new.yaml: instance: changed from \"one\" to \"two\""),
            "{text}"
        );
    }

    #[test]
    fn a_listen_change_is_accepted_with_a_warning_unless_overridden() {
        let running = config(BASE);
        let new = config(&format!("server: {{ listen: \"127.0.0.1:9999\" }}\n{BASE}"));
        let w = check_change(&running, &new, Some(DEFAULT_LISTEN)).unwrap();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("server.listen") && w[0].contains("restart"),
            "{w:?}"
        );
        // --listen overrides the file: its server.listen does not matter.
        assert!(check_change(&running, &new, None).unwrap().is_empty());
        // Unchanged: no warning.
        assert!(
            check_change(&running, &running, Some(DEFAULT_LISTEN))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn gone_lists_what_only_the_old_side_has() {
        assert_eq!(gone(["a", "b", "c"], ["b", "d"]), vec!["a", "c"]);
        assert!(gone(Vec::<u8>::new(), [1]).is_empty());
    }

    #[test]
    fn gone_between_two_monitors_names_paths_sources_and_systems() {
        let old = App::build(config(BASE)).unwrap();
        let new = App::build(config(
            r#"
instance: one
systems:
  other: { kind: http, write: { method: PUT, url: "http://127.0.0.1:9/r/{id}" }, read: { url: "http://127.0.0.1:9/r/{id}" }, auth: { method: none } }
  a: { kind: elasticsearch, url: "http://127.0.0.1:9", index: a, payload_field: payload, auth: { method: none } }
paths:
  - { source: other, target: a }
"#,
        ))
        .unwrap();
        let g = Gone::between(&old, &new);
        assert_eq!(
            g.paths,
            vec![
                ("src".to_string(), "a".to_string()),
                ("src".to_string(), "b".to_string())
            ]
        );
        assert_eq!(g.sources, vec!["src".to_string()]);
        assert_eq!(g.systems, vec!["b".to_string(), "src".to_string()]);
        assert!(g.entries.is_empty());
    }

    #[test]
    fn forgetting_a_path_removes_its_series_and_keeps_the_others() {
        let metrics = Metrics::new();
        let old = App::build_with(config(BASE), metrics.clone()).unwrap();
        let new = App::build(config(
            &BASE
                .replace("  - { source: src, target: b }\n", "")
                .replace("  b: { kind: elasticsearch, url: \"http://127.0.0.1:9\", index: b, payload_field: payload, auth: { method: none } }\n", ""),
        ))
        .unwrap();
        let g = Gone::between(&old, &new);
        g.forget(&metrics);
        let text = metrics.render();
        assert!(!text.contains("target=\"b\""), "{text}");
        assert!(
            text.contains(
                "lagwatch_probes_total{outcome=\"converged\",source=\"src\",target=\"a\"}"
            )
        );
        assert!(!text.contains("system=\"b\""));
        assert!(text.contains("system=\"a\""));
    }

    #[test]
    fn the_reload_gauges_start_at_one_and_the_start_time() {
        let metrics = Metrics::new();
        assert_eq!(metrics.config_reload_successful.get(), 1);
        let started = metrics.config_reload_success_timestamp.get();
        assert!(started > 1.7e9, "{started}");
        metrics.config_reloaded(false);
        assert_eq!(metrics.config_reload_successful.get(), 0);
        assert_eq!(metrics.config_reload_success_timestamp.get(), started);
    }
}
