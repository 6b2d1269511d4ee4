//! Async executions under pressure: fairness across tenants, a batch's deadline and result
//! budget, the caller's `max_concurrent`, a store that refuses the result (SQLite locked,
//! Redis out of memory), and the purge of what the store accumulates.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use codebeaker::domain::{Quota, Scope};
use codebeaker_proto::Language;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::{
    eventually, eventually_every, generous, instance, settings, spawn_with, Cluster, Redis, TestApp,
};

async fn submit(app: &TestApp, key: &str, body: Value) -> String {
    app.api_as(key).submit(body).await
}

async fn wait_status(app: &TestApp, key: &str, id: &str, status: &str) {
    app.api_as(key)
        .wait_status(id, status, Duration::from_secs(60))
        .await
}

fn millis(v: &Value, field: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v[field].as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

/// Bodies a receiver on loopback got.
type Seen = Arc<Mutex<Vec<Value>>>;

async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route(
            "/hook",
            post(|State(seen): State<Seen>, body: String| async move {
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap_or(Value::Null));
                StatusCode::OK
            }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

async fn wait_callback(seen: &Seen) -> Value {
    eventually(Duration::from_secs(60), "a callback", || async {
        seen.lock().unwrap().first().cloned()
    })
    .await
}

#[tokio::test]
async fn one_tenants_long_batches_do_not_stall_another_tenants_execution() {
    let mut s = settings(&[Language::Python]);
    s.executions.workers = 2; // at most 1 running per tenant
    if let Some(py) = s.pool.languages.get_mut(&Language::Python) {
        py.max_size = 4;
    }
    let app = spawn_with(s).await;
    let a = app.add_tenant_key("tenant-long");
    let b = app.add_tenant_key("tenant-short");
    let items: Vec<Value> = (0..3).map(|i| json!({"id": format!("i{i}")})).collect();
    let long = json!({"language": "python", "code": "import time\ntime.sleep(1)\nresult = 1",
                      "items": items, "maxConcurrency": 1});
    let mut batches = Vec::new();
    for _ in 0..4 {
        batches.push(submit(&app, &a, long.clone()).await);
    }
    wait_status(&app, &a, &batches[0], "running").await;
    let submitted = Instant::now();
    let short = submit(
        &app,
        &b,
        json!({"language": "python", "code": "result = 'quick'"}),
    )
    .await;
    let done = app.api_as(&b).wait_final(&short).await;
    let waited = submitted.elapsed();
    assert_eq!(done["result"]["output"], "quick", "{done}");
    assert!(
        waited < Duration::from_secs(3),
        "the other tenant waited {waited:?} behind 4 long batches"
    );
    let short_end = millis(&done, "completedAt");
    for id in &batches {
        let v = app.api_as(&a).wait_final(id).await;
        assert_eq!(v["result"]["successCount"], 3, "{v}");
        assert!(
            millis(&v, "completedAt") > short_end,
            "a long batch finished before the short execution: {v}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn an_async_batch_stops_at_its_deadline_and_at_its_result_budget() {
    let mut s = settings(&[Language::Python]);
    s.executions.max_run_secs = std::time::Duration::from_secs(2);
    s.limits.max_batch_result_bytes = std::num::NonZeroUsize::new(2_500_000).unwrap();
    let app = spawn_with(s).await;
    let items: Vec<Value> = (0..6).map(|i| json!({"id": format!("s{i}")})).collect();
    let id = submit(
        &app,
        &app.key,
        json!({"language": "python", "code": "import time\ntime.sleep(0.7)\nresult = 1",
               "items": items, "maxConcurrency": 1}),
    )
    .await;
    let v = app.wait_final(&id).await;
    assert_eq!(v["status"], "completed", "{v}");
    let r = &v["result"];
    let ok = r["successCount"].as_u64().unwrap();
    assert!((1..6).contains(&ok), "{r}");
    assert_eq!(r["skippedCount"].as_u64().unwrap(), 6 - ok, "{r}");
    let last = &r["results"][5];
    assert_eq!(last["skipped"], true, "{last}");
    assert_eq!(last["error"]["kind"], "skipped", "{last}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("executions.max_run_secs"),
        "{last}"
    );

    // ~1 MB of stdout per item: the third passes the 2.5 MB budget.
    let items: Vec<Value> = (0..5).map(|i| json!({"id": format!("b{i}")})).collect();
    let id = submit(
        &app,
        &app.key,
        json!({"language": "python", "code": "print('x' * 1000000)\nresult = 1",
               "items": items, "maxConcurrency": 1}),
    )
    .await;
    let v = app.wait_final(&id).await;
    assert_eq!(v["status"], "completed", "{v}");
    let results = v["result"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0]["success"], true);
    assert_eq!(results[1]["success"], true);
    for r in &results[2..] {
        assert_eq!(r["error"]["kind"], "result_budget_exceeded", "{r}");
        assert_eq!(r["stdout"], "", "{r}");
    }
    // The list shows neither result nor request.
    let (_, list) = app.get("/v1/executions").await;
    assert_eq!(list["count"], 2, "{list}");
    assert!(list["executions"][0]["result"].is_null(), "{list}");
    app.stop().await;
}

#[tokio::test]
async fn an_async_run_takes_its_callers_concurrency_place_and_waits_for_it() {
    let app = spawn_with(settings(&[Language::Python])).await;
    let key = app.add_key(
        vec![Scope::Execute],
        Quota {
            max_concurrent: 1,
            ..generous()
        },
    );
    let call = app.api_as(&key).post("/v1/execute");
    let sync = tokio::spawn(async move {
        let r = call
            .json(&json!({"language": "python", "code": "import time\ntime.sleep(2.5)\nresult = 's'"}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, Instant::now())
    });
    // A sleep, not a wait for a condition: nothing outside the gateway shows reliably that a
    // call holds its place (waiting for `/readyz` to count a busy container let the next
    // request in too early).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let id = submit(
        &app,
        &key,
        json!({"language": "python", "code": "result = 'async'"}),
    )
    .await;
    // While the synchronous call holds the key's one place, the async run waits queued.
    // Time passes: the run is checked a second later, still queued.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (_, v) = app.api_as(&key).get(&format!("/v1/executions/{id}")).await;
    assert_eq!(v["status"], "queued", "{v}");
    let (status, sync_done) = sync.await.unwrap();
    assert_eq!(status, 200);
    let v = app.wait_final(&id).await;
    assert_eq!(
        (v["status"].as_str(), &v["result"]["output"]),
        (Some("completed"), &json!("async")),
        "{v}"
    );
    assert_eq!(v["attempts"], 1, "a wait is not an attempt: {v}");
    assert!(Instant::now() >= sync_done);
    app.stop().await;
}

#[tokio::test]
async fn a_result_the_database_refuses_ends_failed_with_result_not_stored_and_its_callback() {
    let mut s = settings(&[Language::Python]);
    s.webhooks.allow_private = true;
    s.webhooks.backoff_ms = std::time::Duration::from_millis(50);
    let db = s.executions.database.clone();
    let app = spawn_with(s).await;
    let (url, seen) = receiver().await;
    let id = submit(
        &app,
        &app.key,
        json!({"language": "python", "code": "import time\ntime.sleep(2)\nresult = 1", "callbackUrl": url}),
    )
    .await;
    wait_status(&app, &app.key, &id, "running").await;
    // Another process holds the database's write lock for longer than every retry of the
    // result: a real refusal (SQLITE_BUSY), as a full disk or a huge result would be.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        locked_tx.send(()).unwrap();
        // Time passes with the lock held.
        std::thread::sleep(Duration::from_secs(26));
        conn.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    tokio::task::spawn_blocking(move || holder.join().unwrap())
        .await
        .unwrap();
    let v = app.wait_final(&id).await;
    assert_eq!(v["status"], "failed", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("result_not_stored"),
        "{v}"
    );
    let cb = wait_callback(&seen).await;
    assert_eq!(
        (cb["executionId"].as_str(), cb["status"].as_str()),
        (Some(id.as_str()), Some("failed")),
        "{cb}"
    );
    app.stop().await;
}

#[tokio::test]
async fn settled_callbacks_are_purged_with_the_retention_and_the_seeds_async_keeps_packages() {
    let mut s = settings(&[Language::Python]);
    s.webhooks.allow_private = true;
    s.webhooks.max_attempts = 1;
    s.executions.retention_secs = std::time::Duration::from_secs(2);
    let db = s.executions.database.clone();
    let app = spawn_with(s).await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let id = submit(
        &app,
        &app.key,
        json!({"language": "python", "code": "result = 1", "callbackUrl": url}),
    )
    .await;
    app.wait_final(&id).await;
    let count = |db: &std::path::Path| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM deliveries", [], |r| r.get(0))
            .unwrap()
    };
    eventually(Duration::from_secs(20), "a dead letter", || async {
        let (_, dead) = app.get("/v1/webhooks/dead").await;
        match dead["count"] == 1 {
            true => Ok(()),
            false => Err(dead.to_string()),
        }
    })
    .await;
    assert_eq!(count(&db), 1);
    eventually_every(
        Duration::from_secs(20),
        Duration::from_millis(200),
        "the dead letter to be purged",
        || async { count(&db) == 0 },
    )
    .await;

    // The seeds' async API carries `config.packages`: one no variant has is refused.
    let r = app.post("/api/execute/async")
        .json(&json!({"code": "result = 1", "language": "python", "config": {"packages": ["left-pad"]}}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (status, v["error"]["kind"].as_str()),
        (422, Some("unknown_packages")),
        "{v}"
    );
    app.stop().await;
}

fn redis_do(url: &str, args: &[&str]) -> redis::Value {
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut c).unwrap()
}

fn zcard(url: &str, key: &str) -> i64 {
    match redis_do(url, &["ZCARD", key]) {
        redis::Value::Int(n) => n,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn on_redis_a_refused_result_ends_failed_with_its_callback_and_the_indexes_are_purged() {
    let redis = Redis::start(None).await;
    let url = redis.url();
    let cluster = Cluster::new(&redis);
    let keys = cluster.keys.clone();
    let key = cluster.key(generous());
    let prefix = cluster.prefix.clone();
    let gw = cluster.start_with(
        &instance("h4"),
        &[
            ("RUST_LOG", "info"),
            ("CODEBEAKER_EXECUTIONS__WORKERS", "2"),
            ("CODEBEAKER_EXECUTIONS__POLL_INTERVAL_MS", "50"),
            ("CODEBEAKER_EXECUTIONS__RETENTION_SECS", "4"),
            ("CODEBEAKER_WEBHOOKS__ALLOW_PRIVATE", "true"),
            ("CODEBEAKER_WEBHOOKS__MAX_ATTEMPTS", "1"),
            ("CODEBEAKER_POOL__LANGUAGES__PYTHON__MIN_IDLE", "1"),
            ("CODEBEAKER_POOL__LANGUAGES__PYTHON__MAX_SIZE", "2"),
            ("CODEBEAKER_SHARED__HEARTBEAT_MS", "300"),
            ("CODEBEAKER_SHARED__VISIBILITY_TIMEOUT_MS", "30000"),
        ],
    );
    gw.ready().await;
    let app = gw.api(&key);

    let (hook, seen) = receiver().await;
    let id = app
        .submit(json!({"language": "python", "code": "import time\ntime.sleep(2)\nresult = 1", "callbackUrl": hook}))
        .await;
    app.wait_status(&id, "running", Duration::from_secs(60))
        .await;
    // Redis refuses every write (out of memory, nothing to evict) for longer than every
    // retry of the result takes, then comes back.
    redis_do(&url, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis_do(&url, &["CONFIG", "SET", "maxmemory", "1"]);
    // Time passes with Redis refusing writes.
    tokio::time::sleep(Duration::from_secs(8)).await;
    redis_do(&url, &["CONFIG", "SET", "maxmemory", "0"]);
    let v = app.wait_final(&id).await;
    assert_eq!(v["status"], "failed", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("result_not_stored"),
        "{v}"
    );
    let cb = wait_callback(&seen).await;
    assert_eq!(
        (cb["executionId"].as_str(), cb["status"].as_str()),
        (Some(id.as_str()), Some("failed")),
        "{cb}"
    );

    // A dead letter: indexed, then dropped from the indexes once expired.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let id = app
        .submit(json!({"language": "python", "code": "result = 2", "callbackUrl": dead_url}))
        .await;
    app.wait_final(&id).await;
    let dead_index = format!("{prefix}:deliveries:dead:tenant-a");
    let jobs_index = format!("{prefix}:jobs:tenant-a");
    eventually(
        Duration::from_secs(20),
        "a dead letter in the index",
        || async { zcard(&url, &dead_index) > 0 },
    )
    .await;
    assert!(zcard(&url, &jobs_index) >= 1);
    eventually_every(
        Duration::from_secs(40),
        Duration::from_millis(250),
        "the indexes to drop their expired entries",
        || async {
            let (dead, jobs) = (zcard(&url, &dead_index), zcard(&url, &jobs_index));
            match dead + jobs {
                0 => Ok(()),
                _ => Err(format!("{dead} dead letters, {jobs} jobs")),
            }
        },
    )
    .await;

    // Idempotency keys never meet across tenants, whatever their names hold: tenant `a`
    // with key `b:c` and tenant `a:b` with key `c` are two executions.
    let ka = crate::helpers::add_tenant_key(&keys, "a", vec![Scope::Admin], generous());
    let kab = crate::helpers::add_tenant_key(&keys, "a:b", vec![Scope::Admin], generous());
    let submit_idem = |key: String, idem: &'static str| {
        let api = gw.api(&key);
        async move {
            // The keys file is reloaded every 2 s: a new key may still be unknown.
            let r = eventually_every(
                Duration::from_secs(10),
                Duration::from_millis(200),
                "the new key to be known",
                || async {
                    let r = api
                        .post("/v1/executions")
                        .header("idempotency-key", idem)
                        .json(&json!({"language": "python", "code": "result = 3"}))
                        .send()
                        .await
                        .unwrap();
                    match r.status() == 401 {
                        true => Err("401".to_string()),
                        false => Ok(r),
                    }
                },
            )
            .await;
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()["executionId"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let one = submit_idem(ka, "b:c").await;
    let two = submit_idem(kab, "c").await;
    assert_ne!(one, two, "two tenants' idempotency keys met");

    gw.stop().await;
}
