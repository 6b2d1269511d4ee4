//! The `codebeaker` binary: `serve` starts the gateway, `keys` edits the keys file, and
//! `run`, `batch` and `session` are the client (src/cli/, docs/cli.md).

mod cli;

use clap::{Parser, Subcommand};
use cli::keys::KeysCommand;
use codebeaker::config::Settings;
use codebeaker::startup::{shutdown_signal, Application};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "codebeaker",
    version,
    about = "Serverless-style function gateway on warm Docker containers, and its client"
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
    /// Manage API keys (the keys file, on the gateway's host).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run a program file on a gateway and exit with its exit code.
    Run(cli::run::RunArgs),
    /// Run a program file against every input of a JSON Lines file (NDJSON out).
    Batch(cli::batch::BatchArgs),
    /// Open a session and run commands from stdin.
    Session(cli::session::SessionArgs),
}

/// sysexits EX_CONFIG-style code for a bad configuration (as linkerd does).
const EXIT_CONFIG: u8 = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let keys = match cli.command {
        Some(Command::Run(a)) => return cli::run::run(a).await,
        Some(Command::Batch(a)) => return cli::batch::run(a).await,
        Some(Command::Session(a)) => return cli::session::run(a).await,
        Some(Command::Keys(k)) => Some(k),
        None | Some(Command::Serve) => None,
    };
    let loaded = if keys.is_none() {
        Settings::load(cli.config.as_deref())
    } else {
        Settings::load_unvalidated(cli.config.as_deref())
    };
    let settings = match loaded {
        Ok(s) => s,
        Err(e) => {
            eprintln!("codebeaker: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match keys {
        None => {
            codebeaker::telemetry::init(settings.server.log_format);
            serve(settings).await
        }
        Some(command) => {
            let Some(path) = settings.auth.keys_file.clone() else {
                eprintln!("codebeaker: auth.keys_file is not set");
                return ExitCode::from(EXIT_CONFIG);
            };
            cli::keys::run(command, &path)
        }
    }
}

async fn serve(settings: Settings) -> ExitCode {
    let shutdown = CancellationToken::new();
    let app = match Application::build(settings, shutdown.clone()).await {
        Ok(a) => a,
        Err(e) if e.is_configuration() => {
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
    let result = app.run().await;
    codebeaker::telemetry::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codebeaker: server error: {e}");
            ExitCode::FAILURE
        }
    }
}
