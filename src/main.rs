//! `codebeaker serve`: start the gateway.

use clap::{Parser, Subcommand};
use codebeaker::config::Settings;
use codebeaker::startup::{shutdown_signal, Application, StartupError};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "codebeaker",
    version,
    about = "Serverless-style function gateway on warm Docker containers"
)]
struct Cli {
    /// TOML config file (optional; environment variables CODEBEAKER_SECTION__KEY override it).
    #[arg(long, short, env = "CODEBEAKER_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
}

/// sysexits EX_CONFIG-style code for a bad configuration (as linkerd does).
const EXIT_CONFIG: u8 = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("codebeaker: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    codebeaker::telemetry::init(settings.server.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
    }
}

async fn serve(settings: Settings) -> ExitCode {
    let shutdown = CancellationToken::new();
    let app = match Application::build(settings, shutdown.clone()).await {
        Ok(a) => a,
        Err(e @ StartupError::Config(_)) => {
            eprintln!("codebeaker: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(e) => {
            eprintln!("codebeaker: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        port = app.port(),
        "CodeBeaker gateway listening; warming pools"
    );
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        shutdown.cancel();
    });
    match app.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codebeaker: server error: {e}");
            ExitCode::FAILURE
        }
    }
}
