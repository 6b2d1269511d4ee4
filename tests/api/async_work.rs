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

use crate::helpers::{generous, get, settings, spawn_with, wait_final, TestApp};

async fn submit(app: &TestApp, key: &str, body: Value) -> String {
    let r = app
        .client
        .post(format!("{}/v1/executions", app.addr))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{v}");
    v["executionId"].as_str().unwrap().to_string()
}

async fn wait_status(app: &TestApp, key: &str, id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = get(&app.client, &app.addr, key, &format!("/v1/executions/{id}")).await;
        if v["status"] == status {
            return;
        }
        assert!(Instant::now() < deadline, "never {status}: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = seen.lock().unwrap().first() {
            return v.clone();
        }
        assert!(Instant::now() < deadline, "no callback");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let done = wait_final(&app.client, &app.addr, &b, &short).await;
    let waited = submitted.elapsed();
    assert_eq!(done["result"]["output"], "quick", "{done}");
    assert!(
        waited < Duration::from_secs(3),
        "the other tenant waited {waited:?} behind 4 long batches"
    );
    let short_end = millis(&done, "completedAt");
    for id in &batches {
        let v = wait_final(&app.client, &app.addr, &a, id).await;
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
    s.executions.max_run_secs = 2;
    s.limits.max_batch_result_bytes = 2_500_000;
    let app = spawn_with(s).await;
    let items: Vec<Value> = (0..6).map(|i| json!({"id": format!("s{i}")})).collect();
    let id = submit(
        &app,
        &app.key,
        json!({"language": "python", "code": "import time\ntime.sleep(0.7)\nresult = 1",
               "items": items, "maxConcurrency": 1}),
    )
    .await;
    let v = wait_final(&app.client, &app.addr, &app.key, &id).await;
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
    let v = wait_final(&app.client, &app.addr, &app.key, &id).await;
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
    let (_, list) = get(&app.client, &app.addr, &app.key, "/v1/executions").await;
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
    let (client, base, k) = (app.client.clone(), app.addr.clone(), key.clone());
    let sync = tokio::spawn(async move {
        let r = client
            .post(format!("{base}/v1/execute"))
            .header("x-api-key", &k)
            .json(&json!({"language": "python", "code": "import time\ntime.sleep(2.5)\nresult = 's'"}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let id = submit(
        &app,
        &key,
        json!({"language": "python", "code": "result = 'async'"}),
    )
    .await;
    // While the synchronous call holds the key's one place, the async run waits queued.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (_, v) = get(
        &app.client,
        &app.addr,
        &key,
        &format!("/v1/executions/{id}"),
    )
    .await;
    assert_eq!(v["status"], "queued", "{v}");
    let (status, sync_done) = sync.await.unwrap();
    assert_eq!(status, 200);
    let v = wait_final(&app.client, &app.addr, &key, &id).await;
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
    s.webhooks.backoff_ms = 50;
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
        std::thread::sleep(Duration::from_secs(26));
        conn.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    tokio::task::spawn_blocking(move || holder.join().unwrap())
        .await
        .unwrap();
    let v = wait_final(&app.client, &app.addr, &app.key, &id).await;
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
    s.executions.retention_secs = 2;
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
    wait_final(&app.client, &app.addr, &app.key, &id).await;
    let count = |db: &std::path::Path| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM deliveries", [], |r| r.get(0))
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, dead) = get(&app.client, &app.addr, &app.key, "/v1/webhooks/dead").await;
        if dead["count"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{dead}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&db), 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&db) > 0 {
        assert!(
            Instant::now() < deadline,
            "the dead letter was never purged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The seeds' async API carries `config.packages`: one no variant has is refused.
    let r = app
        .client
        .post(format!("{}/api/execute/async", app.addr))
        .header("x-api-key", &app.key)
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
    let redis = crate::replicas::Redis::start(None);
    let url = redis.url();
    let dir = std::env::temp_dir().join(format!("cb-h4-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys.toml");
    let key = crate::helpers::add_key(&keys, vec![Scope::Admin], generous());
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let instance = format!("h4r{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let db = dir.join("unused.db");
    let gw = crate::helpers::start_gateway_process(&[
        ("RUST_LOG", "info".as_ref()),
        ("CODEBEAKER_AUTH__KEYS_FILE", keys.as_os_str()),
        ("CODEBEAKER_EXECUTIONS__DATABASE", db.as_os_str()),
        ("CODEBEAKER_EXECUTIONS__WORKERS", "2".as_ref()),
        ("CODEBEAKER_EXECUTIONS__POLL_INTERVAL_MS", "50".as_ref()),
        ("CODEBEAKER_EXECUTIONS__RETENTION_SECS", "4".as_ref()),
        ("CODEBEAKER_WEBHOOKS__ALLOW_PRIVATE", "true".as_ref()),
        ("CODEBEAKER_WEBHOOKS__MAX_ATTEMPTS", "1".as_ref()),
        ("CODEBEAKER_POOL__INSTANCE", instance.as_ref()),
        ("CODEBEAKER_POOL__LANGUAGES__PYTHON__MIN_IDLE", "1".as_ref()),
        ("CODEBEAKER_POOL__LANGUAGES__PYTHON__MAX_SIZE", "2".as_ref()),
        ("CODEBEAKER_SHARED__REDIS_URL", url.as_ref()),
        ("CODEBEAKER_SHARED__PREFIX", prefix.as_ref()),
        ("CODEBEAKER_SHARED__HEARTBEAT_MS", "300".as_ref()),
        ("CODEBEAKER_SHARED__VISIBILITY_TIMEOUT_MS", "30000".as_ref()),
    ]);
    let lines = gw.lines;
    std::thread::spawn(move || while lines.recv().is_ok() {});
    let mut child = gw.child;
    let app = TestAppLite {
        client: reqwest::Client::new(),
        addr: format!("http://127.0.0.1:{}", gw.port),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while app
        .client
        .get(format!("{}/readyz", app.addr))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (hook, seen) = receiver().await;
    let id = app
        .submit(
            &key,
            json!({"language": "python", "code": "import time\ntime.sleep(2)\nresult = 1", "callbackUrl": hook}),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(
        &app.client,
        &app.addr,
        &key,
        &format!("/v1/executions/{id}"),
    )
    .await
    .1["status"]
        != "running"
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Redis refuses every write (out of memory, nothing to evict) for longer than every
    // retry of the result takes, then comes back.
    redis_do(&url, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis_do(&url, &["CONFIG", "SET", "maxmemory", "1"]);
    tokio::time::sleep(Duration::from_secs(8)).await;
    redis_do(&url, &["CONFIG", "SET", "maxmemory", "0"]);
    let v = wait_final(&app.client, &app.addr, &key, &id).await;
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
        .submit(
            &key,
            json!({"language": "python", "code": "result = 2", "callbackUrl": dead_url}),
        )
        .await;
    wait_final(&app.client, &app.addr, &key, &id).await;
    let dead_index = format!("{prefix}:deliveries:dead:tenant-a");
    let jobs_index = format!("{prefix}:jobs:tenant-a");
    let deadline = Instant::now() + Duration::from_secs(20);
    while zcard(&url, &dead_index) == 0 {
        assert!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(zcard(&url, &jobs_index) >= 1);
    let deadline = Instant::now() + Duration::from_secs(40);
    while zcard(&url, &dead_index) + zcard(&url, &jobs_index) > 0 {
        assert!(
            Instant::now() < deadline,
            "the indexes keep expired entries: {} {}",
            zcard(&url, &dead_index),
            zcard(&url, &jobs_index)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Idempotency keys never meet across tenants, whatever their names hold: tenant `a`
    // with key `b:c` and tenant `a:b` with key `c` are two executions.
    let ka = crate::helpers::add_tenant_key(&keys, "a", vec![Scope::Admin], generous());
    let kab = crate::helpers::add_tenant_key(&keys, "a:b", vec![Scope::Admin], generous());
    let submit_idem = |key: String, idem: &'static str| {
        let app = &app;
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                // The keys file is reloaded every 2 s: a new key may still be unknown.
                let r = app
                    .client
                    .post(format!("{}/v1/executions", app.addr))
                    .header("x-api-key", &key)
                    .header("idempotency-key", idem)
                    .json(&json!({"language": "python", "code": "result = 3"}))
                    .send()
                    .await
                    .unwrap();
                if r.status() == 401 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                assert_eq!(r.status(), 202);
                return r.json::<Value>().await.unwrap()["executionId"]
                    .as_str()
                    .unwrap()
                    .to_string();
            }
        }
    };
    let one = submit_idem(ka, "b:c").await;
    let two = submit_idem(kab, "c").await;
    assert_ne!(one, two, "two tenants' idempotency keys met");

    let _ = child.kill();
    let _ = child.wait();
    crate::helpers::remove_instance(&instance).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A gateway process's address and a client.
struct TestAppLite {
    client: reqwest::Client,
    addr: String,
}

impl TestAppLite {
    async fn submit(&self, key: &str, body: Value) -> String {
        let r = self
            .client
            .post(format!("{}/v1/executions", self.addr))
            .header("x-api-key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 202, "{v}");
        v["executionId"].as_str().unwrap().to_string()
    }
}
