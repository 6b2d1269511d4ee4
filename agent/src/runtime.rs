//! One invocation, start to finish, and the per-language recipes it follows.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use codebeaker_proto::{
    CommandErrorKind, Extras, FileCommand, InstanceRequest, ItemRequest, Language, PrepareRequest,
    ProgramError, ProgramErrorKind, ProgramFile, RawJson, RunOutcome, RunRequest, ShellRequest,
    ShellResult, WriteMode,
};
use nix::sys::signal::Signal;
use std::io::{self, Write};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::clean;
use crate::compile::{self, Artifact, Built, LocalCache};
use crate::exec::{self, ExitSource, Reaper};
use crate::files::{AsUser, User};
use crate::instance::{Resident, RunnerCommand};
use crate::outcome::{oom_kills, runtime_message};
use crate::recipes::{spec, Runner, Spec};
use crate::shell;
use crate::workspace::{CappedRead, CommandError, Workspace, WORKSPACE};
use crate::zygote::Zygote;
use codebeaker_recipe::Recipe;

/// Writes a program's extra files into the workspace (as the user, each confined to it,
/// parent directories created). The gateway checked the paths; this is the second check.
fn write_files(ws: &Workspace, files: &[ProgramFile]) -> io::Result<()> {
    for f in files {
        if let Some((parent, _)) = f.path.rsplit_once('/') {
            ws.handle(FileCommand::CreateDirectory {
                path: parent.to_string(),
            })
            .map_err(|e| io::Error::other(format!("file {}: {}", f.path, e.message)))?;
        }
        ws.handle(FileCommand::WriteFile {
            path: f.path.clone(),
            content: f.content.clone(),
            mode: WriteMode::Create,
            encoding: f.encoding,
        })
        .map_err(|e| io::Error::other(format!("file {}: {}", f.path, e.message)))?;
    }
    Ok(())
}

/// The edge contract's files, relative to the workspace.
const INPUT: &str = "input.json";
const OUTPUT: &str = "output.json";

/// A prepared program: its source (written to the workspace for every item, which is
/// wiped between items) and the file to run (the cached binary of a compiled language),
/// with what it takes to compile it again should the shared cache lose it between items.
struct Prepared {
    source: String,
    target: Artifact,
    plain: bool,
    cache_key: Option<String>,
    compile_timeout_ms: u64,
    /// Every item's arguments and files.
    extras: Extras,
}

/// The agent's state between requests.
pub struct Agent {
    lang: Language,
    spec: Spec,
    user: User,
    reaper: Reaper,
    toolchain: String,
    /// Runner argv with `{launcher}` resolved.
    runner_argv: Vec<String>,
    /// The compiled launcher (C#), for `{launcher}` in the resident runner's argv too.
    launcher: String,
    /// The pre-started runner waiting for the next program, if the language uses one.
    next_runner: Option<Child>,
    /// The zygote, if the language uses one. It survives cleanups.
    zygote: Option<Zygote>,
    /// The program of a stream of items (`prepare`), kept across cleanups.
    prepared: Option<Prepared>,
    /// The resident instance (`"isolation": "program"`) and its program, kept across
    /// the instance's replacements until `end_instance`.
    resident: Option<(Resident, Prepared)>,
    /// The container's own compile cache (root-only, bounded).
    cache: LocalCache,
    /// Set once the container became a session: nothing is wiped any more.
    session_meta: Option<serde_json::Value>,
    invocations: u64,
}

