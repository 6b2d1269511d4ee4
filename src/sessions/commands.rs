//! Session commands: a tagged union on `type`, executed on the session's container.

use codebeaker_proto::{
    CommandErrorKind, FileCommand, RunRequest, ShellRequest, ShellResult, WriteMode,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;

use super::{Session, SessionError, Sessions};
use crate::config::Settings;
use crate::domain::Principal;
use crate::requests;

/// Application error codes inside a command outcome, and for session-level JSON-RPC
/// errors. Documented in docs/jsonrpc.md.
pub mod codes {
    /// The session does not exist (or is another tenant's).
    pub const SESSION_NOT_FOUND: i64 = -32001;
    /// Another command holds the session past `sessions.busy_wait_ms`.
    pub const SESSION_BUSY: i64 = -32002;
    /// The tenant has `max_sessions` open.
    pub const SESSION_LIMIT_REACHED: i64 = -32003;
    /// The credential lacks a scope or a language, or asked above its limits.
    pub const UNAUTHORIZED: i64 = -32004;
    /// A path resolves outside `/workspace`.
    pub const PATH_OUTSIDE_WORKSPACE: i64 = -32005;
    /// A shell command ran past its `timeoutMs`.
    pub const COMMAND_TIMEOUT: i64 = -32006;
    /// A command could not be done (missing file, non-zero exit, …).
    pub const COMMAND_FAILED: i64 = -32007;
    /// A `run_code` program failed (its kind says how).
    pub const PROGRAM_ERROR: i64 = -32008;
    /// The session's container died (killed, or the engine restarted): the session is
    /// closed; create a new one.
    pub const SESSION_LOST: i64 = -32009;
    /// The sandbox failed: not the caller's fault, retry.
    pub const SERVER_ERROR: i64 = -32010;
    /// Rate limit, concurrency cap or shedding: retry later.
    pub const OVERLOADED: i64 = -32011;
    /// The replica that owns the session is down: retry later (REST: 503
    /// `session_unavailable`).
    pub const SESSION_UNAVAILABLE: i64 = -32012;
}

/// `execute_shell` (alias `shell`): an argv, never a shell string.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShellParams {
    command_name: String,
    #[serde(default)]
    args: Vec<String>,
    working_directory: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "crate::json_int::option")]
    timeout_ms: Option<u64>,
    stdin: Option<String>,
    #[serde(default)]
    stream: bool,
}

/// `run_code`: the edge contract in the session's own workspace.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunCodeParams {
    code: String,
    #[serde(default = "empty_object")]
    input: Value,
    #[serde(default, deserialize_with = "crate::json_int::option")]
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

/// Command names the Loopai client uses, and the names they stand for.
const ALIASES: &[(&str, &str)] = &[
    ("shell", "execute_shell"),
    ("create_dir", "create_directory"),
];

impl Command {
    /// Parses a command object; the error text is for "invalid params". Members a command
    /// does not know are ignored.
    pub fn parse(mut v: Value) -> Result<Command, String> {
        let given = v
            .get("type")
            .and_then(Value::as_str)
            .ok_or("command.type is required")?
            .to_string();
        let t = ALIASES
            .iter()
            .find(|(alias, _)| *alias == given)
            .map_or(given.as_str(), |(_, name)| name);
        if t != given {
            v["type"] = Value::String(t.to_string());
        }
        match t {
            "execute_shell" => serde_json::from_value(v).map(Command::Shell).map_err(|e| format!("{given}: {e}")),
            "run_code" => serde_json::from_value(v).map(Command::RunCode).map_err(|e| format!("run_code: {e}")),
            "write_file" | "read_file" | "list_directory" | "create_directory" | "delete_file" | "copy_file" => {
                if let Some(mode) = v.get("mode") {
                    if serde_json::from_value::<WriteMode>(mode.clone()).is_err() {
                        return Err(format!(
                            "{given}: mode {mode} is not one of {}",
                            WriteMode::NAMES
                        ));
                    }
                }
                serde_json::from_value(v).map(Command::File).map_err(|e| format!("{given}: {e}"))
            }
            other => Err(format!(
                "unknown command type {other:?}; expected write_file, read_file, list_directory, create_directory (create_dir), delete_file, copy_file, execute_shell (shell) or run_code"
            )),
        }
    }
}

