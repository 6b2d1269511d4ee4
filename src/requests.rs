//! The requests callers send, and their validation against the server's and the caller's
//! limits. Both transports (HTTP and JSON-RPC) deserialize into these types and validate
//! them here, so a request is judged the same whichever way it came.

use codebeaker_pool::{Invocation, Isolation};
use codebeaker_proto::RawJson;
use codebeaker_recipe::{LanguageDef, Registry as Recipes};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::config::Settings;
use crate::domain::{Denied, Principal};

/// `POST /v1/execute` and JSON-RPC `execution.run`. Field names are camelCase, as the .NET
/// clients send them.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteRequest {
    /// A served language's name or alias (`python`, `ts`, `c++`, …: `GET /v1/languages`).
    pub language: String,
    /// The user code; the wrapper gives it `input_data` and expects it to set `result`.
    pub code: String,
    /// Any JSON value, written to `/workspace/input.json`. Defaults to `{}`.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub input: RawJson,
    /// Run-time limit in milliseconds (server default when absent).
    #[serde(default, deserialize_with = "crate::json_int::option")]
    pub timeout_ms: Option<u64>,
    /// Memory limit in MB, at most the container's limit.
    #[serde(default, deserialize_with = "crate::json_int::option")]
    pub memory_limit_mb: Option<u64>,
    /// `edge` (the default: the code runs inside the language's wrapper, reads
    /// `input_data` and sets `result`) or `plain` (the code is the whole program; success
    /// is exit code 0, `output` is null, stdout is the answer).
    #[serde(default)]
    pub mode: RunMode,
    /// Packages the program imports (`["numpy", "pandas"]`): it runs on the smallest image
    /// variant that has them all. A package no variant has is refused with 422, naming
    /// what is available (`GET /v1/languages`). Nothing is ever installed at run time.
    #[serde(default)]
    pub packages: Vec<String>,
    /// `call` (the default): a fresh process per call, nothing of one call reaches the
    /// next. `program`: the call runs on a resident instance of this program (one per
    /// tenant, language, program, packages and memory limit), loaded once and called per
    /// input with fresh top-level variables; module-level state (imports, globals hung on
    /// modules, static fields, files) persists between calls of one instance.
    #[serde(default)]
    #[schema(value_type = String)]
    pub isolation: Isolation,
    /// The program's standard input (then end of file). At most `limits.max_stdin_bytes`.
    #[serde(default)]
    pub stdin: String,
    /// The program's arguments (`sys.argv[1:]`, `process.argv.slice(2)`, `os.Args[1:]`,
    /// `args` of `Main`). At most `limits.max_args`, 64 KiB together.
    #[serde(default)]
    pub args: Vec<String>,
    /// Files written into `/workspace` beside the program before it is compiled and run
    /// (a module it imports, a header it includes, a data file it reads). At most
    /// `limits.max_files`, `limits.max_files_bytes` together.
    #[serde(default)]
    pub files: Vec<FileSpec>,
}

/// One file of [`ExecuteRequest::files`].
/// (Unknown members are the route's to judge: the native routes refuse them, naming
/// `files.N.member`; the lenient compatibility routes ignore them.)
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileSpec {
    /// Relative to `/workspace` (`lib/util.py`): no `..`, no leading `/`, not the
    /// program's own file, `input.json` or `output.json`.
    pub path: String,
    pub content: String,
    /// `utf8` (the default) or `base64`.
    #[serde(default)]
    #[schema(value_type = String)]
    pub encoding: codebeaker_proto::Encoding,
}

/// The most bytes all of a program's `args` may hold together.
const MAX_ARGS_BYTES: usize = 64 * 1024;
/// The longest `files[].path`.
const MAX_PATH_CHARS: usize = 255;
/// The longest component of a `files[].path`, in characters: 63 characters of up to 4
/// bytes fit a file name's 255 bytes, and a length in characters is what a JSON Schema
/// can state (`pattern` in the OpenAPI document), so the document and the gateway agree.
pub const MAX_PATH_COMPONENT_CHARS: usize = 63;

