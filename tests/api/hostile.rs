//! Hostile programs, kept as regression cases: each must fail cleanly, leave nothing behind
//! for the next invocation on the same container, and never hurt the gateway.
//! The pools here have exactly one container, so "the next invocation" is on the same one.

use codebeaker_proto::Language;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

use crate::helpers::{settings, spawn_with, TestApp};

async fn single_container_app() -> TestApp {
    let mut s = settings(&[Language::Python]);
    let py = s.pool.languages.get_mut(&Language::Python).unwrap();
    py.max_size = 1;
    py.min_idle = 1;
    s.limits.stream_limit_bytes = std::num::NonZeroU64::new(64 * 1024).unwrap();
    s.pool.queue_timeout_ms = std::time::Duration::from_millis(10_000);
    spawn_with(s).await
}

/// Lists processes other than the agent (PID 1), the Python zygote (the caller's parent)
/// and the caller itself.
const OTHER_PROCESSES: &str = r#"
import os
mine = (1, os.getpid(), os.getppid())
result = sorted(int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) not in mine)
"#;

async fn assert_no_leftover_processes(app: &TestApp) {
    let b = app.run("python", OTHER_PROCESSES, json!({})).await;
    assert_eq!(b["output"], json!([]), "leftover processes: {b}");
}

#[tokio::test]
async fn infinite_loop_times_out_and_container_is_clean_afterwards() {
    let app = single_container_app().await;
    let started = Instant::now();
    let (status, b) = app
        .execute(json!({"language": "python", "code": "while True: pass", "timeoutMs": 500}))
        .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["error"]["kind"], "timeout", "{b}");
    assert!(
        took < Duration::from_millis(500 + 1500),
        "returned after {took:?}"
    );
    assert_no_leftover_processes(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn background_sleeper_does_not_survive_into_the_next_invocation() {
    let app = single_container_app().await;
    let b = app
        .run(
            "python",
            "import subprocess, os\nsubprocess.Popen(['sleep', '300'], start_new_session=True)\nif os.fork() == 0:\n    os.setsid()\n    import time\n    time.sleep(300)\nresult = 'left a sleeper'",
            json!({}),
        )
        .await;
    assert_eq!(b["success"], true, "{b}");
    assert_no_leftover_processes(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn files_written_anywhere_are_gone_for_the_next_invocation() {
    let app = single_container_app().await;
    let b = app
        .run(
            "python",
            r#"
import os
for p in ['/workspace/secret.txt', '/tmp/secret.txt', '/dev/shm/secret.txt']:
    open(p, 'w').write('x')
os.makedirs('/workspace/locked/deep')
open('/workspace/locked/deep/f', 'w').write('x')
os.chmod('/workspace/locked', 0)
import subprocess
subprocess.run(['ipcmk', '-M', '4096'], check=True, capture_output=True)
subprocess.run(['ipcmk', '-Q'], check=True, capture_output=True)
subprocess.run(['ipcmk', '-S', '2'], check=True, capture_output=True)
result = 'wrote'
"#,
            json!({}),
        )
        .await;
    assert_eq!(b["output"], "wrote", "{b}");
    let b = app
        .run(
            "python",
            "import os\nresult = {d: sorted(os.listdir(d)) for d in ['/workspace', '/tmp', '/dev/shm']}\nresult['ipc'] = [len(open(f'/proc/sysvipc/{t}').read().splitlines()) - 1 for t in ('shm', 'msg', 'sem')]",
            json!({}),
        )
        .await;
    // Only this invocation's own input and program are present.
    assert_eq!(
        b["output"],
        json!({"/workspace": ["input.json", "program.py"], "/tmp": [], "/dev/shm": [], "ipc": [0, 0, 0]}),
        "{b}"
    );
    app.stop().await;
}

#[tokio::test]
async fn memory_bomb_is_reported_and_gateway_stays_healthy() {
    let app = single_container_app().await;
    let (status, b) = app
        .execute(json!({
            "language": "python",
            "code": "chunks = []\nwhile True:\n    chunks.append(b'x' * (8 * 1024 * 1024))",
            "memoryLimitMb": 128,
            "timeoutMs": 20000
        }))
        .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["error"]["kind"], "memory_limit_exceeded", "{b}");
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200);
    let b = app.run("python", "result = 'still fine'", json!({})).await;
    assert_eq!(b["output"], "still fine", "{b}");
    app.stop().await;
}

#[tokio::test]
async fn output_flood_is_truncated_and_flagged() {
    let app = single_container_app().await;
    let b = app
        .run(
            "python",
            "import sys\nfor _ in range(20000):\n    sys.stdout.write('x' * 100)\nresult = 'flooded'",
            json!({}),
        )
        .await;
    assert_eq!(b["truncated"], true, "{}", b["error"]);
    assert_eq!(b["stdout"].as_str().unwrap().len(), 64 * 1024);
    assert_eq!(b["output"], "flooded");
    app.stop().await;
}

#[tokio::test]
async fn user_code_cannot_touch_the_agent_the_host_or_the_network() {
    let app = single_container_app().await;
    let b = app
        .run(
            "python",
            r#"
import os, signal, socket
r = {}
def attempt(name, f):
    try:
        f(); r[name] = 'ALLOWED'
    except Exception as e:
        r[name] = type(e).__name__
attempt('kill_agent', lambda: os.kill(1, signal.SIGKILL))
attempt('read_agent_mem', lambda: open('/proc/1/mem', 'rb').read(1))
attempt('read_agent_environ', lambda: open('/proc/1/environ', 'rb').read())
attempt('write_rootfs', lambda: open('/usr/evil', 'w'))
attempt('write_cache', lambda: open('/cache/evil', 'w'))
attempt('network', lambda: socket.create_connection(('1.1.1.1', 53), timeout=1))
r['uid'] = os.getuid()
result = r
"#,
            json!({}),
        )
        .await;
    let r = &b["output"];
    for k in [
        "kill_agent",
        "read_agent_mem",
        "read_agent_environ",
        "write_rootfs",
        "write_cache",
        "network",
    ] {
        assert_ne!(r[k], "ALLOWED", "{k} must be refused: {b}");
    }
    assert_eq!(r["uid"], 1000);
    // A fork bomb hits the pids limit and is stopped at once (long before its timeout),
    // and swept away.
    let (status, b2) = app
        .execute(json!({"language": "python", "code": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", "timeoutMs": 20000}))
        .await;
    assert_eq!(status, 200, "{b2}");
    assert_eq!(b2["error"]["kind"], "process_limit_exceeded", "{b2}");
    assert_no_leftover_processes(&app).await;
    let _: Value = b2;
    app.stop().await;
}

/// JavaScript (Bun) and C# (Mono) run each call in a runner process pre-started after the
/// previous call's cleanup: whatever one call does to its process (globals, environment,
/// current directory, console redirection, a timer or thread left pending, files) is gone
/// for the next call on the same container.
#[tokio::test]
async fn a_runner_process_keeps_nothing_of_the_previous_call() {
    let mut s = settings(&[Language::JavaScript, Language::CSharp]);
    for l in [Language::JavaScript, Language::CSharp] {
        let p = s.pool.languages.get_mut(&l).unwrap();
        p.max_size = 1;
        p.min_idle = 1;
    }
    s.pool.queue_timeout_ms = std::time::Duration::from_millis(10_000);
    let app = spawn_with(s).await;

    let tamper = r#"
globalThis.__leak = 'left';
process.env.LEAK = 'left';
process.chdir('/tmp');
require('fs').writeFileSync('/tmp/leak', 'x');
setTimeout(() => require('fs').writeFileSync('/workspace/late', 'x'), 300);
console.log = () => {};
const result = 'tampered';
"#;
    let check = r#"
const fs = require('fs');
console.log('visible');
const result = {
  global: typeof globalThis.__leak, env: process.env.LEAK || null, cwd: process.cwd(),
  tmp: fs.existsSync('/tmp/leak'), late: fs.existsSync('/workspace/late'),
};
"#;
    let b = app.run("javascript", tamper, json!({})).await;
    assert_eq!(b["output"], "tampered", "{b}");
    // Time passes: the tampering program's 300 ms timer would have fired by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = app.run("javascript", check, json!({})).await;
    assert_eq!(
        b["output"],
        json!({"global": "undefined", "env": null, "cwd": "/workspace", "tmp": false, "late": false}),
        "{b}"
    );
    assert_eq!(b["stdout"], "visible\n", "{b}");

    let tamper = r#"
Environment.SetEnvironmentVariable("LEAK", "left");
Directory.SetCurrentDirectory("/tmp");
File.WriteAllText("/tmp/leak", "x");
Console.SetOut(TextWriter.Null);
var t = new System.Threading.Thread(() => { System.Threading.Thread.Sleep(300); File.WriteAllText("/workspace/late", "x"); });
t.IsBackground = false;
t.Start();
var result = "tampered";
"#;
    let check = r#"
Console.WriteLine("visible");
var result = new Dictionary<string, object> {
    ["env"] = Environment.GetEnvironmentVariable("LEAK"),
    ["cwd"] = Directory.GetCurrentDirectory(),
    ["tmp"] = File.Exists("/tmp/leak"),
    ["late"] = File.Exists("/workspace/late"),
};
"#;
    let b = app.run("csharp", tamper, json!({})).await;
    assert_eq!(b["output"], "tampered", "{b}");
    // Time passes: the tampering program's 300 ms timer would have fired by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = app.run("csharp", check, json!({})).await;
    assert_eq!(
        b["output"],
        json!({"env": null, "cwd": "/workspace", "tmp": false, "late": false}),
        "{b}"
    );
    assert_eq!(b["stdout"], "visible\n", "{b}");
    app.stop().await;
}
