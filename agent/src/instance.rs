//! Resident program instances (`"isolation": "program"`).
//!
//! A resident runner is a language process that loaded one program once and is then
//! called once per input. It runs as the sandbox user with a control socket as its fd 0
//! (stdin is `/dev/null` to the program) and the call's stdout and stderr as pipes. The
//! protocol on the socket, the same for every language:
//!
//! - runner → agent, once loaded: `ready\n`;
//! - agent → runner, per call: the input JSON on one line;
//! - runner → agent, per call: `done <exit> <size> <leaked>\n` then `size` bytes of
//!   result JSON (`size` -1: no `result` was set). `leaked` 1: the call left a thread of
//!   the runtime's own kind behind (a Python thread, a goroutine).
//!
//! The agent runs one call at a time and drains the output pipes when `done` arrives, so
//! each call's stdout and stderr hold only what it printed (the runner prints nothing of
//! the next call before the next line reaches it). The call's timeout counts from the
//! moment its line is handed over; the runner's own start is not charged to a call.
//!
//! The instance is replaced (every process but the agent and the zygote killed, the
//! scratch directories wiped, the program written again, a new runner started) after a
//! call that timed out, ran out of memory, crashed or exited the runner (`sys.exit` and
//! friends end the call with their code), or left a process or thread behind; and after
//! `max_calls` calls or `max_age`. A call that merely fails (an exception) keeps it.

use codebeaker_proto::{ItemRequest, ProgramErrorKind, RawJson, RunOutcome};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::exec::{self, Collected};
use crate::files::User;

/// How long a runner may take to load its program (interpreter start, imports, JIT).
const STARTUP_LIMIT: Duration = Duration::from_secs(30);
/// How often a running call's process count is looked at (fork bombs).
const PIDS_CHECK: Duration = Duration::from_millis(25);

/// How to start a language's resident runner.
pub struct RunnerCommand {
    pub argv: Vec<String>,
    pub env: crate::recipes::Env,
    /// The runtime starts and stops threads of its own (Go's scheduler, Bun's and Mono's
    /// helpers): a left-behind call is then judged by processes only, and the runner's
    /// own report (`leaked`) covers its threads of the language's kind.
    pub threads_vary: bool,
}

/// One live runner process.
struct Live {
    child: Child,
    ctl: UnixStream,
    inbuf: Vec<u8>,
    stdout: File,
    stderr: File,
    started: Instant,
    ready: bool,
    /// Tasks (or, when threads vary, processes) in the container once the runner was
    /// ready: more after a call is a leak.
    baseline: Option<u64>,
    calls: u64,
}

/// What the agent keeps of a resident instance between calls.
pub struct Resident {
    command: RunnerCommand,
    user: User,
    plain: bool,
    max_calls: u64,
    max_age: Duration,
    live: Option<Live>,
    /// The runner could not load the program (a syntax error): every call gets this.
    failed: Option<RunOutcome>,
    /// Set by a call after which the runner must be replaced.
    replace: bool,
    /// The cgroup's OOM-kill count when last looked at.
    oom_seen: Option<u64>,
    /// The open census file (`pids.current`, or `cgroup.procs` when threads vary), read
    /// again from its start after each call: one syscall instead of three.
    census_file: Option<File>,
    /// Read buffer for the pipes and the socket, kept between calls.
    scratch: Vec<u8>,
}

/// Why a call ended, before classification.
struct Ended {
    exit_code: Option<i32>,
    signal: Option<Signal>,
    /// `Some(size)` when the runner answered `done` (size -1: no result).
    answered: Option<(i64, bool)>,
    result: Vec<u8>,
    result_too_large: bool,
    timed_out: bool,
    process_limit: bool,
}

impl Ended {
    /// The runner ended without answering (`status` from `wait_child`).
    fn died(status: (Option<i32>, Option<Signal>), timed_out: bool) -> Ended {
        Ended {
            exit_code: status.0,
            signal: status.1,
            answered: None,
            result: Vec::new(),
            result_too_large: false,
            timed_out,
            process_limit: false,
        }
    }
}

impl Resident {
    pub fn new(
        command: RunnerCommand,
        user: User,
        plain: bool,
        max_calls: u64,
        max_age: Duration,
    ) -> Resident {
        Resident {
            command,
            user,
            plain,
            max_calls: max_calls.max(1),
            max_age,
            live: None,
            failed: None,
            replace: false,
            oom_seen: crate::outcome::oom_kills(),
            census_file: None,
            scratch: vec![0; 64 * 1024],
        }
    }

