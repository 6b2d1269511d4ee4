//! Types shared by the gateway and the in-container agent.
//!
//! This crate owns two things that must agree on both sides of the container boundary:
//! the [`Language`] table (names, aliases, file names) and the agent wire protocol
//! ([`Request`] / [`Reply`]). The protocol is one JSON object per line: the gateway writes
//! requests to the container's stdin and reads replies from its stdout. The agent's own
//! diagnostics go to stderr, which Docker keeps as a separate stream, so a log line can
//! never be mistaken for a reply.
//!
//! # The agent protocol
//!
//! Newline-delimited JSON over the container's stdin (requests) and stdout (replies).
//! Frames are externally tagged (`{"run":{…}}`, `"ping"`): serde buffers an internally
//! tagged frame into a tree before it picks the variant, and the input and output travel
//! as raw JSON text ([`RawJson`]: validated once at the HTTP edge or by the agent, never
//! rebuilt; a value with a line break is compacted so that it fits on its line).
//!
//! Requests ([`Request`]):
//! - `"ping"` (answered after the cleanup; kept for diagnosis, the pool does not send it);
//! - `{"run":{"source","input","timeoutMs","compileTimeoutMs","streamLimitBytes",
//!   "resultLimitBytes","plain","cacheKey"}}`: one program, one input (answered `ran`);
//! - for a stream of inputs (batches): `{"prepare":{"source","compileTimeoutMs","plain",
//!   "cacheKey"}}` (answered `prepared`, with the compile time, cache hit and compiler
//!   error) then any number of `{"item":{"input","timeoutMs","streamLimitBytes",
//!   "resultLimitBytes"}}` (each answered `ran`);
//! - for a resident instance (`"isolation": "program"`): `instance` (as `prepare`, plus
//!   `maxCalls` and `maxAgeMs`; answered `prepared`), then `call` lines shaped as `item`
//!   (each answered `ran`; they may be sent ahead, and run one at a time in order), then
//!   `"end_instance"` (answered `clean`);
//! - for sessions: `session` (enter session mode, store metadata), `"session_info"`, `file`
//!   (a tagged file command) and `shell` (an argv).
//!
//! Replies ([`Reply`]): `ready` (once, with language, toolchain version and agent version),
//! `pong`, `ran` (a [`RunOutcome`]), `prepared`, `clean` (after the reply to `run`,
//! `prepare` or `item` of a pool container once its cleanup is done, and as the answer to
//! `end_instance`), `failed` (agent-side fault; the container is retired), and for
//! sessions `session_started`, `session_info`, `file_done`, `command_failed` (the caller's
//! fault: bad path, missing file), `output` (streamed chunks, zero or more before) `shell`.
//!
//! One request is in flight per container at a time, which the pool's exclusive checkout
//! guarantees; the one exception is a resident instance's `call` lines, which a batch
//! worker pipelines (up to `instances.pipeline_depth`) and the agent answers in order.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

mod raw;
pub use raw::{within_depth, RawJson, MAX_JSON_DEPTH, TOO_DEEP};

/// A language CodeBeaker can run: its canonical name. What a language *is* (aliases,
/// files, compile and run commands, wrappers) is data, in its recipe
/// (`codebeaker-recipe`, `languages/<name>/`); past the HTTP edge a name has been resolved
/// against the recipes, so a `Language` always names one.
///
/// The first four languages have constants, for tests and for the few places that treat
/// them specially (variant pools).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Language(Cow<'static, str>);

impl TryFrom<String> for Language {
    type Error = String;
    fn try_from(name: String) -> Result<Language, String> {
        if Language::is_valid_name(&name) {
            Ok(Language(Cow::Owned(name)))
        } else {
            Err(format!("{name:?} is not a language name"))
        }
    }
}

impl From<Language> for String {
    fn from(l: Language) -> String {
        l.0.into_owned()
    }
}

#[allow(non_upper_case_globals)]
impl Language {
    pub const Python: Language = Language(Cow::Borrowed("python"));
    pub const JavaScript: Language = Language(Cow::Borrowed("javascript"));
    pub const Go: Language = Language(Cow::Borrowed("go"));
    pub const CSharp: Language = Language(Cow::Borrowed("csharp"));

