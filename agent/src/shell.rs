//! `execute_shell`: an argv run as the sandbox user in a session, never through a shell.

use codebeaker_proto::{CommandErrorKind, ShellRequest, ShellResult};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::time::{Duration, Instant};

use crate::exec::{self, ExitSource, Reaper};
use crate::files::{AsUser, User};
use crate::workspace::{cerr, confine, display, io_err, CommandError, Workspace, WORKSPACE};
use crate::zygote::Zygote;

/// Runs an argv as the sandbox user; `emit` receives output chunks when streaming.
pub fn shell(
    reaper: &mut Reaper,
    user: User,
    zygote: Option<&mut Zygote>,
    req: ShellRequest,
    emit: exec::OutputSink<'_, '_>,
) -> Result<ShellResult, CommandError> {
    if req.command_name.is_empty() || req.command_name.contains('\0') {
        return Err(cerr(
            CommandErrorKind::InvalidArgument,
            "commandName must be a non-empty program name",
        ));
    }
    let cwd = match &req.working_directory {
        Some(d) => {
            let rel = confine(d)?;
            // Resolved by the kernel beneath /workspace, like every other path, so `..` or
            // a symlink cannot start the command elsewhere (it can still `cd` itself: the
            // argv is the caller's, and it runs as the sandbox user either way).
            let ws = Workspace::open(user).map_err(|e| io_err(e, d))?;
            let _as_user = AsUser::enter(user).map_err(|e| io_err(e, d))?;
            ws.open_at(&rel, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty(), d)?;
            display(&rel)
        }
        None => WORKSPACE.to_string(),
    };
    if let Some(zygote) = zygote.filter(|_| python_script(&req)) {
        return python_via_zygote(reaper, zygote, &cwd, req, emit);
    }
    let argv: Vec<&str> = std::iter::once(req.command_name.as_str())
        .chain(req.args.iter().map(String::as_str))
        .collect();
    let env: Vec<(&str, &str)> = req
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut cmd = exec::user_command(&argv, &env, user);
    cmd.current_dir(&cwd);
    let started = Instant::now();
    let sink = if req.stream { Some(emit) } else { None };
    let c = exec::run_to_end(
        reaper,
        &mut cmd,
        req.stdin.unwrap_or_default().into_bytes(),
        Duration::from_millis(req.timeout_ms),
        req.stream_limit_bytes as usize,
        sink,
    )
    .map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => cerr(
            CommandErrorKind::NotFound,
            format!(
                "{}: command not found (or working directory missing)",
                req.command_name
            ),
        ),
        _ => io_err(e, &req.command_name),
    })?;
    Ok(result(&c, started))
}

fn result(c: &exec::Collected, started: Instant) -> ShellResult {
    ShellResult {
        stdout: c.stdout_text(),
        stderr: c.stderr_text(),
        exit_code: c.exit_code,
        duration_ms: started.elapsed().as_millis() as u64,
        timed_out: c.timed_out,
        truncated: c.truncated,
    }
}

/// `python3 FILE [args…]` with nothing else asked for (no environment, no stdin): the
/// Python container's zygote can run it as a fork of an interpreter that is already up,
/// which costs ~1 ms where starting `python3` costs ~25 ms. The child is set up to be what
/// `python3 FILE` would be (argv, cwd, `sys.path[0]`, `__file__`, exit codes).
fn python_script(req: &ShellRequest) -> bool {
    matches!(req.command_name.as_str(), "python3" | "/usr/bin/python3")
        && req
            .args
            .first()
            .is_some_and(|a| !a.is_empty() && !a.starts_with('-'))
        && req.env.is_empty()
        && req.stdin.as_deref().is_none_or(str::is_empty)
        && req.args.iter().map(String::len).sum::<usize>() < 16 * 1024
}

fn python_via_zygote(
    reaper: &mut Reaper,
    zygote: &mut Zygote,
    cwd: &str,
    req: ShellRequest,
    emit: exec::OutputSink<'_, '_>,
) -> Result<ShellResult, CommandError> {
    let started = Instant::now();
    let (pid, stdout, stderr) = zygote
        .start_with(
            &req.args[0],
            &req.args[1..],
            Vec::new(),
            cwd,
            Duration::from_secs(10),
        )
        .map_err(|e| io_err(e, &req.command_name))?;
    let watch = ExitSource::Forked {
        pid,
        zygote,
        stdout,
        stderr,
    };
    let sink = if req.stream { Some(emit) } else { None };
    let c = exec::collect_streaming(
        reaper,
        watch,
        Duration::from_millis(req.timeout_ms),
        req.stream_limit_bytes as usize,
        sink,
    )
    .map_err(|e| io_err(e, &req.command_name))?;
    Ok(result(&c, started))
}
