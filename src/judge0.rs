//! Judge0 CE 1.13.1's submission, over CodeBeaker's async executions: what a submission
//! keeps beside the native request it runs as ([`Meta`], stored as `"judge0"` in the
//! execution's body), and how an execution is shown as a Judge0 submission ([`view`]):
//! Judge0's statuses 1–14, its fields in its order, `expected_output` compared as Judge0
//! compares it, base64 as Ruby's `encode64` writes it, its timestamps.
//!
//! A layer: the HTTP routes (`routes/judge0.rs`) and the callbacks (`executions`) both
//! use it; it knows the store's records, not HTTP.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::store::{JobRecord, Status};

/// The Judge0 CE version whose API this is (the official SDK maps its language names to
/// ids by this exact string).
pub const VERSION: &str = "1.13.1";

/// Judge0's statuses, by id.
pub const STATUSES: [&str; 14] = [
    "In Queue",
    "Processing",
    "Accepted",
    "Wrong Answer",
    "Time Limit Exceeded",
    "Compilation Error",
    "Runtime Error (SIGSEGV)",
    "Runtime Error (SIGXFSZ)",
    "Runtime Error (SIGFPE)",
    "Runtime Error (SIGABRT)",
    "Runtime Error (NZEC)",
    "Runtime Error (Other)",
    "Internal Error",
    "Exec Format Error",
];

/// `{"id", "description"}` of status `id`.
pub fn status(id: u8) -> Value {
    json!({"id": id, "description": STATUSES[(id.clamp(1, 14) - 1) as usize]})
}

/// A submission's Judge0 fields, as it was accepted (its limits as they apply).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub language_id: u32,
    pub language_name: String,
    /// Decoded text.
    pub source_code: String,
    pub stdin: Option<String>,
    pub expected_output: Option<String>,
    pub number_of_runs: u32,
    pub cpu_time_limit: f64,
    pub cpu_extra_time: f64,
    pub wall_time_limit: f64,
    pub memory_limit: u64,
    pub stack_limit: u64,
    pub max_processes_and_or_threads: u64,
    pub enable_per_process_and_thread_time_limit: bool,
    pub enable_per_process_and_thread_memory_limit: bool,
    pub max_file_size: u64,
    pub redirect_stderr_to_stdout: bool,
    pub callback_url: Option<String>,
    pub command_line_arguments: Option<String>,
    pub compiler_options: Option<String>,
}

/// What a finished (or not yet finished) execution says, in Judge0's terms.
#[derive(Debug, Default)]
pub struct Outcome {
    pub status_id: u8,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub compile_output: Option<String>,
    pub message: Option<String>,
    pub exit_code: Option<i64>,
    pub exit_signal: Option<i64>,
    pub time: Option<String>,
    pub wall_time: Option<String>,
    pub memory: Option<u64>,
}