    /// The four languages CodeBeaker started with, in the order they were listed.
    pub const FIRST_FOUR: [Language; 4] = [
        Language::Python,
        Language::JavaScript,
        Language::Go,
        Language::CSharp,
    ];

    /// A language by its canonical name (not an alias: resolving those takes the recipes).
    /// `None` for a name no recipe could have.
    pub fn new(name: &str) -> Option<Language> {
        Language::is_valid_name(name).then(|| Language(Cow::Owned(name.to_string())))
    }

    /// Lowercase ASCII letters, digits and `-`, starting with a letter, at most 32 bytes:
    /// a name is used in image names, container labels, config keys and metric labels.
    pub fn is_valid_name(name: &str) -> bool {
        name.len() <= 32
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }

    /// The canonical name used in the API, in config keys and in container labels.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the shared compile cache is mounted (read-only) in every runtime container.
pub const SHARED_CACHE_MOUNT: &str = "/shared-cache";

/// The content address of a compiled artifact: a SHA-256 over the language, the
/// toolchain's version line, the source translator's version (C# top-level statements;
/// the recipe's `Recipe::translator_version`, "" for most) and the complete source. Anyone can compute it, so it names only what is not shared
/// between tenants: the agent's own launcher, and a container's private cache when the
/// gateway sent no key. The gateway's keys (shared cache, calls) are keyed hashes of the
/// same parts and the tenant (`codebeaker_pool::ArtifactKeys`).
pub fn artifact_key(
    language: &Language,
    translator: &str,
    toolchain: &str,
    source: &[u8],
) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    let mut h = Sha256::new();
    for part in [
        language.name().as_bytes(),
        toolchain.as_bytes(),
        translator.as_bytes(),
        source,
    ] {
        h.update(part);
        h.update([0]);
    }
    h.finalize().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The file name of an artifact in the shared cache: its key and the extension of the
/// recipe's artifact (Mono wants its `.exe`).
pub fn artifact_file(key: &str, extension: &str) -> String {
    format!("{key}{extension}")
}

/// A request from the gateway to the agent. One per line on the container's stdin.
///
/// Externally tagged (`{"run":{…}}`, `"ping"`), not internally: serde buffers an
/// internally tagged frame into a tree before it picks the variant, which would defeat
/// [`RawJson`] (the input would be parsed and copied again).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Liveness and cleanliness check. The agent answers only once the previous
    /// invocation has been cleaned up, so a `Pong` means "ready for the next one".
    Ping,
    /// Run one program under the edge contract.
    Run(RunRequest),
    /// Prepare a program for a stream of inputs (a batch): write and compile it once and
    /// keep it. Answered by [`Reply::Prepared`]. A later `prepare` replaces it; `run`
    /// does not touch it.
    Prepare(PrepareRequest),
    /// Run the prepared program on one input, in a fresh process, exactly as `run` would
    /// (input written, program started, result read, container cleaned before the next
    /// line is read). Answered by [`Reply::Ran`].
    Item(ItemRequest),
    /// Start a resident instance of a program (`"isolation": "program"`): write and
    /// compile it once, start a runner process that loads it once, and keep the container's
    /// state between calls (no cleanup until [`Request::EndInstance`]). Answered by
    /// [`Reply::Prepared`].
    Instance(InstanceRequest),
    /// One input for the resident instance, answered by [`Reply::Ran`]. Calls may be sent
    /// ahead (pipelined): the agent runs them one at a time, in order, each under its own
    /// limits counted from when it starts. An instance that dies (timeout, memory, crash,
    /// exit) or leaves a process behind is replaced before the next call runs.
    Call(ItemRequest),
    /// Stop the resident instance and clean the container: answered by [`Reply::Clean`].
    EndInstance,
    /// Turn this container into a session: from now on nothing is wiped between requests.
    /// `meta` is the gateway's record of the session, kept so that a restarted gateway can
    /// re-adopt the container ([`Request::SessionInfo`]).
    Session { meta: serde_json::Value },
    /// Asks whether this container is a session, and its stored metadata.
    SessionInfo,
    /// A file command inside `/workspace` (sessions only).
    File(FileCommand),
    /// Run an argv (sessions only). With `stream`, [`Reply::Output`] lines precede the
    /// final [`Reply::Shell`].
    Shell(ShellRequest),
}

