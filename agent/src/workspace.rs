//! Session file commands, confined to `/workspace`.
//!
//! Every path is resolved by the kernel with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)` relative to a descriptor of `/workspace`: `..`, absolute
//! symlinks and symlinks whose target leaves the workspace fail with EXDEV, atomically, so
//! no check-then-use race exists. All of it runs with the sandbox user's effective uid.
//!
//! Where the kernel has no `openat2` (gVisor's runsc answers ENOSYS), [`beneath`] walks the
//! path one component at a time with `O_NOFOLLOW`: stricter (no symlink at all is
//! followed, even one that stays inside) and just as free of races.

use base64::Engine;
use codebeaker_proto::{CommandErrorKind, Encoding, FileCommand, WriteMode, MAX_FILE_BYTES};
use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use serde_json::{json, Value};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use crate::files::{AsUser, User};

pub const WORKSPACE: &str = "/workspace";

/// A refused or failed command, reported to the caller as a JSON-RPC application error.
#[derive(Debug)]
pub struct CommandError {
    pub kind: CommandErrorKind,
    pub message: String,
}

pub fn cerr(kind: CommandErrorKind, message: impl Into<String>) -> CommandError {
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

pub fn io_err(e: std::io::Error, path: &str) -> CommandError {
    match e.raw_os_error() {
        Some(n) => from_errno(Errno::from_raw(n), path),
        None => cerr(CommandErrorKind::Io, format!("{path}: {e}")),
    }
}

/// The one confinement check before the kernel's: `path` as a path relative to
/// `/workspace`, or a refusal. `""` means the workspace itself. What it returns is then
/// opened beneath the workspace descriptor with `openat2(RESOLVE_BENEATH)`.
pub fn confine(path: &str) -> Result<String, CommandError> {
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

    pub fn open_at(
        &self,
        rel: &str,
        flags: OFlag,
        mode: Mode,
        shown: &str,
    ) -> Result<OwnedFd, CommandError> {
        let target = if rel.is_empty() { "." } else { rel };
        beneath(
            &self.root,
            target,
            flags,
            mode,
            ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        )
        .map_err(|e| from_errno(e, shown))
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

    /// Runs one file command with the sandbox user's credentials.
    pub fn handle(&self, cmd: FileCommand) -> Result<Value, CommandError> {
        let _as_user = AsUser::enter(self.user).map_err(|e| io_err(e, "/workspace"))?;
        match cmd {
            FileCommand::WriteFile {
                path,
                content,
                mode,
                encoding,
            } => self.write_file(&path, &content, mode, encoding),
            FileCommand::ReadFile { path, encoding } => self.read_file(&path, encoding),
            FileCommand::ListDirectory { path } => self.list_directory(&path),
            FileCommand::CreateDirectory { path } => self.create_directory(&path),
            FileCommand::DeleteFile { path, recursive } => self.delete_file(&path, recursive),
            FileCommand::CopyFile {
                source,
                destination,
                overwrite,
            } => self.copy_file(&source, &destination, overwrite),
        }
    }

    /// `write_file`: content (text or base64) to a file, as `mode` says.
    fn write_file(
        &self,
        path: &str,
        content: &str,
        mode: WriteMode,
        encoding: Encoding,
    ) -> Result<Value, CommandError> {
        let rel = confine(path)?;
        let data = decode(content, encoding)?;
        if data.len() as u64 > MAX_FILE_BYTES {
            return Err(cerr(
                CommandErrorKind::TooLarge,
                format!("content is over {MAX_FILE_BYTES} bytes"),
            ));
        }
        self.write(&rel, &data, mode, path)?;
        Ok(json!({"path": display(&rel), "bytes": data.len()}))
    }

    /// `read_file`: a regular file's content, as text or base64.
    fn read_file(&self, path: &str, encoding: Encoding) -> Result<Value, CommandError> {
        let rel = confine(path)?;
        let data = self.read(&rel, path)?;
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

    /// `list_directory`: entries with type, size and modification time, by name.
    fn list_directory(&self, path: &str) -> Result<Value, CommandError> {
        let rel = confine(path)?;
        let fd = self.open_at(
            &rel,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
            path,
        )?;
        let dirfd = fd.try_clone().map_err(|e| io_err(e, path))?;
        let mut dir = Dir::from_fd(fd).map_err(|e| from_errno(e, path))?;
        let mut entries = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| from_errno(e, path))?;
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
                "modified": rfc3339(mtime),
            }));
        }
        entries.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        Ok(json!({"path": display(&rel), "entries": entries, "count": entries.len()}))
    }

    /// `create_directory`: the directory and its parents, one component at a time, never through a symlink.
    fn create_directory(&self, path: &str) -> Result<Value, CommandError> {
        let rel = confine(path)?;
        let mut cur = self.open_at("", OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty(), path)?;
        for comp in rel.split('/').filter(|c| !c.is_empty()) {
            if comp == ".." {
                return Err(cerr(
                    CommandErrorKind::PathOutsideWorkspace,
                    format!("{path}: outside /workspace"),
                ));
            }
            match mkdirat(cur.as_fd(), comp, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(from_errno(e, path)),
            }
            cur = beneath(
                &cur,
                comp,
                OFlag::O_PATH | OFlag::O_DIRECTORY,
                Mode::empty(),
                ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS,
            )
            .map_err(|e| from_errno(e, path))?;
        }
        Ok(json!({"path": display(&rel), "created": true}))
    }

    /// `delete_file`: a file, a symlink (not its target) or a directory (recursively if asked).
    fn delete_file(&self, path: &str, recursive: bool) -> Result<Value, CommandError> {
        let rel = confine(path)?;
        let (parent, name) = self.parent(&rel, path)?;
        let st = fstatat(
            parent.as_fd(),
            name.as_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| from_errno(e, path))?;
        if kind_of(st.st_mode) == "directory" {
            if recursive {
                remove_tree(&parent, &name).map_err(|e| from_errno(e, path))?;
            } else {
                unlinkat(parent.as_fd(), name.as_str(), UnlinkatFlags::RemoveDir)
                    .map_err(|e| from_errno(e, path))?;
            }
        } else {
            unlinkat(parent.as_fd(), name.as_str(), UnlinkatFlags::NoRemoveDir)
                .map_err(|e| from_errno(e, path))?;
        }
        Ok(json!({"path": display(&rel), "deleted": true}))
    }

    /// `copy_file`: a regular file to a new (or, with `overwrite`, an existing) one.
    fn copy_file(
        &self,
        source: &str,
        destination: &str,
        overwrite: bool,
    ) -> Result<Value, CommandError> {
        let src = confine(source)?;
        let dst = confine(destination)?;
        let data = self.read(&src, source)?;
        let extra = if overwrite {
            OFlag::O_TRUNC
        } else {
            OFlag::O_EXCL
        };
        let fd = self.open_at(
            &dst,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_NONBLOCK | extra,
            Mode::from_bits_truncate(0o644),
            destination,
        )?;
        regular(&fd, destination)?;
        File::from(fd)
            .write_all(&data)
            .map_err(|e| io_err(e, destination))?;
        Ok(json!({"source": display(&src), "destination": display(&dst), "bytes": data.len()}))
    }

    fn read(&self, rel: &str, shown: &str) -> Result<Vec<u8>, CommandError> {
        match self.read_capped(rel, MAX_FILE_BYTES, shown)? {
            CappedRead::Data(data) => Ok(data),
            CappedRead::Missing => Err(cerr(
                CommandErrorKind::NotFound,
                format!("{shown}: no such file or directory"),
            )),
            CappedRead::TooLarge(_) => Err(cerr(
                CommandErrorKind::TooLarge,
                format!("{shown}: over {MAX_FILE_BYTES} bytes"),
            )),
        }
    }

    /// Writes `data` to `rel` as `mode` says. Only a regular file is written: a planted
    /// FIFO or device is refused without blocking (opened non-blocking, then checked).
    pub fn write(
        &self,
        rel: &str,
        data: &[u8],
        mode: WriteMode,
        shown: &str,
    ) -> Result<(), CommandError> {
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
            rel,
            OFlag::O_WRONLY | OFlag::O_NONBLOCK | extra,
            perms,
            shown,
        )?;
        regular(&fd, shown)?;
        File::from(fd).write_all(data).map_err(|e| io_err(e, shown))
    }

    /// Reads `rel` if it is a regular file of at most `limit` bytes.
    pub fn read_capped(
        &self,
        rel: &str,
        limit: u64,
        shown: &str,
    ) -> Result<CappedRead, CommandError> {
        let fd = match self.open_at(
            rel,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK,
            Mode::empty(),
            shown,
        ) {
            Ok(fd) => fd,
            Err(e) if e.kind == CommandErrorKind::NotFound => return Ok(CappedRead::Missing),
            Err(e) => return Err(e),
        };
        let st = fstat(fd.as_fd()).map_err(|e| from_errno(e, shown))?;
        if kind_of(st.st_mode) != "file" {
            return Err(cerr(
                CommandErrorKind::InvalidArgument,
                format!("{shown}: not a regular file"),
            ));
        }
        if st.st_size as u64 > limit {
            return Ok(CappedRead::TooLarge(st.st_size as u64));
        }
        let mut data = Vec::with_capacity(st.st_size as usize);
        // take() guards against a file that grows after the fstat.
        File::from(fd)
            .take(limit + 1)
            .read_to_end(&mut data)
            .map_err(|e| io_err(e, shown))?;
        if data.len() as u64 > limit {
            return Ok(CappedRead::TooLarge(data.len() as u64));
        }
        Ok(CappedRead::Data(data))
    }
}

