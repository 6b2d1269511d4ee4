//! The CodeBeaker agent: PID 1 of every pooled container.
//!
//! The gateway attaches to the container's stdin/stdout and speaks the line-delimited JSON
//! protocol of `codebeaker-proto` with this process. For each `run` request the agent writes
//! `/workspace/input.json` and the program, compiles it if needed (with a per-container
//! cache keyed by a hash of language, toolchain and source), hands it to a runner process
//! that was started ahead of time, collects stdout/stderr under caps and the timeout, reads
//! `/workspace/output.json` and replies. After replying it restores a clean state: every
//! process the invocation left is killed (as PID 1 it can reach them all), and
//! `/workspace`, `/tmp`, `/dev/shm`, `/dev/mqueue` and SysV IPC objects are wiped. Only then
//! does it read the next request, so the gateway never sees a dirty container.
//!
//! User code runs as an unprivileged uid; the agent stays uid 0 with only the capabilities
//! the pool grants (SETUID, SETGID, KILL), is not dumpable, and so cannot be ptraced,
//! signalled or read through /proc by the code it runs.
//!
//! The agent is single-threaded on purpose: it forks children, switches its effective uid
//! for file work, and waits on signals, all of which are simplest and safe without threads.
#![deny(unsafe_code)]

mod clean;
mod compile;
mod csharp;
mod digest;
mod exec;
mod files;
mod gorun;
mod instance;
mod outcome;
mod process;
mod recipes;
mod runtime;
mod shell;
mod workspace;
mod zygote;

use codebeaker_proto::{AgentInfo, Language, Reply, Request};
use std::io::{BufRead, Write};
use std::os::fd::AsFd;

use crate::runtime::Agent;

fn main() -> std::process::ExitCode {
    // One binary, three jobs: installed as `dotnet` in the C# image it is the `dotnet
    // script` shim (csharp.rs), as `go` in the Go image the `go run` cache (gorun.rs).
    let argv: Vec<String> = std::env::args().collect();
    let called = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    match called.as_str() {
        "dotnet" => return csharp::dotnet_main(&argv[1..]),
        "go" => return gorun::go_main(&argv[1..]),
        _ => {}
    }
    agent_main();
    std::process::ExitCode::SUCCESS
}