/// File commands, tagged by `type` exactly as the JSON-RPC protocol names them. Every
/// path is resolved inside `/workspace` by the agent, beneath-only and without following
/// symlinks out of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FileCommand {
    #[serde(rename_all = "camelCase")]
    WriteFile {
        path: String,
        content: String,
        #[serde(default)]
        mode: WriteMode,
        #[serde(default)]
        encoding: Encoding,
    },
    #[serde(rename_all = "camelCase")]
    ReadFile {
        path: String,
        #[serde(default)]
        encoding: Encoding,
    },
    ListDirectory {
        #[serde(default = "workspace_root")]
        path: String,
    },
    CreateDirectory {
        path: String,
    },
    DeleteFile {
        path: String,
        #[serde(default)]
        recursive: bool,
    },
    CopyFile {
        source: String,
        destination: String,
        #[serde(default)]
        overwrite: bool,
    },
}

fn workspace_root() -> String {
    "/workspace".into()
}

/// How `write_file` treats an existing file. The names are .NET's `FileMode`, which is
/// what the Loopai client sends (`"Create"` by default, on every call of a reused session).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum WriteMode {
    /// Creates the file, or truncates it if it exists (the default). `Overwrite`, this
    /// protocol's earlier name, means the same.
    #[default]
    #[serde(alias = "Overwrite", alias = "create", alias = "overwrite")]
    Create,
    /// Fails if the file exists.
    #[serde(alias = "createNew", alias = "create_new")]
    CreateNew,
    /// Appends, creating the file if needed.
    #[serde(alias = "append")]
    Append,
    /// Truncates a file that must already exist.
    #[serde(alias = "truncate")]
    Truncate,
}

impl WriteMode {
    /// The accepted names, for error messages.
    pub const NAMES: &'static str =
        "Create (default), CreateNew, Append, Truncate, Overwrite (= Create)";
}

/// How file content travels in JSON: as text, or base64 for bytes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Utf8,
    Base64,
}

/// An argv to run in a session, never through a shell string.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShellRequest {
    pub command_name: String,
    #[serde(default)]
    pub args: Vec<String>,
    pub working_directory: Option<String>,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    pub timeout_ms: u64,
    pub stdin: Option<String>,
    #[serde(default)]
    pub stream: bool,
    pub stream_limit_bytes: u64,
}

/// What a shell command did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShellResult {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    pub timed_out: bool,
    pub truncated: bool,
}

/// Why a session command could not be carried out.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CommandErrorKind {
    PathOutsideWorkspace,
    NotFound,
    AlreadyExists,
    TooLarge,
    InvalidArgument,
    Io,
}

/// One invocation: the already-wrapped program plus its input and limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunRequest {
    /// The complete program source (wrapper template with the user's code inside).
    pub source: String,
    /// The value written to `/workspace/input.json`, verbatim.
    pub input: RawJson,
    /// Wall-clock limit for running the program (compilation has its own limit).
    pub timeout_ms: u64,
    /// Wall-clock limit for compiling, for compiled languages.
    pub compile_timeout_ms: u64,
    /// Cap on each of stdout and stderr; the rest is discarded and `truncated` is set.
    pub stream_limit_bytes: u64,
    /// Cap on the size of `/workspace/output.json`.
    pub result_limit_bytes: u64,
    /// A plain program: `source` is the whole program (no wrapper), success is exit code 0
    /// and no `output.json` is read.
    #[serde(default)]
    pub plain: bool,
    /// For a compiled language: the gateway's key of the compiled program (a keyed hash of
    /// the tenant, toolchain and source, `pool/src/cache.rs`), under which the agent looks
    /// it up and caches it. Without one the agent keys its own cache by [`artifact_key`]
    /// and does not use the shared cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    /// What the program is started with besides its input: stdin, argv and extra files.
    #[serde(default, skip_serializing_if = "Extras::is_empty")]
    pub extras: Extras,
}

