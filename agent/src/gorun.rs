//! `go run FILE.go…` without the link on every call.
//!
//! Loopai runs Go in a session as `go run /workspace/program.go`, on every call, with the
//! same program. `go run` compiles from its build cache but links a fresh binary each time
//! (~200 ms here). The Go image installs this binary as `/usr/local/bin/go` (before
//! `/usr/bin/go` on PATH): for `go run` of plain `.go` files it builds once into
//! `/tmp/.go-run/<hash>` (hash of the toolchain, the `GO*`/`CGO*` environment and every
//! file's name and content) and runs that; everything else goes to the real `go`
//! unchanged. The run itself behaves as `go run` does: a build error is go's own output
//! and exit code, and a program that fails makes `go` say `exit status N` and exit 1.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::digest::digest;

/// The toolchain's own `go`.
const REAL_GO: &str = "/usr/bin/go";
const RUN_CACHE: &str = "/tmp/.go-run";
/// Bumped when what is cached, or how, changes.
const VERSION: &str = "go-run-1";

pub fn go_main(args: &[String]) -> ExitCode {
    match cacheable_run(args) {
        Some((files, program_args)) => match run(files, program_args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("go: {e}");
                ExitCode::from(1)
            }
        },
        None => {
            let err = Command::new(REAL_GO).args(args).exec();
            eprintln!("go: cannot start {REAL_GO}: {err}");
            ExitCode::from(1)
        }
    }
}

/// `run a.go b.go [args…]` with no flags: the files, and the program's arguments.
fn cacheable_run(args: &[String]) -> Option<(&[String], &[String])> {
    let rest = args.strip_prefix(&["run".to_string()])?;
    let n = rest.iter().take_while(|a| a.ends_with(".go")).count();
    (n > 0 && !rest[0].starts_with('-')).then(|| rest.split_at(n))
}

fn run(files: &[String], program_args: &[String]) -> io::Result<ExitCode> {
    let mut parts: Vec<Vec<u8>> = vec![VERSION.as_bytes().to_vec(), toolchain_id().into_bytes()];
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("GO") || k.starts_with("CGO"))
        .collect();
    env.sort();
    for (k, v) in env {
        parts.push(format!("{k}={v}").into_bytes());
    }
    for f in files {
        let content =
            std::fs::read(f).map_err(|e| io::Error::new(e.kind(), format!("{f}: {e}")))?;
        parts.push(f.as_bytes().to_vec());
        parts.push(content);
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let dir = PathBuf::from(RUN_CACHE).join(digest(&refs));
    let binary = dir.join("program");
    if !binary.is_file() {
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!("program.{}", std::process::id()));
        let status = Command::new(REAL_GO)
            .arg("build")
            .arg("-o")
            .arg(&tmp)
            .args(files)
            .status()?;
        if !status.success() {
            // go printed the errors, as `go run` would.
            return Ok(ExitCode::from(
                status.code().unwrap_or(1).clamp(1, 255) as u8
            ));
        }
        std::fs::rename(&tmp, &binary)?;
    }
    let status = Command::new(&binary).args(program_args).status()?;
    if status.success() {
        return Ok(ExitCode::SUCCESS);
    }
    match (status.code(), status.signal()) {
        (Some(code), _) => eprintln!("exit status {code}"),
        (None, Some(sig)) => eprintln!("signal: {}", signal_name(sig)),
        _ => {}
    }
    Ok(ExitCode::from(1))
}

/// Identifies the toolchain without starting it: the real binary's size and mtime.
fn toolchain_id() -> String {
    let real = std::fs::canonicalize(REAL_GO).unwrap_or_else(|_| Path::new(REAL_GO).into());
    match std::fs::metadata(&real) {
        Ok(m) => {
            use std::os::unix::fs::MetadataExt;
            format!("{}:{}:{}", real.display(), m.size(), m.mtime())
        }
        Err(_) => "unknown".into(),
    }
}

fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(nix::sys::signal::Signal::SIGKILL) => "killed".into(),
        Ok(s) => s.as_str().trim_start_matches("SIG").to_lowercase(),
        Err(_) => sig.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_plain_go_run_of_files_is_cached() {
        let a = v(&["run", "/workspace/program.go", "x", "y"]);
        let (files, rest) = cacheable_run(&a).unwrap();
        assert_eq!(files, &v(&["/workspace/program.go"])[..]);
        assert_eq!(rest, &v(&["x", "y"])[..]);
        let b = v(&["run", "a.go", "b.go"]);
        assert_eq!(cacheable_run(&b).unwrap().0.len(), 2);
        for other in [
            &["build", "a.go"][..],
            &["run", "-race", "a.go"],
            &["run", "."],
            &["version"],
        ] {
            assert!(cacheable_run(&v(other)).is_none(), "{other:?}");
        }
    }
}
