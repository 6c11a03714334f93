//! Command line: `demo`, `run`, `init`, `check-config`, `reconcile`, `report`, `emulate`. This and
//! `main.rs` are the only places that use `anyhow` (with the emulator's `emulate`); everything
//! below returns typed errors. `demo` and `emulate` are there with the default `demo` feature
//! only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use lagwatch::app::{App, AppError};
use lagwatch::config::{Config, LoadOptions};
use lagwatch::ledger::StateLock;
use lagwatch::supervisor::{DEFAULT_LISTEN, Supervisor};
use lagwatch::systems::Registry;

/// The kinds this binary loads configurations with: lagwatch's own and, built with the `demo`
/// feature, the emulator's `simulated`.
#[cfg(feature = "demo")]
const KINDS: Registry = lagwatch_emulator::REGISTRY;
#[cfg(not(feature = "demo"))]
const KINDS: Registry = Registry::LAGWATCH;

#[derive(Debug, Parser)]
#[command(
    name = "lagwatch",
    version,
    about = "Measures replication lag of Dynamics 365 integrations with active probes."
)]
pub struct Args {
    /// Format of the log lines on stderr: logfmt (`ts=… level=… module=… msg=… key=value`) or
    /// json (one object per line, the same keys), as Prometheus's flag. `RUST_LOG` sets the
    /// level.
    #[arg(
        long = "log.format",
        value_enum,
        default_value_t = lagwatch::logging::LogFormat::Logfmt,
        global = true,
        value_name = "FORMAT"
    )]
    pub log_format: lagwatch::logging::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Monitor an emulated Dynamics 365 landscape on this machine (no cloud account needed).
    #[cfg(feature = "demo")]
    Demo {
        /// Address for /metrics, the status page and the API.
        #[arg(long, default_value = "127.0.0.1:9464")]
        listen: SocketAddr,
        /// TLS for every endpoint and basic auth for all but /healthz and /readyz, in the
        /// Prometheus exporter-toolkit web-config format (tls_server_config, basic_auth_users,
        /// http_server_config.headers). Read again on every request and handshake; without
        /// it, plain HTTP and no auth.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
    /// Monitor the systems of a configuration file.
    Run {
        /// The configuration file (YAML; `lagwatch init` writes a starting one). Its env: and
        /// file: secrets are read at start and on every reload.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Address for /metrics, the status page and the API, as IP:PORT; overrides
        /// server.listen of the file (default 0.0.0.0:9464).
        #[arg(long, value_name = "ADDRESS")]
        listen: Option<SocketAddr>,
        /// TLS for every endpoint and basic auth for all but /healthz and /readyz, in the
        /// Prometheus exporter-toolkit web-config format (tls_server_config, basic_auth_users,
        /// http_server_config.headers). Read again on every request and handshake; without
        /// it, plain HTTP and no auth.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
        /// Reload the configuration on `POST /-/reload` (and `PUT`), as Prometheus's flag of
        /// the same name. Off by default: anyone who can reach the port could otherwise make
        /// lagwatch reload. SIGHUP reloads either way.
        #[arg(long = "web.enable-lifecycle")]
        web_enable_lifecycle: bool,
        /// Overrides instance of the file (1 to 32 lowercase letters, digits or dashes), such
        /// as a StatefulSet's pod name: each process writing into the same source needs its
        /// own, as sentinels carry it.
        #[arg(long, value_name = "NAME")]
        instance: Option<String>,
        /// Measure only this shard's paths: INDEX/TOTAL (index from 0), such as 1/3 from a
        /// StatefulSet's pod index; overrides shard of the file. Default 0/1, every path.
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<lagwatch::config::Shard>,
    },
    /// Print a commented starting configuration for the pieces of a Dynamics 365 estate, with
    /// placeholders for names and ids and env: references for secrets. It passes
    /// `check-config --no-resolve` as printed; save it and replace the placeholders.
    Init {
        /// The pieces, comma-separated: dual-write, synapse-link, fabric-link, search
        /// (Azure AI Search), dataverse-search, elasticsearch, dataverse (a second
        /// environment), http (an in-house API). Default: dual-write,synapse-link.
        #[arg(long, value_delimiter = ',', value_name = "PIECES", value_parser = parse_estate)]
        estate: Vec<lagwatch::config::starter::Estate>,
    },
    /// Validate a configuration file and print what it resolves to. Reports every error of
    /// the file (file, key and reason, one a line) and exits 2 when there is one.
    CheckConfig {
        /// The configuration file (or give it as --config).
        #[arg(value_name = "FILE", required_unless_present = "config")]
        file: Option<PathBuf>,
        /// The configuration file, as `run` takes it.
        #[arg(long, short, value_name = "FILE", conflicts_with = "file")]
        config: Option<PathBuf>,
        /// Check env: and file: secret references for their shape without reading them, for
        /// a CI pipeline that has no secrets. Checks of a secret's value (an account key's
        /// encoding, a certificate file's content) are skipped; all others run.
        #[arg(long)]
        no_resolve: bool,
        /// Print the paths of this shard (INDEX/TOTAL) and which shard owns each other path.
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<lagwatch::config::Shard>,
    },
    /// Run the reconciliation of one path once and print its discrepant keys. Exits 1 when
    /// persistent discrepancies exist (found by this run and the previous one, remembered under
    /// state_dir), 3 when the run failed, 2 for a bad configuration.
    Reconcile {
        /// The configuration file holding the path's reconcile: entries.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// The path, as SOURCE/TARGET (system names of the file).
        #[arg(long)]
        path: String,
        /// Only the reconciliation entry of this name (default: every entry of the path).
        #[arg(long)]
        table: Option<String>,
        /// Output on stdout: json (every run and its discrepant keys) or csv (one line per
        /// discrepant key). On a terminal, progress (rows and pages per side, rate, ETA) is
        /// drawn on stderr while the tables are read; never when either is redirected.
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// Overrides state_dir of the file: where discrepancies (and the row counts the ETA
        /// uses) are remembered between runs. A state_dir is locked while this runs; the one of
        /// a running `lagwatch run` is its own, so a reconciliation beside the service needs a
        /// state_dir of its own.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Print the consistency report of a running instance (each path's guarantees over a
    /// window, as its /api/v1/contracts measures them) as Markdown or HTML, to attach to a
    /// design review. Exits 1 when the instance could not be asked, 2 for a bad flag or
    /// configuration.
    Report {
        /// The instance's configuration file, for where it listens (server.listen, else
        /// 0.0.0.0:9464). Not read when --url is given.
        #[arg(long, short, required_unless_present = "url", value_name = "FILE")]
        config: Option<PathBuf>,
        /// The window, at most 7d, in the configuration's duration grammar (30m, 24h, 7d).
        #[arg(long, default_value = "24h", value_name = "DURATION")]
        since: String,
        /// md (Markdown) or html (a page of its own).
        #[arg(long, value_enum, default_value = "md")]
        format: ReportFormat,
        /// Where the instance answers, such as https://lagwatch.example:9464 (with
        /// USER:PASSWORD@ before the host when it asks for basic auth); overrides the file.
        #[arg(long, value_name = "URL")]
        url: Option<reqwest::Url>,
    },
    /// Serve emulated Dynamics 365 APIs (Dataverse and its search, Entra, F&O, Azure AI Search,
    /// Elasticsearch) on loopback, replicating per a scenario, with a ground-truth endpoint.
    #[cfg(feature = "demo")]
    Emulate(lagwatch_emulator::cli::EmulateArgs),
    /// `demo` and `emulate` in a build without the emulator (the container image): named, so
    /// that they say why they are missing instead of being unknown.
    #[cfg(not(feature = "demo"))]
    #[command(hide = true, name = "demo", alias = "emulate")]
    WithoutEmulator {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        _args: Vec<String>,
    },
}

/// Output format of `reconcile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Every run and its discrepant keys, as one JSON document.
    Json,
    /// One line per discrepant key, a header line first.
    Csv,
}

