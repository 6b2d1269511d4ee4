//! The Piston and Judge0 APIs driven by their real clients, unchanged, installed from the
//! registries at test time (npm `piston-client`, PyPI `pistonapi` and `judge0`): the
//! scripts under `tests/compat/` use each client as its users do and check every field
//! the client reads. Around them: the anonymous caller is opt-in, confined to the
//! compatibility routes, refused with a wrong credential, and counted as its own tenant.

use codebeaker_proto::Language;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use crate::helpers::{settings, spawn_with, TestApp};

/// The pinned client versions (the ones whose requests docs/compat.md describes).
const PISTON_CLIENT: &str = "piston-client@1.0.2";
const PISTONAPI: &str = "pistonapi==1.0.1";
const JUDGE0: &str = "judge0==0.0.8";

/// What a callback receiver saw: (method, body) per request.
type Calls = Arc<Mutex<Vec<(String, String)>>>;

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The clients, installed once per test run under `target/compat-clients` (kept between
/// runs: a second run only checks them).
fn clients() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/compat-clients");
        std::fs::create_dir_all(dir.join("node")).unwrap();
        for tool in ["node", "npm", "python3"] {
            assert!(
                Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success()),
                "the compatibility tests run the real Piston and Judge0 clients and need `{tool}` (apt-get install nodejs npm python3-venv)"
            );
        }
        if !dir.join("node/node_modules/piston-client/package.json").is_file() {
            run(
                Command::new("npm")
                    .args(["install", "--no-audit", "--no-fund", "--prefix"])
                    .arg(dir.join("node"))
                    .arg(PISTON_CLIENT),
                "npm install piston-client",
            );
        }
        let venv = dir.join("venv");
        if !venv.join("bin/python").is_file() {
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv");
        }
        run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", PISTONAPI, JUDGE0]),
            "pip install pistonapi judge0",
        );
        dir
    })
}

/// Runs one client script (the gateway runs on this test's runtime meanwhile); its
/// output is the failure message.
async fn drive(program: &Path, script: &str, cwd: &Path, env: &[(&str, &str)]) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/compat")
        .join(script);
    // Beside the installed client: ESM resolves `import 'piston-client'` from the script.
    let copy = cwd.join(script);
    std::fs::copy(&src, &copy).unwrap();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        tokio::process::Command::new(program)
            .arg(&copy)
            .current_dir(cwd)
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{script} did not finish within 300 s"))
    .unwrap();
    assert!(
        out.status.success(),
        "{script}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn gateway(anonymous: bool) -> TestApp {
    let mut s = settings(&[
        Language::Python,
        Language::new("c").unwrap(),
        Language::Go,
        Language::JavaScript,
    ]);
    s.compat.anonymous = anonymous;
    s.compat.anonymous_rate_per_second = 50;
    s.compat.anonymous_burst = 100;
    s.compat.anonymous_max_concurrent = 4;
    s.limits.compile_timeout_ms = std::time::Duration::from_millis(60_000);
    s.pool.queue_timeout_ms = std::time::Duration::from_millis(60_000);
    spawn_with(s).await
}

