//! Async executions against a real SQLite file and real containers, including a gateway
//! killed with SIGKILL mid-way.

use codebeaker_proto::Language;
use serde_json::{json, Value};
use std::process::{Child, Command};
use std::time::Duration;

use crate::helpers::{eventually, generous, settings, spawn, spawn_with, Api, TestApp};
use codebeaker::domain::Scope;

async fn submit(app: &TestApp, key: &str, body: Value, idem: Option<&str>) -> (u16, Value) {
    let mut r = app.api_as(key).post("/v1/executions").json(&body);
    if let Some(k) = idem {
        r = r.header("idempotency-key", k);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn an_async_execution_and_an_async_batch_complete_with_their_results() {
    let app = spawn(&[Language::Python]).await;
    let (st, v) = submit(
        &app,
        &app.key,
        json!({"language": "python", "code": "result = input_data['x'] + 1", "input": {"x": 41}}),
        None,
    )
    .await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["status"], "queued");
    let id = v["executionId"].as_str().unwrap().to_string();
    assert_eq!(v["statusUrl"], format!("/v1/executions/{id}"));
    let done = app.wait_final(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["output"], 42);
    assert!(done["startedAt"].is_string() && done["completedAt"].is_string());

    let items: Vec<Value> = (0..3)
        .map(|i| json!({"id": format!("r{i}"), "input": {"v": i}}))
        .collect();
    let (st, v) = submit(
        &app,
        &app.key,
        json!({"language": "python", "code": "result = input_data['v']", "items": items}),
        None,
    )
    .await;
    assert_eq!(st, 202, "{v}");
    let id = v["executionId"].as_str().unwrap();
    let done = app.wait_final(id).await;
    assert_eq!(done["kind"], "batch");
    assert_eq!(done["result"]["successCount"], 3, "{done}");
    let (_, page) = app
        .get(&format!("/v1/executions/{id}?offset=1&limit=1"))
        .await;
    assert_eq!(page["result"]["resultsTotal"], 3);
    assert_eq!(page["result"]["results"].as_array().unwrap().len(), 1);
    assert_eq!(page["result"]["results"][0]["id"], "r1");

    let (st, list) = app.get("/v1/executions?status=completed").await;
    assert_eq!(st, 200);
    assert_eq!(list["count"], 2, "{list}");
    let (st, _) = app.get("/v1/executions?status=bogus").await;
    assert_eq!(st, 422);

    // The seeds' async API, on the same engine.
    let r = app
        .post("/api/execute/async")
        .json(&json!({"code": "print('later')", "language": "python"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    app.wait_final(&id).await;
    // As seed 000: the ExecutionResult itself (404 until it exists).
    let (st, s) = app.get(&format!("/api/execute/status/{id}")).await;
    assert_eq!(st, 200);
    assert_eq!(
        (
            s["executionId"].as_str(),
            s["stdout"].as_str(),
            s["exitCode"].as_i64(),
            s["timeout"].as_bool()
        ),
        (Some(id.as_str()), Some("later\n"), Some(0), Some(false)),
        "{s}"
    );
    assert!(s["durationMs"].is_u64() && s.get("status").is_none(), "{s}");
    let r = app
        .post("/api/execute/async")
        .json(&json!({"code": "import time\ntime.sleep(3)", "language": "python"}))
        .send()
        .await
        .unwrap();
    let slow = r.json::<Value>().await.unwrap()["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, s) = app.get(&format!("/api/execute/status/{slow}")).await;
    assert_eq!(
        (st, s["error"]["kind"].as_str()),
        (404, Some("execution_not_found")),
        "{s}"
    );
    app.stop().await;
}

#[tokio::test]
async fn cancel_tenancy_idempotency_and_a_full_queue() {
    let mut s = settings(&[Language::Python]);
    s.executions.workers = 1;
    s.executions.max_queued_per_tenant = 2;
    let app = spawn_with(s).await;
    let slow =
        json!({"language": "python", "code": "import time\ntime.sleep(1.5)\nresult = 'slow'"});
    let (_, a) = submit(&app, &app.key, slow.clone(), None).await;
    let a = a["executionId"].as_str().unwrap().to_string();
    // Wait until the one worker has taken it.
    app.api()
        .wait_status(&a, "running", Duration::from_secs(20))
        .await;
    let (_, b) = submit(
        &app,
        &app.key,
        json!({"language": "python", "code": "result = 'b'"}),
        None,
    )
    .await;
    let b = b["executionId"].as_str().unwrap().to_string();
    let (_, c) = submit(
        &app,
        &app.key,
        json!({"language": "python", "code": "result = 'c'"}),
        Some("key-1"),
    )
    .await;
    let c = c["executionId"].as_str().unwrap().to_string();
    // The tenant's queue holds 2: a third queued one is refused.
    let (st, full) = submit(
        &app,
        &app.key,
        json!({"language": "python", "code": "result = 'd'"}),
        None,
    )
    .await;
    assert_eq!(
        (st, full["error"]["kind"].as_str()),
        (429, Some("queue_full")),
        "{full}"
    );
    // Idempotency: same key and body → the same execution; another body → 422.
    let (st, again) = submit(
        &app,
        &app.key,
        json!({"language": "python", "code": "result = 'c'"}),
        Some("key-1"),
    )
    .await;
    assert_eq!((st, again["executionId"].as_str()), (200, Some(c.as_str())));
    let (st, other) = submit(
        &app,
        &app.key,
        json!({"language": "python", "code": "result = 'e'"}),
        Some("key-1"),
    )
    .await;
    assert_eq!(
        (st, other["error"]["kind"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{other}"
    );
    // Cancel a queued one: it never runs.
    let r = app
        .delete(&format!("/v1/executions/{b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "cancelled");
    // Cancel the running one.
    let r = app
        .delete(&format!("/v1/executions/{a}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "cancelled");
    let done_c = app.wait_final(&c).await;
    assert_eq!(done_c["result"]["output"], "c", "{done_c}");
    let b_final = app.wait_final(&b).await;
    assert_eq!(b_final["status"], "cancelled");
    assert!(
        b_final["startedAt"].is_null(),
        "a cancelled queued execution never ran: {b_final}"
    );
    let a_final = app.wait_final(&a).await;
    assert_eq!(
        (a_final["status"].as_str(), &a_final["result"]),
        (Some("cancelled"), &Value::Null),
        "the running one's result is discarded"
    );
    // Another tenant sees nothing.
    let (other_key, mut rec) =
        codebeaker::auth::keys::generate("o", "tenant-o", vec![Scope::Execute], generous());
    rec.tenant = "tenant-o".into();
    codebeaker::auth::keys::append_to_file(&app.keys_file, rec).unwrap();
    app.reload_keys();
    let (st, v) = app
        .api_as(&other_key)
        .get(&format!("/v1/executions/{c}"))
        .await;
    assert_eq!(
        (st, v["error"]["kind"].as_str()),
        (404, Some("execution_not_found"))
    );
    let (_, list) = app.api_as(&other_key).get("/v1/executions").await;
    assert_eq!(list["count"], 0);
    app.stop().await;
}

/// The gateway binary with `db` and `keys`; returns it and its port.
fn start_gateway(
    instance: &str,
    keys: &std::path::Path,
    db: &std::path::Path,
    workers: usize,
) -> (Child, u16) {
    let workers = workers.to_string();
    let gw = crate::helpers::start_gateway_process(&[
        ("RUST_LOG", "info".as_ref()),
        ("CODEBEAKER_AUTH__KEYS_FILE", keys.as_os_str()),
        ("CODEBEAKER_EXECUTIONS__DATABASE", db.as_os_str()),
        ("CODEBEAKER_EXECUTIONS__WORKERS", workers.as_ref()),
        ("CODEBEAKER_EXECUTIONS__POLL_INTERVAL_MS", "50".as_ref()),
        ("CODEBEAKER_POOL__INSTANCE", instance.as_ref()),
        ("CODEBEAKER_POOL__LANGUAGES__PYTHON__MIN_IDLE", "2".as_ref()),
        ("CODEBEAKER_POOL__LANGUAGES__PYTHON__MAX_SIZE", "3".as_ref()),
    ]);
    gw.drain()
}

#[tokio::test]
async fn nothing_answered_202_is_lost_when_the_gateway_is_killed() {
    let s = settings(&[Language::Python]);
    let dir = s
        .auth
        .keys_file
        .clone()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let keys = dir.join("keys.toml");
    let key = crate::helpers::add_key(&keys, vec![Scope::Admin], generous());
    let db = dir.join("durable.db");
    let instance = s.pool.instance.clone();
    let client = reqwest::Client::new();
    let (mut gw, port) = start_gateway(&instance, &keys, &db, 2);
    let api = Api::new(&client, &format!("http://127.0.0.1:{port}"), &key);
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(api.submit(json!({"language": "python", "code": "import time\ntime.sleep(0.05)\nresult = input_data['i']", "input": {"i": i}})).await);
    }
    // Let some run, then SIGKILL: no shutdown, no cleanup, work in flight.
    eventually(
        Duration::from_secs(60),
        "a first execution to complete",
        || async {
            let (_, list) = api.get("/v1/executions?status=completed").await;
            list["count"].as_u64().is_some_and(|n| n >= 1)
        },
    )
    .await;
    gw.kill().unwrap();
    gw.wait().unwrap();
    let (mut gw, port) = start_gateway(&instance, &keys, &db, 2);
    let api = Api::new(&client, &format!("http://127.0.0.1:{port}"), &key);
    for (i, id) in ids.iter().enumerate() {
        let v = api.wait_final(id).await;
        assert_eq!(v["status"], "completed", "{v}");
        assert_eq!(v["result"]["output"], i, "{v}");
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(gw.id().to_string())
        .status();
    let _ = gw.wait();
    crate::helpers::remove_instance(&instance).await;
}

#[tokio::test]
async fn a_corrupt_or_unwritable_database_is_refused_at_startup_with_exit_64() {
    let s = settings(&[Language::Python]);
    let dir = s
        .auth
        .keys_file
        .clone()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let corrupt = dir.join("corrupt.db");
    std::fs::write(&corrupt, vec![b'x'; 8192]).unwrap();
    for db in [
        corrupt.as_path(),
        std::path::Path::new("/proc/no-such-dir/executions.db"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_codebeaker"))
            .arg("serve")
            .env("CODEBEAKER_SERVER__BIND", "127.0.0.1:0")
            .env("CODEBEAKER_EXECUTIONS__DATABASE", db)
            .env("CODEBEAKER_AUTH__KEYS_FILE", dir.join("keys.toml"))
            .env(
                "CODEBEAKER_POOL__AGENT_BUNDLE",
                concat!(env!("CARGO_MANIFEST_DIR"), "/target/agent-bundle"),
            )
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(64),
            "{}: {}",
            db.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("executions database"), "{err}");
    }
}
