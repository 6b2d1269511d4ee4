//! Every language under gVisor (`pool.languages.<lang>.runtime = "runsc"`): the happy
//! path, the kernel the program sees, and the hostile programs. They need runsc registered
//! with the Docker engine (`.ci/run` does it; see docs/operations.md, "Stronger isolation").

use codebeaker_proto::Language;
use serde_json::{json, Value};

use crate::helpers::{settings, spawn_with, TestApp};

async fn runsc_app() -> TestApp {
    let docker = crate::helpers::docker().await;
    let info = docker.info().await.unwrap();
    let registered = info
        .runtimes
        .as_ref()
        .is_some_and(|r| r.contains_key("runsc"));
    assert!(
        registered,
        "runsc (gVisor) is not registered with the Docker engine: install it (apt-get install runsc) and add it to /etc/docker/daemon.json as docs/operations.md's \"Stronger isolation\" says (.ci/run does both)"
    );
    let mut s = settings(&Language::FIRST_FOUR);
    for l in Language::FIRST_FOUR {
        let p = s.pool.languages.get_mut(&l).unwrap();
        p.runtime = "runsc".into();
        p.min_idle = 1;
        p.max_size = 1;
    }
    s.pool.queue_timeout_ms = std::time::Duration::from_millis(20_000);
    s.limits.stream_limit_bytes = std::num::NonZeroU64::new(64 * 1024).unwrap();
    spawn_with(s).await
}

#[tokio::test]
async fn every_language_runs_under_gvisor_and_sees_its_kernel() {
    let app = runsc_app().await;
    let host = std::fs::read_to_string("/proc/version").unwrap();
    for (lang, code) in [
        ("python", r#"result = {"v": open("/proc/version").read(), "x": input_data["x"] * 2}"#),
        ("javascript", r#"const result = {v: require("fs").readFileSync("/proc/version", "utf8"), x: input_data.x * 2};"#),
        ("go", "b, _ := os.ReadFile(\"/proc/version\")\nresult := map[string]interface{}{\"v\": string(b), \"x\": input_data[\"x\"].(float64) * 2}"),
        ("csharp", r#"var result = new { v = File.ReadAllText("/proc/version"), x = input_data.GetProperty("x").GetInt32() * 2 };"#),
    ] {
        let b = app.run(lang, code, json!({"x": 21})).await;
        assert_eq!(b["success"], true, "{lang}: {b}");
        assert_eq!(b["output"]["x"], 42, "{lang}: {b}");
        let v = b["output"]["v"].as_str().unwrap();
        // gVisor's Sentry reports its own (fixed) kernel version, not the host's.
        assert!(v.starts_with("Linux version 4.4.0"), "{lang} sees {v}");
        assert_ne!(v, host, "{lang} sees the host kernel");
        // A resident instance under gVisor too: twice, the second on the same instance.
        for x in [1, 2] {
            let (st, b) = app
                .execute(json!({"language": lang, "code": code, "input": {"x": x}, "isolation": "program", "timeoutMs": 20000}))
                .await;
            assert_eq!(st, 200, "{lang}: {b}");
            assert_eq!(b["success"], true, "{lang} program mode: {b}");
            assert_eq!(b["output"]["x"], x * 2, "{lang} program mode: {b}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn hostile_programs_under_gvisor_fail_cleanly_and_leave_nothing_behind() {
    let app = runsc_app().await;
    let run = |code: &'static str| {
        let app = &app;
        async move {
            app.execute(json!({"language": "python", "code": code, "timeoutMs": 2000}))
                .await
        }
    };
    let kind = |b: &Value| b["error"]["kind"].as_str().unwrap_or("").to_string();

    let (st, b) = run("while True: pass").await;
    assert_eq!((st, kind(&b).as_str()), (200, "timeout"), "{b}");

    let (st, b) = run("import subprocess\nsubprocess.Popen(['sleep', '30'])\nopen('/tmp/x', 'w').write('x')\nopen('/workspace/y', 'w').write('y')\nresult = 1").await;
    assert_eq!(st, 200, "{b}");
    let (_, b) = run("import os\nmine = (1, os.getpid(), os.getppid())\nresult = {'procs': sorted(int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) not in mine), 'tmp': os.path.exists('/tmp/x'), 'ws': os.path.exists('/workspace/y')}").await;
    assert_eq!(
        b["output"],
        json!({"procs": [], "tmp": false, "ws": false}),
        "{b}"
    );

    let (st, b) =
        run("import sys\nfor _ in range(100000): sys.stdout.write('y' * 100)\nresult = 1").await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["truncated"], true, "{b}");

    let (_, b) = run("import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=1)\n    result = 'connected'\nexcept OSError as e:\n    result = 'refused'").await;
    assert_eq!(b["output"], "refused", "{b}");

    // A memory bomb takes the whole sandbox down under gVisor (the limit applies to its
    // kernel): reported as the program's memory error, and the next call gets a new one.
    let (st, b) = run("a = []\nwhile True: a.append(b'x' * 10_000_000)").await;
    assert_eq!(
        (st, kind(&b).as_str()),
        (200, "memory_limit_exceeded"),
        "{b}"
    );
    let (_, b) = run("result = 2").await;
    assert_eq!(b["output"], 2, "{b}");

    // A fork bomb exhausts the sandbox's process limit and takes it down: the call fails
    // as a sandbox failure (see docs/operations.md), and the pool carries on.
    let (st, b) = run("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass").await;
    assert!(
        st != 200 || kind(&b) == "process_limit_exceeded" || kind(&b) == "timeout",
        "{st} {b}"
    );
    let (st, b) = run("result = 3").await;
    assert_eq!((st, &b["output"]), (200, &json!(3)), "{b}");
    app.stop().await;
}
