//! Restoring a container to the state it had before an invocation.
//!
//! Everything an invocation can leave behind is listed here: processes, files in the
//! writable mounts, POSIX message queues and SysV IPC objects. The network namespace is
//! empty (`network none`) and the root filesystem is read-only, so nothing else persists.

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io;
use std::path::Path;

use crate::files::{empty_dir, AsUser, User};

/// Writable places user code can reach; all are tmpfs and are emptied after every run.
pub const SCRATCH_DIRS: &[&str] = &["/workspace", "/tmp", "/dev/shm", "/dev/mqueue"];

/// Kills every process in the container except the agent (and `keep`, the zygote) and
/// reaps them all.
///
/// Without a process to keep, `kill(-1)` from PID 1 signals every process in the PID
/// namespace but itself. Orphans are re-parented to PID 1, so reaping until ECHILD waits for
/// all of them. A fork bomb may create processes between two passes, so we repeat until
/// nobody is left. With a zygote to keep, processes are listed from /proc and killed one by
/// one: a process with a pending SIGKILL can no longer fork, so every pass shrinks the set.
pub fn kill_all(keep: Option<i32>) {
    for _ in 0..10_000 {
        let alive = match keep {
            None => kill(Pid::from_raw(-1), Signal::SIGKILL).is_ok(),
            Some(k) => {
                let victims = live_pids(k);
                for &p in &victims {
                    let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                }
                !victims.is_empty()
            }
        };
        loop {
            let flag = if keep.is_some() {
                Some(WaitPidFlag::WNOHANG)
            } else {
                None
            };
            match waitpid(Pid::from_raw(-1), flag) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(_) => break, // ECHILD: nobody left to reap
            }
        }
        if !alive {
            return;
        }
        if keep.is_some() {
            // Give the killed processes a moment to die before listing again.
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
}

/// Pids of live (non-zombie) processes other than PID 1 and `keep`.
fn live_pids(keep: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| p != 1 && p != keep)
        .filter(|p| {
            // Field 3 of /proc/PID/stat is the state; skip zombies (already dead). The
            // command name in field 2 may contain spaces, so split after its ')'.
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                })
                .is_some_and(|zombie| !zombie)
        })
        .collect()
}

/// Wipes the scratch directories and IPC objects, with the user's credentials.
pub fn wipe(user: User) -> io::Result<()> {
    let _as_user = AsUser::enter(user)?;
    let mut first_err = None;
    for d in SCRATCH_DIRS {
        if let Err(e) = empty_dir(Path::new(d)) {
            first_err.get_or_insert(io::Error::new(e.kind(), format!("emptying {d}: {e}")));
        }
    }
    remove_sysv_ipc(user.uid);
    first_err.map_or(Ok(()), Err)
}

/// Removes SysV shared memory, semaphores and message queues created or owned by the user.
/// They live in the container's IPC namespace, not in any file system, so emptying
/// directories would miss them. The creator uid is matched as well as the owner: user code
/// may hand an object to another owner with IPC_SET, but cannot change its creator, and
/// the creator keeps the right to IPC_RMID. Must run with the user's effective uid.
fn remove_sysv_ipc(uid: u32) {
    for (table, id_col, uid_col, cuid_col) in [
        ("/proc/sysvipc/shm", 1, 7, 9),
        ("/proc/sysvipc/sem", 1, 4, 6),
        ("/proc/sysvipc/msg", 1, 7, 9),
    ] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let Some(id) = cols.get(id_col) else {
                continue;
            };
            let is_user =
                |col: usize| cols.get(col).and_then(|v| v.parse::<u32>().ok()) == Some(uid);
            if !is_user(uid_col) && !is_user(cuid_col) {
                continue;
            }
            if let Ok(id) = id.parse::<i32>() {
                ipc_rmid(table, id);
            }
        }
    }
}

#[allow(unsafe_code)]
fn ipc_rmid(table: &str, id: i32) {
    // SAFETY: IPC_RMID takes no buffer (null is allowed for shmctl/msgctl and the fourth
    // argument of semctl is not read); the id comes from the kernel's own table.
    unsafe {
        match table {
            "/proc/sysvipc/shm" => {
                libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
            }
            "/proc/sysvipc/sem" => {
                libc::semctl(id, 0, libc::IPC_RMID);
            }
            _ => {
                libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut());
            }
        }
    }
}
