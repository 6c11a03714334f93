//! `lagwatch-emulator`: the emulated Dynamics 365 estate on its own, the same as
//! `lagwatch emulate`.

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "lagwatch-emulator", version)]
struct Args {
    #[command(flatten)]
    emulate: lagwatch_emulator::cli::EmulateArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(lagwatch::logging::filter(
            std::env::var("RUST_LOG").ok().as_deref(),
        ))
        .with_ansi(false)
        .event_format(lagwatch::logging::Lines(
            lagwatch::logging::LogFormat::Logfmt,
        ))
        .with_writer(std::io::stderr)
        .init();
    match lagwatch_emulator::cli::emulate(args.emulate).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
