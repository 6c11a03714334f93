//! Command line: `demo`, `run`, `check-config`. This and `main.rs` are the only places that use
//! `anyhow`; everything below returns typed errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::app::{App, AppError};
use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "lagwatch",
    version,
    about = "Measures replication lag of Dynamics 365 integrations with active probes."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Monitor an emulated Dynamics 365 landscape on this machine (no cloud account needed).
    Demo {
        /// Address for /metrics, the status page and the API.
        #[arg(long, default_value = "127.0.0.1:9464")]
        listen: SocketAddr,
    },
    /// Monitor the systems of a configuration file.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Overrides server.listen of the file (default 0.0.0.0:9464).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate a configuration file and print what it resolves to.
    CheckConfig { file: PathBuf },
    /// Serve emulated Dynamics 365 APIs (Dataverse, Entra, F&O, Azure AI Search,
    /// Elasticsearch) on loopback, replicating per a scenario, with a ground-truth endpoint.
    Emulate {
        #[arg(long, default_value = "127.0.0.1:9470")]
        listen: SocketAddr,
        /// Scenario file; the built-in demo scenario if absent.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Directory the scenario's lakes (Synapse Link incremental update folders or table
        /// layout) are written under, one folder per container; default a new directory in the
        /// system temp dir, removed on exit.
        #[arg(long)]
        lake_dir: Option<PathBuf>,
        /// Write the lakes to this Azure Storage account instead, one container per lake:
        /// `https://<account>.blob.core.windows.net`, or `http://127.0.0.1:10000/<account>`
        /// for Azurite. The account key is read from LAGWATCH_EMULATOR_LAKE_KEY (never from
        /// the command line, where other users could see it).
        #[arg(long, value_name = "URL", conflicts_with = "lake_dir")]
        lake_blob_url: Option<String>,
    },
}

/// The environment variable `emulate --lake-blob-url` reads the account key from.
pub const LAKE_KEY_ENV: &str = "LAGWATCH_EMULATOR_LAKE_KEY";

/// Exit code for an invalid configuration.
pub const EXIT_BAD_CONFIG: u8 = 2;

/// Runs a parsed command line.
///
/// # Errors
/// Start-up failures (cannot bind, cannot build), with context.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::CheckConfig { file } => Ok(check_config(&file)),
        Command::Emulate {
            listen,
            scenario,
            lake_dir,
            lake_blob_url,
        } => emulate(listen, scenario, lake_dir, lake_blob_url).await,
        Command::Demo { listen } => {
            // The emulator outlives the monitor, which deletes its sentinels on the way out.
            let emulator_stop = tokio_util::sync::CancellationToken::new();
            let (demo, config) = crate::demo::Demo::start(emulator_stop.clone())
                .await
                .context("starting the demo")?;
            println!(
                "lagwatch demo: emulated Dynamics 365 estate on {} (ground truth under /_truth/)",
                demo.emulator_url
            );
            let result = serve(config, listen, crate::shutdown::on_signal()).await;
            emulator_stop.cancel();
            demo.finish().await;
            result
        }
        Command::Run { config, listen } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(EXIT_BAD_CONFIG));
                }
            };
            let listen = listen
                .or(cfg.server.listen)
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 9464)));
            serve(cfg, listen, crate::shutdown::on_signal()).await
        }
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    let config = match Config::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let mut config = config;
    config.file = file.display().to_string();
    let text = config.describe();
    match App::build(config) {
        Ok(_) => {
            println!("{}: valid\n{text}", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

async fn emulate(
    listen: SocketAddr,
    scenario: Option<PathBuf>,
    lake_dir: Option<PathBuf>,
    lake_blob_url: Option<String>,
) -> anyhow::Result<ExitCode> {
    let lake_sink = match &lake_blob_url {
        None => None,
        Some(url) => {
            let key = std::env::var(LAKE_KEY_ENV).unwrap_or_default();
            if key.trim().is_empty() {
                eprintln!("error: --lake-blob-url needs the account key in {LAKE_KEY_ENV}");
                return Ok(ExitCode::from(EXIT_BAD_CONFIG));
            }
            match crate::emulator::BlobSink::for_account_url(url, &key) {
                Ok(sink) => Some(Arc::new(sink) as Arc<dyn crate::emulator::LakeSink>),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(EXIT_BAD_CONFIG));
                }
            }
        }
    };
    let scenario = match &scenario {
        Some(path) => crate::emulator::Scenario::load(path),
        None => crate::emulator::Scenario::demo(),
    };
    let scenario = match scenario {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let emulator = crate::emulator::Emulator::with_options(
        scenario,
        crate::emulator::EmulatorOptions {
            lake_root: lake_dir,
            lake_sink,
        },
    );
    if let Some(root) = emulator.lake_root() {
        emulator
            .flush_lake()
            .await
            .with_context(|| format!("cannot write the lakes under {}", root.display()))?;
        println!("lagwatch emulator writing lakes under {}", root.display());
    } else if let Some(url) = lake_blob_url.filter(|_| !emulator.scenario().lakes.is_empty()) {
        emulator
            .flush_lake()
            .await
            .with_context(|| format!("cannot write the lakes to {url}"))?;
        println!("lagwatch emulator writing lakes to {url}");
    }
    println!("lagwatch emulator listening on http://{local}");
    emulator
        .serve(listener, crate::shutdown::on_signal())
        .await
        .context("serving the emulator")?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    mut config: Config,
    listen: SocketAddr,
    shutdown: tokio_util::sync::CancellationToken,
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
    tracing::info!(address = %local, paths = app.engine.paths().len(), "lagwatch is running.");
    // Tests and scripts read this line to find the port when listening on port 0.
    println!("lagwatch listening on http://{local}");
    app.run(listener, shutdown).await.context("serving HTTP")?;
    tracing::info!("lagwatch stopped.");
    Ok(ExitCode::SUCCESS)
}
