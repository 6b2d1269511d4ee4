//! `codebeaker session`: a session over REST (`/v1/sessions`), driven by stdin lines until
//! `:quit` or end of input, then closed.
//!
//! A line is a command split like a shell would (quotes, no expansion) into an argv for
//! `execute_shell`: its stdout goes to stdout, its stderr to stderr, and a failure's one
//! line (`exit code 1: …`) to stderr. Lines starting with `:` are the client's own:
//! `:put LOCAL [REMOTE]`, `:get REMOTE [LOCAL]` (to stdout without LOCAL), `:ls [DIR]`,
//! `:help`, `:quit`. The exit code is the last command's (0, a shell command's exit code, 1
//! for a failed `:put`/`:get`, 2 for one the gateway refused), as `sh` does with a script.

use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::client::{Client, Connection};
use super::CliError;

#[derive(Debug, clap::Args)]
pub struct SessionArgs {
    /// The session's language (its image and tools).
    #[arg(long, short, default_value = "python")]
    pub language: String,
    #[command(flatten)]
    pub conn: Connection,
}

const HELP: &str = "a line is a command (`python3 main.py`, `ls -la`); \
:put LOCAL [REMOTE] uploads, :get REMOTE [LOCAL] downloads, :ls [DIR] lists, :quit ends";

struct Session {
    client: Client,
    id: String,
}

pub async fn run(a: SessionArgs) -> ExitCode {
    let client = match Client::new(&a.conn) {
        Ok(c) => c,
        Err(e) => return e.report(),
    };
    let created = client
        .json(
            client
                .post("/v1/sessions")
                .json(&json!({"language": a.language})),
        )
        .await;
    let id = match created {
        Ok(v) => v["sessionId"].as_str().unwrap_or_default().to_string(),
        Err(e) => return e.report(),
    };
    let session = Session { client, id };
    let interactive = std::io::stdin().is_terminal();
    eprintln!(
        "codebeaker: session {} ({}) is open; {HELP}",
        session.id, a.language
    );
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut status: u8 = 0;
    loop {
        if interactive {
            eprint!("codebeaker> ");
            let _ = std::io::stderr().flush();
        }
        let line = tokio::select! {
            line = lines.next_line() => line,
            _ = tokio::signal::ctrl_c() => Ok(None),
        };
        let line = match line {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                eprintln!("codebeaker: cannot read stdin: {e}");
                status = 1;
                break;
            }
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == ":quit" || line == ":exit" || line == ":q" {
            break;
        }
        match session.line(line).await {
            Ok(code) => status = code,
            Err(e) => {
                let fatal = matches!(
                    e,
                    CliError::Unreachable { .. }
                        | CliError::NoKey { .. }
                        | CliError::WrongKey { .. }
                ) || matches!(
                    &e,
                    CliError::Refused {
                        status: 404 | 410,
                        ..
                    }
                );
                eprintln!("codebeaker: {e}");
                status = e.exit_code();
                if fatal {
                    // The session is gone or cannot be reached: nothing more to do.
                    return ExitCode::from(status);
                }
            }
        }
    }
    if let Err(e) = session.close().await {
        eprintln!("codebeaker: closing the session: {e}");
    } else {
        eprintln!("codebeaker: session {} closed", session.id);
    }
    ExitCode::from(status)
}

impl Session {
    /// One command's `{success, result, error, …}`.
    async fn command(&self, command: Value) -> Result<Value, CliError> {
        let path = format!("/v1/sessions/{}/commands", self.id);
        self.client
            .json(self.client.post(&path).json(&command))
            .await
    }

    async fn close(&self) -> Result<(), CliError> {
        let path = format!("/v1/sessions/{}", self.id);
        self.client
            .send(self.client.request(reqwest::Method::DELETE, &path))
            .await
            .map(drop)
    }