    /// Whether the last call asked for a fresh runner (the caller cleans the container,
    /// writes the program again and calls [`Resident::start`]).
    pub fn needs_replacing(&self) -> bool {
        self.replace
            || self
                .live
                .as_ref()
                .is_some_and(|l| l.calls >= self.max_calls || l.started.elapsed() >= self.max_age)
    }

    /// Forgets the current runner (already killed by the caller's cleanup) and starts a
    /// new one; its readiness is awaited by the next call.
    pub fn start(&mut self) -> io::Result<()> {
        if let Some(mut l) = self.live.take() {
            let _ = l.child.kill();
            let _ = l.child.wait();
        }
        self.replace = false;
        let (ours, theirs) = UnixStream::pair()?;
        let argv: Vec<&str> = self.command.argv.iter().map(String::as_str).collect();
        let mut cmd = exec::user_command(&argv, &self.command.env, self.user);
        cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
        let mut child = exec::spawn(&mut cmd)?;
        let stdout = File::from(OwnedFd::from(
            child
                .stdout
                .take()
                .ok_or_else(|| io::Error::other("runner without stdout"))?,
        ));
        let stderr = File::from(OwnedFd::from(
            child
                .stderr
                .take()
                .ok_or_else(|| io::Error::other("runner without stderr"))?,
        ));
        for f in [&stdout, &stderr] {
            fcntl(f, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
        }
        ours.set_nonblocking(true)?;
        self.live = Some(Live {
            child,
            ctl: ours,
            inbuf: Vec::new(),
            stdout,
            stderr,
            started: Instant::now(),
            ready: false,
            baseline: None,
            calls: 0,
        });
        Ok(())
    }

    /// Runs one call. `Err` only for an agent-side fault.
    pub fn call(&mut self, req: &ItemRequest, outcome: &mut RunOutcome) -> io::Result<()> {
        let started = Instant::now();
        if let Some(f) = &self.failed {
            *outcome = f.clone();
            outcome.duration_ms = started.elapsed().as_millis() as u64;
            return Ok(());
        }
        if self.live.is_none() {
            self.start()?;
        }
        let limit = req.stream_limit_bytes as usize;
        let mut out = Capped::new(limit);
        let mut err = Capped::new(limit);
        if !self.live.as_ref().is_some_and(|l| l.ready) {
            if let Some(failure) = self.await_ready(&mut out, &mut err)? {
                let mut failed = classify(failure, out, err, self.plain, req, None);
                if failed.error.is_none() || failed.exit_code == Some(0) {
                    // It ended cleanly before `ready`: it ran as a whole program instead of
                    // loading one (a plain Go program has its own `main`). Never a success.
                    failed.output = None;
                    failed.error = Some(codebeaker_proto::ProgramError {
                        kind: ProgramErrorKind::RuntimeError,
                        message: "the program ended while loading, before its first call: it cannot run as a resident instance".into(),
                    });
                }
                self.failed = Some(failed.clone());
                *outcome = failed;
                outcome.duration_ms = started.elapsed().as_millis() as u64;
                return Ok(());
            }
            let census = self.census();
            if let Some(l) = self.live.as_mut() {
                l.baseline = census;
            }
            // What the runner printed while loading is nobody's call.
            out = Capped::new(limit);
            err = Capped::new(limit);
        }
        let ended = self.exchange(req, &mut out, &mut err)?;
        let died = ended.answered.is_none();
        // Only a runner that did not answer can have been OOM-killed (it is the biggest
        // process); reading the counter on every call would cost more than the call.
        let oom = died && {
            let now = crate::outcome::oom_kills();
            let before = std::mem::replace(&mut self.oom_seen, now);
            match (before, now) {
                (Some(a), Some(b)) => b > a,
                _ => ended.signal == Some(Signal::SIGKILL) && !ended.timed_out,
            }
        };
        let leaked = ended.answered.is_some_and(|(_, l)| l) || self.left_tasks_behind();
        if died || leaked || oom {
            self.replace = true;
        }
        if let Some(l) = self.live.as_mut() {
            l.calls += 1;
        }
        *outcome = classify(ended, out, err, self.plain, req, oom.then_some(()));
        outcome.duration_ms = started.elapsed().as_millis() as u64;
        Ok(())
    }

    /// Whether the container has more tasks (processes or threads) than when the runner
    /// became ready: something the call started is still there.
    fn left_tasks_behind(&mut self) -> bool {
        let Some(base) = self.live.as_ref().and_then(|l| l.baseline) else {
            return false;
        };
        match (Some(base), self.census()) {
            (Some(base), Some(now)) => now > base,
            _ => false,
        }
    }

    /// What the leak check counts: tasks, or processes when the runtime's threads vary.
    fn census(&mut self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        if self.census_file.is_none() {
            let paths: [&str; 2] = if self.command.threads_vary {
                [
                    "/sys/fs/cgroup/pids/cgroup.procs",
                    "/sys/fs/cgroup/cgroup.procs",
                ]
            } else {
                [
                    "/sys/fs/cgroup/pids/pids.current",
                    "/sys/fs/cgroup/pids.current",
                ]
            };
            self.census_file = paths.iter().find_map(|p| File::open(p).ok());
        }
        let f = self.census_file.as_ref()?;
        let n = f.read_at(&mut self.scratch, 0).ok()?;
        let text = std::str::from_utf8(&self.scratch[..n]).ok()?;
        if self.command.threads_vary {
            Some(text.lines().count() as u64)
        } else {
            text.trim().parse().ok()
        }
    }

    /// Waits for `ready`. `Ok(Some(_))` when the runner ended instead (it could not load
    /// the program): its exit is the failure every call of this program gets.
    fn await_ready(&mut self, out: &mut Capped, err: &mut Capped) -> io::Result<Option<Ended>> {
        let scratch = &mut self.scratch;
        let live = self
            .live
            .as_mut()
            .ok_or_else(|| io::Error::other("no runner"))?;
        let deadline = live.started + STARTUP_LIMIT;
        loop {
            if let Some(pos) = live.inbuf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = live.inbuf.drain(..=pos).collect();
                if line != b"ready\n" {
                    return Err(io::Error::other(format!(
                        "runner said {:?} before ready",
                        String::from_utf8_lossy(&line)
                    )));
                }
                live.ready = true;
                return Ok(None);
            }
            let now = Instant::now();
            if now >= deadline {
                let _ = live.child.kill();
                let status = wait_child(&mut live.child);
                out.pump(&mut live.stdout, scratch);
                err.pump(&mut live.stderr, scratch);
                return Ok(Some(Ended::died(status, true)));
            }
            let eof = wait_readable(
                live,
                out,
                err,
                (deadline - now).min(PIDS_CHECK),
                false,
                scratch,
            )?;
            if eof {
                let status = wait_child(&mut live.child);
                out.pump(&mut live.stdout, scratch);
                err.pump(&mut live.stderr, scratch);
                return Ok(Some(Ended::died(status, false)));
            }
        }
    }