/// Checks a program's stdin, args and files against the limits and the program's own file
/// name, and gives them as the agent takes them.
pub fn extras(
    stdin: String,
    args: Vec<String>,
    files: Vec<FileSpec>,
    settings: &Settings,
    program_file: &str,
) -> Result<codebeaker_proto::Extras, RequestError> {
    use base64::Engine as _;
    let limits = &settings.limits;
    if stdin.len() > limits.max_stdin_bytes.get() {
        return Err(RequestError::TooLarge {
            what: "stdin",
            size: stdin.len(),
            limit: limits.max_stdin_bytes.get(),
        });
    }
    if args.len() > limits.max_args.get() {
        return Err(RequestError::Invalid(format!(
            "args has {} arguments; at most {}",
            args.len(),
            limits.max_args
        )));
    }
    let args_bytes: usize = args.iter().map(String::len).sum();
    if args_bytes > MAX_ARGS_BYTES {
        return Err(RequestError::TooLarge {
            what: "args",
            size: args_bytes,
            limit: MAX_ARGS_BYTES,
        });
    }
    if args.iter().any(|a| a.contains('\0')) {
        return Err(RequestError::Invalid(
            "args: an argument holds a NUL byte".into(),
        ));
    }
    if files.len() > limits.max_files.get() {
        return Err(RequestError::Invalid(format!(
            "files has {} files; at most {}",
            files.len(),
            limits.max_files
        )));
    }
    let mut total = 0usize;
    let mut seen: Vec<&str> = Vec::with_capacity(files.len());
    for f in &files {
        check_path(&f.path, program_file)?;
        if let Some(other) = seen
            .iter()
            .find(|o| **o == f.path || is_below(o, &f.path) || is_below(&f.path, o))
        {
            return Err(RequestError::Invalid(format!(
                "files: {:?} and {other:?} cannot both be written",
                f.path
            )));
        }
        seen.push(&f.path);
        total += match f.encoding {
            codebeaker_proto::Encoding::Utf8 => f.content.len(),
            codebeaker_proto::Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(f.content.as_bytes())
                .map_err(|e| {
                    RequestError::Invalid(format!("files: {:?} is not valid base64: {e}", f.path))
                })?
                .len(),
        };
    }
    if total > limits.max_files_bytes.get() {
        return Err(RequestError::TooLarge {
            what: "files",
            size: total,
            limit: limits.max_files_bytes.get(),
        });
    }
    Ok(codebeaker_proto::Extras {
        stdin,
        args,
        files: files
            .into_iter()
            .map(|f| codebeaker_proto::ProgramFile {
                path: f.path,
                content: f.content,
                encoding: f.encoding,
            })
            .collect(),
    })
}

/// What [`extras`] checks that depends on one batch item: its own stdin's size, and the
/// batch's file paths against its language's program file.
pub fn extras_for_item(
    stdin: &str,
    files: &[codebeaker_proto::ProgramFile],
    program_file: &str,
    settings: &Settings,
) -> Result<(), RequestError> {
    if stdin.len() > settings.limits.max_stdin_bytes.get() {
        return Err(RequestError::TooLarge {
            what: "stdin",
            size: stdin.len(),
            limit: settings.limits.max_stdin_bytes.get(),
        });
    }
    files
        .iter()
        .try_for_each(|f| check_path(&f.path, program_file))
}

/// `inner` is a path below the directory `dir`.
fn is_below(dir: &str, inner: &str) -> bool {
    inner.len() > dir.len() && inner.starts_with(dir) && inner.as_bytes()[dir.len()] == b'/'
}

/// A file path a program may be given: relative, normal, inside the workspace, and none of
/// the run's own files.
fn check_path(path: &str, program_file: &str) -> Result<(), RequestError> {
    let bad = |why: &str| Err(RequestError::Invalid(format!("files: path {path:?} {why}")));
    if path.is_empty() || path.chars().count() > MAX_PATH_CHARS {
        return bad("must be 1 to 255 characters");
    }
    if path
        .split('/')
        .any(|c| c.chars().count() > MAX_PATH_COMPONENT_CHARS)
    {
        return bad("has a component longer than 63 characters");
    }
    if path.starts_with('/') {
        return bad("must be relative to the workspace");
    }
    if path.contains('\0') || path.contains('\\') {
        return bad("holds a NUL byte or a backslash");
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("must not have empty, `.` or `..` components");
    }
    if [program_file, "input.json", "output.json"].contains(&path) {
        return bad("is the run's own file");
    }
    Ok(())
}

/// How the code is run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// The Loopai edge contract: `input_data` in, `result` out.
    #[default]
    Edge,
    /// A whole program, judged by its exit code.
    Plain,
}

