//! Session commands: file operations confined to `/workspace`, and argv execution.
//!
//! Every path is resolved by the kernel with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)` relative to a descriptor of `/workspace`: `..`, absolute
//! symlinks and symlinks whose target leaves the workspace fail with EXDEV, atomically, so
//! no check-then-use race exists. All of it runs with the sandbox user's effective uid.

use base64::Engine;
use codebeaker_proto::{
    CommandErrorKind, Encoding, FileCommand, ShellRequest, ShellResult, WriteMode, MAX_FILE_BYTES,
};
use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use serde_json::{json, Value};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::exec::{self, Reaper, Watch};
use crate::files::{AsUser, User};
use crate::zygote::Zygote;

const WORKSPACE: &str = "/workspace";

/// A refused or failed command, reported to the caller as a JSON-RPC application error.
#[derive(Debug)]
pub struct CommandError {
    pub kind: CommandErrorKind,
    pub message: String,
}

fn cerr(kind: CommandErrorKind, message: impl Into<String>) -> CommandError {
    CommandError {
        kind,
        message: message.into(),
    }
}

fn from_errno(e: Errno, path: &str) -> CommandError {
    match e {
        Errno::EXDEV | Errno::ELOOP => cerr(
            CommandErrorKind::PathOutsideWorkspace,
            format!("{path}: resolves outside /workspace"),
        ),
        Errno::ENOENT => cerr(
            CommandErrorKind::NotFound,
            format!("{path}: no such file or directory"),
        ),
        Errno::EEXIST => cerr(
            CommandErrorKind::AlreadyExists,
            format!("{path}: already exists"),
        ),
        Errno::ENOTEMPTY => cerr(
            CommandErrorKind::InvalidArgument,
            format!("{path}: directory not empty (use recursive)"),
        ),
        Errno::EISDIR => cerr(
            CommandErrorKind::InvalidArgument,
            format!("{path}: is a directory"),
        ),
        Errno::ENOTDIR => cerr(
            CommandErrorKind::InvalidArgument,
            format!("{path}: not a directory"),
        ),
        Errno::ENOSPC | Errno::EFBIG | Errno::EDQUOT => cerr(
            CommandErrorKind::TooLarge,
            format!("{path}: workspace is full"),
        ),
        other => cerr(CommandErrorKind::Io, format!("{path}: {}", other.desc())),
    }
}

fn io_err(e: std::io::Error, path: &str) -> CommandError {
    match e.raw_os_error() {
        Some(n) => from_errno(Errno::from_raw(n), path),
        None => cerr(CommandErrorKind::Io, format!("{path}: {e}")),
    }
}

/// The path relative to `/workspace`, or a refusal. `""` means the workspace itself.
pub fn relative(path: &str) -> Result<String, CommandError> {
    if path.contains('\0') {
        return Err(cerr(
            CommandErrorKind::PathOutsideWorkspace,
            "path contains a NUL byte",
        ));
    }
    let rel = if let Some(rest) = path.strip_prefix(WORKSPACE) {
        if !(rest.is_empty() || rest.starts_with('/')) {
            // "/workspacefoo" is not inside /workspace.
            return Err(cerr(
                CommandErrorKind::PathOutsideWorkspace,
                format!("{path}: outside /workspace"),
            ));
        }
        rest.trim_start_matches('/')
    } else if path.starts_with('/') {
        return Err(cerr(
            CommandErrorKind::PathOutsideWorkspace,
            format!("{path}: outside /workspace"),
        ));
    } else {
        path
    };
    Ok(rel.trim_end_matches('/').to_string())
}

/// File operations beneath the workspace descriptor.
pub struct Workspace {
    root: OwnedFd,
    user: User,
}

impl Workspace {
    pub fn open(user: User) -> std::io::Result<Workspace> {
        let root = File::open(WORKSPACE)?;
        Ok(Workspace {
            root: root.into(),
            user,
        })
    }