impl Agent {
    /// Prepares the container: checks the toolchain, builds the launcher if the language has
    /// one, and pre-starts the first runner.
    pub fn start(recipe: &Recipe, uid: u32, gid: u32) -> io::Result<Agent> {
        // Not dumpable: user code (another uid) cannot ptrace us or open /proc/1/mem.
        nix::sys::prctl::set_dumpable(false).map_err(io::Error::from)?;
        let lang = recipe.name.clone();
        let mut agent = Agent {
            lang: lang.clone(),
            spec: spec(recipe),
            user: User { uid, gid },
            reaper: Reaper::install()?,
            toolchain: String::new(),
            runner_argv: Vec::new(),
            launcher: String::new(),
            next_runner: None,
            zygote: None,
            prepared: None,
            resident: None,
            cache: LocalCache::open()?,
            session_meta: None,
            invocations: 0,
        };
        agent.toolchain = agent.toolchain_version()?;
        let launcher = match agent.spec.launcher_source.clone() {
            Some(src) => {
                let source = std::fs::read(&src)?;
                let Some(recipe) = &agent.spec.compile else {
                    return Err(io::Error::other("a launcher needs a compiled language"));
                };
                let job = compile::Job {
                    toolchain: compile::Toolchain {
                        lang: &lang,
                        version: &agent.toolchain,
                    },
                    compile: recipe,
                    src_path: Path::new(&src),
                    source: &source,
                    key: None,
                    timeout: Duration::from_secs(60),
                };
                match compile::build_launcher(&mut agent.reaper, agent.user, job)? {
                    Ok(path) => {
                        let path = path.display().to_string();
                        agent.aot_launcher(&path);
                        path
                    }
                    Err(msg) => {
                        return Err(io::Error::other(format!("launcher build failed: {msg}")))
                    }
                }
            }
            None => String::new(),
        };
        if let Runner::Prestart { argv, .. } = &agent.spec.runner {
            agent.runner_argv = argv
                .iter()
                .map(|a| a.replace("{launcher}", &launcher))
                .collect();
        }
        agent.launcher = launcher;
        agent.reset()?;
        Ok(agent)
    }

    pub fn toolchain(&self) -> &str {
        &self.toolchain
    }

    pub fn invocations(&self) -> u64 {
        self.invocations
    }

    /// Turns the container into a session (state persists between requests from now on).
    pub fn enter_session(&mut self, meta: serde_json::Value) {
        self.session_meta = Some(meta);
    }

    pub fn session_meta(&self) -> Option<&serde_json::Value> {
        self.session_meta.as_ref()
    }

    pub fn is_session(&self) -> bool {
        self.session_meta.is_some()
    }

    pub fn file(&mut self, cmd: FileCommand) -> Result<serde_json::Value, CommandError> {
        Workspace::open(self.user)
            .map_err(|e| CommandError {
                kind: CommandErrorKind::Io,
                message: e.to_string(),
            })?
            .handle(cmd)
    }

    pub fn shell(
        &mut self,
        req: ShellRequest,
        emit: &mut dyn FnMut(&str, &[u8]),
    ) -> Result<ShellResult, CommandError> {
        shell::shell(&mut self.reaper, self.user, self.zygote.as_mut(), req, emit)
    }

    /// Kills everything the last invocation left, wipes scratch space, and pre-starts the
    /// next runner so its start-up overlaps with the time until the next request.
    pub fn reset(&mut self) -> io::Result<()> {
        self.clean_slate()?;
        if let Runner::Prestart { env, .. } = &self.spec.runner {
            self.next_runner = Some(exec::spawn(&mut exec::user_command(
                &self.runner_argv,
                env,
                self.user,
            ))?);
        }
        Ok(())
    }

    /// Every process but the agent (and a healthy zygote) killed, scratch space wiped, the
    /// zygote restarted if it went.
    fn clean_slate(&mut self) -> io::Result<()> {
        self.next_runner = None;
        let keep = self
            .zygote
            .as_ref()
            .filter(|z| !z.is_tainted())
            .map(Zygote::pid);
        if !clean::kill_all(keep) {
            // Everything went, the zygote too (a fork bomb is stopped fastest that way).
            if let Some(z) = self.zygote.as_mut() {
                z.taint();
            }
        }
        clean::wipe(self.user)?;
        if let Runner::Zygote { argv } = &self.spec.runner {
            if !self.zygote.as_mut().is_some_and(Zygote::alive) {
                // The old one goes first (killed and reaped), then its successor starts.
                self.zygote = None;
                let uid = self.user.uid.to_string();
                let argv: Vec<String> = argv.iter().map(|a| a.replace("{uid}", &uid)).collect();
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                self.zygote = Some(Zygote::spawn(&argv)?);
            }
        }
        Ok(())
    }

