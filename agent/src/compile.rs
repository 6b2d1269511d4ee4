//! The compile cache: Go and C# programs are compiled once and kept under a key the
//! gateway sends with the program, so a later program can neither poison an earlier one's
//! binary nor reuse a stale one.
//!
//! The key is the gateway's keyed hash of tenant, language, toolchain, translator and
//! source (`pool/src/cache.rs`): no program can compute another tenant's key, so neither
//! a cache hit, nor the compile time, nor a file name tells it what anyone else compiled.
//! Without a key from the gateway (a session's `run_code`), the container keys its own
//! cache by [`artifact_key`] and skips the shared cache.
//!
//! Two levels:
//! - the container's `/cache/artifacts`, a root-only (0700) directory on the `/cache`
//!   tmpfs: user code cannot list or read it, not even a session's shell. An artifact from
//!   there is copied to `/tmp/.cb-run` for each run (wiped with `/tmp` after it), so the
//!   program can read and execute only its own binary. It is bounded ([`LOCAL_MAX_BYTES`],
//!   at most half the tmpfs, which is charged to the container's memory) and evicts its
//!   oldest artifacts first;
//! - the language's shared cache, mounted read-only at `/shared-cache` (written by the
//!   gateway only, from the artifacts agents send back after a compile; mode 0711, so an
//!   artifact can be opened only by its key). Its artifacts run in place.
//!
//! The agent's own C# launcher lives apart, in `/cache/launcher`, readable by user
//! processes (Mono runs it as the sandbox user); it is our source, not a program's.

use codebeaker_proto::{artifact_file, artifact_key, Language, SHARED_CACHE_MOUNT};
use std::collections::VecDeque;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exec::{self, Reaper};
use crate::files::{self, AsUser, User};
use crate::recipes::Compile;

/// Root-owned tmpfs (mounted by the gateway). Made 0711 here: not listable.
const CACHE: &str = "/cache";
/// Programs' artifacts: root only.
const ARTIFACTS: &str = "/cache/artifacts";
/// The agent's launcher: readable by the sandbox user.
const LAUNCHER: &str = "/cache/launcher";
const BUILD_DIR: &str = "/tmp/.cb-build";
/// Where a private artifact is copied for its run (as the user; `/tmp` is wiped after).
const STAGE_DIR: &str = "/tmp/.cb-run";
/// Bound on the container's own artifacts (also at most half of the `/cache` tmpfs).
/// A Go binary is ~2 MB, a C# one a few kB.
pub const LOCAL_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// A compiled program, or the compiler's complaint.
pub enum Built {
    Ready {
        artifact: Artifact,
        cache_hit: bool,
        /// The bytes of a fresh compile, for the gateway's shared cache (only when one is
        /// mounted and the gateway named the key).
        fresh: Option<Vec<u8>>,
    },
    Failed(String),
}

/// Where a program's binary is, and how a run gets it.
#[derive(Clone)]
pub enum Artifact {
    /// Readable by the user where it is (the shared cache, the launcher).
    InPlace(PathBuf),
    /// In the root-only cache: copied for each run.
    Private(PathBuf),
    /// Too large to cache: kept in memory, written for each run.
    Bytes(std::rc::Rc<Vec<u8>>),
}

impl Artifact {
    /// The path to run: in place, or a copy the user can read in [`STAGE_DIR`] (named
    /// `name`, the recipe's artifact name). The copy is read as root and written as the
    /// user, so nothing the user planted is followed with root's rights.
    pub fn stage(&self, user: User, name: &str) -> io::Result<PathBuf> {
        let bytes;
        let data: &[u8] = match self {
            Artifact::InPlace(p) => return Ok(p.clone()),
            Artifact::Private(p) => {
                bytes = fs::read(p)?;
                &bytes
            }
            Artifact::Bytes(b) => b,
        };
        let _as_user = AsUser::enter(user)?;
        fs::create_dir_all(STAGE_DIR)?;
        let dest = Path::new(STAGE_DIR).join(name);
        // Written aside and renamed: in a session, a process of an earlier run may still be
        // executing the old copy (writing into it would fail with ETXTBSY).
        let tmp = Path::new(STAGE_DIR).join(format!(".{name}.partial"));
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        files::write_executable(&tmp, data)?;
        fs::rename(&tmp, &dest)?;
        Ok(dest)
    }

    /// Whether the artifact is still there (the shared cache may have evicted it).
    pub fn exists(&self) -> bool {
        match self {
            Artifact::InPlace(p) | Artifact::Private(p) => p.is_file(),
            Artifact::Bytes(_) => true,
        }
    }

    fn key_dir(&self) -> Option<&Path> {
        match self {
            Artifact::Private(p) => p.parent(),
            _ => None,
        }
    }
}

/// Which compiler: part of the cache key, so a toolchain change never reuses a binary.
pub struct Toolchain<'a> {
    pub lang: &'a Language,
    pub version: &'a str,
}

