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
/// reaps them all. Returns whether `keep` was spared.
///
/// The usual case is cheap: after a well-behaved program nothing is left, and one look at
/// /proc says so. A few leftovers (a background sleeper) are killed one by one, sparing
/// the zygote. Many (a fork bomb), or leftovers that keep coming back, are killed with
/// `kill(-1)`: from PID 1 it signals every process in the PID namespace but itself in one
/// call, the zygote included (the caller starts a new one). A process with a pending
/// SIGKILL can no longer fork, so a few passes end any bomb; one by one, a bomb that shares
/// the container's CPU quota with the cleanup took seconds.
pub fn kill_all(keep: Option<i32>) -> bool {
    if let Some(k) = keep {
        for _ in 0..PASSES_SPARING {
            let victims = live_pids(k);
            reap(true);
            if victims.is_empty() {
                return true;
            }
            if victims.len() > FEW {
                break;
            }
            for &p in &victims {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            reap(true);
            // Give the killed processes a moment to die before listing again.
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
    for _ in 0..10_000 {
        let alive = kill(Pid::from_raw(-1), Signal::SIGKILL).is_ok();
        reap(false);
        if !alive {
            break;
        }
    }
    keep.is_none()
}

/// Leftovers killed one by one at most; more means a bomb.
const FEW: usize = 8;
/// Passes of the sparing kill before falling back to `kill(-1)`.
const PASSES_SPARING: usize = 20;

/// Reaps exited children: all that are ready (`nohang`), or until none is left.
fn reap(nohang: bool) {
    let flag = nohang.then_some(WaitPidFlag::WNOHANG);
    loop {
        match waitpid(Pid::from_raw(-1), flag) {
            Ok(WaitStatus::StillAlive) => break,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => break, // ECHILD: nobody left to reap
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