    /// Whether a resident instance lives in this container.
    pub fn has_instance(&self) -> bool {
        self.resident.is_some()
    }

    /// Starts a resident instance: the program written and compiled once, its runner
    /// started (it loads the program while the gateway sends the first call). `Ok(outcome)`
    /// carries the compile time, the cache hit and, if it did not compile, the error.
    pub fn instance(&mut self, req: InstanceRequest) -> io::Result<RunOutcome> {
        let Some(recipe) = self.spec.resident.as_ref() else {
            return Err(io::Error::other(format!(
                "{} has no resident runner",
                self.lang
            )));
        };
        let (argv, env, threads_vary) =
            (recipe.argv.clone(), recipe.env.clone(), recipe.threads_vary);
        // Nothing of an earlier run may be there: the runner counts the container's tasks.
        self.clean_slate()?;
        let mut outcome = RunOutcome::default();
        self.write_program(&req.source)?;
        let key = req.cache_key.as_deref();
        let Some(target) = self.build(&req.source, key, req.compile_timeout_ms, &mut outcome)?
        else {
            return Ok(outcome);
        };
        let program = target
            .stage(self.user, self.spec.artifact())?
            .display()
            .to_string();
        let mode = if req.plain { "plain" } else { "edge" };
        let command = RunnerCommand {
            argv: argv
                .iter()
                .map(|a| {
                    a.replace("{program}", &program)
                        .replace("{mode}", mode)
                        .replace("{launcher}", &self.launcher)
                })
                .collect(),
            env,
            threads_vary,
        };
        let mut resident = Resident::new(
            command,
            self.user,
            req.plain,
            req.max_calls,
            Duration::from_millis(req.max_age_ms),
        );
        resident.start()?;
        self.resident = Some((
            resident,
            Prepared {
                source: req.source,
                target,
                plain: req.plain,
                cache_key: req.cache_key,
                compile_timeout_ms: req.compile_timeout_ms,
                extras: Extras::default(),
            },
        ));
        Ok(outcome)
    }

    /// One call of the resident instance.
    pub fn call(&mut self, req: ItemRequest) -> io::Result<RunOutcome> {
        let Some((resident, _)) = self.resident.as_mut() else {
            return Err(io::Error::other("call without an instance"));
        };
        self.invocations += 1;
        let mut outcome = RunOutcome::default();
        resident.call(&req, &mut outcome)?;
        Ok(outcome)
    }

    /// After a call's reply: replaces the instance if the call (or its age) asks for it,
    /// in a clean container, with the program written and staged again.
    pub fn after_call(&mut self) -> io::Result<()> {
        if !self
            .resident
            .as_ref()
            .is_some_and(|(r, _)| r.needs_replacing())
        {
            return Ok(());
        }
        self.clean_slate()?;
        let Some(source) = self.resident.as_ref().map(|(_, p)| p.source.clone()) else {
            return Ok(());
        };
        self.write_program(&source)?;
        let Some((resident, p)) = self.resident.as_mut() else {
            return Ok(());
        };
        p.target.stage(self.user, self.spec.artifact())?;
        resident.start()
    }

    /// Ends the resident instance and cleans the container for the pool.
    pub fn end_instance(&mut self) -> io::Result<()> {
        self.resident = None;
        self.reset()
    }