/// The container's own artifacts, oldest first, with their sizes.
pub struct LocalCache {
    entries: VecDeque<(PathBuf, u64)>,
    total: u64,
    max: u64,
}

impl LocalCache {
    /// Sets up `/cache`: the root not listable, the artifacts root-only, the launcher's
    /// directory readable. The agent owns the tmpfs root, so it may change its mode.
    pub fn open() -> io::Result<LocalCache> {
        fs::set_permissions(CACHE, fs::Permissions::from_mode(0o711))?;
        for (dir, mode) in [(ARTIFACTS, 0o700), (LAUNCHER, 0o755)] {
            match fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
        }
        let fs_bytes = nix::sys::statvfs::statvfs(CACHE)
            .map(|s| s.blocks().saturating_mul(s.fragment_size()))
            .unwrap_or(0);
        let max = if fs_bytes > 0 {
            LOCAL_MAX_BYTES.min(fs_bytes / 2)
        } else {
            LOCAL_MAX_BYTES
        };
        Ok(LocalCache {
            entries: VecDeque::new(),
            total: 0,
            max,
        })
    }

    /// Bytes held.
    #[cfg(test)]
    fn size(&self) -> u64 {
        self.total
    }

    /// Files `data` under `dir` (one key's directory) as `name`, evicting the oldest
    /// artifacts until it fits; `keep` (the prepared program's) is never evicted. `None`
    /// when it cannot fit at all: the caller runs it from memory.
    fn insert(
        &mut self,
        dir: &Path,
        name: &str,
        data: &[u8],
        keep: Option<&Path>,
    ) -> io::Result<Option<PathBuf>> {
        let len = data.len() as u64;
        if len > self.max {
            return Ok(None);
        }
        let mut i = 0;
        while self.total + len > self.max && i < self.entries.len() {
            if keep == Some(self.entries[i].0.as_path()) {
                i += 1;
                continue;
            }
            if let Some((old, n)) = self.entries.remove(i) {
                self.total -= n;
                if let Err(e) = fs::remove_dir_all(&old) {
                    eprintln!("codebeaker-agent: cannot evict {}: {e}", old.display());
                }
            }
        }
        if self.total + len > self.max {
            return Ok(None);
        }
        let dest = dir.join(name);
        files::install(&dest, data, 0o755)?;
        self.total += len;
        self.entries.push_back((dir.to_path_buf(), len));
        Ok(Some(dest))
    }
}

/// The key a gateway sent, if it is one (64 hex digits: it becomes a file name).
fn valid_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One program to compile through the cache.
pub struct Job<'a> {
    pub toolchain: Toolchain<'a>,
    pub compile: &'a Compile,
    /// The source, already written at `src_path`.
    pub src_path: &'a Path,
    pub source: &'a [u8],
    /// The gateway's key for it, if it sent one.
    pub key: Option<&'a str>,
    pub timeout: Duration,
}

impl Job<'_> {
    /// The public content address of this build ([`artifact_key`]).
    fn local_key(&self) -> String {
        artifact_key(
            self.toolchain.lang,
            self.compile.translator_version,
            self.toolchain.version,
            self.source,
        )
    }
}

impl LocalCache {
    /// Compiles the program unless a cache has it. `keep` is the artifact of the program
    /// prepared now, which must outlive this compile.
    pub fn build(
        &mut self,
        reaper: &mut Reaper,
        user: User,
        job: Job<'_>,
        keep: Option<&Artifact>,
    ) -> io::Result<Built> {
        let gateway_key = match job.key {
            Some(k) if valid_key(k) => Some(k.to_ascii_lowercase()),
            Some(_) => return Err(io::Error::other("the gateway sent a malformed cache key")),
            None => None,
        };
        let shared = Path::new(SHARED_CACHE_MOUNT);
        if let Some(key) = &gateway_key {
            let copy = shared.join(artifact_file(key, &job.compile.extension));
            if copy.is_file() {
                return Ok(Built::Ready {
                    artifact: Artifact::InPlace(copy),
                    cache_hit: true,
                    fresh: None,
                });
            }
        }
        let key = gateway_key.clone().unwrap_or_else(|| job.local_key());
        let dir = Path::new(ARTIFACTS).join(&key);
        let dest = dir.join(&job.compile.artifact);
        if dest.is_file() {
            return Ok(Built::Ready {
                artifact: Artifact::Private(dest),
                cache_hit: true,
                fresh: None,
            });
        }
        let artifact = match compile(reaper, user, &job)? {
            Ok(bytes) => bytes,
            Err(msg) => return Ok(Built::Failed(msg)),
        };
        let keep = keep.and_then(Artifact::key_dir);
        // A full cache is not an error: this build then runs from memory.
        let stored = match self.insert(&dir, &job.compile.artifact, &artifact, keep) {
            Ok(Some(path)) => Artifact::Private(path),
            Ok(None) => {
                eprintln!("codebeaker-agent: not caching {key}: larger than the cache");
                Artifact::Bytes(std::rc::Rc::new(artifact.clone()))
            }
            Err(e) => {
                eprintln!("codebeaker-agent: not caching {key}: {e}");
                Artifact::Bytes(std::rc::Rc::new(artifact.clone()))
            }
        };
        Ok(Built::Ready {
            artifact: stored,
            cache_hit: false,
            fresh: (gateway_key.is_some() && shared.is_dir()).then_some(artifact),
        })
    }
}

