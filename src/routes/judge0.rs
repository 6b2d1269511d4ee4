//! The Judge0 CE 1.13.1 API, so that its clients (the official `judge0` Python SDK, online
//! judges) run unchanged on CodeBeaker: `/submissions` (single and batch, `wait`,
//! `fields`, `base64_encoded`), `/languages`, `/statuses`, `/about`, `/config_info`.
//!
//! A submission is an async execution underneath (durable, tenant-scoped, listed by
//! `GET /v1/executions` with kind `judge0`): a plain program with the submission's stdin
//! and arguments, its Judge0 fields kept beside it ([`crate::judge0::Meta`]), shown back
//! by [`crate::judge0::view`]. Limits above the server's are clamped to it; what
//! CodeBeaker cannot do (`enable_network`, `compiler_options`, `additional_files`) is
//! refused with Judge0's own 422 shape. What differs from a real Judge0 server is in
//! `docs/compat.md`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{Principal, Scope};
use crate::error::{ApiError, Dialect};
use crate::executions::ExecutionsError;
use crate::judge0::{self as model, Meta};
use crate::requests::RequestError;
use crate::routes::auth::Caller;
use crate::state::AppState;
use crate::store::{JobKind, JobRecord, JobRequest};

/// The most submissions in one batch (Judge0's default, reported by `/config_info`).
const MAX_BATCH: usize = 20;
/// The most runs of one submission (`number_of_runs`).
const MAX_RUNS: u32 = 20;

/// A refusal in Judge0's shape: `{"error": "..."}`, or an empty 401.
pub struct Judge0Error(Box<Response>);