    /// Runs one invocation. `Err` means the agent itself failed (the container is retired);
    /// every failure of the program is reported inside the `RunOutcome`.
    pub fn run(&mut self, req: RunRequest) -> io::Result<RunOutcome> {
        self.invocations += 1;
        let started = Instant::now();
        let mut outcome = RunOutcome::default();
        // One descriptor of /workspace for the run's files (input, program, result).
        let ws = Workspace::open(self.user)?;
        write_files(&ws, &req.extras.files)?;
        self.write_run_files(&ws, &req.input, &req.source)?;
        let key = req.cache_key.as_deref();
        let target = match self.build(&req.source, key, req.compile_timeout_ms, &mut outcome)? {
            Some(target) => target,
            None => {
                outcome.duration_ms = started.elapsed().as_millis() as u64;
                return Ok(outcome);
            }
        };
        let limits = ItemRequest {
            input: RawJson::null(),
            timeout_ms: req.timeout_ms,
            stream_limit_bytes: req.stream_limit_bytes,
            result_limit_bytes: req.result_limit_bytes,
            stdin: req.extras.stdin,
        };
        let args = req.extras.args;
        self.execute(&ws, (&target, req.plain, &args), &limits, started, outcome)
    }

    /// Prepares a program for a stream of items: writes and compiles it once. `Ok(outcome)`
    /// carries the compile time, the cache hit and, if it did not compile, the error.
    pub fn prepare(&mut self, req: PrepareRequest) -> io::Result<RunOutcome> {
        self.prepared = None;
        let mut outcome = RunOutcome::default();
        write_files(&Workspace::open(self.user)?, &req.extras.files)?;
        self.write_program(&req.source)?;
        let key = req.cache_key.as_deref();
        if let Some(target) = self.build(&req.source, key, req.compile_timeout_ms, &mut outcome)? {
            self.prepared = Some(Prepared {
                source: req.source,
                target,
                plain: req.plain,
                cache_key: req.cache_key,
                compile_timeout_ms: req.compile_timeout_ms,
                extras: req.extras,
            });
        }
        Ok(outcome)
    }

    /// Runs the prepared program on one input. `Err` when nothing is prepared (a protocol
    /// error of the gateway's) or the agent failed.
    pub fn item(&mut self, req: ItemRequest) -> io::Result<RunOutcome> {
        let Some(mut p) = self.prepared.take() else {
            return Err(io::Error::other("item without a prepared program"));
        };
        self.invocations += 1;
        let started = Instant::now();
        let result = Workspace::open(self.user).and_then(|ws| {
            write_files(&ws, &p.extras.files)?;
            self.write_run_files(&ws, &req.input, &p.source)?;
            if !p.target.exists() {
                // The shared cache evicted the binary since `prepare` (the gateway pins what
                // a lease prepared, so this is the exception): compile it again.
                let mut outcome = RunOutcome::default();
                match self.build(
                    &p.source,
                    p.cache_key.as_deref(),
                    p.compile_timeout_ms,
                    &mut outcome,
                )? {
                    Some(target) => p.target = target,
                    None => return Ok(outcome),
                }
            }
            self.execute(
                &ws,
                (&p.target, p.plain, &p.extras.args),
                &req,
                started,
                RunOutcome::default(),
            )
        });
        self.prepared = Some(p);
        result
    }

    /// Writes the program into the workspace, as the user.
    fn write_program(&self, source: &str) -> io::Result<()> {
        let ws = Workspace::open(self.user)?;
        let _as_user = AsUser::enter(self.user)?;
        let name = &self.spec.file;
        ws.write(name, source.as_bytes(), WriteMode::Create, name)?;
        Ok(())
    }

