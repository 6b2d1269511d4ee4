//! `codebeaker keys create | list | revoke | rotate`: the keys file (`auth.keys_file`),
//! edited in place on the gateway's host, not over HTTP. The gateway reloads the file when
//! it changes (and on SIGHUP), so a revocation or rotation takes effect within
//! `auth.reload_interval_ms`. Secrets are printed once, by `create` and `rotate`, and
//! never stored: the file holds their SHA-256.

use codebeaker::auth::keys::{self, KeyRecord, KeysFile};
use codebeaker::domain::{Quota, Scope};
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

/// sysexits `EX_USAGE`-style code for a wrong argument, as `serve` has for its config.
const EXIT_USAGE: u8 = 64;

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
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
    /// List the keys: id, name, tenant, scopes, created, revoked (never a secret or hash).
    List {
        /// One JSON object per key instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key (by id, or the whole key): the gateway refuses it from its next reload.
    Revoke { id: String },
    /// Give a key a new secret, printed once; the old secret stops working at the gateway's
    /// next reload. Name, tenant, scopes, limits and webhook secret stay.
    Rotate { id: String },
}

pub fn run(command: KeysCommand, path: &Path) -> ExitCode {
    match command {
        KeysCommand::Create {
            name,
            tenant,
            scopes,
            rate_per_second,
            burst,
            max_concurrent,
            max_sessions,
            if_none,
        } => {
            if if_none {
                let has_keys = keys::read_file(path).is_ok_and(|f| !f.keys.is_empty());
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
                        return ExitCode::from(EXIT_USAGE);
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
            if let Err(e) = keys::append_to_file(path, record) {
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
        KeysCommand::List { json } => match keys::read_file(path) {
            Ok(file) => {
                list(&file, json);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("codebeaker: {e}");
                ExitCode::FAILURE
            }
        },
        KeysCommand::Revoke { id } => {
            let id = keys::id_of(&id);
            match keys::revoke(path, id) {
                Ok(()) => {
                    eprintln!(
                        "Revoked key {id} in {}; the gateway refuses it from its next reload.",
                        path.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("codebeaker: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        KeysCommand::Rotate { id } => {
            let id = keys::id_of(&id);
            match keys::rotate(path, id) {
                Ok(key) => {
                    eprintln!(
                        "Rotated key {id} in {}: the old secret stops working at the gateway's next reload. The new one is shown only now:",
                        path.display()
                    );
                    println!("{key}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("codebeaker: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn scopes(k: &KeyRecord) -> String {
    k.scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// What `list` shows of a record: nothing secret (no hash, no webhook secret).
fn list(file: &KeysFile, as_json: bool) {
    if as_json {
        for k in &file.keys {
            let line = json!({"id": k.id, "name": k.name, "tenant": k.tenant,
                              "scopes": k.scopes, "createdAt": k.created_at,
                              "revoked": k.revoked});
            println!("{line}");
        }
        return;
    }
    let rows: Vec<[String; 6]> = file
        .keys
        .iter()
        .map(|k| {
            [
                k.id.clone(),
                k.name.clone(),
                k.tenant.clone(),
                scopes(k),
                k.created_at.clone(),
                if k.revoked { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    let header = ["ID", "NAME", "TENANT", "SCOPES", "CREATED", "REVOKED"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}