/// Why a command did not succeed: one readable line for clients that only show a string
/// (the Loopai client's `CommandResult.Error` is a `string`), plus the machine-readable
/// code and kind.
#[derive(Debug)]
pub struct Failure {
    pub code: i64,
    pub kind: &'static str,
    pub message: String,
}

/// `{success, result, error, errorCode, errorKind, durationMs}`, the `session.execute`
/// result. `error` is a string or null; `errorCode` and `errorKind` are null on success.
pub fn outcome(success: bool, result: Value, failure: Option<Failure>, started: Instant) -> Value {
    let (error, code, kind) = match failure {
        Some(f) => (Some(f.message), Some(f.code), Some(f.kind)),
        None => (None, None, None),
    };
    json!({
        "success": success,
        "result": result,
        "error": error,
        "errorCode": code,
        "errorKind": kind,
        "durationMs": started.elapsed().as_millis() as u64,
    })
}

fn command_error(kind: CommandErrorKind, message: String) -> Failure {
    let (code, kind) = match kind {
        CommandErrorKind::PathOutsideWorkspace => {
            (codes::PATH_OUTSIDE_WORKSPACE, "path_outside_workspace")
        }
        CommandErrorKind::NotFound => (codes::COMMAND_FAILED, "not_found"),
        CommandErrorKind::AlreadyExists => (codes::COMMAND_FAILED, "already_exists"),
        CommandErrorKind::TooLarge => (codes::COMMAND_FAILED, "too_large"),
        CommandErrorKind::InvalidArgument => (codes::COMMAND_FAILED, "invalid_argument"),
        CommandErrorKind::Io => (codes::COMMAND_FAILED, "io_error"),
    };
    Failure {
        code,
        kind,
        message,
    }
}