    /// Writes `input.json` and the program into the workspace, as the user. A session
    /// keeps its files: an earlier run's `output.json` must not pass for this run's result.
    fn write_run_files(&self, ws: &Workspace, input: &RawJson, source: &str) -> io::Result<()> {
        let _as_user = AsUser::enter(self.user)?;
        match std::fs::remove_file(Path::new(WORKSPACE).join(OUTPUT)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        ws.write(INPUT, input.get().as_bytes(), WriteMode::Create, INPUT)?;
        let name = &self.spec.file;
        ws.write(name, source.as_bytes(), WriteMode::Create, name)?;
        Ok(())
    }

    /// The file to run: the workspace program, or for a compiled language the cached
    /// binary (compiling it on a miss). `None` when it did not compile; the error, the
    /// compile time and the cache hit are recorded in `outcome`.
    fn build(
        &mut self,
        source: &str,
        key: Option<&str>,
        compile_timeout_ms: u64,
        outcome: &mut RunOutcome,
    ) -> io::Result<Option<Artifact>> {
        let program = Path::new(WORKSPACE).join(&self.spec.file);
        if self.spec.compile.is_none() {
            return Ok(Some(Artifact::InPlace(program)));
        }
        let t0 = Instant::now();
        let built = self.compile(
            &program,
            source.as_bytes(),
            key,
            Duration::from_millis(compile_timeout_ms),
        )?;
        outcome.compile_ms = t0.elapsed().as_millis() as u64;
        match built {
            Built::Ready {
                artifact,
                cache_hit,
                fresh,
            } => {
                outcome.cache_hit = Some(cache_hit);
                if cache_hit {
                    outcome.compile_ms = 0;
                }
                outcome.artifact = fresh.map(|bytes| BASE64.encode(bytes));
                Ok(Some(artifact))
            }
            Built::Failed(message) => {
                outcome.cache_hit = Some(false);
                outcome.error = Some(ProgramError {
                    kind: ProgramErrorKind::CompileError,
                    message,
                });
                Ok(None)
            }
        }
    }

    /// Starts `target` (its input already written), collects it under the limits, and
    /// classifies the result.
    fn execute(
        &mut self,
        ws: &Workspace,
        (target, plain, args): (&Artifact, bool, &[String]),
        req: &ItemRequest,
        started: Instant,
        mut outcome: RunOutcome,
    ) -> io::Result<RunOutcome> {
        let target = &target.stage(self.user, self.spec.artifact())?;
        let oom_before = oom_kills();
        let timeout = Duration::from_millis(req.timeout_ms);
        let limit = req.stream_limit_bytes as usize;
        let c = if let Some(zygote) = self.zygote.as_mut() {
            // The fork must happen within the program's own time limit.
            let path = target.display().to_string();
            let stdin = req.stdin.as_bytes().to_vec();
            let (pid, stdout, stderr) = match zygote.start(&path, args, stdin, timeout) {
                Ok(started) => started,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    outcome.error = Some(err(
                        ProgramErrorKind::Timeout,
                        format!(
                            "the program did not start within its {} ms time limit (its container was overloaded)",
                            req.timeout_ms
                        ),
                    ));
                    outcome.duration_ms = started.elapsed().as_millis() as u64;
                    return Ok(outcome);
                }
                Err(e) => return Err(e),
            };
            let watch = ExitSource::Forked {
                pid,
                zygote,
                stdout,
                stderr,
            };
            exec::collect(&mut self.reaper, watch, timeout, limit)?
        } else {
            let mut child = self.launch(target, args, req.stdin.as_bytes())?;
            exec::collect(
                &mut self.reaper,
                ExitSource::Child(&mut child),
                timeout,
                limit,
            )?
        };
        let oom = match (oom_before, oom_kills()) {
            (Some(a), Some(b)) => b > a,
            // Without the cgroup counter, an unexplained SIGKILL is the OOM killer's mark.
            _ => c.signal == Some(Signal::SIGKILL) && !c.timed_out,
        };
        outcome.stdout = String::from_utf8_lossy(&c.stdout).into_owned();
        outcome.stderr = String::from_utf8_lossy(&c.stderr).into_owned();
        outcome.exit_code = c.exit_code;
        outcome.truncated = c.truncated;
        outcome.error = if c.process_limit {
            Some(err(
                ProgramErrorKind::ProcessLimitExceeded,
                "the program used up the container's process limit (a fork bomb?) and was stopped"
                    .into(),
            ))
        } else if c.timed_out {
            Some(err(
                ProgramErrorKind::Timeout,
                format!("the program exceeded its {} ms time limit", req.timeout_ms),
            ))
        } else if oom {
            Some(err(
                ProgramErrorKind::MemoryLimitExceeded,
                "the program exceeded the memory limit and was killed".into(),
            ))
        } else if c.exit_code != Some(0) && self.is_syntax_error(&outcome.stderr) {
            Some(err(ProgramErrorKind::CompileError, runtime_message(&c)))
        } else if c.exit_code != Some(0) {
            Some(err(ProgramErrorKind::RuntimeError, runtime_message(&c)))
        } else if plain {
            // A plain program succeeds by exiting 0; it has no result value.
            None
        } else {
            self.read_result(ws, req.result_limit_bytes, &mut outcome)
        };
        outcome.duration_ms = started.elapsed().as_millis() as u64;
        Ok(outcome)
    }

