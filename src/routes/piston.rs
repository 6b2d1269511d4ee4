//! The Piston API v2 (engineer-man/piston 3.x), so that its clients (the npm
//! `piston-client`, PyPI's `pistonapi`, bots and editors) run unchanged on CodeBeaker:
//! `GET /api/v2/runtimes` and `POST /api/v2/execute`, with Piston's request fields, its
//! validation messages, its `{message}` error shape and its answer. Each call is one
//! native plain-mode invocation (same isolation, limits, tenants, audit and metrics);
//! what differs from a real Piston server is in `docs/compat.md`.
//!
//! The bodies are taken as the clients really send them, not only as Piston documents
//! them: `piston-client` posts JSON labelled `text/plain;charset=UTF-8` (node-fetch's
//! default, which Piston itself refuses with 415), and `pistonapi` posts a form whose
//! `files` is the bare code and whose `args` repeat.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::domain::Scope;
use crate::error::{ApiError, Dialect};
use crate::invoke::ExecuteResponse;
use crate::requests::{ExecuteRequest, FileSpec, RunMode};
use crate::routes::auth::Caller;
use crate::state::AppState;

/// A refusal in Piston's shape: `{"message": "..."}` (Piston answers 400 for every
/// request it cannot run).
pub struct PistonError(Box<Response>);

impl IntoResponse for PistonError {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl<E: Into<ApiError>> From<E> for PistonError {
    fn from(e: E) -> Self {
        PistonError(Box::new(e.into().respond(Dialect::Piston)))
    }
}

fn bad(message: impl Into<String>) -> PistonError {
    PistonError(Box::new(
        (
            StatusCode::BAD_REQUEST,
            Json(json!({ "message": message.into() })),
        )
            .into_response(),
    ))
}

/// One runtime as Piston lists it.
#[derive(Debug, Serialize)]
pub struct Runtime {
    pub language: String,
    pub version: String,
    pub aliases: Vec<String>,
}

/// The version a toolchain string names ("Python 3.11.2", "go version go1.19.8
/// linux/amd64", "GNU bash, version 5.2.15(1)-release"): its first `N.N[.N]`, as SemVer.
pub fn toolchain_version(toolchain: &str) -> Option<semver::Version> {
    let bytes = toolchain.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit()
            && (i == 0
                || !bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1].is_ascii_alphabetic())
        {
            let rest = &toolchain[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let parts: Vec<u64> = rest[..end]
                .split('.')
                .take(3)
                .map_while(|p| p.parse().ok())
                .collect();
            if parts.len() >= 2 {
                return Some(semver::Version::new(
                    parts[0],
                    parts[1],
                    parts.get(2).copied().unwrap_or(0),
                ));
            }
            i += end.max(1);
        } else {
            i += 1;
        }
    }
    None
}

/// Whether `version` satisfies a Piston (node-semver) selector: `*`/`x`, a bare full
/// version (exactly it), a partial one (`3`, `3.11`: any of it), `^`/`~`/comparators
/// (space-separated: all of them), and `||` alternatives. `None` when the selector does
/// not parse (Piston then finds no runtime).
pub fn satisfies(selector: &str, version: &semver::Version) -> Option<bool> {
    let mut any_parsed = false;
    for alternative in selector.split("||") {
        let mut comparators = Vec::new();
        for token in alternative.split_whitespace() {
            let token = token.strip_prefix('v').unwrap_or(token);
            let starts_op = token.starts_with(['^', '~', '>', '<', '=']);
            let token = token.replace(['x', 'X'], "*");
            let c = if starts_op || token == "*" {
                token
            } else {
                let numeric = token.split('.').filter(|p| !p.is_empty()).count();
                if numeric >= 3 && !token.contains('*') {
                    format!("={token}")
                } else if token.ends_with('*') {
                    token
                } else {
                    format!("{}.*", token.trim_end_matches('.'))
                }
            };
            comparators.push(c);
        }
        let req = if comparators.is_empty() {
            "*".to_string()
        } else {
            comparators.join(", ")
        };
        if let Ok(r) = semver::VersionReq::parse(&req) {
            any_parsed = true;
            if r.matches(version) {
                return Some(true);
            }
        }
    }
    any_parsed.then_some(false)
}

/// The served languages as Piston runtimes: the version is the toolchain's, as its first
/// container reported it (`0.0.0` until one has).
fn runtimes_of(state: &AppState) -> Vec<Runtime> {
    let status = state.pools.status();
    state
        .pools
        .recipes()
        .iter()
        .map(|d| Runtime {
            language: d.language().to_string(),
            version: shown(served_version(&status, d.language()).as_ref()),
            aliases: d.recipe.aliases.clone(),
        })
        .collect()
}

