//! Session commands: a tagged union on `type`, executed on the session's container.

use codebeaker_proto::{CommandErrorKind, FileCommand, RunRequest, ShellRequest};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;

use super::{Session, SessionError, Sessions};
use crate::auth::Principal;
use crate::config::Settings;

/// Application error codes inside a command outcome, and for session-level JSON-RPC
/// errors. Documented in docs/jsonrpc.md.
pub mod codes {
    pub const SESSION_NOT_FOUND: i64 = -32001;
    pub const SESSION_BUSY: i64 = -32002;
    pub const SESSION_LIMIT_REACHED: i64 = -32003;
    pub const UNAUTHORIZED: i64 = -32004;
    pub const PATH_OUTSIDE_WORKSPACE: i64 = -32005;
    pub const COMMAND_TIMEOUT: i64 = -32006;
    pub const COMMAND_FAILED: i64 = -32007;
    pub const PROGRAM_ERROR: i64 = -32008;
    pub const SERVER_ERROR: i64 = -32010;
    pub const OVERLOADED: i64 = -32011;
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShellParams {
    command_name: String,
    #[serde(default)]
    args: Vec<String>,
    working_directory: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    timeout_ms: Option<u64>,
    stdin: Option<String>,
    #[serde(default)]
    stream: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunCodeParams {
    code: String,
    #[serde(default = "empty_object")]
    input: Value,
    timeout_ms: Option<u64>,
}

fn empty_object() -> Value {
    json!({})
}

/// A parsed command.
#[derive(Debug)]
pub enum Command {
    File(FileCommand),
    Shell(ShellParams),
    RunCode(RunCodeParams),
}

impl Command {
    /// Parses a command object; the error text is for "invalid params".
    pub fn parse(v: Value) -> Result<Command, String> {
        let t = v
            .get("type")
            .and_then(Value::as_str)
            .ok_or("command.type is required")?
            .to_string();
        let t = t.as_str();
        match t {
            "execute_shell" => serde_json::from_value(v).map(Command::Shell).map_err(|e| format!("execute_shell: {e}")),
            "run_code" => serde_json::from_value(v).map(Command::RunCode).map_err(|e| format!("run_code: {e}")),
            "write_file" | "read_file" | "list_directory" | "create_directory" | "delete_file" | "copy_file" => {
                serde_json::from_value(v).map(Command::File).map_err(|e| format!("{t}: {e}"))
            }
            other => Err(format!(
                "unknown command type {other:?}; expected write_file, read_file, list_directory, create_directory, delete_file, copy_file, execute_shell or run_code"
            )),
        }
    }
}

/// `{success, result, error, durationMs}`, the `session.execute` result.
pub fn outcome(
    success: bool,
    result: Value,
    error: Option<(i64, &str, String)>,
    started: Instant,
) -> Value {
    json!({
        "success": success,
        "result": result,
        "error": error.map(|(code, kind, message)| json!({"code": code, "kind": kind, "message": message})),
        "durationMs": started.elapsed().as_millis() as u64,
    })
}

fn command_error(kind: CommandErrorKind, message: String) -> (i64, &'static str, String) {
    match kind {
        CommandErrorKind::PathOutsideWorkspace => (
            codes::PATH_OUTSIDE_WORKSPACE,
            "path_outside_workspace",
            message,
        ),
        CommandErrorKind::NotFound => (codes::COMMAND_FAILED, "not_found", message),
        CommandErrorKind::AlreadyExists => (codes::COMMAND_FAILED, "already_exists", message),
        CommandErrorKind::TooLarge => (codes::COMMAND_FAILED, "too_large", message),
        CommandErrorKind::InvalidArgument => (codes::COMMAND_FAILED, "invalid_argument", message),
        CommandErrorKind::Io => (codes::COMMAND_FAILED, "io_error", message),
    }
}

/// Runs one command on the session. `on_output(stream, data)` receives streamed output of
/// `execute_shell` with `stream: true`.
pub async fn execute(
    sessions: &Sessions,
    settings: &Settings,
    caller: &Principal,
    session: &Session,
    cmd: Command,
    on_output: &mut (dyn FnMut(&str, String) + Send),
) -> Result<Value, SessionError> {
    let limits = &settings.limits;
    let language = session.language();
    // The caller's own maximum applies on top of the server's.
    let key_max = caller.limits.max_timeout_ms.unwrap_or(u64::MAX);
    let shell_max = sessions.settings().max_command_timeout_ms.min(key_max);
    let run_max = limits.max_timeout_ms.min(key_max);
    sessions
        .with_container(session, async move |c| {
            let started = Instant::now();
            match cmd {
                Command::File(f) => match c.file(f).await? {
                    Ok(result) => Ok(outcome(true, result, None, started)),
                    Err((kind, msg)) => Ok(outcome(false, Value::Null, Some(command_error(kind, msg)), started)),
                },
                Command::Shell(p) => {
                    let timeout_ms = p.timeout_ms.unwrap_or(limits.default_timeout_ms).min(shell_max);
                    let req = ShellRequest {
                        command_name: p.command_name,
                        args: p.args,
                        working_directory: p.working_directory,
                        env: p.env,
                        timeout_ms,
                        stdin: p.stdin,
                        stream: p.stream,
                        stream_limit_bytes: limits.stream_limit_bytes,
                    };
                    match c.shell(req, on_output).await? {
                        Ok(r) => {
                            let timed_out = r.timed_out;
                            let ok = r.exit_code == Some(0) && !timed_out;
                            let err = timed_out.then(|| {
                                (codes::COMMAND_TIMEOUT, "command_timeout", format!("the command exceeded its {timeout_ms} ms limit"))
                            });
                            Ok(outcome(ok, serde_json::to_value(r).unwrap_or_default(), err, started))
                        }
                        Err((kind, msg)) => Ok(outcome(false, Value::Null, Some(command_error(kind, msg)), started)),
                    }
                }
                Command::RunCode(p) => {
                    let timeout_ms = p.timeout_ms.unwrap_or(limits.default_timeout_ms).min(run_max);
                    let req = RunRequest {
                        source: codebeaker_pool::wrap(language, &p.code),
                        input: p.input,
                        timeout_ms,
                        compile_timeout_ms: limits.compile_timeout_ms,
                        stream_limit_bytes: limits.stream_limit_bytes,
                        result_limit_bytes: limits.result_limit_bytes,
                    };
                    let o = c.run(&req).await?;
                    let err = o.error.as_ref().map(|e| (codes::PROGRAM_ERROR, e.kind.as_str(), e.message.clone()));
                    let result = json!({
                        "success": o.error.is_none(),
                        "output": o.output,
                        "stdout": o.stdout,
                        "stderr": o.stderr,
                        "exitCode": o.exit_code,
                        "durationMs": o.duration_ms,
                        "compileMs": o.compile_ms,
                        "cacheHit": o.cache_hit,
                        "truncated": o.truncated,
                        "error": o.error.as_ref().map(|e| json!({"kind": e.kind.as_str(), "message": e.message})),
                    });
                    Ok(outcome(o.error.is_none(), result, err, started))
                }
            }
        })
        .await?
}