fn agent_main() {
    let mut language = None;
    let mut uid = 1000;
    let mut gid = 1000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--language" => language = args.next().and_then(|s| Language::new(&s)),
            "--uid" => uid = args.next().and_then(|s| s.parse().ok()).unwrap_or(uid),
            "--gid" => gid = args.next().and_then(|s| s.parse().ok()).unwrap_or(gid),
            "--version" => {
                println!("codebeaker-agent {}", env!("CARGO_PKG_VERSION"));
                return;
            }
            other => die(&format!("unknown argument {other:?}")),
        }
    }
    let Some(language) = language else {
        die("usage: codebeaker-agent --language <name> [--uid N --gid N]")
    };
    // The recipe is data, mounted read-only with every language's (languages/<name>/).
    let dir = std::path::Path::new(codebeaker_recipe::CONTAINER_DIR).join(language.name());
    let recipe = match codebeaker_recipe::Recipe::load(&dir) {
        Ok(r) => r,
        Err(e) => die(&format!("cannot read the recipe of {language}: {e}")),
    };

    let mut agent = match Agent::start(&recipe, uid, gid) {
        Ok(a) => a,
        Err(e) => die(&format!("startup failed: {e}")),
    };
    reply(&Reply::Ready(AgentInfo {
        language: recipe.name.clone(),
        toolchain: agent.toolchain().to_string(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
    }));

    // Our own buffered reader of fd 0, so that the loop can see whether more requests are
    // already here (pipelined calls): their replies then go out together, in one write.
    let stdin = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) => die(&format!("stdin: {e}")),
    };
    let mut input = std::io::BufReader::with_capacity(1 << 20, stdin);
    let mut line = String::new();
    loop {
        line.clear();
        if input.buffer().is_empty() {
            flush_later();
        }
        match input.read_line(&mut line) {
            // The gateway closed our stdin: it has let go of this container.
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => die(&format!("reading stdin: {e}")),
        }
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Request>(&line) {
            Ok(Request::Ping) => reply(&Reply::Pong {
                invocations: agent.invocations(),
            }),
            Ok(
                Request::Prepare(_)
                | Request::Item(_)
                | Request::Instance(_)
                | Request::Call(_)
                | Request::EndInstance,
            ) if agent.is_session() => reply(&Reply::Failed {
                message: "prepare, item and instances are for pool containers, not sessions".into(),
            }),
            Ok(
                Request::Run(_) | Request::Prepare(_) | Request::Item(_) | Request::Session { .. },
            ) if agent.has_instance() => reply(&Reply::Failed {
                message: "a resident instance lives here: end_instance first".into(),
            }),
            Ok(Request::Instance(req)) => match agent.instance(req) {
                Ok(o) => reply(&Reply::Prepared {
                    compile_ms: o.compile_ms,
                    cache_hit: o.cache_hit,
                    error: o.error,
                    artifact: o.artifact,
                }),
                Err(e) => reply(&Reply::Failed {
                    message: format!("agent error: {e}"),
                }),
            },
            Ok(Request::Call(req)) => {
                match agent.call(req) {
                    Ok(o) => reply_later(&Reply::Ran(o)),
                    Err(e) => reply(&Reply::Failed {
                        message: format!("agent error: {e}"),
                    }),
                }
                // After the reply: the caller does not wait for a replacement.
                if let Err(e) = agent.after_call() {
                    eprintln!("codebeaker-agent: replacing the instance failed: {e}");
                    std::process::exit(70);
                }
            }
            Ok(Request::EndInstance) => {
                if let Err(e) = agent.end_instance() {
                    eprintln!("codebeaker-agent: reset failed: {e}");
                    std::process::exit(70);
                }
                reply(&Reply::Clean);
            }
            Ok(req @ (Request::Run(_) | Request::Prepare(_) | Request::Item(_))) => {
                // Reply first, then clean: the caller gets its answer without waiting for
                // the wipe, and the next request is read only after the wipe is done.
                let result = match req {
                    Request::Prepare(p) => agent.prepare(p).map(|o| Reply::Prepared {
                        compile_ms: o.compile_ms,
                        cache_hit: o.cache_hit,
                        error: o.error,
                        artifact: o.artifact,
                    }),
                    Request::Item(item) => agent.item(item).map(Reply::Ran),
                    Request::Run(run) => agent.run(run).map(Reply::Ran),
                    _ => unreachable!("matched above"),
                };
                match result {
                    Ok(r) => reply(&r),
                    Err(e) => reply(&Reply::Failed {
                        message: format!("agent error: {e}"),
                    }),
                }
                // A session keeps its state: that is the point of it.
                if agent.is_session() {
                    continue;
                }
                if let Err(e) = agent.reset() {
                    eprintln!("codebeaker-agent: reset failed: {e}");
                    // A container we cannot clean must not serve again. Exiting closes
                    // the stream before the `clean` line, so the pool retires it.
                    std::process::exit(70);
                }
                reply(&Reply::Clean);
            }
            Ok(Request::Session { meta }) => {
                agent.enter_session(meta);
                reply(&Reply::SessionStarted);
            }
            Ok(Request::SessionInfo) => reply(&Reply::SessionInfo {
                meta: agent.session_meta().cloned(),
            }),
            Ok(Request::File(_) | Request::Shell(_)) if !agent.is_session() => {
                reply(&Reply::Failed {
                    message: "file and shell commands need a session".into(),
                })
            }
            Ok(Request::File(cmd)) => match agent.file(cmd) {
                Ok(result) => reply(&Reply::FileDone { result }),
                Err(e) => reply(&Reply::CommandFailed {
                    kind: e.kind,
                    message: e.message,
                }),
            },
            Ok(Request::Shell(req)) => {
                let mut emit = |stream: &str, data: &[u8]| {
                    reply(&Reply::Output {
                        stream: stream.to_string(),
                        data: String::from_utf8_lossy(data).into_owned(),
                    })
                };
                match agent.shell(req, &mut emit) {
                    Ok(r) => reply(&Reply::Shell(r)),
                    Err(e) => reply(&Reply::CommandFailed {
                        kind: e.kind,
                        message: e.message,
                    }),
                }
            }
            Err(e) => reply(&Reply::Failed {
                message: format!("malformed request: {e}"),
            }),
        }
    }
}

thread_local! {
    /// Replies held back while more pipelined requests are waiting (`reply_later`).
    static LATER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// How many replies `LATER` holds.
    static HELD: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn encode(r: &Reply, out: &mut Vec<u8>) {
    if serde_json::to_writer(&mut *out, r).is_err() {
        let failed = serde_json::json!({"failed": {"message": "cannot encode reply"}});
        out.extend_from_slice(failed.to_string().as_bytes());
    }
    out.push(b'\n');
}

/// Sends a reply now (after any held back, which come first).
fn reply(r: &Reply) {
    LATER.with_borrow_mut(|buf| encode(r, buf));
    flush_later();
}

/// Holds a reply until the requests already received are answered (or the next read
/// would wait): one write for a run of pipelined calls instead of one each.
fn reply_later(r: &Reply) {
    LATER.with_borrow_mut(|buf| {
        encode(r, buf);
        HELD.set(HELD.get() + 1);
        // Not without bound: a long run goes out in steps, so that the gateway reads
        // replies (and sends more calls) while the rest run, instead of stop and go.
        if buf.len() >= 256 * 1024 || HELD.get() >= HOLD_AT_MOST {
            write_out(buf);
        }
    });
}

/// Replies held back at most before they are written.
const HOLD_AT_MOST: u32 = 16;

fn flush_later() {
    LATER.with_borrow_mut(write_out);
}

fn write_out(buf: &mut Vec<u8>) {
    if buf.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    if out.write_all(buf).and_then(|_| out.flush()).is_err() {
        // Nobody is listening any more; nothing useful is left to do.
        std::process::exit(0);
    }
    buf.clear();
    HELD.set(0);
    if buf.capacity() > 1 << 20 {
        buf.shrink_to(64 * 1024);
    }
}

fn die(msg: &str) -> ! {
    eprintln!("codebeaker-agent: {msg}");
    std::process::exit(64);
}