/// Why a shell command failed, as one line: the exit status first, the last line of
/// stderr (where interpreters put the exception) last.
fn shell_failure(r: &ShellResult, timeout_ms: u64) -> Option<Failure> {
    let last = r
        .stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty());
    let (code, kind, status) = if r.timed_out {
        (
            codes::COMMAND_TIMEOUT,
            "command_timeout",
            format!("timed out after {timeout_ms} ms"),
        )
    } else {
        match r.exit_code {
            Some(0) => return None,
            Some(n) => (
                codes::COMMAND_FAILED,
                "exit_status",
                format!("exit code {n}"),
            ),
            None => (
                codes::COMMAND_FAILED,
                "exit_status",
                "killed by a signal".to_string(),
            ),
        }
    };
    let message = match last {
        Some(line) => format!("{status}: {line}"),
        None => status,
    };
    Some(Failure {
        code,
        kind,
        message,
    })
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
    // The caller's own maximum applies on top of the server's. A shell command's timeout
    // is lowered to it; a program's (`run_code`) is refused above it, as `/v1/execute`
    // refuses it, so the same request gets the same answer on both paths.
    let shell_max =
        caller.timeout_cap(sessions.settings().max_command_timeout_ms.as_millis() as u64);
    let run_timeout = match &cmd {
        Command::RunCode(p) => Some(requests::run_timeout(p.timeout_ms, settings, caller)?),
        _ => None,
    };
    sessions
        .with_container(session, async move |c| {
            let started = Instant::now();
            match cmd {
                Command::File(f) => match c.file(f).await? {
                    Ok(result) => Ok(outcome(true, result, None, started)),
                    Err((kind, msg)) => {
                        Ok(outcome(false, Value::Null, Some(command_error(kind, msg)), started))
                    }
                },
                Command::Shell(p) => {
                    let timeout_ms = p.timeout_ms.unwrap_or(limits.default_timeout_ms.as_millis() as u64).min(shell_max);
                    let req = ShellRequest {
                        command_name: p.command_name,
                        args: p.args,
                        working_directory: p.working_directory,
                        env: p.env,
                        timeout_ms,
                        stdin: p.stdin,
                        stream: p.stream,
                        stream_limit_bytes: limits.stream_limit_bytes.get(),
                    };
                    match c.shell(req, on_output).await? {
                        Ok(r) => {
                            // A failed command still returns its stdout, stderr, exit code
                            // and timedOut in `result`.
                            let failure = shell_failure(&r, timeout_ms);
                            let ok = failure.is_none();
                            Ok(outcome(ok, serde_json::to_value(r).unwrap_or_default(), failure, started))
                        }
                        Err((kind, msg)) => Ok(outcome(false, Value::Null, Some(command_error(kind, msg)), started)),
                    }
                }
                Command::RunCode(p) => {
                    let timeout_ms = run_timeout.unwrap_or(limits.default_timeout_ms.as_millis() as u64);
                    let req = RunRequest {
                        source: sessions
                            .recipes()
                            .get(language)
                            .ok_or_else(|| {
                                SessionError::InvalidParams(format!(
                                    "{language} is no longer served by this gateway"
                                ))
                            })?
                            .wrap(&p.code, false),
                        input: codebeaker_proto::RawJson::from_value(&p.input),
                        timeout_ms,
                        compile_timeout_ms: limits.compile_timeout_ms.as_millis() as u64,
                        stream_limit_bytes: limits.stream_limit_bytes.get(),
                        result_limit_bytes: limits.result_limit_bytes.get(),
                        plain: false,
                        extras: Default::default(),
                        // The container keys its own cache (see `compile.rs`).
                        cache_key: None,
                    };
                    let o = c.run(&req).await?;
                    let err = o.error.as_ref().map(|e| Failure {
                        code: codes::PROGRAM_ERROR,
                        kind: e.kind.as_str(),
                        message: e.message.clone(),
                    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopai_names_and_modes_parse() {
        let shell = Command::parse(
            json!({"type": "shell", "commandName": "python3", "args": ["a.py"], "extra": 1}),
        );
        assert!(matches!(shell, Ok(Command::Shell(_))), "{shell:?}");
        let mkdir = Command::parse(json!({"type": "create_dir", "path": "d"}));
        assert!(matches!(
            mkdir,
            Ok(Command::File(FileCommand::CreateDirectory { .. }))
        ));
        for (mode, want) in [
            (None, WriteMode::Create),
            (Some("Create"), WriteMode::Create),
            (Some("Overwrite"), WriteMode::Create),
            (Some("CreateNew"), WriteMode::CreateNew),
            (Some("Append"), WriteMode::Append),
            (Some("Truncate"), WriteMode::Truncate),
        ] {
            let mut v = json!({"type": "write_file", "path": "a", "content": ""});
            if let Some(m) = mode {
                v["mode"] = json!(m);
            }
            match Command::parse(v) {
                Ok(Command::File(FileCommand::WriteFile { mode, .. })) => assert_eq!(mode, want),
                other => panic!("{other:?}"),
            }
        }
        let bad = Command::parse(
            json!({"type": "write_file", "path": "a", "content": "", "mode": "OpenOrCreate"}),
        );
        assert!(bad.unwrap_err().contains("CreateNew"));
        assert!(Command::parse(json!({"type": "format_disk"}))
            .unwrap_err()
            .contains("unknown command type"));
    }

    #[test]
    fn a_failed_shell_reads_as_one_line() {
        let r = ShellResult {
            stderr: "Traceback\n  File x\nNameError: boom\n\n".into(),
            exit_code: Some(1),
            ..Default::default()
        };
        let f = shell_failure(&r, 5000).unwrap();
        assert_eq!(
            (f.message.as_str(), f.kind),
            ("exit code 1: NameError: boom", "exit_status")
        );
        let t = ShellResult {
            timed_out: true,
            ..Default::default()
        };
        assert_eq!(
            shell_failure(&t, 300).unwrap().message,
            "timed out after 300 ms"
        );
        let ok = ShellResult {
            exit_code: Some(0),
            ..Default::default()
        };
        assert!(shell_failure(&ok, 1).is_none());
    }
}