    fn open_at(
        &self,
        rel: &str,
        flags: OFlag,
        mode: Mode,
        shown: &str,
    ) -> Result<OwnedFd, CommandError> {
        let target = if rel.is_empty() { "." } else { rel };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(mode)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(self.root.as_fd(), target, how).map_err(|e| from_errno(e, shown))
    }

    /// Splits into (parent directory descriptor, final name).
    fn parent(&self, rel: &str, shown: &str) -> Result<(OwnedFd, String), CommandError> {
        if rel.is_empty() {
            return Err(cerr(
                CommandErrorKind::InvalidArgument,
                "the workspace root itself cannot be used here",
            ));
        }
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        if name == ".." || name == "." {
            return Err(cerr(
                CommandErrorKind::PathOutsideWorkspace,
                format!("{shown}: invalid final component"),
            ));
        }
        let fd = self.open_at(
            dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
            shown,
        )?;
        Ok((fd, name.to_string()))
    }

    pub fn handle(&self, cmd: FileCommand) -> Result<Value, CommandError> {
        let _as_user = AsUser::enter(self.user).map_err(|e| io_err(e, "/workspace"))?;
        match cmd {
            FileCommand::WriteFile {
                path,
                content,
                mode,
                encoding,
            } => {
                let rel = relative(&path)?;
                let data = decode(&content, encoding)?;
                if data.len() as u64 > MAX_FILE_BYTES {
                    return Err(cerr(
                        CommandErrorKind::TooLarge,
                        format!("content is over {MAX_FILE_BYTES} bytes"),
                    ));
                }
                let extra = match mode {
                    WriteMode::Create => OFlag::O_CREAT | OFlag::O_TRUNC,
                    WriteMode::CreateNew => OFlag::O_CREAT | OFlag::O_EXCL,
                    WriteMode::Append => OFlag::O_CREAT | OFlag::O_APPEND,
                    WriteMode::Truncate => OFlag::O_TRUNC,
                };
                // openat2 refuses a mode without O_CREAT (EINVAL).
                let perms = if extra.contains(OFlag::O_CREAT) {
                    Mode::from_bits_truncate(0o644)
                } else {
                    Mode::empty()
                };
                let fd = self.open_at(
                    &rel,
                    OFlag::O_WRONLY | OFlag::O_NONBLOCK | extra,
                    perms,
                    &path,
                )?;
                regular(&fd, &path)?;
                let mut f = File::from(fd);
                f.write_all(&data).map_err(|e| io_err(e, &path))?;
                Ok(json!({"path": display(&rel), "bytes": data.len()}))
            }
            FileCommand::ReadFile { path, encoding } => {
                let rel = relative(&path)?;
                let data = self.read(&rel, &path)?;
                let content = match encoding {
                    Encoding::Utf8 => String::from_utf8(data.clone()).map_err(|_| {
                        cerr(
                            CommandErrorKind::InvalidArgument,
                            format!("{path}: not UTF-8; read it with encoding base64"),
                        )
                    })?,
                    Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(&data),
                };
                Ok(
                    json!({"path": display(&rel), "content": content, "bytes": data.len(), "encoding": encoding}),
                )
            }
            FileCommand::ListDirectory { path } => {
                let rel = relative(&path)?;
                let fd = self.open_at(
                    &rel,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                    Mode::empty(),
                    &path,
                )?;
                let dirfd = fd.try_clone().map_err(|e| io_err(e, &path))?;
                let mut dir = Dir::from_fd(fd).map_err(|e| from_errno(e, &path))?;
                let mut entries = Vec::new();
                for entry in dir.iter() {
                    let entry = entry.map_err(|e| from_errno(e, &path))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name == "." || name == ".." {
                        continue;
                    }
                    let st = fstatat(
                        dirfd.as_fd(),
                        entry.file_name(),
                        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                    );
                    let (kind, size, mtime) = match st {
                        Ok(st) => (kind_of(st.st_mode), st.st_size, st.st_mtime),
                        Err(_) => (entry.file_type().map_or("other", type_name), 0, 0),
                    };
                    entries.push(json!({
                        "name": name, "type": kind, "size": size,
                        "modified": chrono_like(mtime),
                    }));
                }
                entries.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
                Ok(json!({"path": display(&rel), "entries": entries, "count": entries.len()}))
            }
            FileCommand::CreateDirectory { path } => {
                let rel = relative(&path)?;
                let mut cur =
                    self.open_at("", OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty(), &path)?;
                for comp in rel.split('/').filter(|c| !c.is_empty()) {
                    if comp == ".." {
                        return Err(cerr(
                            CommandErrorKind::PathOutsideWorkspace,
                            format!("{path}: outside /workspace"),
                        ));
                    }
                    match mkdirat(cur.as_fd(), comp, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(from_errno(e, &path)),
                    }
                    let how = OpenHow::new()
                        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
                        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
                    cur = openat2(cur.as_fd(), comp, how).map_err(|e| from_errno(e, &path))?;
                }
                Ok(json!({"path": display(&rel), "created": true}))
            }
            FileCommand::DeleteFile { path, recursive } => {
                let rel = relative(&path)?;
                let (parent, name) = self.parent(&rel, &path)?;
                let st = fstatat(
                    parent.as_fd(),
                    name.as_str(),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| from_errno(e, &path))?;
                if kind_of(st.st_mode) == "directory" {
                    if recursive {
                        remove_tree(&parent, &name).map_err(|e| from_errno(e, &path))?;
                    } else {
                        unlinkat(parent.as_fd(), name.as_str(), UnlinkatFlags::RemoveDir)
                            .map_err(|e| from_errno(e, &path))?;
                    }
                } else {
                    unlinkat(parent.as_fd(), name.as_str(), UnlinkatFlags::NoRemoveDir)
                        .map_err(|e| from_errno(e, &path))?;
                }
                Ok(json!({"path": display(&rel), "deleted": true}))
            }
            FileCommand::CopyFile {
                source,
                destination,
                overwrite,
            } => {
                let src = relative(&source)?;
                let dst = relative(&destination)?;
                let data = self.read(&src, &source)?;
                let extra = if overwrite {
                    OFlag::O_TRUNC
                } else {
                    OFlag::O_EXCL
                };
                let fd = self.open_at(
                    &dst,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_NONBLOCK | extra,
                    Mode::from_bits_truncate(0o644),
                    &destination,
                )?;
                regular(&fd, &destination)?;
                File::from(fd)
                    .write_all(&data)
                    .map_err(|e| io_err(e, &destination))?;
                Ok(
                    json!({"source": display(&src), "destination": display(&dst), "bytes": data.len()}),
                )
            }
        }
    }

