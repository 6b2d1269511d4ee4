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
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::files::User;

/// The environment every user process starts with. Nothing from the agent's own
/// environment leaks through (it has none worth keeping, and secrets never belong here).
const BASE_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("LANG", "C.UTF-8"),
    ("HOME", "/tmp"),
    ("TMPDIR", "/tmp"),
];

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
pub fn user_command(argv: &[&str], extra_env: &[(&str, &str)], user: User) -> Command {
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..])
        .env_clear()
        .envs(BASE_ENV.iter().copied())
        .envs(extra_env.iter().copied())
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
pub fn spawn(cmd: &mut Command) -> io::Result<Child> {
    let child = cmd.spawn()?;
    // Raising a score needs no privilege; the agent owns the (non-dumpable) child's /proc
    // entry. The window before this write is a few microseconds of exec.
    let _ = std::fs::write(format!("/proc/{}/oom_score_adj", child.id()), "1000");
    Ok(child)
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
}

/// Waits for `child` to exit or for `timeout` to pass (then kills it), capturing up to
/// `limit` bytes of each output stream.
pub fn collect(
    reaper: &mut Reaper,
    child: &mut Child,
    timeout: Duration,
    limit: usize,
) -> io::Result<Collected> {
    let deadline = Instant::now() + timeout;
    let pid = Pid::from_raw(child.id() as i32);
    let mut out = Stream::new(
        child.stdout.take().map(|p| File::from(OwnedFd::from(p))),
        limit,
    )?;
    let mut err = Stream::new(
        child.stderr.take().map(|p| File::from(OwnedFd::from(p))),
        limit,
    )?;
    let mut timed_out = false;
    let status = loop {
        // Check first: the child may have exited before we started polling.
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => break s,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let now = Instant::now();
        if now >= deadline {
            if !timed_out {
                timed_out = true;
                let _ = kill(pid, Signal::SIGKILL);
            }
            // SIGKILL cannot be caught; the exit arrives promptly.
            match waitpid(pid, None) {
                Ok(s) => break s,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let wait_ms = (deadline - now).as_millis().clamp(1, 60_000) as u16;
        let mut fds = vec![PollFd::new(reaper.sigfd.as_fd(), PollFlags::POLLIN)];
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
                out.pump()
            } else {
                err.pump()
            }
        }
    };
    // Whatever is already buffered in the pipes belongs to this run; take it without
    // waiting for writers that may still hold the pipes open.
    out.pump();
    err.pump();
    let (exit_code, signal) = match status {
        WaitStatus::Exited(_, code) => (Some(code), None),
        WaitStatus::Signaled(_, sig, _) => (None, Some(sig)),
        _ => (None, None),
    };
    Ok(Collected {
        exit_code,
        signal,
        truncated: out.truncated || err.truncated,
        stdout: out.buf,
        stderr: err.buf,
        timed_out,
    })
}

/// One captured output stream: non-blocking reads, keep up to `limit`, discard the rest.
struct Stream {
    pipe: Option<File>,
    buf: Vec<u8>,
    limit: usize,
    truncated: bool,
}

impl Stream {
    fn new(pipe: Option<File>, limit: usize) -> io::Result<Self> {
        if let Some(p) = pipe.as_ref() {
            fcntl(p, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
        }
        Ok(Stream {
            pipe,
            buf: Vec::new(),
            limit,
            truncated: false,
        })
    }

    /// Reads whatever is available now. Closes the pipe on EOF or error.
    fn pump(&mut self) {
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
                    self.buf.extend_from_slice(&chunk[..n.min(room)]);
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