    /// Hands the input over and waits for `done`, the runner's end, or the deadline.
    fn exchange(
        &mut self,
        req: &ItemRequest,
        out: &mut Capped,
        err: &mut Capped,
    ) -> io::Result<Ended> {
        let scratch = &mut self.scratch;
        let live = self
            .live
            .as_mut()
            .ok_or_else(|| io::Error::other("no runner"))?;
        let mut pending = Vec::with_capacity(req.input.get().len() + 1);
        pending.extend_from_slice(req.input.get().as_bytes());
        pending.push(b'\n');
        let mut sent = 0;
        let result_limit = req.result_limit_bytes as usize;
        let deadline = Instant::now() + Duration::from_millis(req.timeout_ms);
        let mut next_pids_check = Instant::now() + PIDS_CHECK;
        let mut header: Option<(i32, i64, bool)> = None;
        let mut result = Vec::new();
        let mut received = 0usize;
        loop {
            // Write what the socket takes.
            while sent < pending.len() {
                match live.ctl.write(&pending[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // The runner is gone: its exit is found below.
                    Err(_) => {
                        sent = pending.len();
                        break;
                    }
                }
            }
            // Parse what arrived.
            if header.is_none() {
                if let Some(pos) = live.inbuf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = live.inbuf.drain(..=pos).collect();
                    header = Some(parse_done(&line)?);
                }
            }
            if let Some((code, size, leaked)) = header {
                let want = size.max(0) as usize;
                let take = live.inbuf.len().min(want - received);
                let room = (result_limit + 1).saturating_sub(result.len());
                result.extend_from_slice(&live.inbuf[..take.min(room)]);
                live.inbuf.drain(..take);
                received += take;
                if received == want {
                    // Everything the call printed was written before `done`.
                    out.pump(&mut live.stdout, scratch);
                    err.pump(&mut live.stderr, scratch);
                    let too_large = want > result_limit;
                    return Ok(Ended {
                        exit_code: Some(code),
                        signal: None,
                        answered: Some((size, leaked)),
                        result,
                        result_too_large: too_large,
                        timed_out: false,
                        process_limit: false,
                    });
                }
            }
            let now = Instant::now();
            if now >= next_pids_check {
                next_pids_check = now + PIDS_CHECK;
                if fork_bomb() {
                    // Everything but the agent, the zygote too (the caller replaces it).
                    crate::clean::kill_all(None);
                    let status = wait_child(&mut live.child);
                    out.pump(&mut live.stdout, scratch);
                    err.pump(&mut live.stderr, scratch);
                    return Ok(Ended {
                        exit_code: status.0,
                        signal: Some(Signal::SIGKILL),
                        answered: None,
                        result: Vec::new(),
                        result_too_large: false,
                        timed_out: false,
                        process_limit: true,
                    });
                }
            }
            if now >= deadline {
                let _ = kill(Pid::from_raw(live.child.id() as i32), Signal::SIGKILL);
                let status = wait_child(&mut live.child);
                out.pump(&mut live.stdout, scratch);
                err.pump(&mut live.stderr, scratch);
                return Ok(Ended::died(status, true));
            }
            let wait = (deadline - now).min(next_pids_check.saturating_duration_since(now));
            let eof = wait_readable(live, out, err, wait, sent < pending.len(), scratch)?;
            if eof {
                let status = wait_child(&mut live.child);
                out.pump(&mut live.stdout, scratch);
                err.pump(&mut live.stderr, scratch);
                return Ok(Ended::died(status, false));
            }
        }
    }
}

