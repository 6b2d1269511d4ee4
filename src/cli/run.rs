//! `codebeaker run FILE`: one `POST /v1/execute`, its answer printed, the program's exit
//! code returned.
//!
//! What goes where: the result (`output`, pretty JSON, when there is one) then the
//! program's stdout on stdout, raw; its stderr on stderr, raw; then, when it failed, one
//! line `codebeaker: <kind>: <message>` on stderr. `--json` prints the whole answer instead.

use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::client::{Client, Connection};
use super::{language_for, read_text, text_or_file, CliError};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The program's file; its extension names the language (.py, .js, .ts, .go, .cs,
    /// .java, .c, .cpp/.cc, .rs, .rb, .php, .sh).
    pub file: PathBuf,
    /// The language (a name or alias of `GET /v1/languages`), instead of the extension's.
    #[arg(long, short)]
    pub language: Option<String>,
    /// The input (`input_data`): JSON, or @FILE holding JSON.
    #[arg(long, short)]
    pub input: Option<String>,
    /// The program's standard input: TEXT, @FILE, or @- for this command's own stdin.
    #[arg(long)]
    pub stdin: Option<String>,
    /// One argument of the program (repeat for more).
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Packages the program imports (comma-separated): it runs on an image variant that
    /// has them.
    #[arg(long, value_delimiter = ',')]
    pub packages: Vec<String>,
    /// `edge` (the default: `input_data` in, `result` out) or `plain` (the whole program).
    #[arg(long, value_parser = ["edge", "plain"])]
    pub mode: Option<String>,
    /// Run-time limit in milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Memory limit in MB.
    #[arg(long)]
    pub memory_mb: Option<u64>,
    /// Print the gateway's whole answer as JSON instead.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn run(a: RunArgs) -> ExitCode {
    match execute(&a).await {
        Ok(answer) => print(&answer, a.json),
        Err(e) => e.report(),
    }
}

/// The request body: only what was given (the route refuses unknown members, not absent
/// ones).
pub fn body(a: &RunArgs) -> Result<Value, CliError> {
    let mut b = Map::new();
    b.insert(
        "language".into(),
        json!(language_for(&a.file, a.language.as_deref())?),
    );
    b.insert("code".into(), json!(read_text(&a.file)?));
    if let Some(input) = &a.input {
        let text = text_or_file(input)?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| CliError::Input(format!("--input is not JSON: {e}")))?;
        b.insert("input".into(), value);
    }
    if let Some(stdin) = &a.stdin {
        b.insert("stdin".into(), json!(text_or_file(stdin)?));
    }
    if !a.args.is_empty() {
        b.insert("args".into(), json!(a.args));
    }
    let packages: Vec<&str> = a
        .packages
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    if !packages.is_empty() {
        b.insert("packages".into(), json!(packages));
    }
    if let Some(m) = &a.mode {
        b.insert("mode".into(), json!(m));
    }
    if let Some(t) = a.timeout_ms {
        b.insert("timeoutMs".into(), json!(t));
    }
    if let Some(m) = a.memory_mb {
        b.insert("memoryLimitMb".into(), json!(m));
    }
    Ok(Value::Object(b))
}

async fn execute(a: &RunArgs) -> Result<Value, CliError> {
    let body = body(a)?;
    let client = Client::new(&a.conn)?;
    client.json(client.post("/v1/execute").json(&body)).await
}

/// The exit code of a program that ran: its own, else 1 when it failed (a compile error,
/// a timeout, a missing result).
pub fn exit_code_of(answer: &Value) -> u8 {
    let code = answer["exitCode"].as_i64();
    if answer["success"].as_bool() == Some(true) {
        return 0;
    }
    match code {
        Some(n @ 1..=255) => n as u8,
        _ => 1,
    }
}

fn print(answer: &Value, whole: bool) -> ExitCode {
    let code = exit_code_of(answer);
    let mut out = std::io::stdout().lock();
    // A closed stdout (`| head`) is not this command's failure: ignore write errors.
    if whole {
        let _ = writeln!(out, "{}", pretty(answer));
        return ExitCode::from(code);
    }
    let output = &answer["output"];
    if !output.is_null() {
        let _ = writeln!(out, "{}", pretty(output));
    }
    let _ = out.write_all(answer["stdout"].as_str().unwrap_or("").as_bytes());
    let _ = out.flush();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(answer["stderr"].as_str().unwrap_or("").as_bytes());
    if answer["truncated"].as_bool() == Some(true) {
        let _ = writeln!(err, "codebeaker: stdout or stderr was cut at its size cap");
    }
    if let Some(kind) = answer["error"]["kind"].as_str() {
        let message = answer["error"]["message"].as_str().unwrap_or("");
        let _ = writeln!(err, "codebeaker: {kind}: {}", message.trim_end());
    }
    ExitCode::from(code)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_is_the_programs_else_one_when_it_failed() {
        assert_eq!(exit_code_of(&json!({"success": true, "exitCode": 0})), 0);
        assert_eq!(exit_code_of(&json!({"success": false, "exitCode": 3})), 3);
        assert_eq!(
            exit_code_of(&json!({"success": false, "exitCode": null})),
            1
        );
        // A program that exited 0 without a result failed all the same.
        assert_eq!(exit_code_of(&json!({"success": false, "exitCode": 0})), 1);
        assert_eq!(exit_code_of(&json!({"success": false, "exitCode": -9})), 1);
    }
}
