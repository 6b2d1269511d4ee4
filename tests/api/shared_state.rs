//! No state shared between calls that should not share it (issue 19, item 9), and what a
//! Python error looks like (item 12): the compile caches (a container's own and the
//! shared one), random generators inherited through the Python zygote's fork, tracebacks.

use codebeaker_pool::LanguageSettings;
use codebeaker_proto::Language;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::Command;

use crate::helpers::{settings, spawn_with, TestApp};

async fn run_as(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app
        .api_as(key)
        .post("/v1/execute")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

/// Sends a session command over REST and returns the response body.
async fn command(app: &TestApp, sid: &str, cmd: Value) -> Value {
    let r = app
        .post(&format!("/v1/sessions/{sid}/commands"))
        .json(&cmd)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

async fn session(app: &TestApp, language: &str) -> String {
    let r = app
        .post("/v1/sessions")
        .json(&json!({"language": language}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.unwrap();
    created["sessionId"].as_str().unwrap().to_string()
}

/// Lists `/cache`, its artifacts and the shared cache from inside a Go program: each
/// attempt's error, as text.
const GO_LISTS_THE_CACHES: &str = r#"result := []string{}
for _, d := range []string{"/cache", "/cache/artifacts", "/shared-cache"} {
	_, err := os.ReadDir(d)
	result = append(result, fmt.Sprint(err))
}"#;

#[tokio::test]
async fn a_containers_compile_cache_is_out_of_programs_reach_and_still_hits() {
    // No shared cache: every repeat below must hit the container's own cache.
    let mut s = settings(&[Language::Go, Language::CSharp, Language::Python]);
    s.pool.compile_cache_dir = "".into();
    for l in [Language::Go, Language::CSharp] {
        s.pool.languages.get_mut(&l).unwrap().max_size = 1;
    }
    let app = spawn_with(s).await;

    let go = json!({"language": "go", "code": GO_LISTS_THE_CACHES});
    let first = app.execute(go.clone()).await.1;
    assert_eq!(first["success"], true, "{first}");
    assert_eq!(first["cacheHit"], false, "{first}");
    let again = app.execute(go).await.1;
    assert_eq!(again["success"], true, "{again}");
    assert_eq!(again["cacheHit"], true, "{again}");
    assert_eq!(again["containerId"], first["containerId"]);
    for (dir, err) in ["/cache", "/cache/artifacts"]
        .iter()
        .zip(again["output"].as_array().unwrap())
    {
        assert!(
            err.as_str().unwrap().contains("permission denied"),
            "a program could list {dir}: {again}"
        );
    }

    let cs = json!({"language": "csharp", "code": "var result = 6 * 7;"});
    let first = app.execute(cs.clone()).await.1;
    assert_eq!(first["output"], 42, "{first}");
    assert_eq!(first["cacheHit"], false, "{first}");
    let again = app.execute(cs).await.1;
    assert_eq!(again["output"], 42, "{again}");
    assert_eq!(again["cacheHit"], true, "{again}");

    let py = app
        .run(
            "python",
            "import os\nout = []\nfor d in ['/cache', '/cache/artifacts', '/cache/launcher/..']:\n    try:\n        os.listdir(d)\n        out.append('listed')\n    except OSError as e:\n        out.append(type(e).__name__)\nresult = out",
            json!({}),
        )
        .await;
    assert_eq!(
        py["output"],
        json!(["PermissionError", "PermissionError", "PermissionError"]),
        "{py}"
    );

    // A Go session: its compiled program runs, and its shell cannot see the cache.
    let sid = session(&app, "go").await;
    let ran = command(
        &app,
        &sid,
        json!({"type": "run_code", "code": "result := 7"}),
    )
    .await;
    assert_eq!(ran["result"]["output"], 7, "{ran}");
    let ran = command(
        &app,
        &sid,
        json!({"type": "run_code", "code": "result := 7"}),
    )
    .await;
    assert_eq!(ran["result"]["cacheHit"], true, "{ran}");
    let shell = command(
        &app,
        &sid,
        json!({"type": "execute_shell", "commandName": "sh", "args": ["-c", "ls /cache/artifacts; ls /cache; cat /cache/artifacts/*/program | wc -c"]}),
    )
    .await;
    let stderr = shell["result"]["stderr"].as_str().unwrap_or_default();
    assert_eq!(
        stderr.matches("Permission denied").count(),
        3,
        "a session shell reached /cache: {shell}"
    );
    assert_eq!(
        shell["result"]["stdout"].as_str().unwrap().trim(),
        "0",
        "{shell}"
    );
    app.stop().await;
}

#[tokio::test]
async fn one_tenants_compiled_program_is_not_another_tenants_cache_hit() {
    let mut s = settings(&[Language::Go]);
    s.pool.languages.get_mut(&Language::Go).unwrap().max_size = 2;
    let app = spawn_with(s).await;
    let (a, b) = (app.add_tenant_key("alpha"), app.add_tenant_key("beta"));
    let program = json!({"language": "go", "code": GO_LISTS_THE_CACHES});

    let a1 = run_as(&app, &a, program.clone()).await;
    assert_eq!(a1["success"], true, "{a1}");
    assert_eq!(a1["cacheHit"], false, "{a1}");
    // Beta's first call of the same source compiles: it cannot tell that alpha did.
    let b1 = run_as(&app, &b, program.clone()).await;
    assert_eq!(b1["success"], true, "{b1}");
    assert_eq!(
        b1["cacheHit"], false,
        "another tenant's compile was a hit: {b1}"
    );
    assert!(b1["compileMs"].as_u64().unwrap() > 0, "{b1}");
    // Each tenant's repeat is a hit.
    let a2 = run_as(&app, &a, program.clone()).await;
    assert_eq!(a2["cacheHit"], true, "{a2}");
    let b2 = run_as(&app, &b, program).await;
    assert_eq!(b2["cacheHit"], true, "{b2}");
    // Nor can a program list the shared cache.
    let shared = a2["output"][2].as_str().unwrap();
    assert!(shared.contains("permission denied"), "{a2}");
    app.stop().await;
}

/// A variant of the Python image whose zygote preloads `random` and a module holding a
/// generator of its own (`cb_rng_probe`), built like `docker/build-variants.sh` builds
/// them (create, copy, commit with the labels). Cheap: one small layer.
fn build_probe_variant(image: &str) {
    let dir = std::env::temp_dir().join(format!("cb-rng-probe-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("preload"), "random\ncb_rng_probe\n").unwrap();
    std::fs::write(
        dir.join("cb_rng_probe.py"),
        "import random\n_rng = random.Random()\n\n\ndef draw():\n    return _rng.random()\n",
    )
    .unwrap();
    let box_name = format!("cb-rng-probe-build-{}", uuid::Uuid::new_v4().simple());
    let docker = |args: &[&str]| {
        let out = Command::new("docker").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    docker(&[
        "create",
        "--name",
        &box_name,
        "--entrypoint",
        "/bin/true",
        "codebeaker-python:latest",
    ]);
    let preload = dir.join("preload").display().to_string();
    let module = dir.join("cb_rng_probe.py").display().to_string();
    docker(&[
        "cp",
        &preload,
        &format!("{box_name}:/etc/codebeaker-python-preload"),
    ]);
    docker(&[
        "cp",
        &module,
        &format!("{box_name}:/usr/lib/python3/dist-packages/cb_rng_probe.py"),
    ]);
    docker(&[
        "commit",
        "-c",
        "LABEL codebeaker.variant=python-rngprobe",
        "-c",
        "LABEL codebeaker.language=python",
        "-c",
        r#"LABEL codebeaker.packages='{"cb-rng-probe":"1.0"}'"#,
        "-c",
        "ENTRYPOINT []",
        "-c",
        "CMD []",
        &box_name,
        image,
    ]);
    docker(&["rm", "-f", &box_name]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Three calls on one zygote; each returns `code`'s result.
pub(crate) async fn three_calls(app: &TestApp, code: &str, packages: Value) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..3 {
        let (status, body) = app
            .execute(json!({"language": "python", "code": code, "packages": packages}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true, "{body}");
        out.push(body["output"].clone());
    }
    out
}

pub(crate) fn all_different(values: &[Value]) -> bool {
    values
        .iter()
        .map(Value::to_string)
        .collect::<HashSet<_>>()
        .len()
        == values.len()
}

#[tokio::test]
async fn every_generator_a_preloaded_module_holds_is_reseeded_in_each_call() {
    let image = "codebeaker-test-python-rngprobe:latest";
    build_probe_variant(image);
    let mut s = settings(&[Language::Python]);
    s.pool.variants.clear();
    let mut v = LanguageSettings::for_variant("python-rngprobe");
    v.image = image.into();
    v.max_size = 1;
    s.pool.variants.insert("python-rngprobe".into(), v);
    let app = spawn_with(s).await;
    let draws = three_calls(
        &app,
        "import cb_rng_probe, random\nresult = [cb_rng_probe.draw(), random.random()]",
        json!(["cb-rng-probe"]),
    )
    .await;
    let probe: Vec<Value> = draws.iter().map(|d| d[0].clone()).collect();
    let stdlib: Vec<Value> = draws.iter().map(|d| d[1].clone()).collect();
    assert!(
        all_different(&probe),
        "a preloaded module's generator repeated: {draws:?}"
    );
    assert!(all_different(&stdlib), "random repeated: {draws:?}");
    app.stop().await;
}

fn assert_user_traceback(stderr: &str, file: &str) {
    let first = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("File "))
        .unwrap_or_else(|| panic!("no frame in {stderr}"));
    assert!(
        first.contains(&format!("\"{file}\"")),
        "the first frame is not the program's: {stderr}"
    );
    for word in ["python_zygote", "codebeaker", "/opt/"] {
        assert!(!stderr.contains(word), "{word} in {stderr}");
    }
}

#[tokio::test]
async fn a_python_traceback_shows_only_the_programs_frames() {
    let app = spawn_with(settings(&[Language::Python])).await;
    let body = app
        .run(
            "python",
            "def f():\n    raise ValueError('boom')\nf()",
            json!({}),
        )
        .await;
    assert_eq!(body["error"]["kind"], "runtime_error", "{body}");
    let stderr = body["stderr"].as_str().unwrap();
    assert!(
        stderr.starts_with("Traceback (most recent call last):\n"),
        "{stderr}"
    );
    assert_user_traceback(stderr, "/workspace/program.py");
    assert!(stderr.trim_end().ends_with("ValueError: boom"), "{stderr}");

    // A syntax error has no frames at all, as with python3.
    let body = app.run("python", "result = (", json!({})).await;
    let stderr = body["stderr"].as_str().unwrap();
    assert!(!stderr.contains("Traceback"), "{stderr}");
    assert_user_traceback(stderr, "/workspace/program.py");
    assert!(stderr.contains("SyntaxError"), "{stderr}");

    // A session's `python3 FILE` (the zygote path): the same.
    let sid = session(&app, "python").await;
    command(
        &app,
        &sid,
        json!({"type": "write_file", "path": "t.py", "content": "import json\njson.loads('{')\n"}),
    )
    .await;
    let ran = command(
        &app,
        &sid,
        json!({"type": "execute_shell", "commandName": "python3", "args": ["t.py"]}),
    )
    .await;
    assert_eq!(ran["result"]["exitCode"], 1, "{ran}");
    let stderr = ran["result"]["stderr"].as_str().unwrap();
    assert_user_traceback(stderr, "/workspace/t.py");
    assert!(stderr.contains("json.decoder.JSONDecodeError"), "{stderr}");
    app.stop().await;
}

/// A Go program that burns about `n` loop turns, so a batch of it lasts.
const GO_SPIN: &str = r#"n := int(input_data["n"].(float64))
x := 0
for i := 0; i < n; i++ {
	x += i ^ (x >> 3)
}
result := x % 1000"#;

#[tokio::test]
async fn a_full_shared_cache_never_evicts_the_program_a_batch_is_running() {
    let mut s = settings(&[Language::Go]);
    // Room for one Go binary (~2.5 MB): filing another program evicts the one there.
    s.pool.compile_cache_mb = 3;
    s.pool.tenant_max_share = 1.0;
    let go = s.pool.languages.get_mut(&Language::Go).unwrap();
    go.min_idle = 3;
    go.max_size = 4;
    let app = spawn_with(s).await;

    // The batch: its first worker compiles the program and files it; the second finds it in
    // the shared cache and runs it from there, item after item.
    let items: Vec<Value> = (0..240)
        .map(|i| json!({"id": i.to_string(), "input": {"n": 20_000_000}}))
        .collect();
    let mut stream = app
        .post("/v1/execute/batch")
        .header("accept", "application/x-ndjson")
        .json(&json!({"language": "go", "code": GO_SPIN, "items": items, "maxConcurrency": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let mut text = String::new();
    let lines = |text: &str| text.matches('\n').count();
    while lines(&text) < 10 {
        let chunk = stream
            .chunk()
            .await
            .unwrap()
            .expect("the batch ended early");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    // Meanwhile another program is compiled and filed: the cache must make room, and the
    // batch's program is the only other artifact there.
    let other = app
        .run("go", "result := \"another program\"", json!({}))
        .await;
    assert_eq!(other["success"], true, "{other}");
    let before = lines(&text);
    while let Some(chunk) = stream.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(
        lines(&text) > before + 10,
        "the batch ended before the other program was filed: the test proves nothing (make it longer)"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(
        summary["successCount"],
        240,
        "{:?}",
        lines
            .iter()
            .filter(|l| l["item"]["success"] == false)
            .take(3)
            .collect::<Vec<_>>()
    );
    app.stop().await;
}
