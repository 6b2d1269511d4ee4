//! How a finished program is described: the failure message and the OOM-kill counter,
//! shared by fresh-process runs (`runtime.rs`) and resident instances (`instance.rs`).

use crate::exec;

/// The message for a program that failed: the last stderr line that is not a stack frame
/// (`at …`, as JavaScript and Mono print them after the exception) or a runtime's banner,
/// which for Python, JavaScript, Go panics and Mono is the exception; else the exit status.
pub fn runtime_message(c: &exec::Collected) -> String {
    let status = match (c.exit_code, c.signal) {
        (Some(code), _) => format!("the program exited with code {code}"),
        (None, Some(sig)) => format!("the program was killed by {sig}"),
        _ => "the program failed".to_string(),
    };
    let stderr = String::from_utf8_lossy(&c.stderr);
    let noise = |l: &str| {
        let l = l.trim();
        l.is_empty() || l.starts_with("at ") || l.starts_with("Node.js v") || l.starts_with("Bun v")
    };
    match stderr.lines().rev().find(|l| !noise(l)) {
        Some(last) => format!("{status}: {}", last.trim()),
        None => status,
    }
}

/// The container cgroup's OOM-kill counter (cgroup v2 or v1), if readable.
pub fn oom_kills() -> Option<u64> {
    for (file, key) in [
        ("/sys/fs/cgroup/memory.events", "oom_kill"),
        ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),
    ] {
        if let Ok(text) = std::fs::read_to_string(file) {
            for line in text.lines() {
                let mut parts = line.split_whitespace();
                if parts.next() == Some(key) {
                    return parts.next().and_then(|n| n.parse().ok());
                }
            }
        }
    }
    None
}
