//! `emulate`: the emulated estate as a process of its own, for `lagwatch emulate` and the
//! `lagwatch-emulator` binary. Like the product's command line, this edge alone uses `anyhow`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::{BlobSink, Emulator, EmulatorOptions, LakeSink, Scenario};

/// The environment variable `emulate --lake-blob-url` reads the account key from.
pub const LAKE_KEY_ENV: &str = "LAGWATCH_EMULATOR_LAKE_KEY";

/// Exit code for a bad scenario or lake option, as lagwatch's for a bad configuration.
pub const EXIT_BAD_CONFIG: u8 = 2;

/// Serve emulated Dynamics 365 APIs (Dataverse and its search, Entra, F&O, Azure AI Search,
/// Elasticsearch) on loopback, replicating per a scenario, with a ground-truth endpoint.
#[derive(Debug, clap::Args)]
pub struct EmulateArgs {
    /// Address the emulated APIs answer on, as IP:PORT (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:9470")]
    pub listen: SocketAddr,
    /// Scenario file; the built-in demo scenario if absent.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Directory the scenario's lakes (Synapse Link incremental update folders or table
    /// layout) are written under, one folder per container; default a new directory in the
    /// system temp dir, removed on exit.
    #[arg(long)]
    pub lake_dir: Option<PathBuf>,
    /// Write the lakes to this Azure Storage account instead, one container per lake:
    /// `https://<account>.blob.core.windows.net`, or `http://127.0.0.1:10000/<account>`
    /// for Azurite. The account key is read from LAGWATCH_EMULATOR_LAKE_KEY (never from
    /// the command line, where other users could see it).
    #[arg(long, value_name = "URL", conflicts_with = "lake_dir")]
    pub lake_blob_url: Option<String>,
}

/// Serves the estate of `args` until SIGTERM or SIGINT.
///
/// # Errors
/// Start-up failures (cannot bind, cannot write the lakes), with context.
pub async fn emulate(args: EmulateArgs) -> anyhow::Result<ExitCode> {
    let EmulateArgs {
        listen,
        scenario,
        lake_dir,
        lake_blob_url,
    } = args;
    let lake_sink = match &lake_blob_url {
        None => None,
        Some(url) => {
            let key = std::env::var(LAKE_KEY_ENV).unwrap_or_default();
            if key.trim().is_empty() {
                eprintln!("error: --lake-blob-url needs the account key in {LAKE_KEY_ENV}");
                return Ok(ExitCode::from(EXIT_BAD_CONFIG));
            }
            match BlobSink::for_account_url(url, &key) {
                Ok(sink) => Some(Arc::new(sink) as Arc<dyn LakeSink>),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(EXIT_BAD_CONFIG));
                }
            }
        }
    };
    let scenario = match &scenario {
        Some(path) => Scenario::load(path),
        None => Scenario::demo(),
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
    let emulator = Emulator::with_options(
        scenario,
        EmulatorOptions {
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
        .serve(listener, lagwatch::shutdown::on_signal())
        .await
        .context("serving the emulator")?;
    Ok(ExitCode::SUCCESS)
}