/// Compiles the agent's own launcher (our source) into `/cache/launcher`, where the
/// sandbox user can read it. `Err(message)` when it does not compile.
pub fn build_launcher(
    reaper: &mut Reaper,
    user: User,
    job: Job<'_>,
) -> io::Result<Result<PathBuf, String>> {
    let key = job.local_key();
    let dest = Path::new(LAUNCHER).join(&key).join(&job.compile.artifact);
    if dest.is_file() {
        return Ok(Ok(dest));
    }
    match compile(reaper, user, &job)? {
        Ok(bytes) => {
            files::install(&dest, &bytes, 0o755)?;
            Ok(Ok(dest))
        }
        Err(msg) => Ok(Err(msg)),
    }
}

/// Runs the compiler as the user in the scratch build directory; the artifact's bytes, or
/// the compiler's complaint.
fn compile(reaper: &mut Reaper, user: User, job: &Job<'_>) -> io::Result<Result<Vec<u8>, String>> {
    let out = Path::new(BUILD_DIR).join(&job.compile.artifact);
    let mut src_path = job.src_path.to_path_buf();
    {
        let _as_user = AsUser::enter(user)?;
        fs::create_dir_all(BUILD_DIR)?;
        if let Some(translate) = job.compile.translate {
            let name = src_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = String::from_utf8_lossy(job.source);
            let translated = Path::new(BUILD_DIR).join(format!("gen.{name}"));
            files::write_new(&translated, translate(&text, &name).as_bytes())?;
            src_path = translated;
        }
    }
    let argv = job
        .compile
        .argv(&src_path.display().to_string(), &out.display().to_string());
    let mut cmd = exec::user_command(&argv, &job.compile.env, user);
    let c = exec::run_to_end(reaper, &mut cmd, Vec::new(), job.timeout, 64 * 1024, None)?;
    if c.timed_out {
        return Ok(Err(format!(
            "compilation exceeded {} ms",
            job.timeout.as_millis()
        )));
    }
    if c.exit_code != Some(0) {
        // mcs reports errors on stdout, go on stderr: show both.
        let mut msg = c.stdout_text().trim().to_string();
        let e = c.stderr_text();
        if !e.trim().is_empty() {
            if !msg.is_empty() {
                msg.push('\n');
            }
            msg.push_str(e.trim());
        }
        if msg.is_empty() {
            msg = "the compiler failed without a message".into();
        }
        return Ok(Err(msg));
    }
    let _as_user = AsUser::enter(user)?;
    files::read_all(&out).map(Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_the_gateway_must_be_hex_digests() {
        assert!(valid_key(&"ab".repeat(32)));
        assert!(!valid_key("../../etc/passwd"));
        assert!(!valid_key(&"g".repeat(64)));
        assert!(!valid_key(&"a".repeat(63)));
    }

    #[test]
    fn the_local_cache_evicts_the_oldest_first_and_keeps_the_prepared_one() {
        let root = std::env::temp_dir().join(format!("cb-local-cache-{}", std::process::id()));
        let mut c = LocalCache {
            entries: VecDeque::new(),
            total: 0,
            max: 10,
        };
        let dir = |k: &str| root.join(k);
        let a = c.insert(&dir("a"), "p", b"aaaa", None).unwrap().unwrap();
        let b = c.insert(&dir("b"), "p", b"bbbb", None).unwrap().unwrap();
        // `a` is the prepared program: `b` goes instead.
        let keep = Artifact::Private(a.clone());
        c.insert(&dir("c"), "p", b"cccc", keep.key_dir())
            .unwrap()
            .unwrap();
        assert!(
            a.is_file() && !b.exists(),
            "the oldest unprotected entry went"
        );
        assert_eq!(c.size(), 8);
        c.insert(&dir("d"), "p", b"dddd", None).unwrap().unwrap();
        assert!(!a.exists(), "unprotected, the oldest goes");
        assert_eq!(c.size(), 8);
        assert!(
            c.insert(&dir("e"), "p", &[0u8; 11], None)
                .unwrap()
                .is_none(),
            "larger than the cache: not cached"
        );
        assert_eq!(c.size(), 8);
        fs::remove_dir_all(&root).unwrap();
    }
}