    /// Whether a failed run's stderr is the recipe's mark of a syntax error (interpreted
    /// languages: the compile step is the interpreter's own parse).
    fn is_syntax_error(&self, stderr: &str) -> bool {
        self.spec
            .compile_error_stderr
            .iter()
            .any(|p| stderr.contains(p.as_str()))
    }

    /// Starts the program: hands its path to the pre-started runner, or execs it directly;
    /// then gives it `stdin` and end of file.
    fn launch(&mut self, target: &Path, args: &[String], stdin: &[u8]) -> io::Result<Child> {
        let env = match &self.spec.runner {
            Runner::Prestart { env, .. } => env,
            Runner::Exec { argv, env } => {
                let path = target.display().to_string();
                let argv: Vec<String> = argv
                    .iter()
                    .map(|a| a.replace("{program}", &path))
                    .chain(args.iter().cloned())
                    .collect();
                let mut child = exec::spawn(&mut exec::user_command(&argv, env, self.user))?;
                if let Some(pipe) = child.stdin.take() {
                    crate::process::feed(pipe, stdin.to_vec());
                }
                return Ok(child);
            }
            // The zygote forks programs itself (`execute`); never launched from here.
            Runner::Zygote { .. } => {
                return Err(io::Error::other("a zygote language is not launched"))
            }
        };
        // The runner reads one line, byte by byte so that nothing after it is consumed: the
        // program's path, then each argument base64-encoded after a tab (an argument may
        // hold any character). What follows the line is the program's stdin.
        let mut line = target.display().to_string();
        for a in args {
            line.push('\t');
            line.push_str(&BASE64.encode(a.as_bytes()));
        }
        line.push('\n');
        for _attempt in 0..2 {
            let mut child = match self.next_runner.take() {
                Some(c) => c,
                None => exec::spawn(&mut exec::user_command(&self.runner_argv, env, self.user))?,
            };
            let Some(mut pipe) = child.stdin.take() else {
                return Err(io::Error::other("the runner has no stdin"));
            };
            // Written at once only while it fits the pipe; the line and the stdin together
            // go to `feed` when they may not (a program need never read its stdin).
            let sent = if stdin.is_empty() && line.len() <= 60 * 1024 {
                pipe.write_all(line.as_bytes())
            } else {
                let mut all = std::mem::take(&mut line).into_bytes();
                all.extend_from_slice(stdin);
                crate::process::feed(pipe, all);
                return Ok(child);
            };
            match sent {
                Ok(()) => return Ok(child),
                // The pre-started runner died while waiting (it should not); start another.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    let _ = child.kill();
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(
            "runner process exits before it is handed a program",
        ))
    }

    fn read_result(
        &self,
        ws: &Workspace,
        result_limit_bytes: u64,
        outcome: &mut RunOutcome,
    ) -> Option<ProgramError> {
        let read = {
            let Ok(_as_user) = AsUser::enter(self.user) else {
                return Some(err(
                    ProgramErrorKind::RuntimeError,
                    "cannot read output".into(),
                ));
            };
            ws.read_capped(OUTPUT, result_limit_bytes, OUTPUT)
        };
        match read {
            Ok(CappedRead::Missing) => Some(err(
                ProgramErrorKind::MissingResult,
                "the program finished without setting `result` (no /workspace/output.json)".into(),
            )),
            Ok(CappedRead::TooLarge(n)) => Some(err(
                ProgramErrorKind::OutputTooLarge,
                format!(
                    "output.json is {n} bytes; the limit is {} bytes",
                    result_limit_bytes
                ),
            )),
            Ok(CappedRead::Data(bytes)) => match RawJson::from_slice(&bytes) {
                Ok(v) => {
                    outcome.output = Some(v);
                    None
                }
                // Deeper than any parser on the path allows: refused here, the same for
                // every path (a tree of it would fail in the gateway or in a client).
                Err(e) if e.to_string().contains(codebeaker_proto::TOO_DEEP) => Some(err(
                    ProgramErrorKind::InvalidOutput,
                    format!(
                        "`result` is nested deeper than the limit of {} levels of arrays and objects",
                        codebeaker_proto::MAX_JSON_DEPTH
                    ),
                )),
                Err(e) => Some(err(
                    ProgramErrorKind::InvalidOutput,
                    format!("output.json is not valid JSON: {e}"),
                )),
            },
            Err(e) => Some(err(
                ProgramErrorKind::InvalidOutput,
                format!("output.json cannot be read: {}", e.message),
            )),
        }
    }

    /// Compiles through the compile caches (see `compile.rs`), under the gateway's `key`.
    fn compile(
        &mut self,
        src_path: &Path,
        source: &[u8],
        key: Option<&str>,
        timeout: Duration,
    ) -> io::Result<Built> {
        let Some(recipe) = &self.spec.compile else {
            return Err(io::Error::other("language is not compiled"));
        };
        let job = compile::Job {
            toolchain: compile::Toolchain {
                lang: &self.lang,
                version: &self.toolchain,
            },
            compile: recipe,
            src_path,
            source,
            key,
            timeout,
        };
        let keep = self.prepared.as_ref().map(|p| &p.target);
        self.cache.build(&mut self.reaper, self.user, job, keep)
    }

    /// AOT-compiles the launcher next to itself, as root and before any user code ran (the
    /// launcher is our own source). A failure only costs speed: Mono JITs without it.
    fn aot_launcher(&mut self, path: &str) {
        let Some((prog, args)) = self.spec.launcher_aot.split_first() else {
            return;
        };
        let mut cmd = std::process::Command::new(prog);
        cmd.args(args)
            .arg(path)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let done = exec::run_to_end(
            &mut self.reaper,
            &mut cmd,
            Vec::new(),
            Duration::from_secs(60),
            4096,
            None,
        );
        match done {
            Ok(c) if c.exit_code == Some(0) => {}
            Ok(c) => eprintln!("codebeaker-agent: launcher AOT failed: {}", c.stderr_text()),
            Err(e) => eprintln!("codebeaker-agent: launcher AOT failed: {e}"),
        }
    }

    fn toolchain_version(&mut self) -> io::Result<String> {
        let mut cmd = exec::user_command::<_, &str, &str>(&self.spec.version, &[], self.user);
        let c = exec::run_to_end(
            &mut self.reaper,
            &mut cmd,
            Vec::new(),
            Duration::from_secs(30),
            4096,
            None,
        )?;
        let text = if c.stdout.is_empty() {
            c.stderr_text()
        } else {
            c.stdout_text()
        };
        let text = text.lines().next().unwrap_or("").trim().to_string();
        if c.exit_code != Some(0) || text.is_empty() {
            return Err(io::Error::other(format!(
                "{} is not usable in this image",
                self.spec.version[0]
            )));
        }
        Ok(text)
    }
}

fn err(kind: ProgramErrorKind, message: String) -> ProgramError {
    ProgramError { kind, message }
}