/// `{}`: the input when a request names none.
pub fn empty_object() -> RawJson {
    RawJson::from_value(&serde_json::Value::Object(Default::default()))
}

/// `session.create` and `POST /v1/sessions` (camelCase as the .NET client sends them).
/// Members this gateway does not know are ignored, never refused: newer clients add some.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateSession {
    pub language: String,
    pub idle_timeout_minutes: Option<f64>,
    pub max_lifetime_minutes: Option<f64>,
    #[serde(rename = "memoryLimitMB", alias = "memoryLimitMb")]
    #[serde(default, deserialize_with = "crate::json_int::option")]
    pub memory_limit_mb: Option<u64>,
    /// Relative CPU weight (Docker's `--cpu-shares`), lowered to `sessions.max_cpu_shares`.
    #[serde(default, deserialize_with = "crate::json_int::option")]
    pub cpu_shares: Option<i64>,
    /// The runtime the client asked for (Loopai sends `docker`, `deno`, `python`, …).
    /// Every session runs in a Docker container of the language's image, whose tools
    /// include that runtime; the value is kept and echoed back.
    pub runtime: Option<String>,
    /// As for an execution: the session's container comes from the smallest image variant
    /// that has these packages.
    #[serde(default)]
    pub packages: Vec<String>,
}

/// Why a request cannot run as asked (the caller's fault).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("unsupported language {name:?}; supported: {}", served.join(", "))]
    UnsupportedLanguage { name: String, served: Vec<String> },
    #[error("{what} is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    /// Above a maximum: refused, never clamped, so the caller knows its program's limits.
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    Invalid(String),
    /// A member the route does not know (native routes refuse them: see `routes::strict`).
    #[error("unknown field `{0}`: this route does not take it (see the API reference)")]
    UnknownField(String),
    /// JSON the route cannot take as it is written (nested deeper than `MAX_JSON_DEPTH`).
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Packages no image variant of the language has.
    #[error("{0}")]
    UnknownPackages(Box<codebeaker_pool::UnknownPackages>),
}

impl crate::failure::Failure for RequestError {
    fn kind(&self) -> &'static str {
        match self {
            RequestError::UnsupportedLanguage { .. } => "unsupported_language",
            RequestError::TooLarge { .. } => "payload_too_large",
            RequestError::LimitExceeded(_) => "limit_exceeded",
            RequestError::Invalid(_) => "invalid_request",
            RequestError::UnknownField(_) => "unknown_field",
            RequestError::Malformed(_) => "malformed_json",
            RequestError::Denied(d) => d.kind(),
            RequestError::UnknownPackages(_) => "unknown_packages",
        }
    }
    fn class(&self) -> crate::failure::Class {
        crate::failure::Class::Caller
    }
}

/// The most packages one request may name, and the longest name.
const MAX_PACKAGES: usize = 64;
const MAX_PACKAGE_NAME: usize = 214;

/// Checks the shape of a request's `packages` (whether some variant has them is the
/// pools' to say, [`packages_available`]).
pub fn check_packages(packages: &[String]) -> Result<(), RequestError> {
    if packages.len() > MAX_PACKAGES {
        return Err(RequestError::Invalid(format!(
            "packages names {} packages; at most {MAX_PACKAGES}",
            packages.len()
        )));
    }
    if let Some(bad) = packages
        .iter()
        .find(|p| p.trim().is_empty() || p.len() > MAX_PACKAGE_NAME)
    {
        return Err(RequestError::Invalid(format!(
            "packages: {bad:?} is not a package name"
        )));
    }
    Ok(())
}

/// Refuses an invocation whose packages no built variant has, before it is admitted or
/// queued.
/// [`packages_available`], looking once more for variant images built since the
/// gateway started when the packages are not found (rate-limited by the pools).
pub async fn packages_ready(
    pools: &std::sync::Arc<codebeaker_pool::Pools>,
    inv: &Invocation,
) -> Result<(), RequestError> {
    match packages_available(pools, inv) {
        Err(RequestError::UnknownPackages(_)) if pools.refresh_variants().await => {
            packages_available(pools, inv)
        }
        other => other,
    }
}