/// Polls the control socket and the output pipes for up to `wait`, reading what is ready.
/// Returns true when the control socket reached its end (the runner is gone).
fn wait_readable(
    live: &mut Live,
    out: &mut Capped,
    err: &mut Capped,
    wait: Duration,
    writing: bool,
    scratch: &mut [u8],
) -> io::Result<bool> {
    let ms = wait.as_millis().clamp(1, 60_000) as u16;
    let mut ctl_flags = PollFlags::POLLIN;
    if writing {
        ctl_flags |= PollFlags::POLLOUT;
    }
    let (ctl_ready, out_ready, err_ready) = {
        let mut fds = [
            PollFd::new(live.ctl.as_fd(), ctl_flags),
            PollFd::new(live.stdout.as_fd(), PollFlags::POLLIN),
            PollFd::new(live.stderr.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        (ready(&fds[0]), ready(&fds[1]), ready(&fds[2]))
    };
    if out_ready {
        out.pump(&mut live.stdout, scratch);
    }
    if err_ready {
        err.pump(&mut live.stderr, scratch);
    }
    if !ctl_ready {
        return Ok(false);
    }
    // A bounded read per wake-up: the caller consumes (or discards) what is buffered
    // before reading more, so a runner streaming a huge result never piles it up here.
    let mut taken = 0;
    while taken < READ_PER_WAKE {
        match live.ctl.read(scratch) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                live.inbuf.extend_from_slice(&scratch[..n]);
                taken += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(true),
        }
    }
    Ok(false)
}

/// The most read from the control socket per wake-up.
const READ_PER_WAKE: usize = 1024 * 1024;

/// `done <exit> <size> <leaked>`
fn parse_done(line: &[u8]) -> io::Result<(i32, i64, bool)> {
    let text = String::from_utf8_lossy(line);
    let mut parts = text.split_whitespace();
    let bad = || io::Error::other(format!("runner protocol: {:?}", text.trim_end()));
    if parts.next() != Some("done") {
        return Err(bad());
    }
    let code = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let size = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let leaked = parts.next() == Some("1");
    Ok((code, size, leaked))
}

/// Waits for the runner to end (it was killed, or is ending): (exit code, signal).
fn wait_child(child: &mut Child) -> (Option<i32>, Option<Signal>) {
    let pid = Pid::from_raw(child.id() as i32);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return (Some(code), None),
            Ok(WaitStatus::Signaled(_, sig, _)) => return (None, Some(sig)),
            Ok(_) | Err(Errno::EINTR) => {}
            // Already reaped (the cleanup's waitpid(-1)): the status is lost.
            Err(_) => return (None, Some(Signal::SIGKILL)),
        }
        if Instant::now() >= deadline {
            let _ = kill(pid, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Turns how a call ended into the outcome `call` mode would report.
fn classify(
    e: Ended,
    out: Capped,
    err: Capped,
    plain: bool,
    req: &ItemRequest,
    oom: Option<()>,
) -> RunOutcome {
    let c = Collected {
        exit_code: e.exit_code,
        signal: e.signal,
        stdout: out.buf,
        stderr: err.buf,
        truncated: out.truncated || err.truncated,
        timed_out: e.timed_out,
        process_limit: e.process_limit,
    };
    let mut outcome = RunOutcome {
        stdout: c.stdout_text(),
        stderr: c.stderr_text(),
        exit_code: c.exit_code,
        truncated: c.truncated,
        ..RunOutcome::default()
    };
    let fail = |kind, message: String| Some(codebeaker_proto::ProgramError { kind, message });
    outcome.error = if c.process_limit {
        fail(
            ProgramErrorKind::ProcessLimitExceeded,
            "the program used up the container's process limit (a fork bomb?) and was stopped"
                .into(),
        )
    } else if c.timed_out {
        fail(
            ProgramErrorKind::Timeout,
            format!("the program exceeded its {} ms time limit", req.timeout_ms),
        )
    } else if oom.is_some() {
        fail(
            ProgramErrorKind::MemoryLimitExceeded,
            "the program exceeded the memory limit and was killed".into(),
        )
    } else if c.exit_code != Some(0) {
        fail(
            ProgramErrorKind::RuntimeError,
            crate::outcome::runtime_message(&c),
        )
    } else if plain {
        None
    } else {
        match e.answered {
            Some((size, _)) if size < 0 => fail(
                ProgramErrorKind::MissingResult,
                "the program finished without setting `result`".into(),
            ),
            Some(_) if e.result_too_large => fail(
                ProgramErrorKind::OutputTooLarge,
                format!(
                    "`result` is more than {} bytes; the limit is {} bytes",
                    req.result_limit_bytes, req.result_limit_bytes
                ),
            ),
            Some(_) => match RawJson::from_slice(&e.result) {
                Ok(v) => {
                    outcome.output = Some(v);
                    None
                }
                Err(x) if x.to_string().contains(codebeaker_proto::TOO_DEEP) => fail(
                    ProgramErrorKind::InvalidOutput,
                    format!(
                        "`result` is nested deeper than the limit of {} levels of arrays and objects",
                        codebeaker_proto::MAX_JSON_DEPTH
                    ),
                ),
                Err(x) => fail(
                    ProgramErrorKind::InvalidOutput,
                    format!("`result` is not valid JSON: {x}"),
                ),
            },
            // Exit 0 without `done`: the program exited the runner (sys.exit(0)).
            None => fail(
                ProgramErrorKind::MissingResult,
                "the program exited before setting `result`".into(),
            ),
        }
    };
    outcome
}

/// One output pipe's capture for the current call: up to `limit`, the rest discarded.
struct Capped {
    buf: Vec<u8>,
    limit: usize,
    truncated: bool,
}

impl Capped {
    fn new(limit: usize) -> Capped {
        Capped {
            buf: Vec::new(),
            limit,
            truncated: false,
        }
    }

    /// Reads whatever the (non-blocking) pipe holds now, through `chunk`.
    fn pump(&mut self, pipe: &mut File, chunk: &mut [u8]) {
        loop {
            match pipe.read(chunk) {
                Ok(0) => return,
                Ok(n) => {
                    let room = self.limit.saturating_sub(self.buf.len());
                    if n > room {
                        self.truncated = true;
                    }
                    self.buf.extend_from_slice(&chunk[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }
}

/// Tasks (processes and threads) in the container's pids cgroup.
fn pids_current() -> Option<u64> {
    [
        "/sys/fs/cgroup/pids/pids.current",
        "/sys/fs/cgroup/pids.current",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse().ok())
}

/// A fork bomb: tasks within a few of the container's limit.
fn fork_bomb() -> bool {
    let max = ["/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok());
    matches!((pids_current(), max), (Some(cur), Some(max)) if cur + 8 >= max)
}
