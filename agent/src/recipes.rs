//! The language's recipe as the agent uses it: how its programs are compiled (if they
//! are), how they are started, and how its toolchain reports its version.
//!
//! The recipe is data (`languages/<name>/language.toml`, mounted read-only at
//! `/opt/codebeaker-languages`), read once at start-up. `{dir}` is resolved here; the
//! per-call placeholders (`{source}`, `{artifact}`, `{program}`, `{mode}`, `{launcher}`,
//! `{uid}`) where they are known.

use codebeaker_recipe::{Recipe, RunKind, Translator};
use std::collections::BTreeMap;

use crate::csharp;

/// Environment variables as a command takes them.
pub type Env = Vec<(String, String)>;

/// How a language compiles, if it does.
pub struct Compile {
    /// The compiler's argv, with `{source}` and `{artifact}` still to fill.
    argv: Vec<String>,
    pub artifact: String,
    pub env: Env,
    /// Rewrites the source before it is compiled (C#: top-level statements → `Main`).
    /// The rewritten file is what the compiler sees; the cache key covers the translator.
    pub translate: Option<fn(&str, &str) -> String>,
    /// Part of the artifact key (the translator's version, "" without one).
    pub translator_version: &'static str,
    /// The extension a cached artifact keeps (Mono wants its `.exe`).
    pub extension: String,
}

impl Compile {
    /// The compiler's argv for (source path, artifact path).
    pub fn argv(&self, source: &str, artifact: &str) -> Vec<String> {
        self.argv
            .iter()
            .map(|a| {
                a.replace("{source}", source)
                    .replace("{artifact}", artifact)
            })
            .collect()
    }
}

/// How a language's program is started.
pub enum Runner {
    /// A fresh process per call: the argv with `{program}` the file to run.
    Exec { argv: Vec<String>, env: Env },
    /// A runner process is started ahead of time and waits on its stdin for the path of
    /// the program to run. This takes interpreter (or VM) start-up off the request path.
    Prestart { argv: Vec<String>, env: Env },
    /// A pre-initialised interpreter forks one child per program (see `zygote.rs`).
    /// `{uid}` in the argv is replaced by the sandbox uid.
    Zygote { argv: Vec<String> },
}

/// How a resident runner is started.
pub struct Resident {
    pub argv: Vec<String>,
    pub env: Env,
    /// See `instance::RunnerCommand::threads_vary`.
    pub threads_vary: bool,
}

pub struct Spec {
    pub version: Vec<String>,
    /// The program's file name in `/workspace`.
    pub file: String,
    pub compile: Option<Compile>,
    pub runner: Runner,
    /// A failed run whose stderr contains one of these is a compile error (a syntax error
    /// of an interpreted language).
    pub compile_error_stderr: Vec<String>,
    /// The launcher source to compile at startup (C#); `{launcher}` in the runner argv.
    pub launcher_source: Option<String>,
    /// The resident runner of `"isolation": "program"` (`instance.rs`): `{program}` is the
    /// program (or its staged binary), `{mode}` `edge` or `plain`, `{launcher}` as in
    /// `runner`. `None`: not supported.
    pub resident: Option<Resident>,
    /// Run (as root, before any user code) on the compiled launcher, its path appended:
    /// C# AOT-compiles it next to itself, ~4 ms of CPU less per call (BENCHMARKS.md, run P).
    pub launcher_aot: Vec<String>,
}

impl Spec {
    /// The compiled artifact's file name ("program" for an interpreted language).
    pub fn artifact(&self) -> &str {
        self.compile
            .as_ref()
            .map_or("program", |c| c.artifact.as_str())
    }
}

/// The agent's form of `recipe`, with `{dir}` resolved.
pub fn spec(recipe: &Recipe) -> Spec {
    let dir = recipe.container_dir();
    let fill =
        |v: &[String]| -> Vec<String> { v.iter().map(|a| a.replace("{dir}", &dir)).collect() };
    let env = |e: &BTreeMap<String, String>| -> Env {
        e.iter()
            .map(|(k, v)| (k.clone(), v.replace("{dir}", &dir)))
            .collect()
    };
    let run = &recipe.run;
    Spec {
        version: fill(&recipe.version),
        file: recipe.file.clone(),
        compile: recipe.compile.as_ref().map(|c| Compile {
            argv: fill(&c.argv),
            artifact: c.artifact.clone(),
            env: env(&c.env),
            translate: c.translate.map(|t| match t {
                Translator::CsharpTopLevel => csharp::to_program as fn(&str, &str) -> String,
            }),
            translator_version: recipe.translator_version(),
            extension: recipe.artifact_extension().to_string(),
        }),
        runner: match run.kind {
            RunKind::Exec => Runner::Exec {
                argv: fill(&run.argv),
                env: env(&run.env),
            },
            RunKind::Prestart => Runner::Prestart {
                argv: fill(&run.argv),
                env: env(&run.env),
            },
            RunKind::Zygote => Runner::Zygote {
                argv: fill(&run.argv),
            },
        },
        compile_error_stderr: run.compile_error_stderr.clone(),
        launcher_source: recipe
            .launcher
            .as_ref()
            .map(|l| l.source.replace("{dir}", &dir)),
        resident: recipe.resident.as_ref().map(|r| Resident {
            argv: fill(&r.argv),
            env: env(&r.env),
            threads_vary: r.threads_vary,
        }),
        launcher_aot: recipe
            .launcher
            .as_ref()
            .map(|l| fill(&l.aot))
            .unwrap_or_default(),
    }
}
