//! The agent's side of a language zygote (used for Python).
//!
//! A zygote is a pre-initialised interpreter that forks one child per invocation, so the
//! per-call cost is a fork instead of an interpreter start. The agent hands it the program
//! path and the program's stdin/stdout/stderr over SCM_RIGHTS on a Unix socket, and reads
//! back `pid N` and later `exit N`. See `languages/python/zygote.py` for the other side.

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use nix::unistd::{pipe2, Pid};
use std::fs::File;
use std::io::{self, IoSlice, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{ExitStatus, BASE_ENV};

pub struct Zygote {
    child: Child,
    sock: UnixStream,
    buf: Vec<u8>,
    /// Set when the zygote missed an answer (starved by a program that took its
    /// container's CPU): a late line would be misread, so it is replaced at the next reset.
    tainted: bool,
}

impl Zygote {
    /// Starts the zygote as root (it drops each child to the sandbox uid itself).
    pub fn spawn(argv: &[&str]) -> io::Result<Zygote> {
        let (ours, theirs) = UnixStream::pair()?;
        // The agent's stdout is the protocol channel: the zygote's output goes to stderr.
        let log = io::stderr().as_fd().try_clone_to_owned()?;
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(BASE_ENV.iter().copied())
            .current_dir("/workspace")
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::from(log))
            .stderr(Stdio::inherit());
        let child = cmd.spawn()?;
        ours.set_nonblocking(true)?;
        Ok(Zygote {
            child,
            sock: ours,
            buf: Vec::new(),
            tainted: false,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Whether the zygote process is still running and can be trusted to answer in order.
    pub fn alive(&mut self) -> bool {
        !self.tainted && matches!(self.child.try_wait(), Ok(None))
    }

    /// Marks the zygote for replacement (it missed an answer).
    pub fn taint(&mut self) {
        self.tainted = true;
    }

    pub fn is_tainted(&self) -> bool {
        self.tainted
    }

    /// Forks a child running `path`; returns its pid and the read ends of its stdout and
    /// stderr. Its stdin is a pipe holding `stdin`, then end of file. `wait` bounds the wait for the fork: a zygote
    /// starved of CPU by the container's previous program must not hold the call forever
    /// (an error of kind `TimedOut` then, and the zygote is tainted).
    pub fn start(
        &mut self,
        path: &str,
        args: &[String],
        stdin: Vec<u8>,
        wait: Duration,
    ) -> io::Result<(Pid, File, File)> {
        self.start_with(path, args, stdin, "/workspace", wait)
    }

    /// Like [`Zygote::start`], as `python3 PATH ARGS…` run in `cwd` would.
    pub fn start_with(
        &mut self,
        path: &str,
        args: &[String],
        stdin: Vec<u8>,
        cwd: &str,
        wait: Duration,
    ) -> io::Result<(Pid, File, File)> {
        let (in_r, in_w) = pipe2(OFlag::O_CLOEXEC)?;
        let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC)?;
        let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC)?;
        let fds = [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()];
        let mut line = serde_json::json!({"path": path, "args": args, "cwd": cwd}).to_string();
        line.push('\n');
        sendmsg::<UnixAddr>(
            self.sock.as_raw_fd(),
            &[IoSlice::new(line.as_bytes())],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )?;
        // Our copies of the write ends must go, or EOF would never arrive.
        drop((in_r, out_w, err_w));
        // The program's stdin, then end of file (`in_w` closed).
        crate::process::feed(File::from(in_w), stdin);
        let reply = self.wait_line(wait).inspect_err(|_| self.tainted = true)?;
        let pid = reply
            .strip_prefix("pid ")
            .and_then(|n| n.trim().parse::<i32>().ok())
            .ok_or_else(|| io::Error::other(format!("zygote said {reply:?}, expected a pid")))?;
        Ok((Pid::from_raw(pid), File::from(out_r), File::from(err_r)))
    }

    /// The child's exit status, if the zygote has reported it.
    pub fn try_exit(&mut self) -> io::Result<Option<ExitStatus>> {
        self.fill()?;
        match self.take_line() {
            Some(line) => parse_exit(&line).map(Some),
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` for the exit report.
    pub fn wait_exit(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        let line = self.wait_line(timeout)?;
        parse_exit(&line)
    }

    fn wait_line(&mut self, timeout: Duration) -> io::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.fill()?;
            if let Some(line) = self.take_line() {
                return Ok(line);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the zygote did not answer in time",
                ));
            }
            let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
            let _ = poll(
                &mut fds,
                PollTimeout::from(left.as_millis().clamp(1, 10_000) as u16),
            );
        }
    }

    /// Reads whatever the socket has now. EOF means the zygote died.
    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 256];
        loop {
            match self.sock.read(&mut chunk) {
                Ok(0) => return Err(io::Error::other("the zygote exited")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn take_line(&mut self) -> Option<String> {
        let pos = self.buf.iter().position(|&b| b == b'\n')?;
        let line: Vec<u8> = self.buf.drain(..=pos).collect();
        Some(String::from_utf8_lossy(&line).trim().to_string())
    }
}

impl AsFd for Zygote {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_exit(line: &str) -> io::Result<ExitStatus> {
    line.strip_prefix("exit ")
        .and_then(|n| n.trim().parse::<i32>().ok())
        .map(ExitStatus::from_code)
        .ok_or_else(|| io::Error::other(format!("zygote said {line:?}, expected an exit")))
}