/// A program's stdin, its arguments and the files written beside it in `/workspace`
/// (before it is compiled, so a compiler finds them too).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Extras {
    /// The program's standard input (then end of file). Empty: an empty stdin.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stdin: String,
    /// Arguments after the program (`sys.argv[1:]`, `process.argv.slice(2)`, `os.Args[1:]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Files written into `/workspace` before the program (paths relative to it, checked
    /// by the gateway and confined again by the agent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ProgramFile>,
}

impl Extras {
    pub fn is_empty(&self) -> bool {
        self.stdin.is_empty() && self.args.is_empty() && self.files.is_empty()
    }
}

/// One file written beside the program.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProgramFile {
    /// Relative to `/workspace`.
    pub path: String,
    pub content: String,
    #[serde(default)]
    pub encoding: Encoding,
}

/// A program to keep for [`Request::Item`]s.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrepareRequest {
    /// The complete program source, as in [`RunRequest::source`].
    pub source: String,
    /// Wall-clock limit for compiling, for compiled languages.
    pub compile_timeout_ms: u64,
    /// A plain program (see [`RunRequest::plain`]).
    #[serde(default)]
    pub plain: bool,
    /// See [`RunRequest::cache_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    /// The arguments and files of every item (each item brings its own stdin).
    #[serde(default, skip_serializing_if = "Extras::is_empty")]
    pub extras: Extras,
}

/// A program to keep resident for [`Request::Call`]s.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRequest {
    /// The user's code. Python and JavaScript: as written (the runner supplies
    /// `input_data` and reads `result`); Go and C#: inside the instance template, which
    /// turns the body into a function the runner calls per input.
    pub source: String,
    /// Wall-clock limit for compiling, for compiled languages.
    pub compile_timeout_ms: u64,
    /// A plain program: no `input_data`, no result; a call succeeds by not failing.
    #[serde(default)]
    pub plain: bool,
    /// See [`RunRequest::cache_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    /// The runner is replaced (in the same container, after a full cleanup) after this
    /// many calls...
    pub max_calls: u64,
    /// ...or when it is this old.
    pub max_age_ms: u64,
}

/// One input for the prepared program, with the per-run limits of [`RunRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ItemRequest {
    pub input: RawJson,
    pub timeout_ms: u64,
    pub stream_limit_bytes: u64,
    pub result_limit_bytes: u64,
    /// This item's stdin (a prepared program's items; not for resident calls).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdin: String,
}

/// Limits for session file commands, sent with each command.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// A reply from the agent to the gateway. One per line on the container's stdout.
/// Externally tagged, like [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Sent once at startup, after the first runner process has been pre-started.
    Ready(AgentInfo),
    /// Answer to [`Request::Ping`].
    Pong { invocations: u64 },
    /// Answer to [`Request::Run`] and [`Request::Item`].
    Ran(RunOutcome),
    /// Sent by a pool container (never a session) after its reply to `run`, `prepare` or
    /// `item`, once the cleanup is complete. The gateway returns the container to the pool
    /// only after this line, so an idle container is always clean and ready: a slow cleanup
    /// (a fork bomb's) keeps the container busy instead of stalling the next caller.
    Clean,
    /// Answer to [`Request::Prepare`] and [`Request::Instance`]: `error` is the
    /// compiler's complaint (the program cannot run; no item or call should be sent).
    Prepared {
        compile_ms: u64,
        cache_hit: Option<bool>,
        error: Option<ProgramError>,
        /// As [`RunOutcome::artifact`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        artifact: Option<String>,
    },
    /// The request could not be handled at all (malformed, or an agent-side fault).
    /// The gateway retires a container that says this.
    Failed { message: String },
    /// Answer to [`Request::Session`].
    SessionStarted,
    /// Answer to [`Request::SessionInfo`]: `None` for a pool container.
    SessionInfo { meta: Option<serde_json::Value> },
    /// Answer to a successful [`Request::File`]: the command's JSON result.
    FileDone { result: serde_json::Value },
    /// A session command that failed for a reason of the caller's (bad path, missing file).
    CommandFailed {
        kind: CommandErrorKind,
        message: String,
    },
    /// Streamed output of a running shell command (before its [`Reply::Shell`]).
    Output { stream: String, data: String },
    /// Answer to [`Request::Shell`].
    Shell(ShellResult),
}

