//! `codebeaker serve`: start the gateway.

use clap::{Parser, Subcommand};
use codebeaker::auth::keys::{self, KeysFile};
use codebeaker::config::Settings;
use codebeaker::domain::{Quota, Scope};
use codebeaker::startup::{shutdown_signal, Application};
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
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key: prints the secret once and stores only its hash in the keys file.
    Create {
        /// A human name for the key (shown in the keys file, not secret).
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Comma-separated: execute, sessions, admin.
        #[arg(long, default_value = "execute,sessions")]
        scopes: String,
        #[arg(long, default_value_t = 100)]
        rate_per_second: u32,
        #[arg(long, default_value_t = 200)]
        burst: u32,
        #[arg(long, default_value_t = 16)]
        max_concurrent: u32,
        #[arg(long, default_value_t = 8)]
        max_sessions: u32,
        /// Only create the key if the keys file has none (used by `make run`).
        #[arg(long)]
        if_none: bool,
    },
}

/// sysexits EX_CONFIG-style code for a bad configuration (as linkerd does).
const EXIT_CONFIG: u8 = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, None | Some(Command::Serve));
    let loaded = if serving {
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
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            codebeaker::telemetry::init(settings.server.log_format);
            serve(settings).await
        }
        Command::Keys(KeysCommand::Create {
            name,
            tenant,
            scopes,
            rate_per_second,
            burst,
            max_concurrent,
            max_sessions,
            if_none,
        }) => {
            let Some(path) = settings.auth.keys_file.clone() else {
                eprintln!("codebeaker: auth.keys_file is not set");
                return ExitCode::from(EXIT_CONFIG);
            };
            if if_none {
                let has_keys = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| toml::from_str::<KeysFile>(&t).ok())
                    .is_some_and(|f| !f.keys.is_empty());
                if has_keys {
                    return ExitCode::SUCCESS;
                }
            }
            let mut parsed = Vec::new();
            for s in scopes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match Scope::parse(s) {
                    Some(sc) => parsed.push(sc),
                    None => {
                        eprintln!("codebeaker: unknown scope {s:?} (execute, sessions, admin)");
                        return ExitCode::from(EXIT_CONFIG);
                    }
                }
            }
            let limits = Quota {
                rate_per_second,
                burst,
                max_concurrent,
                max_sessions,
                ..Quota::default()
            };
            let (key, record) = keys::generate(&name, &tenant, parsed, limits);
            let id = record.id.clone();
            let webhook_secret = record.webhook_secret.clone().unwrap_or_default();
            if let Err(e) = keys::append_to_file(&path, record) {
                eprintln!("codebeaker: {e}");
                return ExitCode::FAILURE;
            }
            eprintln!(
                "Created key {id} for tenant {tenant:?} in {}. The secret is shown only now:",
                path.display()
            );
            println!("{key}");
            eprintln!(
                "Webhook callbacks of this key are signed with {webhook_secret} (kept in the keys file)."
            );
            ExitCode::SUCCESS
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
