//! The attacker's cheapest moves against one gateway: data nested deeper than any parser
//! allows, a batch whose results would not fit in memory, a caller that disconnects to
//! free its concurrency place, a WebSocket client that keeps sending and stops reading.

use codebeaker::domain::{Quota, Scope};
use codebeaker_proto::{Language, MAX_JSON_DEPTH};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{settings, spawn, spawn_with, Rpc, TestApp};

/// This process's resident set (the gateway runs in it), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Samples the resident set every 20 ms until dropped; `peak()` is the highest seen.
struct RssWatch {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    fn start() -> RssWatch {
        let peak = Arc::new(AtomicU64::new(rss()));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                p.fetch_max(rss(), Ordering::Relaxed);
                // The sampling period: time passes between samples.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        RssWatch { peak, task }
    }

    fn peak(&self) -> u64 {
        self.peak.fetch_max(rss(), Ordering::Relaxed).max(rss())
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// A program whose `result` is a list nested `depth` deep.
fn deep_result(depth: usize) -> String {
    format!("r = []\nfor _ in range({depth}):\n    r = [r]\nresult = r")
}

#[tokio::test]
async fn output_nested_too_deep_is_the_programs_error_on_every_path() {
    let app = spawn(&[Language::Python]).await;
    let code = deep_result(200);
    let limit_named = |m: &str| m.contains(&MAX_JSON_DEPTH.to_string());

    // A single call.
    let (st, b) = app
        .execute(json!({"language": "python", "code": code}))
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["success"], false, "{b}");
    assert_eq!(b["error"]["kind"], "invalid_output", "{b}");
    assert!(limit_named(b["error"]["message"].as_str().unwrap()), "{b}");

    // A batch: the deep item fails as the program's error, the others keep their results.
    let body = json!({"language": "python", "code": "result = input_data['d'] and __import__('json').loads('[' * input_data['d'] + ']' * input_data['d'])",
        "items": [{"id": "ok", "input": {"d": 0}}, {"id": "deep", "input": {"d": 200}}, {"id": "edge", "input": {"d": MAX_JSON_DEPTH}}]});
    let r = app
        .post("/v1/execute/batch")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let b: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let results = b["results"].as_array().expect("results are never lost");
    assert_eq!(results.len(), 3, "{b}");
    assert_eq!(results[0]["success"], true, "{b}");
    assert_eq!(results[1]["error"]["kind"], "invalid_output", "{b}");
    assert_eq!(
        results[2]["success"], true,
        "MAX_JSON_DEPTH deep is within the limit: {b}"
    );
    assert_eq!(
        (b["successCount"].as_u64(), b["failureCount"].as_u64()),
        (Some(2), Some(1))
    );

    // The same batch as NDJSON: a line per item, then the summary.
    let r = app
        .post("/v1/execute/batch")
        .header("accept", "application/x-ndjson")
        .json(&body)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let deep = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["item"]["id"] == "deep")
        .unwrap();
    assert_eq!(deep["item"]["error"]["kind"], "invalid_output");

    // An async execution.
    let r = app
        .post("/v1/executions")
        .json(&json!({"language": "python", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    let done = app.wait_final(&id).await;
    assert_eq!(done["result"]["error"]["kind"], "invalid_output", "{done}");
}

#[tokio::test]
async fn input_nested_too_deep_is_refused_at_the_edge() {
    let app = spawn(&[Language::Python]).await;
    for depth in [MAX_JSON_DEPTH + 1, 100_000] {
        let body = format!(
            r#"{{"language":"python","code":"result = 1","input":{}}}"#,
            nested(depth)
        );
        let r = app.post_raw(&body, "application/json").await;
        assert_eq!(r.status(), 400, "depth {depth}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"]["kind"], "malformed_json", "{b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&MAX_JSON_DEPTH.to_string()),
            "{b}"
        );
        let batch = format!(
            r#"{{"language":"python","code":"result = 1","items":[{{"id":"a","input":{}}}]}}"#,
            nested(depth)
        );
        let r = app
            .post("/v1/execute/batch")
            .header("content-type", "application/json")
            .body(batch)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "batch, depth {depth}");
    }
    // MAX_JSON_DEPTH deep is accepted and reaches the program intact.
    let deepest = format!(
        "{}1{}",
        "[".repeat(MAX_JSON_DEPTH),
        "]".repeat(MAX_JSON_DEPTH)
    );
    let body = format!(
        r#"{{"language":"python","code":"d = 0\nv = input_data\nwhile isinstance(v, list) and v:\n    d += 1\n    v = v[0]\nresult = d","input":{deepest}}}"#
    );
    let r = app.post_raw(&body, "application/json").await;
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["output"], MAX_JSON_DEPTH, "{b}");
}