#[tokio::test]
async fn the_piston_clients_run_unchanged_as_the_anonymous_caller() {
    let dir = tokio::task::spawn_blocking(clients).await.unwrap();
    let app = gateway(true).await;
    drive(
        Path::new("node"),
        "piston_client.mjs",
        &dir.join("node"),
        &[("CODEBEAKER_URL", &app.addr)],
    )
    .await;
    drive(
        &dir.join("venv/bin/python"),
        "pistonapi_client.py",
        dir,
        &[("CODEBEAKER_URL", &app.addr)],
    )
    .await;

    // The anonymous caller is the compatibility routes' only: the native ones still want a
    // credential, and a wrong credential is refused rather than made anonymous.
    let r = app
        .client
        .post(format!("{}/v1/execute", app.addr))
        .json(&json!({"language": "python", "code": "result = 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .post(format!("{}/api/v2/execute", app.addr))
        .header("X-API-Key", "cb_wrong_key")
        .json(&json!({"language": "python", "version": "*", "files": [{"content": "print(1)"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let b: Value = r.json().await.unwrap();
    assert!(
        b["message"].is_string() && b.as_object().unwrap().len() == 1,
        "{b}"
    );
    // A key is its own principal on the compatibility routes too.
    let r = app
        .client
        .post(format!("{}/api/v2/execute", app.addr))
        .header("X-API-Key", &app.key)
        .body(r#"{"language":"python","version":"*","files":[{"content":"print(6 * 7)"}]}"#)
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["run"]["stdout"], "42\n", "{b}");

    // Its own tenant in the metrics.
    let text = reqwest::get(format!("{}/metrics", app.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("codebeaker_tenant_invocations_total")
                && l.contains("tenant=\"anonymous\"")),
        "no anonymous tenant series in /metrics"
    );
}

#[tokio::test]
async fn without_the_anonymous_caller_piston_clients_get_piston_shaped_refusals() {
    let app = gateway(false).await;
    let r = app
        .client
        .post(format!("{}/api/v2/execute", app.addr))
        .header("Content-Type", "text/plain;charset=UTF-8")
        .body(r#"{"language":"python","version":"*","files":[{"content":"print(1)"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let b: Value = r.json().await.unwrap();
    assert!(
        b["message"].as_str().is_some_and(|m| !m.is_empty()) && b.as_object().unwrap().len() == 1,
        "{b}"
    );

    // Piston's own validation messages, in its order, with its status.
    for (body, message) in [
        (json!({}), "language is required as a string"),
        (
            json!({"language": "python", "version": 3}),
            "version is required as a string",
        ),
        (
            json!({"language": "python", "version": "*"}),
            "files is required as an array",
        ),
        (
            json!({"language": "python", "version": "*", "files": [{"name": "a"}]}),
            "files[0].content is required as a string",
        ),
        (
            json!({"language": "cobol", "version": "*", "files": [{"content": ""}]}),
            "cobol-* runtime is unknown",
        ),
        (
            json!({"language": "python", "version": "*", "files": [{"content": "", "encoding": "base64"}]}),
            "files must include at least one utf8 encoded file",
        ),
        (
            json!({"language": "python", "version": "*", "files": [{"content": "x"}], "run_timeout": "3000"}),
            "If specified, run_timeout must be a number",
        ),
        (
            json!({"language": "python", "version": "*", "files": [{"content": "x"}], "run_timeout": -5}),
            "run_timeout must be non-negative",
        ),
    ] {
        let r = app
            .client
            .post(format!("{}/api/v2/execute", app.addr))
            .header("X-API-Key", &app.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b, json!({"message": message}), "{body}");
    }
    let r = app
        .client
        .post(format!("{}/api/v2/execute", app.addr))
        .header("X-API-Key", &app.key)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert!(b["message"].as_str().unwrap().contains("not JSON"), "{b}");
    let r = app
        .client
        .get(format!("{}/api/v2/nothing", app.addr))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"message": "Not Found"})
    );

    // A run time above the server's is clamped to it, not refused (piston-client sends
    // 3000 ms on every call; the anonymous caller's cap is lower still).
    let r = app
        .client
        .post(format!("{}/api/v2/execute", app.addr))
        .header("X-API-Key", &app.key)
        .json(&json!({"language": "python", "version": "*", "files": [{"content": "print('ok')"}], "run_timeout": 99_999_999, "run_memory_limit": -1}))
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["run"]["stdout"], "ok\n", "{b}");
}

#[tokio::test]
async fn the_judge0_sdk_runs_unchanged_and_submissions_are_async_executions() {
    let dir = tokio::task::spawn_blocking(clients).await.unwrap();
    let mut s = settings(&[
        Language::Python,
        Language::new("c").unwrap(),
        Language::new("cpp").unwrap(),
        Language::Go,
        Language::JavaScript,
    ]);
    s.webhooks.allow_private = true; // the callback receiver below is on loopback
    s.limits.compile_timeout_ms = std::time::Duration::from_millis(60_000);
    s.pool.queue_timeout_ms = std::time::Duration::from_millis(60_000);
    let app = spawn_with(s).await;
    drive(
        &dir.join("venv/bin/python"),
        "judge0_client.py",
        dir,
        &[("CODEBEAKER_URL", &app.addr), ("CODEBEAKER_KEY", &app.key)],
    )
    .await;

    let j0 = |m: reqwest::Method, path: &str| {
        app.client
            .request(m, format!("{}{path}", app.addr))
            .header("X-Auth-Token", &app.key)
    };
    // Judge0's 401: no body. Without compat.anonymous, no credential is refused too.
    let r = app
        .client
        .get(format!("{}/languages", app.addr))
        .header("X-Auth-Token", "cb_nope_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.text().await.unwrap(), "");
    let r = app
        .client
        .get(format!("{}/about", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // wait=true without base64: text as it is; the fields asked for and no others.
    let r = j0(
        reqwest::Method::POST,
        "/submissions?wait=true&fields=stdout,status,language_id,time",
    )
    .json(&json!({"source_code": "print('héllo', input())", "language_id": 71, "stdin": "wörld"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let b: Value = r.json().await.unwrap();
    let mut keys: Vec<&String> = b.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["language_id", "status", "stdout", "time"], "{b}");
    assert_eq!(b["stdout"], "héllo wörld\n", "{b}");
    assert_eq!(b["status"], json!({"id": 3, "description": "Accepted"}));

    // Validation in Judge0's shape; above the server's limits is clamped, not refused.
    let r = j0(reqwest::Method::POST, "/submissions")
        .json(&json!({"language_id": 999, "cpu_time_limit": -1, "compiler_options": "-O2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["source_code"], json!(["can't be blank"]), "{b}");
    assert_eq!(
        b["language_id"],
        json!(["language with id 999 doesn't exist"]),
        "{b}"
    );
    assert_eq!(
        b["cpu_time_limit"],
        json!(["must be greater than or equal to 0"]),
        "{b}"
    );
    assert_eq!(
        b["compiler_options"],
        json!(["setting compiler options is not allowed"]),
        "{b}"
    );
    let r = j0(reqwest::Method::POST, "/submissions?wait=true&fields=*")
        .json(&json!({"source_code": "print(1)", "language_id": 71, "cpu_time_limit": 1000, "memory_limit": 99_999_999}))
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["status"]["id"], 3, "{b}");
    assert_eq!(b["cpu_time_limit"], "60.0", "{b}");
    let r = j0(
        reqwest::Method::GET,
        "/submissions/00000000-0000-4000-8000-000000000000",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    let r = j0(reqwest::Method::GET, "/submissions/batch?tokens=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"submissions": [null]})
    );
    let r = j0(
        reqwest::Method::GET,
        &format!("/submissions/{}?fields=bogus", b["token"].as_str().unwrap()),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.json::<Value>().await.unwrap()),
        (400, json!({"error": "invalid fields: [bogus]"}))
    );
    let r = j0(
        reqwest::Method::DELETE,
        &format!("/submissions/{}", b["token"].as_str().unwrap()),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.json::<Value>().await.unwrap()),
        (400, json!({"error": "delete not allowed"}))
    );

    // A submission is an async execution: listed under its kind, for its tenant only.
    let (_, list) = app.get("/v1/executions?limit=200").await;
    assert!(
        list["executions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["executionId"] == b["token"] && e["kind"] == "judge0"),
        "{list}"
    );
    let other = app.add_tenant_key("someone-else");
    let r = app
        .client
        .get(format!(
            "{}/submissions/{}",
            app.addr,
            b["token"].as_str().unwrap()
        ))
        .header("X-Auth-Token", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // callback_url: a PUT of the submission (base64, default fields) through the webhook
    // machinery (signed, retried).
    let seen: Calls = Arc::default();
    let hook = axum::Router::new()
        .route(
            "/judge0",
            axum::routing::any(
                |axum::extract::State(seen): axum::extract::State<Calls>,
                 method: reqwest::Method,
                 body: String| async move {
                    seen.lock().unwrap().push((method.to_string(), body));
                    "ok"
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/judge0", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });
    let r = j0(reqwest::Method::POST, "/submissions?base64_encoded=true")
        .json(&json!({"source_code": "cHJpbnQoJ2NiJyk=", "language_id": 71, "callback_url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    crate::webhooks::wait_for("the Judge0 callback", || !seen.lock().unwrap().is_empty()).await;
    let (method, body) = seen.lock().unwrap()[0].clone();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(method, "PUT");
    assert_eq!(body["token"], token.as_str());
    assert_eq!(body["stdout"], "Y2IK\n", "{body}");
    assert_eq!(body["status"]["id"], 3, "{body}");
}
