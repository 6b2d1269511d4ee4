//! The compile cache: Go and C# programs are compiled once and kept under a hash of
//! language, toolchain, translator and source ([`artifact_key`]), so a later program can
//! neither poison an earlier one's binary nor reuse a stale one.
//!
//! Two levels: the container's own root-owned `/cache` tmpfs, and the language's shared
//! cache, mounted read-only at `/shared-cache` (written by the gateway only, from the
//! artifacts agents send back after a compile). A program compiled in one container is
//! found by every other container of the language from then on.

use codebeaker_proto::{artifact_file, artifact_key, Language, SHARED_CACHE_MOUNT};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exec::{self, Reaper};
use crate::files::{self, AsUser, User};
use crate::recipes::Compile;

/// Root-owned tmpfs for compiled artifacts. User code can read and execute, never write.
const CACHE: &str = "/cache";
const BUILD_DIR: &str = "/tmp/.cb-build";

/// A compiled program, or the compiler's complaint.
pub enum Built {
    Ready {
        path: PathBuf,
        cache_hit: bool,
        /// The bytes of a fresh compile, for the gateway's shared cache (only when one is
        /// mounted).
        fresh: Option<Vec<u8>>,
    },
    Failed(String),
}

/// Which compiler: part of the cache key, so a toolchain change never reuses a binary.
pub struct Toolchain<'a> {
    pub lang: Language,
    pub version: &'a str,
}

/// Compiles `source` (already written at `src_path`) unless the cache has it.
pub fn build(
    reaper: &mut Reaper,
    user: User,
    toolchain: Toolchain<'_>,
    compile: &Compile,
    src_path: &Path,
    source: &[u8],
    timeout: Duration,
) -> io::Result<Built> {
    let key = artifact_key(toolchain.lang, toolchain.version, source);
    let dest = Path::new(CACHE).join(&key).join(compile.artifact);
    if dest.is_file() {
        return Ok(Built::Ready {
            path: dest,
            cache_hit: true,
            fresh: None,
        });
    }
    let shared = Path::new(SHARED_CACHE_MOUNT);
    let shared_copy = shared.join(artifact_file(toolchain.lang, &key));
    if shared_copy.is_file() {
        return Ok(Built::Ready {
            path: shared_copy,
            cache_hit: true,
            fresh: None,
        });
    }

    let out = Path::new(BUILD_DIR).join(compile.artifact);
    let mut src_path = src_path.to_path_buf();
    {
        let _as_user = AsUser::enter(user)?;
        std::fs::create_dir_all(BUILD_DIR)?;
        if let Some(translate) = compile.translate {
            let name = src_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = String::from_utf8_lossy(source);
            let translated = Path::new(BUILD_DIR).join(format!("gen.{name}"));
            files::write_new(&translated, translate(&text, &name).as_bytes())?;
            src_path = translated;
        }
    }
    let argv = (compile.argv)(&src_path.display().to_string(), &out.display().to_string());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut cmd = exec::user_command(&argv, compile.env, user);
    let c = exec::run_to_end(reaper, &mut cmd, Vec::new(), timeout, 64 * 1024, None)?;
    if c.timed_out {
        return Ok(Built::Failed(format!(
            "compilation exceeded {} ms",
            timeout.as_millis()
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
        return Ok(Built::Failed(msg));
    }
    let artifact = {
        let _as_user = AsUser::enter(user)?;
        files::read_all(&out)?
    };
    // A full cache is not an error: run this build from the scratch directory instead.
    let path = match files::install(&dest, &artifact, 0o755) {
        Ok(()) => dest,
        Err(e) => {
            eprintln!("codebeaker-agent: not caching {key}: {e}");
            out
        }
    };
    Ok(Built::Ready {
        path,
        cache_hit: false,
        fresh: shared.is_dir().then_some(artifact),
    })
}