#[tokio::test]
async fn a_batch_that_prints_a_mebibyte_per_item_keeps_memory_bounded() {
    let mut s = settings(&[Language::Python]);
    s.limits.max_batch_result_bytes = std::num::NonZeroUsize::new(32 * 1024 * 1024).unwrap();
    let app = spawn_with(s).await;
    let items: Vec<Value> = (0..300).map(|i| json!({"id": format!("i{i}")})).collect();
    let before = rss();
    let watch = RssWatch::start();
    let r = app.post("/v1/execute/batch")
        .json(&json!({"language": "python", "code": "import sys\nsys.stdout.write('x' * (1024 * 1024))\nresult = 1", "items": items}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    let peak = watch.peak();
    let results = b["results"].as_array().unwrap();
    assert_eq!(results.len(), 300, "every item is answered");
    let kept = results.iter().filter(|r| r["success"] == true).count();
    let over = results
        .iter()
        .filter(|r| r["error"]["kind"] == "result_budget_exceeded")
        .count();
    assert!(
        kept >= 20,
        "the items within the budget keep their results ({kept})"
    );
    assert_eq!(
        kept + over,
        300,
        "every other item says why it has no result"
    );
    assert!(
        results[kept]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_batch_result_bytes"),
        "{}",
        results[kept]
    );
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 512 * 1024 * 1024,
        "the process grew by {} MB during the batch",
        growth / (1024 * 1024)
    );
}

#[tokio::test]
async fn a_caller_that_disconnects_keeps_its_concurrency_place_until_the_work_ends() {
    let app = spawn(&[Language::Python]).await;
    let key = app.add_key(
        vec![Scope::Execute],
        Quota {
            max_concurrent: 1,
            ..crate::helpers::generous()
        },
    );
    let busy = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (busy, client, addr) = (busy.clone(), app.client.clone(), app.addr.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(r) = client.get(format!("{addr}/readyz")).send().await {
                    if let Ok(b) = r.json::<Value>().await {
                        let n = b["pools"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|p| p["busy"].as_u64().unwrap_or(0))
                            .sum::<u64>();
                        busy.fetch_max(n, Ordering::Relaxed);
                    }
                }
                // The sampling period: time passes between samples.
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    // Six calls that loop, each dropped by its caller after 50 ms.
    for _ in 0..6 {
        let call = app
            .api_as(&key)
            .post("/v1/execute")
            .json(&json!({"language": "python", "code": "while True: pass", "timeoutMs": 2000}))
            .timeout(Duration::from_millis(50))
            .send();
        let _ = call.await;
        // Time passes: the calls are spread out, and the watcher keeps sampling after them.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    watcher.abort();
    assert_eq!(
        busy.load(Ordering::Relaxed),
        1,
        "a max_concurrent = 1 key never has more than one container busy"
    );
    // Once its first call has timed out, the place is free again. Time passes: the looping
    // call's own `timeoutMs` (2 s) has to run out.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = app
        .api_as(&key)
        .post("/v1/execute")
        .json(&json!({"language": "python", "code": "result = 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_websocket_client_that_stops_reading_is_not_buffered() {
    let mut s = settings(&[Language::Python]);
    s.server.websocket_ping_interval_ms = std::time::Duration::from_millis(1_000);
    s.server.websocket_idle_timeout_ms = std::time::Duration::from_millis(4_000);
    let app = spawn_with(s).await;
    let sid = session_with_big_file(&app).await;

    let (mut sink, stream) = Rpc::connect(&app, &app.key).await.ws.split();
    let before = rss();
    let watch = RssWatch::start();
    let started = Instant::now();
    // 200 reads of an 8 MB file, never reading a reply.
    let sender = tokio::spawn(async move {
        for id in 0..200 {
            let frame = json!({"jsonrpc": "2.0", "id": id, "method": "session.execute",
                "params": {"sessionId": sid, "command": {"type": "read_file", "path": "big"}}});
            if sink
                .send(Message::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                return id;
            }
        }
        200
    });
    let sent = tokio::time::timeout(Duration::from_secs(30), sender).await;
    let peak = watch.peak();
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 200 * 1024 * 1024,
        "the gateway buffered {} MB for a client that does not read (sent: {sent:?})",
        growth / (1024 * 1024)
    );
    // The server gives up on the socket, and serves everyone else.
    assert!(started.elapsed() < Duration::from_secs(40));
    drop(stream);
    let (st, _) = app.get("/healthz").await;
    assert_eq!(st, 200);
}

/// A REST session with an 8 MB file `big` in its workspace.
async fn session_with_big_file(app: &TestApp) -> String {
    let sid = app.create_session(json!({"language": "python"})).await;
    let r = app
        .post(&format!("/v1/sessions/{sid}/commands"))
        .json(&json!({"type": "execute_shell", "commandName": "python3",
            "args": ["-c", "open('/workspace/big', 'w').write('x' * 8_000_000)"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    sid
}

#[tokio::test]
async fn native_routes_refuse_unknown_fields_and_name_them() {
    let app = spawn(&[Language::Python]).await;
    let (st, b) = app
        .execute(json!({"language": "python", "code": "print(input())", "stdn": "hello"}))
        .await;
    assert_eq!(
        (st, b["error"]["kind"].as_str()),
        (400, Some("unknown_field")),
        "{b}"
    );
    assert!(
        b["error"]["message"].as_str().unwrap().contains("stdn"),
        "{b}"
    );
    let (st, b) = app
        .execute(json!({"language": "python", "code": "x", "files": [{"path": "a", "content": "", "mode": "x"}]}))
        .await;
    assert_eq!(
        (st, b["error"]["kind"].as_str()),
        (400, Some("unknown_field")),
        "{b}"
    );
    let r = app.post("/v1/execute/batch")
        .json(&json!({"language": "python", "code": "result = 1", "items": [{"id": "a", "inputs": {}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("items.0.inputs"),
        "{b}"
    );
    // The seeds' route stays lenient: its clients send members of their own.
    let r = app
        .post("/api/execute")
        .json(&json!({"language": "python", "code": "print(1)", "clientVersion": "1.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_session_kept_busy_still_ends_at_its_maximum_lifetime() {
    let app = spawn(&[Language::Python]).await;
    let sid = app
        .create_session(json!({"language": "python", "maxLifetimeMinutes": 0.05}))
        .await;
    let started = Instant::now();
    // Commands back to back, each keeping the session busy, for up to 15 s.
    let mut last = 200;
    while started.elapsed() < Duration::from_secs(15) {
        let r = app
            .post(&format!("/v1/sessions/{sid}/commands"))
            .json(&json!({"type": "execute_shell", "commandName": "sleep", "args": ["0.2"]}))
            .send()
            .await
            .unwrap();
        last = r.status().as_u16();
        if last == 404 {
            break;
        }
    }
    assert_eq!(last, 404, "the session outlived its 3 s lifetime");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_variant_built_while_the_gateway_runs_is_served_without_a_restart() {
    let mut s = settings(&[Language::Python]);
    let image = format!(
        "codebeaker-python-late-test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut late = s.pool.languages[&Language::Python].clone();
    late.image = image.clone();
    late.min_idle = 0;
    s.pool.variants.insert("python-late".into(), late);
    let app = spawn_with(s).await;
    let call =
        json!({"language": "python", "code": "import json\nresult = 1", "packages": ["lateonly"]});
    let (st, b) = app.execute(call.clone()).await;
    assert_eq!(
        (st, b["error"]["kind"].as_str()),
        (422, Some("unknown_packages")),
        "{b}"
    );

    // The operator builds the variant now (here: the Python image with the labels a
    // variant build gives it).
    let dir = std::env::temp_dir().join(&image);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM codebeaker-python:latest\nLABEL codebeaker.language=python codebeaker.variant=python-late codebeaker.packages={\\\"lateonly\\\":\\\"1.0\\\"}\n",
    )
    .unwrap();
    let built = std::process::Command::new("docker")
        .args(["build", "-q", "-t", &image])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    // Time passes: a pool looks for a missing variant's image again only once 2 s have
    // gone by since its last look (the call above was one).
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (st, b) = app.execute(call).await;
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &image])
        .output();
    assert_eq!((st, b["success"].as_bool()), (200, Some(true)), "{b}");
}
