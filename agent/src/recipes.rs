//! The per-language recipes: how each language is compiled (if it is), how its programs
//! are started, and how its toolchain reports its version.

use codebeaker_proto::Language;

use crate::csharp;

/// How a language compiles, if it does.
pub struct Compile {
    /// The compiler's argv for (source path, artifact path).
    pub argv: fn(&str, &str) -> Vec<String>,
    pub artifact: &'static str,
    pub env: &'static [(&'static str, &'static str)],
    /// Rewrites the source before it is compiled (C#: top-level statements → `Main`).
    /// The rewritten file is what the compiler sees; the cache key covers the translator.
    pub translate: Option<fn(&str, &str) -> String>,
}

fn go_build(src: &str, out: &str) -> Vec<String> {
    ["go", "build", "-o", out, src].map(String::from).to_vec()
}

/// How a language's program is started.
pub enum Runner {
    /// A runner process is started ahead of time and waits on its stdin for the path of
    /// the program to run. This takes interpreter (or VM) start-up off the request path.
    Prestart {
        argv: &'static [&'static str],
        env: &'static [(&'static str, &'static str)],
    },
    /// The compiled artifact is executed directly (a static Go binary starts in ~1 ms).
    Direct,
    /// A pre-initialised interpreter forks one child per program (see `zygote.rs`).
    /// `{uid}` in the argv is replaced by the sandbox uid.
    Zygote { argv: &'static [&'static str] },
}

/// How a resident runner is started.
pub struct Resident {
    pub argv: &'static [&'static str],
    pub env: &'static [(&'static str, &'static str)],
    /// See `instance::RunnerCommand::threads_vary`.
    pub threads_vary: bool,
}

pub struct Spec {
    pub version: &'static [&'static str],
    pub compile: Option<Compile>,
    pub runner: Runner,
    /// For C#: the launcher source to compile at startup; `{launcher}` in the runner argv.
    pub launcher_source: Option<&'static str>,
    /// The resident runner of `"isolation": "program"` (`instance.rs`): `{program}` is the
    /// program (or its staged binary), `{mode}` `edge` or `plain`, `{launcher}` as in
    /// `runner`. `None`: not supported.
    pub resident: Option<Resident>,
    /// Run (as root, before any user code) on the compiled launcher, its path appended:
    /// C# AOT-compiles it next to itself, ~4 ms of CPU less per call (BENCHMARKS.md, run P).
    pub launcher_aot: &'static [&'static str],
}

const GO_ENV: &[(&str, &str)] = &[
    ("GOCACHE", "/tmp/.gocache"),
    ("GOPATH", "/tmp/.gopath"),
    ("CGO_ENABLED", "0"),
    // Module mode off: a single-file program needs no go.mod. No -trimpath: it would
    // stop the toolchain from using its precompiled standard library (seconds per build).
    ("GO111MODULE", "off"),
];

pub fn spec(lang: Language) -> Spec {
    match lang {
        Language::Python => Spec {
            version: &["python3", "--version"],
            compile: None,
            runner: Runner::Zygote {
                argv: &[
                    "python3",
                    "-I",
                    "/opt/codebeaker/launchers/python_zygote.py",
                    "{uid}",
                ],
            },
            resident: Some(Resident {
                argv: &[
                    "python3",
                    "-I",
                    "/opt/codebeaker/launchers/python_instance.py",
                    "{program}",
                    "{mode}",
                ],
                env: &[],
                // CPython starts no thread of its own: any new task is the call's.
                threads_vary: false,
            }),
            launcher_source: None,
            launcher_aot: &[],
        },
        Language::JavaScript => Spec {
            version: &["sh", "-c", "echo bun $(bun --version)"],
            compile: None,
            // Bun, not Node: a start costs ~9 ms of CPU against Node 26's ~24 and Debian
            // Node 18's ~70 (BENCHMARKS.md, run P), and a fresh process starts per call.
            // It runs the documented contract (CommonJS `require`, `fs`, top-level code);
            // `node` in the image is official Node.js, for sessions and shell commands.
            runner: Runner::Prestart {
                argv: &["bun", "/opt/codebeaker/launchers/node.js"],
                env: &[
                    ("BUN_RUNTIME_TRANSPILER_CACHE_PATH", "0"),
                    ("NO_COLOR", "1"),
                ],
            },
            resident: Some(Resident {
                argv: &[
                    "bun",
                    "/opt/codebeaker/launchers/node_instance.js",
                    "{program}",
                    "{mode}",
                ],
                env: &[
                    ("BUN_RUNTIME_TRANSPILER_CACHE_PATH", "0"),
                    ("NO_COLOR", "1"),
                ],
                // Bun starts and stops helper threads (GC, JIT, I/O) on its own; the
                // runner reports its own leftovers (timers) as `leaked`.
                threads_vary: true,
            }),
            launcher_source: None,
            launcher_aot: &[],
        },
        Language::Go => Spec {
            version: &["go", "version"],
            compile: Some(Compile {
                argv: go_build,
                artifact: "program",
                env: GO_ENV,
                translate: None,
            }),
            runner: Runner::Direct,
            // The instance template (`wrappers/instance/go.go`) compiled with the user's
            // code is itself the runner: it loops over the inputs.
            resident: Some(Resident {
                argv: &["{program}", "{mode}"],
                env: &[],
                // The Go scheduler starts OS threads as it pleases; the runner reports
                // goroutines left behind as `leaked`.
                threads_vary: true,
            }),
            launcher_source: None,
            launcher_aot: &[],
        },
        Language::CSharp => Spec {
            version: &["mono", "--version"],
            compile: Some(Compile {
                argv: csharp::compiler_argv,
                artifact: "program.exe",
                env: &[],
                translate: Some(csharp::to_program),
            }),
            runner: Runner::Prestart {
                argv: &["mono", "{launcher}"],
                // Where Mono finds the System.Text.Json subset the programs reference.
                env: &[("MONO_PATH", csharp::JSON_LIBRARY_DIR)],
            },
            // The same launcher, given the program and the mode, is the resident runner:
            // it loads the program once and calls its Main per input (Launcher.cs).
            resident: Some(Resident {
                argv: &["mono", "{launcher}", "{program}", "{mode}"],
                env: &[("MONO_PATH", csharp::JSON_LIBRARY_DIR)],
                // Mono's GC, finalizer, thread-pool and timer threads come and go.
                threads_vary: true,
            }),
            launcher_source: Some("/opt/codebeaker/launchers/Launcher.cs"),
            launcher_aot: &["mono", "--aot", "-O=all"],
        },
    }
}
