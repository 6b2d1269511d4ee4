//! File work inside the container, done with the sandbox user's credentials.
//!
//! The agent is uid 0 but holds no DAC capabilities, and every path it touches under
//! `/workspace` or `/tmp` may have been shaped by untrusted code. Switching the effective
//! uid to the sandbox user for the duration of the work means the kernel applies exactly
//! the permissions the user code had: the agent cannot be tricked into reading or writing
//! anything the user could not. Real and saved uid stay 0, so the switch is reversible,
//! and no user process is alive while it lasts (runs have been collected or killed).

use nix::unistd::{setegid, seteuid, Gid, Uid};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The unprivileged identity that user code runs as.
#[derive(Debug, Clone, Copy)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

/// While alive, the agent's effective uid/gid are the sandbox user's.
pub struct AsUser(());

impl AsUser {
    pub fn enter(user: User) -> io::Result<AsUser> {
        setegid(Gid::from_raw(user.gid)).map_err(io::Error::from)?;
        if let Err(e) = seteuid(Uid::from_raw(user.uid)) {
            let _ = setegid(Gid::from_raw(0));
            return Err(e.into());
        }
        Ok(AsUser(()))
    }
}

impl Drop for AsUser {
    fn drop(&mut self) {
        // Order matters: regain uid 0 first, which is what permits changing the gid back.
        if seteuid(Uid::from_raw(0)).is_err() || setegid(Gid::from_raw(0)).is_err() {
            // Continuing with the wrong identity would make every later decision suspect.
            eprintln!("codebeaker-agent: cannot restore root credentials");
            std::process::exit(71);
        }
    }
}

/// Creates or truncates `path` (agent scratch such as the build directory under `/tmp`; user
/// paths under `/workspace` go through `workspace::Workspace`, which confines them) and
/// writes `data`, refusing to follow a symlink or to write into anything but a regular file (a planted FIFO must not block the agent: O_NONBLOCK
/// makes its open fail or return at once, and the fstat check refuses it).
pub fn write_new(path: &Path, data: &[u8]) -> io::Result<()> {
    write_mode(path, data, 0o644)
}

/// Like [`write_new`], for a program to execute: mode 0755 (set on the open file, so an
/// older file of the name gets it too).
pub fn write_executable(path: &Path, data: &[u8]) -> io::Result<()> {
    write_mode(path, data, 0o755)
}

fn write_mode(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    f.set_len(0)?;
    // On the open file: an older file of the name gets the mode too.
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(data)
}

/// Copies a file into a root-owned location (used for the compile cache). The caller
/// reads the source as the user and writes the destination as root.
pub fn read_all(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

/// Installs `data` at `dest` atomically with the given mode (write to a temp name, rename).
pub fn install(dest: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = dest.with_extension("partial");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    fs::rename(&tmp, dest)
}

/// Removes everything inside `dir` (not `dir` itself). Directories the user made
/// unreadable are chmod-ed back first, which the owner may always do.
pub fn empty_dir(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut first_err = None;
    for entry in entries {
        let entry = entry?;
        if let Err(e) = remove_any(&entry.path()) {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn remove_any(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
        empty_dir(path)?;
        fs::remove_dir(path)
    } else {
        fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_refuse_symlinks_and_empty_dir_clears_locked_trees() {
        let dir = std::env::temp_dir().join(format!("cb-agent-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("out.json");
        write_new(&f, b"{\"a\":1}").unwrap();
        assert_eq!(read_all(&f).unwrap(), b"{\"a\":1}");
        let link = dir.join("link.json");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(read_all(&link).is_err(), "must not read through a symlink");
        assert!(
            write_new(&link, b"x").is_err(),
            "must not write through a symlink"
        );
        let sub = dir.join("locked");
        fs::create_dir_all(sub.join("deep")).unwrap();
        fs::write(sub.join("deep/x"), b"x").unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o000)).unwrap();
        empty_dir(&dir).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir(&dir).unwrap();
    }
}