impl IntoResponse for Judge0Error {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl<E: Into<ApiError>> From<E> for Judge0Error {
    fn from(e: E) -> Self {
        Judge0Error(Box::new(e.into().respond(Dialect::Judge0)))
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Judge0Error {
    Judge0Error(Box::new(
        (status, Json(json!({ "error": message.into() }))).into_response(),
    ))
}

fn not_found() -> Judge0Error {
    Judge0Error(Box::new(
        (
            StatusCode::NOT_FOUND,
            Json(json!({"status": 404, "error": "Not Found"})),
        )
            .into_response(),
    ))
}

/// The query every submission route takes. Only the exact string `true` turns a flag on,
/// as in Judge0.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    base64_encoded: Option<String>,
    wait: Option<String>,
    fields: Option<String>,
    tokens: Option<String>,
}

impl Params {
    fn base64(&self) -> bool {
        self.base64_encoded.as_deref() == Some("true")
    }
    fn wait(&self) -> bool {
        self.wait.as_deref() == Some("true")
    }
}

/// The served languages under their Judge0 ids: (id, name, language), by name as Judge0
/// lists them. The name is the language's with the toolchain it really runs.
fn languages(state: &AppState) -> Vec<(u32, String, Arc<codebeaker_recipe::LanguageDef>)> {
    let status = state.pools.status();
    let mut out: Vec<_> = state
        .pools
        .recipes()
        .iter()
        .flat_map(|d| {
            let version = crate::routes::piston::served_version(&status, d.language())
                .map_or_else(|| "CodeBeaker".to_string(), |v| v.to_string());
            let name = format!("{} ({version})", d.recipe.title);
            d.recipe
                .judge0
                .iter()
                .map(move |&id| (id, name.clone(), d.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    out
}

/// `GET /languages`: `[{id, name}]`.
pub async fn list_languages(State(state): State<AppState>, Caller(_c): Caller) -> Json<Value> {
    Json(Value::Array(
        languages(&state)
            .into_iter()
            .map(|(id, name, _)| json!({"id": id, "name": name}))
            .collect(),
    ))
}

/// `GET /languages/all`: with `is_archived` (none is).
pub async fn all_languages(State(state): State<AppState>, Caller(_c): Caller) -> Json<Value> {
    Json(Value::Array(
        languages(&state)
            .into_iter()
            .map(|(id, name, _)| json!({"id": id, "name": name, "is_archived": false}))
            .collect(),
    ))
}

/// `GET /languages/{id}`.
pub async fn language(
    State(state): State<AppState>,
    Caller(_c): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Judge0Error> {
    let id: u32 = id.parse().map_err(|_| not_found())?;
    let (id, name, d) = languages(&state)
        .into_iter()
        .find(|(i, _, _)| *i == id)
        .ok_or_else(not_found)?;
    let r = &d.recipe;
    Ok(Json(json!({
        "id": id,
        "name": name,
        "is_archived": false,
        "source_file": r.file,
        "compile_cmd": r.compile.as_ref().map(|c| c.argv.join(" ")),
        "run_cmd": r.run.argv.join(" "),
    })))
}

/// `GET /statuses`.
pub async fn statuses(Caller(_c): Caller) -> Json<Value> {
    Json(Value::Array((1..=14).map(model::status).collect()))
}

/// `GET /about`: the version is the API's (the SDK maps language names by it).
pub async fn about(Caller(_c): Caller) -> Json<Value> {
    Json(json!({
        "version": model::VERSION,
        "homepage": "https://github.com/codebeaker",
        "source_code": "https://github.com/codebeaker",
        "maintainer": "CodeBeaker (the Judge0 CE 1.13.1 API over CodeBeaker's sandboxes)",
    }))
}

/// `GET /version`: plain text.
pub async fn version(Caller(_c): Caller) -> &'static str {
    model::VERSION
}

/// The most seconds a submission of `caller` may run.
fn max_seconds(state: &AppState, caller: &Principal) -> f64 {
    caller.timeout_cap(state.settings.limits.max_timeout_ms.as_millis() as u64) as f64 / 1000.0
}

/// The most memory (KB) a submission of `caller` may have.
fn max_memory_kb(state: &AppState, caller: &Principal) -> u64 {
    caller.memory_cap(state.settings.pool.limits.memory_mb) * 1024
}

/// `GET /config_info`: every key Judge0 reports (the SDK checks all 39), with this
/// gateway's values.
pub async fn config_info(State(state): State<AppState>, Caller(caller): Caller) -> Json<Value> {
    let max_s = max_seconds(&state, &caller);
    let w = &state.settings.webhooks;
    Json(json!({
        "maintenance_mode": false,
        "enable_wait_result": true,
        "enable_compiler_options": false,
        "allowed_languages_for_compile_options": [],
        "enable_command_line_arguments": true,
        "enable_submission_delete": false,
        "enable_callbacks": true,
        "callbacks_max_tries": w.max_attempts,
        "callbacks_timeout": w.timeout_ms.as_secs_f64(),
        "enable_additional_files": false,
        "max_queue_size": state.settings.executions.max_queued,
        "cpu_time_limit": 5.0_f64.min(max_s),
        "max_cpu_time_limit": max_s,
        "cpu_extra_time": 1.0,
        "max_cpu_extra_time": max_s,
        "wall_time_limit": 10.0_f64.min(max_s),
        "max_wall_time_limit": max_s,
        // The container's own limit: the default needs no `docker update` per call.
        "memory_limit": max_memory_kb(&state, &caller),
        "max_memory_limit": max_memory_kb(&state, &caller),
        "stack_limit": 64_000,
        "max_stack_limit": 128_000,
        "max_processes_and_or_threads": 60,
        "max_max_processes_and_or_threads": 120,
        "enable_per_process_and_thread_time_limit": false,
        "allow_enable_per_process_and_thread_time_limit": true,
        "enable_per_process_and_thread_memory_limit": false,
        "allow_enable_per_process_and_thread_memory_limit": true,
        "max_file_size": 1024,
        "max_max_file_size": 4096,
        "number_of_runs": 1,
        "max_number_of_runs": MAX_RUNS,
        "redirect_stderr_to_stdout": false,
        "max_extract_size": 10240,
        "enable_batched_submissions": true,
        "max_submission_batch_size": MAX_BATCH,
        "submission_cache_duration": 0.0,
        "use_docs_as_homepage": false,
        "allow_enable_network": false,
        "enable_network": false,
    }))
}

/// Judge0's validation errors: attribute → messages (422).
type Invalid = Map<String, Value>;

fn add(errors: &mut Invalid, attr: &str, message: impl Into<String>) {
    let list = errors
        .entry(attr.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(a) = list {
        a.push(Value::String(message.into()));
    }
}

/// A numeric attribute as Rails casts it: a number or a numeric string.
fn number(body: &Map<String, Value>, key: &str, errors: &mut Invalid) -> Option<f64> {
    match body.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(n) => Some(n),
            Err(_) => {
                add(errors, key, "is not a number");
                None
            }
        },
        Some(_) => {
            add(errors, key, "is not a number");
            None
        }
    }
}

/// A boolean attribute as Rails casts it.
fn boolean(body: &Map<String, Value>, key: &str) -> bool {
    match body.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "1" | "t" | "yes" | "on"),
        Some(Value::Number(n)) => n.as_f64() == Some(1.0),
        _ => false,
    }
}

/// A text attribute (decoded when the request is base64).
fn text(body: &Map<String, Value>, key: &str, base64: bool) -> Option<String> {
    match body.get(key)? {
        Value::String(s) if base64 => Some(model::decode64(s)),
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// `command_line_arguments` as a shell would split it (quotes group, backslash escapes).
fn split_args(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                any = true;
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// One submission, checked and clamped, as the native body it runs as (with its Judge0
/// fields under `judge0`), or Judge0's validation errors.
fn submission(
    state: &AppState,
    caller: &Principal,
    body: &Value,
    base64: bool,
) -> Result<(Value, Meta), Invalid> {
    let mut errors = Invalid::new();
    let Some(body) = body.as_object() else {
        add(&mut errors, "submission", "must be a JSON object");
        return Err(errors);
    };
    let source = text(body, "source_code", base64).filter(|s| !s.is_empty());
    if source.is_none() {
        add(&mut errors, "source_code", "can't be blank");
    }
    let language_id = number(body, "language_id", &mut errors);
    let language = match language_id {
        None => {
            add(&mut errors, "language_id", "can't be blank");
            None
        }
        Some(id) => {
            let found = languages(state)
                .into_iter()
                .find(|(i, _, _)| f64::from(*i) == id);
            if found.is_none() {
                add(
                    &mut errors,
                    "language_id",
                    format!("language with id {id} doesn't exist"),
                );
            }
            found
        }
    };
    let max_s = max_seconds(state, caller);
    let max_kb = max_memory_kb(state, caller);
    // Judge0's lower bounds are refused with its messages; above the server's limits, a
    // value is clamped to them.
    let mut limit = |key: &str, default: f64, min: f64, strict: bool, max: f64| -> f64 {
        let v = number(body, key, &mut errors).unwrap_or(default);
        if strict && v <= min {
            add(&mut errors, key, format!("must be greater than {min}"));
        } else if !strict && v < min {
            add(
                &mut errors,
                key,
                format!("must be greater than or equal to {min}"),
            );
        }
        v.min(max)
    };
    let number_of_runs = limit("number_of_runs", 1.0, 0.0, true, f64::from(MAX_RUNS)) as u32;
    let cpu_time_limit = limit("cpu_time_limit", 5.0, 0.0, false, max_s);
    let cpu_extra_time = limit("cpu_extra_time", 1.0, 0.0, false, max_s);
    let wall_time_limit = limit("wall_time_limit", 10.0, 1.0, false, max_s);
    // The default is the container's own limit, not Judge0's 128,000 KB: a container keeps
    // the last limit it was given, and switching it costs a `docker update` (~15 ms, run W).
    let memory_limit = limit("memory_limit", max_kb as f64, 2048.0, false, max_kb as f64) as u64;
    let stack_limit = limit("stack_limit", 64_000.0, 0.0, false, 128_000.0) as u64;
    let max_processes = limit("max_processes_and_or_threads", 60.0, 0.0, true, 120.0) as u64;
    let max_file_size = limit("max_file_size", 1024.0, 0.0, false, 4096.0) as u64;
    if boolean(body, "enable_network") {
        add(
            &mut errors,
            "enable_network",
            "enabling network is not allowed",
        );
    }
    let compiler_options = text(body, "compiler_options", false).filter(|s| !s.is_empty());
    if compiler_options.is_some() {
        add(
            &mut errors,
            "compiler_options",
            "setting compiler options is not allowed",
        );
    }
    if text(body, "additional_files", false).is_some_and(|s| !s.is_empty()) {
        add(
            &mut errors,
            "additional_files",
            "setting additional files is not allowed",
        );
    }
    let arguments = text(body, "command_line_arguments", false).filter(|s| !s.is_empty());
    if arguments.as_ref().is_some_and(|a| a.len() > 512) {
        add(
            &mut errors,
            "command_line_arguments",
            "is too long (maximum is 512 characters)",
        );
    }
    let callback_url = text(body, "callback_url", false).filter(|s| !s.is_empty());
    let (Some(source), Some((language_id, language_name, def)), true) =
        (source, language, errors.is_empty())
    else {
        return Err(errors);
    };
    let meta = Meta {
        language_id,
        language_name,
        source_code: source.clone(),
        stdin: text(body, "stdin", base64),
        expected_output: text(body, "expected_output", base64),
        number_of_runs,
        cpu_time_limit,
        cpu_extra_time,
        wall_time_limit,
        memory_limit,
        stack_limit,
        max_processes_and_or_threads: max_processes,
        enable_per_process_and_thread_time_limit: boolean(
            body,
            "enable_per_process_and_thread_time_limit",
        ),
        enable_per_process_and_thread_memory_limit: boolean(
            body,
            "enable_per_process_and_thread_memory_limit",
        ),
        max_file_size,
        redirect_stderr_to_stdout: boolean(body, "redirect_stderr_to_stdout"),
        callback_url: callback_url.clone(),
        command_line_arguments: arguments.clone(),
        compiler_options: None,
    };
    // CodeBeaker limits wall-clock time: the CPU limit with its extra time, under the wall
    // limit.
    let seconds = (cpu_time_limit + cpu_extra_time)
        .min(wall_time_limit)
        .max(0.001);
    let container_mb = state.settings.pool.limits.memory_mb;
    let memory_mb = memory_limit
        .div_ceil(1024)
        .clamp(32.min(container_mb), container_mb);
    let mut native = json!({
        "language": def.language().name(),
        "code": source,
        "mode": "plain",
        "stdin": meta.stdin.clone().unwrap_or_default(),
        "args": arguments.as_deref().map(split_args).unwrap_or_default(),
        "timeoutMs": (seconds * 1000.0).ceil() as u64,
        "judge0": serde_json::to_value(&meta).unwrap_or_default(),
    });
    // Only a limit below the container's is a limit of its own.
    if memory_mb < container_mb {
        native["memoryLimitMb"] = json!(memory_mb);
    }
    if let Some(url) = callback_url {
        native["callbackUrl"] = json!(url);
    }
    if number_of_runs > 1 {
        // Several runs are a batch of the same program that stops at the first failure.
        native["stopOnFirstError"] = json!(true);
        native["items"] = Value::Array(
            (1..=number_of_runs)
                .map(|i| json!({"id": format!("run-{i}")}))
                .collect(),
        );
    }
    Ok((native, meta))
}

/// Submits one checked submission; its token.
async fn submit(
    state: &AppState,
    caller: &Principal,
    native: Value,
) -> Result<JobRecord, Result<Invalid, Judge0Error>> {
    match state.executions.submit(caller, native, None).await {
        Ok((job, _)) => Ok(job),
        // The callback URL's check (an internal address, no signing secret) is Judge0's
        // 422 on `callback_url`.
        Err(ExecutionsError::Request(RequestError::Invalid(m))) if m.starts_with("callbackUrl") => {
            let mut errors = Invalid::new();
            add(&mut errors, "callback_url", m);
            Err(Ok(errors))
        }
        Err(ExecutionsError::Request(RequestError::Invalid(m))) => {
            let mut errors = Invalid::new();
            add(&mut errors, "submission", m);
            Err(Ok(errors))
        }
        Err(e) => Err(Err(e.into())),
    }
}

/// A batch of `n` submissions (created or shown) is 1 to [`MAX_BATCH`], with Judge0's words.
fn batch_size(n: usize) -> Result<(), Judge0Error> {
    if n == 0 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "there should be at least one submission in a batch",
        ));
    }
    if n > MAX_BATCH {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("number of submissions in a batch should be less than or equal to {MAX_BATCH}"),
        ));
    }
    Ok(())
}

/// A request body as JSON (Judge0's clients send JSON; the content type is not checked).
fn json_body(body: &[u8]) -> Result<Value, Judge0Error> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("the request body is not JSON: {e}"),
        )
    })
}