/// The version `language`'s toolchain reported (its own pool's first container), if one
/// has yet. Shared by Piston's runtimes and Judge0's language names.
pub fn served_version(
    status: &[codebeaker_pool::PoolStatus],
    language: &codebeaker_proto::Language,
) -> Option<semver::Version> {
    status
        .iter()
        .find(|p| &p.language == language && p.packages.is_none())
        .and_then(|p| p.toolchain.as_deref())
        .and_then(toolchain_version)
}

/// A runtime's version as Piston lists it: `0.0.0` until a container has reported one.
fn shown(version: Option<&semver::Version>) -> String {
    version.map_or_else(|| "0.0.0".to_string(), ToString::to_string)
}

/// `GET /api/v2/runtimes`: always an array (piston-client calls `.filter` on it).
pub async fn runtimes(
    State(state): State<AppState>,
    Caller(_caller): Caller,
) -> Json<Vec<Runtime>> {
    Json(runtimes_of(&state))
}

/// Anything else under `/api/v2`: Piston's 404.
pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response()
}

/// The body as a JSON object: JSON under any content type (piston-client labels its
/// JSON `text/plain`), or a form (`pistonapi`).
fn body_object(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, PistonError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.starts_with("application/x-www-form-urlencoded") {
        return Ok(form_object(body));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("the request body must be a JSON object")),
        Err(e) => Err(bad(format!("the request body is not JSON: {e}"))),
    }
}

/// A form body as the JSON Piston would have taken: `files` and `args` repeat (each
/// `files` value is one file's content, as `pistonapi` sends the code), the limits are
/// numbers, anything else is a string (the last one given).
fn form_object(body: &[u8]) -> Map<String, Value> {
    let mut m = Map::new();
    let (mut files, mut args) = (Vec::new(), Vec::new());
    for (k, v) in form_urlencoded::parse(body) {
        match k.as_ref() {
            "files" | "files[]" => files.push(json!({ "content": v })),
            "args" | "args[]" => args.push(Value::String(v.into_owned())),
            "compile_timeout"
            | "run_timeout"
            | "compile_memory_limit"
            | "run_memory_limit"
            | "compile_cpu_time"
            | "run_cpu_time" => {
                let n = v
                    .parse::<f64>()
                    .map(|n| json!(n))
                    .unwrap_or(Value::String(v.into_owned()));
                m.insert(k.into_owned(), n);
            }
            _ => {
                m.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    if !files.is_empty() {
        m.insert("files".into(), Value::Array(files));
    }
    if !args.is_empty() {
        m.insert("args".into(), Value::Array(args));
    }
    m
}

/// One stage of a Piston answer (`compile` or `run`), its members in Piston's order.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    pub signal: Option<&'static str>,
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
    /// stdout then stderr (Piston interleaves them as they arrive; CodeBeaker captures
    /// them apart).
    pub output: String,
    pub memory: Option<u64>,
    pub message: Option<String>,
    /// `null` (success), `RE` (non-zero exit), `SG` (killed), `TO` (time limit).
    pub status: Option<&'static str>,
    pub cpu_time: Option<u64>,
    pub wall_time: Option<u64>,
}

/// `POST /api/v2/execute`'s answer.
#[derive(Debug, Serialize)]
pub struct Executed {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compile: Option<Stage>,
    pub run: Stage,
    pub language: String,
    pub version: String,
}

/// A limit Piston takes as a number: absent, null or 0 means "not given" (as in
/// Piston); negative is refused; otherwise the number.
fn limit(body: &Map<String, Value>, name: &str) -> Result<Option<f64>, PistonError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let n = n.as_f64().unwrap_or(0.0);
            if n == 0.0 {
                Ok(None)
            } else {
                Ok(Some(n))
            }
        }
        Some(Value::Bool(false)) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(_) => Err(bad(format!("If specified, {name} must be a number"))),
    }
}