/// Output format of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Markdown, to paste into a design review.
    Md,
    /// A self-contained HTML page.
    Html,
}

fn parse_estate(name: &str) -> Result<lagwatch::config::starter::Estate, String> {
    lagwatch::config::starter::Estate::parse(name)
}

/// Exit code of `reconcile` when persistent discrepancies exist.
pub const EXIT_PERSISTENT: u8 = 1;
/// Exit code of `reconcile` when a run failed.
pub const EXIT_RUN_FAILED: u8 = 3;

/// Exit code for an invalid configuration.
pub const EXIT_BAD_CONFIG: u8 = 2;

/// Runs a parsed command line.
///
/// # Errors
/// Start-up failures (cannot bind, cannot build), with context.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Init { estate } => {
            print!("{}", lagwatch::config::starter::starter(&estate));
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig {
            file,
            config,
            no_resolve,
            shard,
        } => match file.or(config) {
            Some(file) => Ok(check_config(&file, no_resolve, shard)),
            None => {
                eprintln!("error: give the configuration file, as FILE or --config FILE");
                Ok(ExitCode::from(EXIT_BAD_CONFIG))
            }
        },
        Command::Reconcile {
            config,
            path,
            table,
            format,
            state_dir,
        } => Ok(reconcile(&config, &path, table.as_deref(), format, state_dir).await),
        Command::Report {
            config,
            since,
            format,
            url,
        } => report(config.as_deref(), &since, format, url).await,
        #[cfg(feature = "demo")]
        Command::Emulate(args) => lagwatch_emulator::cli::emulate(args).await,
        #[cfg(feature = "demo")]
        Command::Demo {
            listen,
            web_config_file,
        } => {
            let web = match load_web_config(web_config_file.as_deref()) {
                Ok(w) => w,
                Err(code) => return Ok(code),
            };
            // The emulator outlives the monitor, which deletes its sentinels on the way out.
            let emulator_stop = tokio_util::sync::CancellationToken::new();
            let (demo, config) = lagwatch_emulator::demo::Demo::start(emulator_stop.clone())
                .await
                .context("starting the demo")?;
            println!(
                "lagwatch demo: emulated Dynamics 365 estate on {} (ground truth under /_truth/)",
                demo.emulator_url
            );
            // The demo's configuration is generated at start-up: there is no file to re-read.
            lagwatch::shutdown::ignore_hangup(
                "the demo's configuration is generated; restart the demo to change it",
            );
            let result = serve(config, listen, web, lagwatch::shutdown::on_signal(), None).await;
            emulator_stop.cancel();
            demo.finish().await;
            result
        }
        #[cfg(not(feature = "demo"))]
        Command::WithoutEmulator { .. } => {
            eprintln!(
                "error: this lagwatch is built without the emulator (the container image is): \
                 `demo` and `emulate` need the default `demo` feature, as in `cargo run --release -- demo` \
                 from the repository"
            );
            Ok(ExitCode::from(EXIT_BAD_CONFIG))
        }
        Command::Run {
            config,
            listen,
            web_config_file,
            web_enable_lifecycle,
            instance,
            shard,
        } => {
            let overrides = lagwatch::config::Overrides { instance, shard };
            let loaded =
                load(&config, LoadOptions::default()).and_then(|mut c| match c.apply(&overrides) {
                    Ok(()) => Ok(c),
                    Err(e) => {
                        eprintln!("error: {e}");
                        Err(ExitCode::from(EXIT_BAD_CONFIG))
                    }
                });
            let mut cfg = match loaded {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            // Build errors name the file as check-config and a reload name it.
            cfg.file = config.display().to_string();
            // One process owns a state_dir, for its whole life (reloads keep the lock).
            let _lock = match cfg.state_dir.as_deref().map(StateLock::acquire).transpose() {
                Ok(lock) => lock,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(EXIT_BAD_CONFIG));
                }
            };
            // With --listen the file's server.listen does not matter, also not on reload.
            let from_file = cfg.server.listen.unwrap_or(DEFAULT_LISTEN);
            let supervisor = Supervisor::new(config, KINDS, listen.is_none().then_some(from_file))
                .enable_lifecycle(web_enable_lifecycle)
                .overrides(overrides);
            let listen = listen.unwrap_or(from_file);
            let web = match load_web_config(web_config_file.as_deref()) {
                Ok(w) => w,
                Err(code) => return Ok(code),
            };
            serve(
                cfg,
                listen,
                web,
                lagwatch::shutdown::on_signal(),
                Some(supervisor),
            )
            .await
        }
    }
}

