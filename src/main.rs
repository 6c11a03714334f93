use std::process::ExitCode;

use clap::Parser;

mod cli;
mod progress;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(lagwatch::logging::filter(
            std::env::var("RUST_LOG").ok().as_deref(),
        ))
        .with_ansi(false)
        .event_format(lagwatch::logging::Lines(args.log_format))
        .with_writer(std::io::stderr)
        .init();
    match cli::run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