/// Judge0's comparison: trailing whitespace off every line and off the end.
fn strip(t: &str) -> String {
    t.split('\n')
        .map(|l| l.trim_end_matches([' ', '\t', '\r', '\x0b', '\x0c', '\0']))
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c', '\0'])
        .to_string()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn seconds(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// One run's native result (an execute result, or one batch item) in Judge0's terms.
fn run_outcome(meta: &Meta, r: &Value, ms: u64) -> Outcome {
    let kind = r["error"]["kind"].as_str();
    let message = r["error"]["message"].as_str().unwrap_or_default();
    let exit_code = r["exitCode"].as_i64();
    if kind == Some("compile_error") {
        return Outcome {
            status_id: 6,
            compile_output: non_empty(message),
            ..Outcome::default()
        };
    }
    let mut stdout = r["stdout"].as_str().unwrap_or_default().to_string();
    let mut stderr = r["stderr"].as_str().unwrap_or_default().to_string();
    if meta.redirect_stderr_to_stdout {
        stdout.push_str(&stderr);
        stderr.clear();
    }
    let signal_of = |m: &str| -> Option<i64> {
        [
            ("SIGSEGV", 11),
            ("SIGXFSZ", 25),
            ("SIGFPE", 8),
            ("SIGABRT", 6),
            ("SIGKILL", 9),
            ("SIGBUS", 7),
        ]
        .iter()
        .find(|(n, _)| m.contains(n))
        .map(|&(_, s)| s)
    };
    let (status_id, msg, signal) = match kind {
        None => {
            let accepted = match &meta.expected_output {
                None => true,
                Some(e) => !stdout.is_empty() && strip(e) == strip(&stdout),
            };
            (if accepted { 3 } else { 4 }, None, None)
        }
        Some("timeout") => (5, Some("Time limit exceeded".to_string()), Some(9)),
        Some("memory_limit_exceeded") | Some("process_limit_exceeded") => {
            (12, Some("Caught fatal signal 9".to_string()), Some(9))
        }
        Some("runtime_error") => match exit_code {
            Some(c) => (11, Some(format!("Exited with error status {c}")), None),
            None => {
                let s = signal_of(message);
                let id = match s {
                    Some(11) => 7,
                    Some(25) => 8,
                    Some(8) => 9,
                    Some(6) => 10,
                    _ => 12,
                };
                (
                    id,
                    Some(format!("Caught fatal signal {}", s.unwrap_or(0))),
                    s,
                )
            }
        },
        Some(_) => (13, non_empty(message), None),
    };
    Outcome {
        status_id,
        stdout: non_empty(&stdout),
        stderr: non_empty(&stderr),
        compile_output: None,
        message: msg,
        // Killed by a signal, a program has no exit code.
        exit_code: match (exit_code, signal) {
            (None, Some(_)) => None,
            (c, _) => Some(c.unwrap_or(0)),
        },
        exit_signal: signal,
        time: Some(seconds(ms)),
        wall_time: Some(seconds(ms)),
        memory: None,
    }
}

/// The outcome of an execution: in queue, processing, or its result (of its first run
/// that was not accepted, else its last; times averaged over the runs, as Judge0 does).
pub fn outcome(meta: &Meta, job: &JobRecord) -> Outcome {
    match job.status {
        Status::Queued => {
            return Outcome {
                status_id: 1,
                ..Outcome::default()
            }
        }
        Status::Running => {
            return Outcome {
                status_id: 2,
                ..Outcome::default()
            }
        }
        Status::Failed | Status::Cancelled => {
            return Outcome {
                status_id: 13,
                message: job.error.clone().or_else(|| Some("cancelled".into())),
                ..Outcome::default()
            }
        }
        Status::Completed => {}
    }
    let Some(result) = job
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str::<Value>(r).ok())
    else {
        return Outcome {
            status_id: 13,
            message: Some("the result is missing".into()),
            ..Outcome::default()
        };
    };
    let runs: Vec<&Value> = match result.get("results").and_then(Value::as_array) {
        Some(items) => items.iter().filter(|i| i["skipped"] != true).collect(),
        None => vec![&result],
    };
    let ms = |r: &Value| -> u64 {
        r.get("latencyMs")
            .or_else(|| r.get("durationMs"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .saturating_sub(r["compileMs"].as_u64().unwrap_or(0))
    };
    let mut last = Outcome {
        status_id: 13,
        ..Outcome::default()
    };
    let mut total = 0u64;
    for (n, r) in runs.iter().enumerate() {
        total += ms(r);
        last = run_outcome(meta, r, ms(r));
        if last.status_id != 3 {
            return last;
        }
        let avg = seconds(total / (n as u64 + 1));
        last.time = Some(avg.clone());
        last.wall_time = Some(avg);
    }
    last
}

/// Ruby's `Base64.encode64`: standard alphabet, a newline after every 60 characters and
/// at the end (what a Judge0 server sends; its clients strip the newlines).
pub fn encode64(text: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    let mut out = String::with_capacity(b.len() + b.len() / 60 + 1);
    for chunk in b.as_bytes().chunks(60) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Ruby's lenient `Base64.decode64` (whitespace and missing padding are fine), as UTF-8
/// text (invalid bytes replaced).
pub fn decode64(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let clean = clean.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(clean)
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The fields a submission shows when `fields` names none.
pub const DEFAULT_FIELDS: [&str; 8] = [
    "token",
    "time",
    "memory",
    "stdout",
    "stderr",
    "compile_output",
    "message",
    "status",
];

/// Every field, in Judge0's order.
pub const ALL_FIELDS: [&str; 35] = [
    "source_code",
    "language_id",
    "stdin",
    "expected_output",
    "stdout",
    "status_id",
    "created_at",
    "finished_at",
    "time",
    "memory",
    "stderr",
    "token",
    "number_of_runs",
    "cpu_time_limit",
    "cpu_extra_time",
    "wall_time_limit",
    "memory_limit",
    "stack_limit",
    "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "max_file_size",
    "compile_output",
    "exit_code",
    "exit_signal",
    "message",
    "wall_time",
    "compiler_options",
    "command_line_arguments",
    "redirect_stderr_to_stdout",
    "callback_url",
    "additional_files",
    "enable_network",
    "status",
    "language",
];

/// The fields a request names (`fields=`): the default set when empty, all with `*`, or
/// `Err` naming the unknown ones as Judge0 does.
pub fn fields(asked: Option<&str>) -> Result<Vec<&'static str>, String> {
    let Some(asked) = asked.filter(|a| !a.is_empty()) else {
        return Ok(DEFAULT_FIELDS.to_vec());
    };
    let names: Vec<&str> = asked.split(',').collect();
    if names.contains(&"*") {
        return Ok(ALL_FIELDS.to_vec());
    }
    let unknown: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !ALL_FIELDS.contains(n))
        .collect();
    if !unknown.is_empty() {
        return Err(format!("invalid fields: [{}]", unknown.join(", ")));
    }
    Ok(ALL_FIELDS
        .iter()
        .copied()
        .filter(|f| names.contains(f))
        .collect())
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The submission `job` as Judge0 shows it: `fields`, in Judge0's order, text encoded
/// with [`encode64`] when `base64` (the SDK always asks for it).
pub fn view(meta: &Meta, job: &JobRecord, fields: &[&str], base64: bool) -> Map<String, Value> {
    let o = outcome(meta, job);
    let text = |t: &Option<String>| -> Value {
        match t {
            None => Value::Null,
            Some(t) if base64 => Value::String(encode64(t)),
            Some(t) => Value::String(t.clone()),
        }
    };
    let finished = (o.status_id > 2)
        .then(|| job.finished_at.map(timestamp))
        .flatten();
    let mut m = Map::new();
    for &f in fields {
        let v = match f {
            "source_code" => text(&Some(meta.source_code.clone())),
            "language_id" => json!(meta.language_id),
            "stdin" => text(&meta.stdin),
            "expected_output" => text(&meta.expected_output),
            "stdout" => text(&o.stdout),
            "status_id" => json!(o.status_id),
            "created_at" => json!(timestamp(job.created_at)),
            "finished_at" => json!(finished),
            "time" => json!(o.time),
            "memory" => json!(o.memory),
            "stderr" => text(&o.stderr),
            "token" => json!(job.id),
            "number_of_runs" => json!(meta.number_of_runs),
            "cpu_time_limit" => json!(format!("{:.1}", meta.cpu_time_limit)),
            "cpu_extra_time" => json!(format!("{:.1}", meta.cpu_extra_time)),
            "wall_time_limit" => json!(format!("{:.1}", meta.wall_time_limit)),
            "memory_limit" => json!(meta.memory_limit),
            "stack_limit" => json!(meta.stack_limit),
            "max_processes_and_or_threads" => json!(meta.max_processes_and_or_threads),
            "enable_per_process_and_thread_time_limit" => {
                json!(meta.enable_per_process_and_thread_time_limit)
            }
            "enable_per_process_and_thread_memory_limit" => {
                json!(meta.enable_per_process_and_thread_memory_limit)
            }
            "max_file_size" => json!(meta.max_file_size),
            "compile_output" => text(&o.compile_output),
            "exit_code" => json!(o.exit_code),
            "exit_signal" => json!(o.exit_signal),
            "message" => text(&o.message),
            "wall_time" => json!(o.wall_time),
            "compiler_options" => json!(meta.compiler_options),
            "command_line_arguments" => json!(meta.command_line_arguments),
            "redirect_stderr_to_stdout" => json!(meta.redirect_stderr_to_stdout),
            "callback_url" => json!(meta.callback_url),
            "additional_files" => Value::Null,
            "enable_network" => json!(false),
            "status" => status(o.status_id),
            "language" => json!({"id": meta.language_id, "name": meta.language_name}),
            _ => continue,
        };
        m.insert(f.to_string(), v);
    }
    m
}

/// The body of a Judge0 callback (a `PUT` to `callback_url`): the default fields,
/// base64-encoded, of `job` as it ends with `status`, `result` and `error`.
pub fn callback_body(
    meta: &Value,
    job: &JobRecord,
    status: Status,
    result: Option<&str>,
    error: Option<&str>,
    at: DateTime<Utc>,
) -> Option<String> {
    let meta: Meta = serde_json::from_value(meta.clone()).ok()?;
    let ended = JobRecord {
        id: job.id.clone(),
        tenant: job.tenant.clone(),
        caller: job.caller.clone(),
        kind: job.kind,
        request: None,
        status,
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: Some(at),
        result: result.map(str::to_string),
        error: error.map(str::to_string),
        attempts: job.attempts,
        idempotency_key: None,
        request_hash: String::new(),
        callback_url: None,
    };
    serde_json::to_string(&view(&meta, &ended, &DEFAULT_FIELDS, true)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge0s_comparison_base64_and_fields() {
        assert_eq!(strip("a  \nb\t\n\n"), "a\nb");
        assert_ne!(strip(" a"), strip("a"));
        assert_eq!(encode64("hello\n"), "aGVsbG8K\n");
        let long = "x".repeat(50);
        assert_eq!(encode64(&long).matches('\n').count(), 2);
        assert_eq!(decode64("aGVs\nbG8K"), "hello\n");
        assert_eq!(decode64("aGVsbG8"), "hello");
        assert_eq!(fields(None).unwrap(), DEFAULT_FIELDS.to_vec());
        assert_eq!(fields(Some("*")).unwrap().len(), 35);
        assert_eq!(
            fields(Some("status,token")).unwrap(),
            vec!["token", "status"]
        );
        assert_eq!(
            fields(Some("token,nope,bad")).unwrap_err(),
            "invalid fields: [nope, bad]"
        );
        assert_eq!(
            status(6),
            json!({"id": 6, "description": "Compilation Error"})
        );
    }
}
