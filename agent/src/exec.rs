//! Spawning user processes and collecting what they do, under a deadline and output caps.
//!
//! The agent blocks SIGCHLD and reads it from a signalfd, so one `poll` waits on the child's
//! stdout, its stderr, its exit, and the deadline together. The main child's exit, not EOF
//! on its pipes, ends the collection: a background process that inherited the pipes
//! cannot hold an invocation open (it is killed by the cleanup that follows).

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::files::User;
use crate::process::{ExitStatus, BASE_ENV};

/// Receives captured output as it arrives: (`"stdout"` or `"stderr"`, bytes).
pub type OutputSink<'a, 'b> = &'a mut (dyn FnMut(&str, &[u8]) + 'b);

/// Owns the signalfd through which the agent learns that children exited.
pub struct Reaper {
    sigfd: SignalFd,
}

impl Reaper {
    /// Blocks SIGCHLD for the agent (children get an empty mask from `Command`).
    pub fn install() -> io::Result<Reaper> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block().map_err(io::Error::from)?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(io::Error::from)?;
        Ok(Reaper { sigfd })
    }

    fn drain(&mut self) {
        while let Ok(Some(_)) = self.sigfd.read_signal() {}
    }
}

/// Builds a command that runs as the sandbox user, in `/workspace`, with a clean environment.
pub fn user_command<A: AsRef<OsStr>, K: AsRef<OsStr>, V: AsRef<OsStr>>(
    argv: &[A],
    extra_env: &[(K, V)],
    user: User,
) -> Command {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..])
        .env_clear()
        .envs(BASE_ENV.iter().copied())
        .envs(extra_env.iter().map(|(k, v)| (k, v)))
        .current_dir("/workspace")
        // std drops supplementary groups, then sets gid and uid, before exec.
        .gid(user.gid)
        .uid(user.uid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Spawns `cmd` and makes its process the first choice of the OOM killer, so that a memory
/// bomb takes itself out and not the agent.
///
/// After exec the child is a dumpable uid-1000 process whose /proc files the agent (no
/// DAC override) cannot write, so the score is set by inheritance instead: the agent raises
/// its own score, spawns, and lowers it back. Raising needs no privilege, and going back
/// down to 0 is allowed because 0 is the floor this process started with.
pub fn spawn(cmd: &mut Command) -> io::Result<Child> {
    const ADJ: &str = "/proc/self/oom_score_adj";
    let raised = std::fs::write(ADJ, "1000").is_ok();
    let child = cmd.spawn();
    if raised && std::fs::write(ADJ, "0").is_err() {
        eprintln!("codebeaker-agent: cannot restore own oom_score_adj");
    }
    child
}

impl Collected {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// What a finished (or killed) process did.
pub struct Collected {
    /// `Some(code)` on a normal exit, `None` when killed by a signal.
    pub exit_code: Option<i32>,
    pub signal: Option<Signal>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated: bool,
    pub timed_out: bool,
    /// The container's process limit was (nearly) used up while the program ran: a fork
    /// bomb. Everything was killed at once, the zygote too.
    pub process_limit: bool,
}

/// The container's pids cgroup (v1 as Docker 20.10 mounts it, then v2).
const PIDS_FILES: [(&str, &str); 2] = [
    (
        "/sys/fs/cgroup/pids/pids.current",
        "/sys/fs/cgroup/pids/pids.max",
    ),
    ("/sys/fs/cgroup/pids.current", "/sys/fs/cgroup/pids.max"),
];

/// How often a running program's process count is looked at.
const PIDS_CHECK: Duration = Duration::from_millis(25);

/// (current, max) of the container's pids cgroup, if readable and limited.
fn pids_usage() -> Option<(u64, u64)> {
    PIDS_FILES.iter().find_map(|(cur, max)| {
        let cur = std::fs::read_to_string(cur).ok()?.trim().parse().ok()?;
        let max = std::fs::read_to_string(max).ok()?.trim().parse().ok()?;
        Some((cur, max))
    })
}

/// A fork bomb: processes within a few of the limit. Stopping it at once matters beyond
/// this container: hundreds of processes forking and dying make every fork on the host
/// wait (measured: neighbours' trivial calls stalled 0.6–2.8 s while a bomb ran its 3 s).
fn fork_bomb() -> bool {
    pids_usage().is_some_and(|(cur, max)| cur + 8 >= max)
}

/// Where the exit status of the process being collected comes from.
pub enum ExitSource<'a> {
    /// Our own child: SIGCHLD on the reaper's signalfd, then `waitpid`.
    Child(&'a mut Child),
    /// A process the zygote forked: it reports the exit on its socket.
    Forked {
        pid: Pid,
        zygote: &'a mut crate::zygote::Zygote,
        stdout: File,
        stderr: File,
    },
}

/// Spawns `cmd` (built by [`user_command`]), gives it `stdin` (then EOF), and collects it
/// under `timeout` and `limit`; `sink` receives output as it arrives. The one way the agent
/// runs a command to its end (toolchain probes, compilers, session shell commands).
pub fn run_to_end(
    reaper: &mut Reaper,
    cmd: &mut Command,
    stdin: Vec<u8>,
    timeout: Duration,
    limit: usize,
    sink: Option<OutputSink<'_, '_>>,
) -> io::Result<Collected> {
    let mut child = spawn(cmd)?;
    if let Some(pipe) = child.stdin.take() {
        crate::process::feed(pipe, stdin);
    }
    collect_streaming(reaper, ExitSource::Child(&mut child), timeout, limit, sink)
}

/// Waits for the watched process to exit or for `timeout` to pass (then kills it),
/// capturing up to `limit` bytes of each output stream.
pub fn collect(
    reaper: &mut Reaper,
    watch: ExitSource<'_>,
    timeout: Duration,
    limit: usize,
) -> io::Result<Collected> {
    collect_streaming(reaper, watch, timeout, limit, None)
}

/// Like [`collect`]; `sink`, when given, also receives every captured chunk as it arrives
/// (`"stdout"` or `"stderr"`), for streaming to the caller.
pub fn collect_streaming(
    reaper: &mut Reaper,
    mut watch: ExitSource<'_>,
    timeout: Duration,
    limit: usize,
    mut sink: Option<OutputSink<'_, '_>>,
) -> io::Result<Collected> {
    let deadline = Instant::now() + timeout;
    let (pid, out_pipe, err_pipe) = match &mut watch {
        ExitSource::Child(child) => (
            Pid::from_raw(child.id() as i32),
            child.stdout.take().map(|p| File::from(OwnedFd::from(p))),
            child.stderr.take().map(|p| File::from(OwnedFd::from(p))),
        ),
        ExitSource::Forked {
            pid,
            stdout,
            stderr,
            ..
        } => (*pid, Some(stdout.try_clone()?), Some(stderr.try_clone()?)),
    };
    let mut out = CappedPipe::new(out_pipe, limit)?;
    let mut err = CappedPipe::new(err_pipe, limit)?;
    let mut timed_out = false;
    let mut process_limit = false;
    let mut next_pids_check = Instant::now() + PIDS_CHECK;
    let status: ExitStatus = loop {
        // Check first: the process may have exited before we started polling.
        if let Some(s) = try_exit(&mut watch, pid)? {
            break s;
        }
        let now = Instant::now();
        if now >= next_pids_check {
            next_pids_check = now + PIDS_CHECK;
            if fork_bomb() {
                process_limit = true;
                // Everything but us: the bomb, whatever it spawned, and the zygote (it is
                // replaced; its report of this exit would come late or never).
                crate::clean::kill_all(None);
                reaper.drain();
                if let ExitSource::Forked { zygote, .. } = &mut watch {
                    zygote.taint();
                }
                break ExitStatus {
                    code: None,
                    signal: Some(Signal::SIGKILL),
                };
            }
        }
        if now >= deadline {
            if !timed_out {
                timed_out = true;
                let _ = kill(pid, Signal::SIGKILL);
            }
            // SIGKILL cannot be caught; the exit arrives promptly, unless the zygote that
            // reports it is starved by what the program left running (a fork bomb shares
            // the container's CPU quota with it). Then the status is known anyway, and the
            // zygote is replaced by the cleanup.
            if let ExitSource::Forked { zygote, .. } = &mut watch {
                match zygote.wait_exit(Duration::from_millis(500)) {
                    Ok(s) => break s,
                    Err(_) => {
                        zygote.taint();
                        break ExitStatus {
                            code: None,
                            signal: Some(Signal::SIGKILL),
                        };
                    }
                }
            }
            break wait_exit(&mut watch, pid)?;
        }
        let wait_ms = (deadline - now)
            .min(PIDS_CHECK)
            .as_millis()
            .clamp(1, 60_000) as u16;
        let exit_fd = match &watch {
            ExitSource::Child(_) => reaper.sigfd.as_fd(),
            ExitSource::Forked { zygote, .. } => zygote.as_fd(),
        };
        let mut fds = vec![PollFd::new(exit_fd, PollFlags::POLLIN)];
        let mut which = Vec::with_capacity(2);
        for (i, s) in [&out, &err].into_iter().enumerate() {
            if let Some(p) = s.pipe.as_ref() {
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                which.push(i);
            }
        }
        match poll(&mut fds, PollTimeout::from(wait_ms)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<usize> = fds[1..]
            .iter()
            .zip(&which)
            .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, &i)| i)
            .collect();
        reaper.drain();
        for i in ready {
            if i == 0 {
                out.pump(sink.as_deref_mut(), "stdout")
            } else {
                err.pump(sink.as_deref_mut(), "stderr")
            }
        }
    };
    // Whatever is already buffered in the pipes belongs to this run; take it without
    // waiting for writers that may still hold the pipes open.
    out.pump(sink.as_deref_mut(), "stdout");
    err.pump(sink, "stderr");
    Ok(Collected {
        exit_code: status.code,
        signal: status.signal,
        truncated: out.truncated || err.truncated,
        stdout: out.buf,
        stderr: err.buf,
        timed_out,
        process_limit,
    })
}

fn try_exit(watch: &mut ExitSource<'_>, pid: Pid) -> io::Result<Option<ExitStatus>> {
    match watch {
        // Reap every exited child, not only the watched one: background processes of a
        // session command would otherwise pile up as zombies of PID 1 (and count against
        // the pids limit), since sessions skip the cleanup.
        ExitSource::Child(_) => {
            let mut found = None;
            loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                    Ok(s) => {
                        if s.pid() == Some(pid) {
                            found = ExitStatus::from_wait(s);
                        }
                    }
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(found)
        }
        ExitSource::Forked { zygote, .. } => zygote.try_exit(),
    }
}

fn wait_exit(watch: &mut ExitSource<'_>, pid: Pid) -> io::Result<ExitStatus> {
    match watch {
        ExitSource::Child(_) => loop {
            match waitpid(pid, None) {
                Ok(s) => {
                    if let Some(st) = ExitStatus::from_wait(s) {
                        return Ok(st);
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        },
        ExitSource::Forked { zygote, .. } => zygote.wait_exit(Duration::from_secs(10)),
    }
}

/// One captured output stream: non-blocking reads, keep up to `limit`, discard the rest.
struct CappedPipe {
    pipe: Option<File>,
    buf: Vec<u8>,
    limit: usize,
    truncated: bool,
}

impl CappedPipe {
    fn new(pipe: Option<File>, limit: usize) -> io::Result<Self> {
        if let Some(p) = pipe.as_ref() {
            fcntl(p, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
        }
        Ok(CappedPipe {
            pipe,
            buf: Vec::new(),
            limit,
            truncated: false,
        })
    }

    /// Reads whatever is available now, passing kept bytes to `sink`. Closes the pipe on
    /// EOF or error.
    fn pump<'c>(&mut self, mut sink: Option<OutputSink<'_, 'c>>, name: &str) {
        let Some(p) = self.pipe.as_mut() else { return };
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match p.read(&mut chunk) {
                Ok(0) => {
                    self.pipe = None;
                    return;
                }
                Ok(n) => {
                    let room = self.limit.saturating_sub(self.buf.len());
                    if n > room {
                        self.truncated = true;
                    }
                    let kept = &chunk[..n.min(room)];
                    if let Some(f) = sink.as_mut() {
                        if !kept.is_empty() {
                            f(name, kept);
                        }
                    }
                    self.buf.extend_from_slice(kept);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.pipe = None;
                    return;
                }
            }
        }
    }
}
