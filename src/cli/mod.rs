//! The command-line client in the `codebeaker` binary: `run`, `batch` and `session` talk
//! to a gateway over HTTP (`client`); `keys` edits the keys file, as an operator does on the
//! gateway's host. One file per command; docs/cli.md is the user's page.
//!
//! Exit codes, the same for every client command (docs/cli.md#exit-codes): the program's
//! own code for `run`, 1 for a program or item that failed without one, [`EXIT_REFUSED`]
//! when the gateway refused the request (or the command line's input is wrong),
//! [`EXIT_UNREACHABLE`] when no gateway answers, [`EXIT_AUTH`] when it refused the key.

pub mod batch;
pub mod client;
pub mod keys;
pub mod run;
pub mod session;

use std::path::Path;
use std::process::ExitCode;

/// The request was refused (a 4xx/5xx other than 401), or the command line's own input is
/// wrong: the same code clap gives a usage error.
pub const EXIT_REFUSED: u8 = 2;
/// No gateway answers at the URL (sysexits `EX_UNAVAILABLE`).
pub const EXIT_UNREACHABLE: u8 = 69;
/// The gateway refused the API key: 401 (sysexits `EX_NOPERM`).
pub const EXIT_AUTH: u8 = 77;

/// Why a client command stopped, each with one sentence for the user and its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach the gateway at {url} ({reason}); start it with `codebeaker serve` or point CODEBEAKER_URL (or --url) at it")]
    Unreachable { url: String, reason: String },
    #[error(
        "no API key: set CODEBEAKER_API_KEY or pass --key (the gateway answered 401: {message})"
    )]
    NoKey { message: String },
    #[error("the gateway refused the API key (401: {message}); check CODEBEAKER_API_KEY or --key")]
    WrongKey { message: String },
    #[error("the gateway refused the request ({status} {kind}): {message}")]
    Refused {
        status: u16,
        kind: String,
        message: String,
    },
    /// The command line's own input (a file, a JSON value) is wrong.
    #[error("{0}")]
    Input(String),
    /// Anything else (an answer that is not what the API documents, a keys file error).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Unreachable { .. } => EXIT_UNREACHABLE,
            CliError::NoKey { .. } | CliError::WrongKey { .. } => EXIT_AUTH,
            CliError::Refused { .. } | CliError::Input(_) => EXIT_REFUSED,
            CliError::Failed(_) => 1,
        }
    }

    /// Prints the sentence on stderr and gives the exit code.
    pub fn report(&self) -> ExitCode {
        eprintln!("codebeaker: {self}");
        ExitCode::from(self.exit_code())
    }
}

/// A value given as itself or as `@path` (`@-`: this process's stdin), as curl takes them.
pub fn text_or_file(value: &str) -> Result<String, CliError> {
    match value.strip_prefix('@') {
        Some("-") => std::io::read_to_string(std::io::stdin())
            .map_err(|e| CliError::Input(format!("cannot read stdin: {e}"))),
        Some(path) => read_text(Path::new(path)),
        None => Ok(value.to_string()),
    }
}

/// A local file's text, or a sentence naming it.
pub fn read_text(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))
}

/// The language of a program file, from its extension; `None` for one we do not know.
pub fn language_of(file: &Path) -> Option<&'static str> {
    let ext = file.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "py" => "python",
        "js" | "mjs" | "cjs" => "javascript",
        "ts" => "typescript",
        "go" => "go",
        "cs" => "csharp",
        "java" => "java",
        "c" => "c",
        "cpp" | "cc" | "cxx" => "cpp",
        "rs" => "rust",
        "rb" => "ruby",
        "php" => "php",
        "sh" => "bash",
        _ => return None,
    })
}

/// `--language`, else the file's extension, else a sentence saying what to do.
pub fn language_for(file: &Path, given: Option<&str>) -> Result<String, CliError> {
    if let Some(l) = given {
        return Ok(l.to_string());
    }
    language_of(file).map(str::to_string).ok_or_else(|| {
        CliError::Input(format!(
            "cannot tell the language of {} from its extension; pass --language",
            file.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_come_from_extensions() {
        for (f, l) in [
            ("a.py", "python"),
            ("a.JS", "javascript"),
            ("a.ts", "typescript"),
            ("a.go", "go"),
            ("a.cs", "csharp"),
            ("a.java", "java"),
            ("a.c", "c"),
            ("a.cpp", "cpp"),
            ("a.cc", "cpp"),
            ("a.rs", "rust"),
            ("a.rb", "ruby"),
            ("a.php", "php"),
            ("dir/a.sh", "bash"),
        ] {
            assert_eq!(language_of(Path::new(f)), Some(l), "{f}");
        }
        assert_eq!(language_of(Path::new("Makefile")), None);
        assert_eq!(
            language_for(Path::new("x.txt"), Some("ruby")).unwrap(),
            "ruby"
        );
        assert!(language_for(Path::new("x.txt"), None).is_err());
    }
}