/// The request, checked in Piston's order with Piston's messages, as a native request.
fn translate(
    state: &AppState,
    caller: &crate::domain::Principal,
    mut body: Map<String, Value>,
) -> Result<(ExecuteRequest, String, String, bool), PistonError> {
    let language = match body.get("language") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(bad("language is required as a string")),
    };
    // Absent, the newest ("*"): piston-client sends none for an alias (it looks versions
    // up by exact name), where Piston would refuse the call.
    let version = match body.get("version") {
        None | Some(Value::Null) => "*".to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(bad("version is required as a string")),
    };
    // Taken, not copied: the files hold the program.
    let files = match body.remove("files") {
        Some(Value::Array(f)) => f,
        _ => return Err(bad("files is required as an array")),
    };
    for (i, f) in files.iter().enumerate() {
        if !f.get("content").is_some_and(Value::is_string) {
            return Err(bad(format!("files[{i}].content is required as a string")));
        }
    }
    let unknown = || bad(format!("{language}-{version} runtime is unknown"));
    let def = state
        .pools
        .recipes()
        .resolve(&language)
        .ok_or_else(unknown)?;
    // Only this language's version: no runtime list per call.
    let current = served_version(&state.pools.status(), def.language());
    // A toolchain no container has reported yet cannot refute the selector.
    if let Some(v) = &current {
        if satisfies(&version, v) != Some(true) {
            return Err(unknown());
        }
    }
    // The first utf8 file is the program; the others are written beside it.
    let encoding = |f: &Value| {
        f.get("encoding")
            .and_then(Value::as_str)
            .unwrap_or("utf8")
            .to_string()
    };
    let main = files
        .iter()
        .position(|f| matches!(encoding(f).as_str(), "utf8" | ""))
        .ok_or_else(|| bad("files must include at least one utf8 encoded file"))?;
    let mut code = String::new();
    let mut extra = Vec::new();
    for (i, mut f) in files.into_iter().enumerate() {
        let content = match f.get_mut("content").map(Value::take) {
            Some(Value::String(s)) => s,
            _ => String::new(),
        };
        if i == main {
            code = content;
            continue;
        }
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map_or_else(|| format!("file{i}.code"), str::to_string);
        let (content, encoding) = match encoding(&f).as_str() {
            "base64" => (content, codebeaker_proto::Encoding::Base64),
            "hex" => {
                let bytes = hex_decode(&content)
                    .ok_or_else(|| bad(format!("files[{i}].content is not valid hex")))?;
                (
                    base64::engine::general_purpose::STANDARD.encode(bytes),
                    codebeaker_proto::Encoding::Base64,
                )
            }
            _ => (content, codebeaker_proto::Encoding::Utf8),
        };
        extra.push(FileSpec {
            path: name,
            content,
            encoding,
        });
    }
    // Piston's limits, clamped to the caller's and the server's (never refused for being
    // above them: piston-client sends 10 s and 3 s on every call).
    let mut timeout_ms = None;
    let mut memory_mb = None;
    for name in [
        "compile_memory_limit",
        "run_memory_limit",
        "compile_timeout",
        "run_timeout",
        "compile_cpu_time",
        "run_cpu_time",
    ] {
        let Some(v) = limit(&body, name)? else {
            continue;
        };
        if v < 0.0 && !name.ends_with("memory_limit") {
            return Err(bad(format!("{name} must be non-negative")));
        }
        match name {
            "run_timeout" => {
                let max =
                    caller.timeout_cap(state.settings.limits.max_timeout_ms.as_millis() as u64);
                timeout_ms = Some((v.ceil() as u64).clamp(1, max));
            }
            "run_memory_limit" if v > 0.0 => {
                let container = state.settings.pool.limits.memory_mb;
                let cap = caller.memory_cap(container);
                let mb = (v / (1024.0 * 1024.0)).ceil() as u64;
                memory_mb = Some(mb.clamp(32.min(cap), cap));
            }
            // The compile step runs under the server's `limits.compile_timeout_ms`, and
            // CPU time is bounded by the wall clock; -1 memory is the server's limit.
            _ => {}
        }
    }
    let args = match body.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(bad("args must be an array of strings")),
            })
            .collect::<Result<_, _>>()?,
        Some(Value::String(s)) => vec![s.clone()],
        Some(_) => return Err(bad("args must be an array of strings")),
    };
    let mut stdin = match body.get("stdin") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad("stdin must be a string")),
    };
    // As Piston does: stdin always ends with a newline.
    if !stdin.ends_with('\n') {
        stdin.push('\n');
    }
    let compiled = def.recipe.is_compiled();
    let req = ExecuteRequest {
        language: def.language().to_string(),
        code,
        input: crate::requests::empty_object(),
        timeout_ms,
        memory_limit_mb: memory_mb,
        mode: RunMode::Plain,
        packages: Vec::new(),
        isolation: Default::default(),
        stdin,
        args,
        files: extra,
    };
    Ok((
        req,
        def.language().to_string(),
        shown(current.as_ref()),
        compiled,
    ))
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A native result as Piston's stages.
fn stages(r: &ExecuteResponse, compiled: bool) -> (Option<Stage>, Stage) {
    let kind = r.error.as_ref().map(|e| e.kind);
    if kind == Some("compile_error") {
        let message = r
            .error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default();
        let stage = Stage {
            signal: None,
            stdout: String::new(),
            stderr: message.clone(),
            code: Some(1),
            output: message,
            memory: None,
            message: Some("Exited with error status 1".into()),
            status: Some("RE"),
            cpu_time: None,
            wall_time: Some(r.compile_ms),
        };
        // Piston answers a failed compile with `run` a copy of `compile`.
        return (Some(stage.clone()), stage);
    }
    let killed = matches!(
        kind,
        Some("timeout" | "memory_limit_exceeded" | "process_limit_exceeded")
    );
    let (status, message, signal) = match kind {
        Some("timeout") => (
            Some("TO"),
            Some("Time limit exceeded (wall clock)".to_string()),
            Some("SIGKILL"),
        ),
        Some("memory_limit_exceeded" | "process_limit_exceeded") => (
            Some("SG"),
            Some("Caught fatal signal 9".to_string()),
            Some("SIGKILL"),
        ),
        _ => match r.exit_code {
            Some(0) | None => (None, None, None),
            Some(c) => (
                Some("RE"),
                Some(format!("Exited with error status {c}")),
                None,
            ),
        },
    };
    let run = Stage {
        signal,
        output: format!("{}{}", r.stdout, r.stderr),
        stdout: r.stdout.clone(),
        stderr: r.stderr.clone(),
        code: if killed { None } else { r.exit_code },
        memory: None,
        message,
        status,
        cpu_time: None,
        wall_time: Some(r.duration_ms.saturating_sub(r.compile_ms)),
    };
    let compile = compiled.then(|| Stage {
        signal: None,
        stdout: String::new(),
        stderr: String::new(),
        code: Some(0),
        output: String::new(),
        memory: None,
        message: None,
        status: None,
        cpu_time: None,
        wall_time: Some(r.compile_ms),
    });
    (compile, run)
}