/// What the agent reports about itself at startup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    pub language: Language,
    /// The toolchain's own version line, e.g. `Python 3.11.2`.
    pub toolchain: String,
    pub agent_version: String,
}

/// The result of one invocation, as observed inside the container.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunOutcome {
    /// The contents of `/workspace/output.json` (validated, compact), when the program
    /// succeeded.
    pub output: Option<RawJson>,
    pub stdout: String,
    pub stderr: String,
    /// Exit code of the program, or `None` when it was killed by a signal.
    pub exit_code: Option<i32>,
    /// True when stdout or stderr was cut at `stream_limit_bytes`.
    pub truncated: bool,
    /// Time spent inside the container, compile included.
    pub duration_ms: u64,
    /// Time spent compiling (0 when the language is interpreted or the cache hit).
    pub compile_ms: u64,
    /// For compiled languages: whether the compiled artifact came from the cache.
    pub cache_hit: Option<bool>,
    /// Why the invocation did not succeed, or `None` on success.
    pub error: Option<ProgramError>,
    /// A freshly compiled artifact (base64), sent once so that the gateway can file it in
    /// the shared compile cache; only when the container has one mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
}

/// A failure caused by the program itself (reported as HTTP 200, `success: false`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProgramError {
    pub kind: ProgramErrorKind,
    pub message: String,
}

/// The distinct ways a program can fail. Each has its own `kind` string in the API.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ProgramErrorKind {
    CompileError,
    RuntimeError,
    Timeout,
    MemoryLimitExceeded,
    /// The program used up the container's process limit (a fork bomb) and was stopped.
    ProcessLimitExceeded,
    MissingResult,
    InvalidOutput,
    OutputTooLarge,
}

impl ProgramErrorKind {
    /// The stable string used in the API and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ProgramErrorKind::CompileError => "compile_error",
            ProgramErrorKind::RuntimeError => "runtime_error",
            ProgramErrorKind::Timeout => "timeout",
            ProgramErrorKind::MemoryLimitExceeded => "memory_limit_exceeded",
            ProgramErrorKind::ProcessLimitExceeded => "process_limit_exceeded",
            ProgramErrorKind::MissingResult => "missing_result",
            ProgramErrorKind::InvalidOutput => "invalid_output",
            ProgramErrorKind::OutputTooLarge => "output_too_large",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_serialize_as_strings() {
        assert_eq!(Language::new("python"), Some(Language::Python));
        assert_eq!(Language::new("ruby").unwrap().name(), "ruby");
        for bad in ["", "Py", "c#", "c++", "../x", "1c", &"a".repeat(33)] {
            assert_eq!(Language::new(bad), None, "{bad}");
        }
        assert_eq!(
            serde_json::to_string(&Language::CSharp).unwrap(),
            r#""csharp""#
        );
        let l: Language = serde_json::from_str(r#""go""#).unwrap();
        assert_eq!(l, Language::Go);
    }

    #[test]
    fn requests_and_replies_are_one_line_of_json() {
        let req = Request::Run(RunRequest {
            extras: Extras::default(),
            source: "print('a\\nb')\n".into(),
            input: RawJson::from_value(&serde_json::json!({"x": "é\n"})),
            timeout_ms: 1000,
            compile_timeout_ms: 1000,
            stream_limit_bytes: 10,
            result_limit_bytes: 10,
            plain: false,
            cache_key: None,
        });
        let line = serde_json::to_string(&req).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), req);
        let ping = serde_json::to_string(&Request::Ping).unwrap();
        assert_eq!(ping, r#""ping""#);
        let reply = Reply::Pong { invocations: 3 };
        let line = serde_json::to_string(&reply).unwrap();
        assert_eq!(serde_json::from_str::<Reply>(&line).unwrap(), reply);
    }

    #[test]
    fn error_kind_strings_match_serde() {
        for k in [
            ProgramErrorKind::CompileError,
            ProgramErrorKind::RuntimeError,
            ProgramErrorKind::Timeout,
            ProgramErrorKind::MemoryLimitExceeded,
            ProgramErrorKind::ProcessLimitExceeded,
            ProgramErrorKind::MissingResult,
            ProgramErrorKind::InvalidOutput,
            ProgramErrorKind::OutputTooLarge,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }
}