    /// Runs one line; returns its status.
    async fn line(&self, line: &str) -> Result<u8, CliError> {
        let words = shlex::split(line)
            .ok_or_else(|| CliError::Input("unbalanced quotes in the line".into()))?;
        let Some((first, rest)) = words.split_first() else {
            return Ok(0);
        };
        match (first.as_str(), rest) {
            (":put", [local]) => self.put(local, file_name(local)?).await,
            (":put", [local, remote]) => self.put(local, remote).await,
            (":get", [remote]) => self.get(remote, None).await,
            (":get", [remote, local]) => self.get(remote, Some(local)).await,
            (":ls", []) => self.ls("/workspace").await,
            (":ls", [dir]) => self.ls(dir).await,
            (":help", _) => {
                eprintln!("codebeaker: {HELP}");
                Ok(0)
            }
            (c, _) if c.starts_with(':') => Err(CliError::Input(format!(
                "{c}: not a client command, or wrong arguments; {HELP}"
            ))),
            _ => self.shell(first, rest).await,
        }
    }

    async fn shell(&self, name: &str, args: &[String]) -> Result<u8, CliError> {
        let r = self
            .command(json!({"type": "execute_shell", "commandName": name, "args": args}))
            .await?;
        let result = &r["result"];
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(result["stdout"].as_str().unwrap_or("").as_bytes());
        let _ = out.flush();
        let _ = std::io::stderr().write_all(result["stderr"].as_str().unwrap_or("").as_bytes());
        if r["success"].as_bool() == Some(true) {
            return Ok(0);
        }
        eprintln!(
            "codebeaker: {}",
            r["error"].as_str().unwrap_or("the command failed")
        );
        Ok(match result["exitCode"].as_i64() {
            Some(n @ 1..=255) => n as u8,
            _ => 1,
        })
    }

    async fn put(&self, local: &str, remote: &str) -> Result<u8, CliError> {
        let bytes = std::fs::read(local)
            .map_err(|e| CliError::Input(format!("cannot read {local}: {e}")))?;
        let content = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let r = self
            .command(
                json!({"type": "write_file", "path": remote, "content": content,
                            "encoding": "base64"}),
            )
            .await?;
        if !failed(&r) {
            eprintln!(
                "codebeaker: put {local} -> {remote} ({} bytes)",
                bytes.len()
            );
        }
        Ok(u8::from(failed(&r)))
    }

    async fn get(&self, remote: &str, local: Option<&String>) -> Result<u8, CliError> {
        let r = self
            .command(json!({"type": "read_file", "path": remote, "encoding": "base64"}))
            .await?;
        if failed(&r) {
            return Ok(1);
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(r["result"]["content"].as_str().unwrap_or(""))
            .map_err(|e| CliError::Failed(format!("the file's content is not base64: {e}")))?;
        match local {
            Some(path) => {
                std::fs::write(path, &bytes)
                    .map_err(|e| CliError::Failed(format!("cannot write {path}: {e}")))?;
                eprintln!("codebeaker: get {remote} -> {path} ({} bytes)", bytes.len());
            }
            None => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&bytes);
                let _ = out.flush();
            }
        }
        Ok(0)
    }

    async fn ls(&self, dir: &str) -> Result<u8, CliError> {
        let r = self
            .command(json!({"type": "list_directory", "path": dir}))
            .await?;
        if failed(&r) {
            return Ok(1);
        }
        let text = serde_json::to_string_pretty(&r["result"]).unwrap_or_default();
        println!("{text}");
        Ok(0)
    }
}

/// Prints a failed command's line; true if it failed.
fn failed(r: &Value) -> bool {
    if r["success"].as_bool() == Some(true) {
        return false;
    }
    eprintln!(
        "codebeaker: {}",
        r["error"].as_str().unwrap_or("the command failed")
    );
    true
}

fn file_name(local: &str) -> Result<&str, CliError> {
    Path::new(local)
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CliError::Input(format!("{local} names no file; give :put a REMOTE path")))
}