/// `--shard I/N`.
fn parse_shard(s: &str) -> Result<lagwatch::config::Shard, String> {
    s.parse()
}

/// Loads a configuration file; every error of it is printed, a line each, and is exit 2.
fn load(file: &std::path::Path, options: LoadOptions) -> Result<Config, ExitCode> {
    KINDS.check(file, options).map_err(|errors| {
        for e in &errors.0 {
            eprintln!("error: {e}");
        }
        if errors.0.len() > 1 {
            eprintln!("{} errors in {}", errors.0.len(), file.display());
        }
        ExitCode::from(EXIT_BAD_CONFIG)
    })
}

fn check_config(
    file: &std::path::Path,
    no_resolve: bool,
    shard: Option<lagwatch::config::Shard>,
) -> ExitCode {
    let options = LoadOptions {
        resolve_secrets: !no_resolve,
    };
    let config = match load(file, options) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut config = config;
    config.file = file.display().to_string();
    if let Some(shard) = shard {
        config.shard = shard;
    }
    config.keep_shard();
    let text = config.describe();
    // Building turns secrets into credentials: without them, it builds with the references
    // unread (no request is sent either way).
    let built = if no_resolve {
        lagwatch::config::secret::without_resolving(|| App::build(config))
    } else {
        App::build(config)
    };
    match built {
        Ok(_) => {
            let note = if no_resolve {
                " (secrets not resolved)"
            } else {
                ""
            };
            println!("{}: valid{note}\n{text}", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

async fn reconcile(
    file: &std::path::Path,
    path: &str,
    table: Option<&str>,
    format: Format,
    state_dir: Option<PathBuf>,
) -> ExitCode {
    let mut config = match load(file, LoadOptions::default()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let own_state_dir = state_dir.is_some();
    if state_dir.is_some() {
        config.state_dir = state_dir;
    }
    // Discrepancies are remembered in the state_dir: one process writes it at a time.
    let _lock = match config
        .state_dir
        .as_deref()
        .map(StateLock::acquire)
        .transpose()
    {
        Ok(lock) => lock,
        Err(e @ lagwatch::ledger::LockError::Held { .. }) if !own_state_dir => {
            eprintln!(
                "error: {e}\nhint: this is the state_dir of the configuration file, which a running `lagwatch run` owns; pass --state-dir DIR to reconcile into a directory of its own"
            );
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let Some((source, target)) = path.split_once('/') else {
        eprintln!("error: --path {path}: write it as SOURCE/TARGET, e.g. crm/fno");
        return ExitCode::from(EXIT_BAD_CONFIG);
    };
    let has_state = config.state_dir.is_some();
    let app = match App::build(config) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let entries = app.reconciler.find(source, target, table);
    if let Some((_, _, owner)) = app
        .config
        .unowned
        .iter()
        .find(|(s, t, _)| s == source && t == target)
        .filter(|_| entries.is_empty())
    {
        eprintln!(
            "error: {}: {path} belongs to shard {owner} of {}, and this file makes shard {}: its reconciliation runs there",
            file.display(),
            app.config.shard.total,
            app.config.shard.index
        );
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    if entries.is_empty() {
        let known: Vec<String> = app
            .reconciler
            .entries()
            .iter()
            .map(|e| format!("{}/{} (table {})", e.source, e.target, e.spec.name))
            .collect();
        eprintln!(
            "error: {}: no reconciliation of {path}{}; configured: {}",
            file.display(),
            table.map(|t| format!(" named {t}")).unwrap_or_default(),
            if known.is_empty() {
                "none (add reconcile: under a path)".to_string()
            } else {
                known.join(", ")
            }
        );
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    if !has_state {
        eprintln!(
            "note: no state_dir: nothing is remembered from earlier runs, so every discrepancy is transient and the exit code cannot report persistent ones"
        );
    }
    let cancel = lagwatch::shutdown::on_signal();
    let mut runs = Vec::new();
    let mut failed = false;
    let mut persistent = 0u64;
    let show = crate::progress::wanted();
    for e in &entries {
        let file = e.progress_file();
        let result = if show {
            let lines = crate::progress::Lines::new(&e.spec.name, file.as_deref());
            let result = e.run_once_observed(&cancel, &lines).await;
            lines.finish();
            result
        } else {
            e.run_once(&cancel).await
        };
        match result {
            Ok(out) => {
                crate::progress::remember(file.as_deref(), out.source.rows, out.target.rows);
                persistent += out.tally.persistent_total();
                runs.push((e.clone(), e.last_run(), e.discrepancies()));
            }
            Err(err) => {
                eprintln!(
                    "error: reconciling {}/{} table {}: {err}",
                    e.source, e.target, e.spec.name
                );
                failed = true;
                runs.push((e.clone(), e.last_run(), Vec::new()));
            }
        }
    }
    match format {
        Format::Json => {
            let body: Vec<serde_json::Value> = runs
                .iter()
                .map(|(e, last, keys)| {
                    serde_json::json!({
                        "source": e.source,
                        "target": e.target,
                        "table": e.spec.name,
                        "run": last,
                        "discrepancies": keys,
                    })
                })
                .collect();
            let text = serde_json::to_string_pretty(&serde_json::json!({ "runs": body }))
                .unwrap_or_default();
            println!("{text}");
        }
        Format::Csv => {
            if let Err(e) = write_csv(runs.iter().flat_map(|(_, _, keys)| keys)) {
                eprintln!("error: writing the CSV to stdout: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(EXIT_RUN_FAILED)
    } else if persistent > 0 {
        ExitCode::from(EXIT_PERSISTENT)
    } else {
        ExitCode::SUCCESS
    }
}

/// `lagwatch report`: what is wrong with the flags or the file is refused (exit 2) before the
/// instance is asked; what goes wrong asking it is an error (exit 1).
async fn report(
    config: Option<&std::path::Path>,
    since: &str,
    format: ReportFormat,
    url: Option<reqwest::Url>,
) -> anyhow::Result<ExitCode> {
    if let Err(e) = lagwatch::contracts::window(Some(since)) {
        eprintln!("error: --since {since}: {e}");
        return Ok(ExitCode::from(EXIT_BAD_CONFIG));
    }
    let base = match (url, config) {
        (Some(url), _) if matches!(url.scheme(), "http" | "https") => url,
        (Some(url), _) => {
            eprintln!(
                "error: --url {}: lagwatch answers over http or https, such as https://lagwatch.example:9464",
                shown(&url)
            );
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
        (None, Some(file)) => match KINDS.load(file) {
            Ok(cfg) => listen_url(cfg.server.listen.unwrap_or(DEFAULT_LISTEN))?,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(EXIT_BAD_CONFIG));
            }
        },
        (None, None) => {
            eprintln!("error: give --config FILE (the instance's configuration) or --url URL");
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
    };
    let contracts = fetch_contracts(&base, since).await?;
    let text = match format {
        ReportFormat::Md => lagwatch::report::markdown(&contracts),
        ReportFormat::Html => lagwatch::report::html(&contracts),
    };
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, text.as_bytes())
        .and_then(|()| std::io::Write::flush(&mut out))
        .context("writing the report to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Where an instance listening on `listen` is asked from this machine: an unspecified address
/// (`0.0.0.0`, `[::]`) listens on loopback too.
fn listen_url(listen: SocketAddr) -> anyhow::Result<reqwest::Url> {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    reqwest::Url::parse(&format!("http://{addr}/"))
        .with_context(|| format!("server.listen {listen} makes no URL: pass --url"))
}

/// A URL as messages show it: without the password it may carry.
fn shown(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// `GET /api/v1/contracts?since=` of the instance at `base` (a path in `base` is kept, for an
/// instance behind a proxy).
async fn fetch_contracts(
    base: &reqwest::Url,
    since: &str,
) -> anyhow::Result<lagwatch::contracts::ContractsReport> {
    let mut url = base.clone();
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    let mut url = url
        .join("api/v1/contracts")
        .with_context(|| format!("--url {}: not a base URL", shown(base)))?;
    url.set_query(None);
    url.query_pairs_mut().append_pair("since", since);
    let at = shown(base);
    let asked = shown(&url);
    let client = lagwatch::net::client().context("setting up the HTTP client")?;
    let response = client
        .get(url)
        .timeout(std::time::Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "the instance is not reachable at {at}: {}. Is `lagwatch run` up there? Pass --url if it answers elsewhere (https:// when it serves TLS)",
                lagwatch::net::cause(&e, "")
            )
        })?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| {
        anyhow::anyhow!(
            "reading the answer of {at}: {}",
            lagwatch::net::cause(&e, "")
        )
    })?;
    match status.as_u16() {
        200 => serde_json::from_slice(&body).with_context(|| {
            format!("the answer of {asked} is not a contracts report: is it lagwatch, as new as this command?")
        }),
        400 => {
            let why = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| lagwatch::net::excerpt(&body));
            anyhow::bail!("the instance at {at} refused the request (HTTP 400): {why}")
        }
        401 => anyhow::bail!(
            "the instance at {at} asks for credentials (HTTP 401): give them in --url, as https://USER:PASSWORD@host:port"
        ),
        404 => anyhow::bail!(
            "{at} has no /api/v1/contracts (HTTP 404): is it lagwatch, as new as this command?"
        ),
        code => anyhow::bail!(
            "the instance at {at} answered HTTP {code}: {}",
            lagwatch::net::excerpt(&body)
        ),
    }
}

/// The discrepant keys of `runs` as CSV, a header line first; fields are quoted only when
/// they hold a comma, a quote or a line break.
fn write_csv<'a>(
    keys: impl Iterator<Item = &'a lagwatch::reconcile::DiscrepancyView>,
) -> csv::Result<()> {
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_record([
        "source",
        "target",
        "table",
        "key",
        "kind",
        "persistence",
        "first_seen",
        "source_version",
        "replica_version",
        "source_changed",
    ])?;
    for d in keys {
        out.write_record([
            d.source.clone(),
            d.target.clone(),
            d.table.clone(),
            d.key.clone(),
            d.kind.label().to_string(),
            d.persistence.to_string(),
            d.first_seen
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            d.source_version.clone().unwrap_or_default(),
            d.replica_version.clone().unwrap_or_default(),
            d.source_changed
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default(),
        ])?;
    }
    out.flush()?;
    Ok(())
}

/// Validates `--web.config.file` before anything starts; a bad file is a bad configuration.
fn load_web_config(
    file: Option<&std::path::Path>,
) -> Result<Option<Arc<lagwatch::web::WebSecurity>>, ExitCode> {
    match file.map(lagwatch::web::WebSecurity::load).transpose() {
        Ok(web) => Ok(web),
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(EXIT_BAD_CONFIG))
        }
    }
}

async fn serve(
    mut config: Config,
    listen: SocketAddr,
    web: Option<Arc<lagwatch::web::WebSecurity>>,
    shutdown: tokio_util::sync::CancellationToken,
    reload: Option<Supervisor>,
) -> anyhow::Result<ExitCode> {
    if config.file.is_empty() {
        config.file = "config".to_string();
    }
    let app = match App::build(config) {
        Ok(app) => app,
        Err(AppError::Config(e)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
        Err(e) => return Err(e).context("building the monitor"),
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    // How the configuration can be reloaded, next to where lagwatch listens: the first thing
    // to check when `POST /-/reload` answers 403.
    let reloads = match &reload {
        Some(s) if s.lifecycle() => "SIGHUP or POST /-/reload (--web.enable-lifecycle)",
        Some(_) => "SIGHUP only (POST /-/reload needs --web.enable-lifecycle)",
        None => "none (the configuration is generated)",
    };
    tracing::info!(
        address = %local,
        paths = app.engine.paths().len(),
        reload = reloads,
        "lagwatch is running."
    );
    let scheme = if web.as_ref().is_some_and(|w| w.tls()) {
        "https"
    } else {
        "http"
    };
    // Tests and scripts read this line to find the port when listening on port 0.
    println!("lagwatch listening on {scheme}://{local}");
    match reload {
        Some(supervisor) => supervisor.run(app, listener, web, shutdown).await,
        None => app.run_secured(listener, web, shutdown).await,
    }
    .context("serving HTTP")?;
    tracing::info!("lagwatch stopped.");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// `lagwatch <command> --help` describes every option: each has a help text.
    #[test]
    fn every_option_of_every_command_is_described() {
        let cmd = super::Args::command();
        let mut missing = Vec::new();
        let top = cmd.get_arguments().map(|a| ("lagwatch", a));
        let subs = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .flat_map(|s| s.get_arguments().map(move |a| (s.get_name(), a)));
        for (command, arg) in top.chain(subs) {
            if !arg.is_hide_set() && arg.get_help().is_none() {
                missing.push(format!("{command} {}", arg.get_id()));
            }
        }
        assert!(missing.is_empty(), "options without help: {missing:?}");
    }
}