pub fn packages_available(
    pools: &codebeaker_pool::Pools,
    inv: &Invocation,
) -> Result<(), RequestError> {
    match pools.check_packages(&inv.language, &inv.packages) {
        Err(codebeaker_pool::PoolError::UnknownPackages(u)) => {
            Err(RequestError::UnknownPackages(u))
        }
        // A disabled language is the pools' error to report when the call runs.
        _ => Ok(()),
    }
}

/// The recipe of the language a request names (by name or alias), if it is served.
pub fn language<'r>(
    recipes: &'r Recipes,
    name: &str,
) -> Result<&'r std::sync::Arc<LanguageDef>, RequestError> {
    recipes
        .resolve(name)
        .ok_or_else(|| RequestError::UnsupportedLanguage {
            name: name.to_string(),
            // Each served language with its aliases: "python (py, python3)".
            served: recipes
                .iter()
                .map(|d| match d.recipe.aliases.as_slice() {
                    [] => d.language().to_string(),
                    a => format!("{} ({})", d.language(), a.join(", ")),
                })
                .collect(),
        })
}

/// Checks an execute request against the server's and the caller's limits and turns it
/// into an [`Invocation`]. Asking for more than allowed is refused, never silently clamped.
pub fn invocation(
    req: ExecuteRequest,
    settings: &Settings,
    recipes: &Recipes,
    caller: &Principal,
) -> Result<Invocation, RequestError> {
    let limits = &settings.limits;
    let def = language(recipes, &req.language)?;
    let language = def.language().clone();
    caller.allow_language(&language)?;
    if req.code.len() > limits.max_code_bytes.get() {
        return Err(RequestError::TooLarge {
            what: "code",
            size: req.code.len(),
            limit: limits.max_code_bytes.get(),
        });
    }
    if req.code.trim().is_empty() {
        return Err(RequestError::Invalid("code must not be empty".into()));
    }
    // The caller's own (compacted) text: its size needs no serializing.
    let input_size = req.input.get().len();
    if input_size > limits.max_input_bytes.get() {
        return Err(RequestError::TooLarge {
            what: "input",
            size: input_size,
            limit: limits.max_input_bytes.get(),
        });
    }
    let timeout_ms = run_timeout(req.timeout_ms, settings, caller)?;
    let container_mb = settings.pool.limits.memory_mb;
    if let Some(mb) = req.memory_limit_mb {
        check_memory(mb, caller.memory_cap(container_mb), "memoryLimitMb")?;
    }
    check_packages(&req.packages)?;
    let plain = req.mode == RunMode::Plain;
    let extras = extras(req.stdin, req.args, req.files, settings, &def.recipe.file)?;
    let codebeaker_proto::Extras { stdin, args, files } = extras;
    if req.isolation == Isolation::Program
        && !(stdin.is_empty() && args.is_empty() && files.is_empty())
    {
        return Err(RequestError::Invalid(
            "stdin, args and files need a fresh process (\"isolation\": \"call\"): a resident instance is started once for many calls".into(),
        ));
    }
    if req.isolation == Isolation::Program && !def.has_resident_form(plain) {
        return Err(RequestError::Invalid(format!(
            "{language} {} cannot run as a resident instance (\"isolation\": \"program\"); use \"isolation\": \"call\"",
            if plain { "plain programs" } else { "programs" }
        )));
    }
    Ok(Invocation {
        language,
        code: req.code.into(),
        input: req.input,
        timeout: Duration::from_millis(timeout_ms),
        compile_timeout: limits.compile_timeout_ms,
        // A caller whose key caps memory below the container's gets that cap applied.
        memory_mb: caller.memory_limit(req.memory_limit_mb, container_mb),
        stream_limit_bytes: limits.stream_limit_bytes.get(),
        result_limit_bytes: limits.result_limit_bytes.get(),
        plain,
        packages: req.packages,
        tenant: caller.tenant.as_str().into(),
        isolation: req.isolation,
        stdin,
        args: args.into(),
        files: files.into(),
    })
}

/// A program's run time: the server default when not asked, refused above the maximum
/// (the server's, lowered by the caller's quota). Shared by `/v1/execute` and a
/// session's `run_code`, so both refuse the same requests.
pub fn run_timeout(
    asked: Option<u64>,
    settings: &Settings,
    caller: &Principal,
) -> Result<u64, RequestError> {
    let timeout_ms = asked.unwrap_or(settings.limits.default_timeout_ms.as_millis() as u64);
    if timeout_ms == 0 {
        return Err(RequestError::Invalid("timeoutMs must be positive".into()));
    }
    let max = caller.timeout_cap(settings.limits.max_timeout_ms.as_millis() as u64);
    if timeout_ms > max {
        return Err(RequestError::LimitExceeded(format!(
            "timeoutMs {timeout_ms} is above the maximum of {max} ms"
        )));
    }
    Ok(timeout_ms)
}