/// A regular file read up to a cap.
pub enum CappedRead {
    Missing,
    TooLarge(u64),
    Data(Vec<u8>),
}

impl From<CommandError> for std::io::Error {
    fn from(e: CommandError) -> Self {
        std::io::Error::other(e.message)
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

pub fn display(rel: &str) -> String {
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

/// Opens `path` beneath `dir`: `openat2` with `resolve`, or, where the kernel lacks it
/// (ENOSYS: gVisor), a walk of the path one component at a time, each opened with
/// `O_NOFOLLOW` relative to the previous one, refusing `..` and absolute paths.
pub fn beneath(
    dir: &OwnedFd,
    path: &str,
    flags: OFlag,
    mode: Mode,
    resolve: ResolveFlag,
) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(mode)
        .resolve(resolve);
    match openat2(dir.as_fd(), path, how) {
        Err(Errno::ENOSYS) => {}
        other => return other,
    }
    if path.starts_with('/') {
        return Err(Errno::EXDEV);
    }
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if comps.contains(&"..") {
        return Err(Errno::EXDEV);
    }
    let Some((last, parents)) = comps.split_last() else {
        // The directory itself.
        return nix::fcntl::openat(dir.as_fd(), ".", flags | OFlag::O_CLOEXEC, mode);
    };
    let mut cur = dir.try_clone().map_err(|_| Errno::EIO)?;
    for comp in parents {
        cur = nix::fcntl::openat(
            cur.as_fd(),
            *comp,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?; // A symlink here is refused (ENOTDIR: with O_NOFOLLOW it is not a directory).
    }
    nix::fcntl::openat(
        cur.as_fd(),
        *last,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        mode,
    )
}

/// Seconds since the epoch as RFC 3339 (UTC).
fn rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Removes `name` in `parent` and everything below it, without following symlinks.
fn remove_tree(parent: &OwnedFd, name: &str) -> Result<(), Errno> {
    let fd = beneath(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        Mode::empty(),
        ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS,
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined_lexically_before_the_kernel_check() {
        assert_eq!(confine("/workspace/a/b.txt").unwrap(), "a/b.txt");
        assert_eq!(confine("a/b.txt").unwrap(), "a/b.txt");
        assert_eq!(confine("/workspace").unwrap(), "");
        assert_eq!(confine("/workspace/").unwrap(), "");
        for bad in ["/etc/passwd", "/workspacefoo/x", "a\0b"] {
            assert!(
                matches!(
                    confine(bad),
                    Err(CommandError {
                        kind: CommandErrorKind::PathOutsideWorkspace,
                        ..
                    })
                ),
                "{bad}"
            );
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