    fn read(&self, rel: &str, shown: &str) -> Result<Vec<u8>, CommandError> {
        let fd = self.open_at(
            rel,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK,
            Mode::empty(),
            shown,
        )?;
        let st = fstat(fd.as_fd()).map_err(|e| from_errno(e, shown))?;
        if kind_of(st.st_mode) != "file" {
            return Err(cerr(
                CommandErrorKind::InvalidArgument,
                format!("{shown}: not a regular file"),
            ));
        }
        if st.st_size as u64 > MAX_FILE_BYTES {
            return Err(cerr(
                CommandErrorKind::TooLarge,
                format!("{shown}: over {MAX_FILE_BYTES} bytes"),
            ));
        }
        let mut data = Vec::with_capacity(st.st_size as usize);
        File::from(fd)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| io_err(e, shown))?;
        Ok(data)
    }
}

/// Refuses FIFOs, devices and sockets (opened non-blocking, so the open itself cannot hang).
fn regular(fd: &OwnedFd, shown: &str) -> Result<(), CommandError> {
    let st = fstat(fd.as_fd()).map_err(|e| from_errno(e, shown))?;
    if kind_of(st.st_mode) != "file" {
        return Err(cerr(
            CommandErrorKind::InvalidArgument,
            format!("{shown}: not a regular file"),
        ));
    }
    Ok(())
}

fn display(rel: &str) -> String {
    if rel.is_empty() {
        WORKSPACE.to_string()
    } else {
        format!("{WORKSPACE}/{rel}")
    }
}

