//! What the agent's two ways of starting a user process share: the environment a user
//! process starts with, and how a process ended. `exec.rs` spawns and collects processes;
//! `zygote.rs` has the Python zygote fork them; both use these, and neither needs the other
//! for them (the zygote's side stays free of the collector).

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use std::io::Write;

/// The environment every user process starts with. Nothing from the agent's own
/// environment leaks through (it has none worth keeping, and secrets never belong here).
pub const BASE_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("LANG", "C.UTF-8"),
    ("HOME", "/tmp"),
    ("TMPDIR", "/tmp"),
];

/// How a process ended.
#[derive(Debug, Clone, Copy)]
pub struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<Signal>,
}

impl ExitStatus {
    /// From Python's `os.waitstatus_to_exitcode` convention: negative means a signal.
    pub fn from_code(n: i32) -> ExitStatus {
        if n >= 0 {
            ExitStatus {
                code: Some(n),
                signal: None,
            }
        } else {
            ExitStatus {
                code: None,
                signal: Signal::try_from(-n).ok(),
            }
        }
    }

    pub(crate) fn from_wait(s: WaitStatus) -> Option<ExitStatus> {
        match s {
            WaitStatus::Exited(_, code) => Some(ExitStatus {
                code: Some(code),
                signal: None,
            }),
            WaitStatus::Signaled(_, sig, _) => Some(ExitStatus {
                code: None,
                signal: Some(sig),
            }),
            _ => None,
        }
    }
}

/// Writes `data` to a process's stdin and closes it (end of file). Input larger than a
/// pipe buffer must not block the agent before it reads the process's output, nor wait on
/// a program that never reads: that much is written by a thread of its own, which ends
/// when the data is written or the reader is gone (`EPIPE`; SIGPIPE is ignored).
pub fn feed(mut pipe: impl Write + Send + 'static, data: Vec<u8>) {
    if data.len() <= 60 * 1024 {
        let _ = pipe.write_all(&data);
    } else {
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
}