fn unprocessable(errors: Invalid) -> Judge0Error {
    Judge0Error(Box::new(
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(Value::Object(errors)),
        )
            .into_response(),
    ))
}

/// The submission `token` of the caller's tenant, with its Judge0 fields.
async fn load(state: &AppState, caller: &Principal, token: &str) -> Option<(Meta, JobRecord)> {
    if uuid::Uuid::parse_str(token).is_err() {
        return None;
    }
    let job = state
        .executions
        .get_with_request(caller, token)
        .await
        .ok()?;
    if job.kind != JobKind::Judge0 {
        return None;
    }
    let meta = match &job.request {
        Some(Ok(JobRequest::Judge0(_, meta))) => serde_json::from_value(meta.clone()).ok()?,
        _ => return None,
    };
    Some((meta, job))
}

/// `POST /submissions`: `{token}` (201), or with `wait=true` the finished submission.
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<Params>,
    body: axum::body::Bytes,
) -> Result<Response, Judge0Error> {
    caller.require(Scope::Execute)?;
    let fields =
        model::fields(q.fields.as_deref()).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let body = json_body(&body)?;
    let (native, meta) = submission(&state, &caller, &body, q.base64()).map_err(unprocessable)?;
    let runs = u64::from(meta.number_of_runs);
    let job = match submit(&state, &caller, native).await {
        Ok(job) => job,
        Err(Ok(errors)) => return Err(unprocessable(errors)),
        Err(Err(e)) => return Err(e),
    };
    if !q.wait() {
        return Ok((StatusCode::CREATED, Json(json!({"token": job.id}))).into_response());
    }
    // `wait=true`: answered when it has run (bounded: every run's limit, the compile, and
    // a minute of queueing).
    let limits = &state.settings.limits;
    let bound =
        limits.max_timeout_ms * (runs as u32) + limits.compile_timeout_ms + Duration::from_secs(60);
    let deadline = tokio::time::Instant::now() + bound;
    let mut job = job;
    // Polled every 5 ms: a lookup is a few tens of microseconds, and a short program is
    // done within milliseconds of being claimed.
    while !job.status.is_final() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        job = state.executions.get(&caller, &job.id).await?;
    }
    let view = model::view(&meta, &job, &fields, q.base64());
    Ok((StatusCode::CREATED, Json(Value::Object(view))).into_response())
}