fn decode(content: &str, enc: Encoding) -> Result<Vec<u8>, CommandError> {
    match enc {
        Encoding::Utf8 => Ok(content.as_bytes().to_vec()),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|e| {
                cerr(
                    CommandErrorKind::InvalidArgument,
                    format!("content is not base64: {e}"),
                )
            }),
    }
}

fn kind_of(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "file",
        SFlag::S_IFDIR => "directory",
        SFlag::S_IFLNK => "symlink",
        _ => "other",
    }
}

fn type_name(t: Type) -> &'static str {
    match t {
        Type::File => "file",
        Type::Directory => "directory",
        Type::Symlink => "symlink",
        _ => "other",
    }
}

/// Seconds since the epoch as RFC 3339 (UTC), without a date library in the agent.
fn chrono_like(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Removes `name` in `parent` and everything below it, without following symlinks.
fn remove_tree(parent: &OwnedFd, name: &str) -> Result<(), Errno> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let fd = openat2(parent.as_fd(), name, how)?;
    let dirfd = fd.try_clone().map_err(|_| Errno::EIO)?;
    let mut dir = Dir::from_fd(fd)?;
    let names: Vec<(String, bool)> = dir
        .iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (n != "." && n != "..").then(|| (n, e.file_type() == Some(Type::Directory)))
        })
        .collect();
    for (n, is_dir) in names {
        if is_dir {
            remove_tree(&dirfd, &n)?;
        } else {
            unlinkat(dirfd.as_fd(), n.as_str(), UnlinkatFlags::NoRemoveDir)?;
        }
    }
    unlinkat(parent.as_fd(), name, UnlinkatFlags::RemoveDir)
}

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
            let rel = relative(d)?;
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
    let mut child = exec::spawn(&mut cmd).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => cerr(
            CommandErrorKind::NotFound,
            format!(
                "{}: command not found (or working directory missing)",
                req.command_name
            ),
        ),
        _ => io_err(e, &req.command_name),
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // Input larger than the pipe buffer must not block us before we read output.
        let data = req.stdin.unwrap_or_default().into_bytes();
        if data.len() <= 60 * 1024 {
            let _ = stdin.write_all(&data);
        } else {
            std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            });
        }
    }
    let sink = if req.stream { Some(emit) } else { None };
    let c = exec::collect_streaming(
        reaper,
        Watch::Child(&mut child),
        Duration::from_millis(req.timeout_ms),
        req.stream_limit_bytes as usize,
        sink,
    )
    .map_err(|e| io_err(e, &req.command_name))?;
    Ok(ShellResult {
        stdout: String::from_utf8_lossy(&c.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&c.stderr).into_owned(),
        exit_code: c.exit_code,
        duration_ms: started.elapsed().as_millis() as u64,
        timed_out: c.timed_out,
        truncated: c.truncated,
    })
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
        .start_with(&req.args[0], &req.args[1..], cwd)
        .map_err(|e| io_err(e, &req.command_name))?;
    let watch = Watch::Forked {
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
    Ok(ShellResult {
        stdout: String::from_utf8_lossy(&c.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&c.stderr).into_owned(),
        exit_code: c.exit_code,
        duration_ms: started.elapsed().as_millis() as u64,
        timed_out: c.timed_out,
        truncated: c.truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined_lexically_before_the_kernel_check() {
        assert_eq!(relative("/workspace/a/b.txt").unwrap(), "a/b.txt");
        assert_eq!(relative("a/b.txt").unwrap(), "a/b.txt");
        assert_eq!(relative("/workspace").unwrap(), "");
        assert_eq!(relative("/workspace/").unwrap(), "");
        for bad in ["/etc/passwd", "/workspacefoo/x", "a\0b"] {
            assert!(
                matches!(
                    relative(bad),
                    Err(CommandError {
                        kind: CommandErrorKind::PathOutsideWorkspace,
                        ..
                    })
                ),
                "{bad}"
            );
        }
        assert_eq!(chrono_like(0), "1970-01-01T00:00:00Z");
        assert_eq!(chrono_like(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