/// A memory limit must be at least 32 MiB and at most `cap`.
pub fn check_memory(mb: u64, cap: u64, field: &str) -> Result<(), RequestError> {
    if mb < 32 {
        return Err(RequestError::Invalid(format!(
            "{field} must be at least 32"
        )));
    }
    if mb > cap {
        return Err(RequestError::LimitExceeded(format!(
            "{field} {mb} is above the maximum of {cap} MB"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Quota, Scope, Via};
    use codebeaker_proto::Language;

    fn caller(quota: Quota) -> Principal {
        Principal {
            subject: "key:t".into(),
            tenant: "t".into(),
            scopes: vec![Scope::Execute],
            quota,
            via: Via::ApiKey,
        }
    }

    fn recipes() -> Recipes {
        Recipes::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("languages")).unwrap()
    }

    fn req(language: &str, code: &str) -> ExecuteRequest {
        ExecuteRequest {
            isolation: Default::default(),
            language: language.into(),
            code: code.into(),
            input: RawJson::from_value(&serde_json::json!({"xs": [1]})),
            timeout_ms: None,
            memory_limit_mb: None,
            mode: RunMode::Edge,
            packages: Vec::new(),
            stdin: String::new(),
            args: Vec::new(),
            files: Vec::new(),
        }
    }

    #[test]
    fn execute_requests_are_validated_not_clamped() {
        let s = Settings::default();
        let anyone = caller(Quota::default());
        let inv = invocation(req("py", "result = 1"), &s, &recipes(), &anyone).unwrap();
        assert_eq!(inv.language, Language::Python);
        assert_eq!(inv.timeout, s.limits.default_timeout_ms);
        assert_eq!(inv.memory_mb, None);
        assert!(matches!(
            invocation(req("cobol", "x"), &s, &recipes(), &anyone),
            Err(RequestError::UnsupportedLanguage { name, served }) if name == "cobol" && served.len() == 12
        ));
        assert!(matches!(
            invocation(req("go", "  \n"), &s, &recipes(), &anyone),
            Err(RequestError::Invalid(_))
        ));
        let big = "x".repeat(s.limits.max_code_bytes.get() + 1);
        assert!(matches!(
            invocation(req("go", &big), &s, &recipes(), &anyone),
            Err(RequestError::TooLarge { what: "code", .. })
        ));
        let mut r = req("go", "x");
        r.timeout_ms = Some(s.limits.max_timeout_ms.as_millis() as u64 + 1);
        assert!(matches!(
            invocation(r, &s, &recipes(), &anyone),
            Err(RequestError::LimitExceeded(_))
        ));
        let mut r = req("go", "x");
        r.memory_limit_mb = Some(16);
        assert!(matches!(
            invocation(r, &s, &recipes(), &anyone),
            Err(RequestError::Invalid(_))
        ));

        let capped = caller(Quota {
            languages: vec![Language::Go],
            max_timeout_ms: Some(1_000),
            max_memory_mb: Some(128),
            ..Quota::default()
        });
        assert!(matches!(
            invocation(req("python", "x"), &s, &recipes(), &capped),
            Err(RequestError::Denied(Denied::Language(l))) if l == Language::Python
        ));
        let mut r = req("go", "x");
        r.timeout_ms = Some(2_000);
        assert!(matches!(
            invocation(r, &s, &recipes(), &capped),
            Err(RequestError::LimitExceeded(_))
        ));
        let mut r = req("go", "x");
        r.timeout_ms = Some(500);
        let inv = invocation(r, &s, &recipes(), &capped).unwrap();
        assert_eq!(inv.memory_mb, Some(128), "the quota's memory cap applies");
        let mut r = req("go", "x");
        r.timeout_ms = Some(500);
        r.memory_limit_mb = Some(256);
        assert!(matches!(
            invocation(r, &s, &recipes(), &capped),
            Err(RequestError::LimitExceeded(_))
        ));
    }
}