/// `GET /submissions/{token}`.
pub async fn show(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(token): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, Judge0Error> {
    caller.require(Scope::Execute)?;
    let fields =
        model::fields(q.fields.as_deref()).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let (meta, job) = load(&state, &caller, &token).await.ok_or_else(not_found)?;
    Ok(Json(Value::Object(model::view(
        &meta,
        &job,
        &fields,
        q.base64(),
    ))))
}

/// `DELETE /submissions/{token}`: as a Judge0 server with `enable_submission_delete`
/// off (its default, and what `/config_info` says): submissions expire with
/// `executions.retention_secs` instead.
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(token): Path<String>,
) -> Result<Response, Judge0Error> {
    caller.require(Scope::Execute)?;
    load(&state, &caller, &token).await.ok_or_else(not_found)?;
    Err(error(StatusCode::BAD_REQUEST, "delete not allowed"))
}

/// `POST /submissions/batch`: `[{token} | {attribute: [errors]}]` in order, 201 when any
/// was accepted.
pub async fn create_batch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<Params>,
    body: axum::body::Bytes,
) -> Result<Response, Judge0Error> {
    caller.require(Scope::Execute)?;
    let body = json_body(&body)?;
    let items = body["submissions"].as_array().cloned().unwrap_or_default();
    batch_size(items.len())?;
    let mut out = Vec::with_capacity(items.len());
    let mut any = false;
    for item in &items {
        match submission(&state, &caller, item, q.base64()) {
            Err(errors) => out.push(Value::Object(errors)),
            Ok((native, _)) => match submit(&state, &caller, native).await {
                Ok(job) => {
                    any = true;
                    out.push(json!({"token": job.id}));
                }
                Err(Ok(errors)) => out.push(Value::Object(errors)),
                Err(Err(e)) => return Err(e),
            },
        }
    }
    let status = if any {
        StatusCode::CREATED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(Value::Array(out))).into_response())
}

/// `GET /submissions/batch?tokens=a,b`: `{"submissions": [...]}` in token order, `null`
/// for a token of no submission of the caller's tenant.
pub async fn show_batch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<Params>,
) -> Result<Json<Value>, Judge0Error> {
    caller.require(Scope::Execute)?;
    let fields =
        model::fields(q.fields.as_deref()).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let tokens: Vec<&str> = q
        .tokens
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    batch_size(tokens.len())?;
    let mut out = Vec::with_capacity(tokens.len());
    for t in tokens {
        out.push(match load(&state, &caller, t).await {
            Some((meta, job)) => Value::Object(model::view(&meta, &job, &fields, q.base64())),
            None => Value::Null,
        });
    }
    Ok(Json(json!({ "submissions": out })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_split_as_a_shell_would() {
        assert_eq!(split_args("a  b"), vec!["a", "b"]);
        assert_eq!(
            split_args(r#"one "two words" 'x y' a\ b """#),
            vec!["one", "two words", "x y", "a b", ""]
        );
        assert!(split_args("   ").is_empty());
    }
}
