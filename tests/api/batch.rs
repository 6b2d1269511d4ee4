//! Batch execution, plain programs and the seeds' REST routes, against real containers.

use codebeaker_proto::Language;
use serde_json::{json, Value};

use crate::helpers::{generous, settings, spawn, spawn_with, TestApp};
use codebeaker::domain::{Quota, Scope};

async fn post(
    app: &TestApp,
    path: &str,
    key: &str,
    body: Value,
    accept: Option<&str>,
) -> reqwest::Response {
    let mut r = app.api_as(key).post(path).json(&body);
    if let Some(a) = accept {
        r = r.header("accept", a);
    }
    r.send().await.unwrap()
}

async fn batch(app: &TestApp, body: Value) -> (u16, Value) {
    let r = post(app, "/v1/execute/batch", &app.key, body, None).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_batch_runs_every_item_in_order_and_a_failing_item_fails_alone() {
    let app = spawn(&[Language::Python, Language::JavaScript]).await;
    let items: Vec<Value> = (0..12)
        .map(|i| json!({"id": format!("row-{i}"), "input": {"v": i}}))
        .collect();
    let mut body = json!({"language": "python", "code": "result = input_data['v'] * 2", "items": items, "maxConcurrency": 2});
    // Item 5 fails on its own input.
    body["items"][5]["input"] = json!({"v": "x"});
    body["items"][5]["code"] = json!("result = 1 / 0");
    let (st, b) = batch(&app, body).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["totalItems"], 12);
    assert_eq!(b["successCount"], 11, "{b}");
    assert_eq!(b["failureCount"], 1);
    assert_eq!(b["skippedCount"], 0);
    assert!(b["batchId"].as_str().unwrap().len() == 36);
    assert!(b["startedAt"].is_string() && b["completedAt"].is_string());
    let results = b["results"].as_array().unwrap();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["id"], format!("row-{i}"), "request order");
        if i == 5 {
            assert_eq!(r["success"], false);
            assert_eq!(r["error"]["kind"], "runtime_error", "{r}");
            assert!(r["stderr"].as_str().unwrap().contains("ZeroDivisionError"));
        } else {
            assert_eq!(r["output"], json!(i * 2), "{r}");
            assert!(r["latencyMs"].is_u64());
        }
    }

    // A mixed batch: each item brings its own language and code.
    let (st, b) = batch(
        &app,
        json!({"items": [
            {"id": "py", "language": "python", "code": "result = 'p'"},
            {"id": "js", "language": "javascript", "code": "const result = 'j';"},
        ]}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["results"][0]["output"], "p");
    assert_eq!(b["results"][1]["output"], "j");
    app.stop().await;
}