/// `POST /api/v2/execute`.
pub async fn execute(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Executed>, PistonError> {
    caller.require(Scope::Execute)?;
    let body = body_object(&headers, &body)?;
    let (req, language, version, compiled) = translate(&state, &caller, body)?;
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let r = state.invoker.execute(&caller, req, request_id).await?;
    let (compile, run) = stages(&r, compiled);
    Ok(Json(Executed {
        compile,
        run,
        language,
        version,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_toolchains_and_match_as_node_semver_does() {
        let v = |s| toolchain_version(s).unwrap().to_string();
        assert_eq!(v("Python 3.11.2"), "3.11.2");
        assert_eq!(v("go version go1.19.8 linux/amd64"), "1.19.8");
        assert_eq!(
            v("GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)"),
            "5.2.15"
        );
        assert_eq!(v("Mono C# compiler version 6.8.0.105"), "6.8.0");
        assert_eq!(v("ruby 3.1.2p20 (2022-04-12 revision 4491bb740a)"), "3.1.2");
        assert_eq!(v("bun 1.2"), "1.2.0");
        let py = semver::Version::new(3, 11, 2);
        for yes in [
            "*",
            "x",
            "3",
            "3.x",
            "3.11",
            "3.11.2",
            "=3.11.2",
            "v3.11.2",
            "^3.9",
            ">=3.9 <3.12",
            "2 || 3",
            "3.11.x",
        ] {
            assert_eq!(satisfies(yes, &py), Some(true), "{yes}");
        }
        for no in ["3.10.0", "3.10", "~3.9", "4", "<3"] {
            assert_eq!(satisfies(no, &py), Some(false), "{no}");
        }
        assert_eq!(satisfies("latest", &py), None);
    }

    #[test]
    fn forms_become_the_json_piston_would_take() {
        let m = form_object(b"language=python&version=%2A&files=print%28input%28%29%29&stdin=hello+there&args=a&args=b&timeout=5000&run_timeout=2500");
        assert_eq!(m["files"], json!([{"content": "print(input())"}]));
        assert_eq!(m["args"], json!(["a", "b"]));
        assert_eq!(m["stdin"], "hello there");
        assert_eq!(m["version"], "*");
        assert_eq!(m["run_timeout"], json!(2500.0));
    }
}