#[tokio::test]
async fn stop_on_first_error_skips_what_has_not_started() {
    let app = spawn(&[Language::Python]).await;
    let items: Vec<Value> = (0..6)
        .map(|i| json!({"id": i.to_string(), "input": {"v": i}}))
        .collect();
    let (st, b) = batch(
        &app,
        json!({"language": "python", "code": "assert input_data['v'] != 2\nresult = 1", "items": items,
               "maxConcurrency": 1, "stopOnFirstError": true}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        (
            b["successCount"].as_u64(),
            b["failureCount"].as_u64(),
            b["skippedCount"].as_u64()
        ),
        (Some(2), Some(1), Some(3)),
        "{b}"
    );
    for r in &b["results"].as_array().unwrap()[3..] {
        assert_eq!(r["skipped"], true);
        assert_eq!(r["error"]["kind"], "skipped");
    }
    app.stop().await;
}

#[tokio::test]
async fn ndjson_streams_one_line_per_item_then_the_summary() {
    let app = spawn(&[Language::Python]).await;
    let items: Vec<Value> = (0..8)
        .map(|i| json!({"id": format!("i{i}"), "input": {"v": i}}))
        .collect();
    let r = post(
        &app,
        "/v1/execute/batch",
        &app.key,
        json!({"language": "python", "code": "result = input_data['v']", "items": items}),
        Some("application/x-ndjson"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 9);
    let mut seen: Vec<i64> = lines[..8]
        .iter()
        .map(|l| {
            assert_eq!(l["type"], "item");
            assert_eq!(l["item"]["id"], format!("i{}", l["item"]["output"]));
            l["item"]["output"].as_i64().unwrap()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, (0..8).collect::<Vec<_>>());
    assert_eq!(lines[8]["type"], "summary");
    assert_eq!(lines[8]["summary"]["successCount"], 8);
    app.stop().await;
}

#[tokio::test]
async fn batch_limits_are_refused_with_a_clear_message() {
    let mut s = settings(&[Language::Python]);
    s.limits.max_batch_items = std::num::NonZeroUsize::new(3).unwrap();
    let app = spawn_with(s).await;
    let (st, b) = batch(
        &app,
        json!({"language": "python", "code": "result = 1", "items": []}),
    )
    .await;
    assert_eq!(
        (st, b["error"]["kind"].as_str()),
        (422, Some("invalid_request")),
        "{b}"
    );
    let four: Vec<Value> = (0..4).map(|i| json!({"id": i.to_string()})).collect();
    let (st, b) = batch(
        &app,
        json!({"language": "python", "code": "result = 1", "items": four}),
    )
    .await;
    assert_eq!(
        (st, b["error"]["kind"].as_str()),
        (413, Some("payload_too_large")),
        "{b}"
    );
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("items is 4"),
        "{b}"
    );
    let (st, b) = batch(&app, json!({"language": "python", "items": [{"id": "a"}]})).await;
    assert_eq!(st, 422, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("items[0]"),
        "{b}"
    );
    let narrow = app.add_key(
        vec![Scope::Execute],
        Quota {
            max_concurrent: 2,
            ..generous()
        },
    );
    let r = post(&app, "/v1/execute/batch", &narrow, json!({"language": "python", "code": "result = 1", "items": [{"id": "a"}], "maxConcurrency": 3}), None).await;
    assert_eq!(r.status(), 403);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["kind"], "limit_exceeded", "{b}");
    app.stop().await;
}

#[tokio::test]
async fn a_go_batch_compiles_once_per_container() {
    let app = spawn(&[Language::Go]).await;
    let items: Vec<Value> = (0..5)
        .map(|i| json!({"id": i.to_string(), "input": {"v": i}}))
        .collect();
    let (st, b) = batch(
        &app,
        json!({"language": "go", "code": "result := input_data[\"v\"]", "items": items, "maxConcurrency": 1}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let hits: Vec<bool> = b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cacheHit"].as_bool().unwrap())
        .collect();
    assert_eq!(
        hits,
        [false, true, true, true, true],
        "one compile, then the cache: {b}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_go_batch_on_two_containers_compiles_once_and_the_shared_cache_is_read_only() {
    let mut s = settings(&[Language::Go, Language::Python]);
    for l in [Language::Go, Language::Python] {
        let ls = s.pool.languages.get_mut(&l).unwrap();
        ls.min_idle = 2;
        ls.max_size = 2;
    }
    let app = spawn_with(s).await;
    let items: Vec<Value> = (0..8)
        .map(|i| json!({"id": i.to_string(), "input": {"v": i}}))
        .collect();
    let (st, b) = batch(
        &app,
        json!({"language": "go", "code": "result := input_data[\"v\"]", "items": items, "maxConcurrency": 2}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let results = b["results"].as_array().unwrap();
    let compiles = results.iter().filter(|r| r["cacheHit"] == false).count();
    assert_eq!(
        compiles, 1,
        "one compile for the batch, on one container: {b}"
    );
    assert_eq!(b["successCount"], 8, "{b}");
    // A plain call afterwards, on whichever container, finds the binary too.
    let (_, one) = app
        .execute(
            json!({"language": "go", "code": "result := input_data[\"v\"]", "input": {"v": 41}}),
        )
        .await;
    assert_eq!(
        (one["output"].as_i64(), one["cacheHit"].as_bool()),
        (Some(41), Some(true)),
        "{one}"
    );

    // User code can open an artifact it knows the name of, but can neither list the
    // shared cache nor write into it.
    let probe = r#"
import os
out = {}
try:
    os.listdir("/shared-cache"); out["list"] = "allowed"
except OSError as e:
    out["list"] = type(e).__name__
try:
    open("/shared-cache/planted", "w"); out["write"] = "allowed"
except OSError as e:
    out["write"] = type(e).__name__
result = out
"#;
    let (_, p) = app
        .execute(json!({"language": "python", "code": probe, "input": {}}))
        .await;
    assert_eq!(p["output"]["list"], "PermissionError", "{p}");
    assert_ne!(p["output"]["write"], "allowed", "{p}");
    app.stop().await;
}

#[tokio::test]
async fn plain_programs_and_the_seeds_routes() {
    let app = spawn(&[Language::Python, Language::Go]).await;
    let (st, b) = app
        .execute(json!({"language": "python", "code": "print('hi')", "mode": "plain"}))
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        (b["success"].as_bool(), b["stdout"].as_str()),
        (Some(true), Some("hi\n")),
        "{b}"
    );
    assert_eq!(b["output"], Value::Null);
    let (_, b) = app
        .execute(json!({"language": "python", "code": "import sys; sys.exit(3)", "mode": "plain"}))
        .await;
    assert_eq!(
        (b["success"].as_bool(), b["exitCode"].as_i64()),
        (Some(false), Some(3)),
        "{b}"
    );
    assert_eq!(b["error"]["kind"], "runtime_error");
    let (_, b) = app
        .execute(json!({"language": "go", "code": "package main\nimport \"fmt\"\nfunc main() { fmt.Println(6 * 7) }", "mode": "plain"}))
        .await;
    assert_eq!(b["stdout"], "42\n", "{b}");

    let r = post(
        &app,
        "/api/execute",
        &app.key,
        json!({"code": "print('Hello, World!')", "language": "python", "config": {"timeout": 10}}),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["stdout"], "Hello, World!\n", "{b}");
    assert_eq!(
        (b["exitCode"].as_i64(), b["timeout"].as_bool()),
        (Some(0), Some(false))
    );
    assert!(b["executionId"].is_string() && b["durationMs"].is_u64());
    let r = post(&app, "/api/execute", &app.key, json!({"code": "import time\ntime.sleep(5)", "language": "python", "config": {"timeout": 1}}), None).await;
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        (b["exitCode"].as_i64(), b["timeout"].as_bool()),
        (Some(-1), Some(true)),
        "{b}"
    );
    assert!(
        b["stderr"]
            .as_str()
            .unwrap()
            .contains("Execution timeout after 1 seconds"),
        "{b}"
    );
    let r = app
        .client
        .post(format!("{}/api/execute", app.addr))
        .json(&json!({"code": "print(1)", "language": "python"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "authenticated like /v1");
    let (st, _) = app.get("/health").await;
    assert_eq!(st, 200);
    app.stop().await;
}
