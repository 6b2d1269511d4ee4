//! Pool behaviour: exhaustion, leftovers from a crashed run, shutdown cleanup.

use codebeaker_proto::Language;
use serde_json::json;
use std::time::{Duration, Instant};

use crate::helpers::{count_containers, settings, spawn_with};

#[tokio::test]
async fn exhausted_pool_gives_503_with_retry_after_after_the_queue_timeout() {
    let mut s = settings(&[Language::Python]);
    let py = s.pool.languages.get_mut(&Language::Python).unwrap();
    py.max_size = 1;
    s.pool.queue_timeout_ms = std::time::Duration::from_millis(300);
    let app = spawn_with(s).await;

    let busy = {
        let call = app.post("/v1/execute");
        tokio::spawn(async move {
            call.json(
                &json!({"language": "python", "code": "import time\ntime.sleep(3)\nresult = 1"}),
            )
            .send()
            .await
            .unwrap()
            .status()
        })
    };
    // A sleep, not a wait for a condition: nothing outside the gateway shows reliably that a
    // call holds its place (waiting for `/readyz` to count a busy container let the next
    // request in too early).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let r = app
        .post("/v1/execute")
        .json(&json!({"language": "python", "code": "result = 2"}))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "pool_exhausted", "{body}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(busy.await.unwrap().as_u16(), 200);
    app.stop().await;
}

/// The queue wait follows the pool's history: once calls are known to hold a container
/// for ~1.5 s, a request that would queue behind another such call expects to wait more
/// than `max_queue_wait_ms` and is refused at once, with a `Retry-After` that says when.
#[tokio::test]
async fn a_request_that_would_wait_past_the_ceiling_is_refused_at_once_with_the_expected_wait() {
    let mut s = settings(&[Language::Python]);
    let py = s.pool.languages.get_mut(&Language::Python).unwrap();
    py.max_size = 1;
    py.min_idle = 1;
    s.pool.queue_timeout_ms = std::time::Duration::from_millis(300);
    s.pool.max_queue_wait_ms = std::time::Duration::from_millis(1_000);
    let app = spawn_with(s).await;
    let slow = json!({"language": "python", "code": "import time\ntime.sleep(1.5)\nresult = 1"});
    let call = |body: serde_json::Value| {
        let req = app.post("/v1/execute").json(&body);
        tokio::spawn(async move {
            let r = req.send().await.unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (
                r.status().as_u16(),
                retry,
                r.json::<serde_json::Value>().await.unwrap(),
            )
        })
    };
    // History: one call that held the only container for ~1.5 s.
    assert_eq!(call(slow.clone()).await.unwrap().0, 200);
    // Another one holds it now; one more queues behind it (expected ~0.75 s, within the
    // ceiling); the next would wait ~2.25 s and is refused without waiting.
    let busy = call(slow.clone());
    // A sleep, not a wait for a condition: nothing outside the gateway shows reliably that a
    // call holds its place (waiting for `/readyz` to count a busy container let the next
    // request in too early).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queued = call(json!({"language": "python", "code": "result = 2"}));
    // A moment for it to join the queue: nothing outside the gateway shows a queued call,
    // so this is a sleep, not a wait for a condition.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (status, retry, body) = call(json!({"language": "python", "code": "result = 3"}))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["kind"], "pool_exhausted", "{body}");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!(
        retry >= 2,
        "Retry-After {retry} should cover the expected wait"
    );
    assert!(
        took < Duration::from_millis(300),
        "refused at once, not after a wait: {took:?}"
    );
    assert_eq!(busy.await.unwrap().0, 200);
    // The queued one waited up to twice its expected wait, capped by the ceiling (1 s).
    let (status, _, body) = queued.await.unwrap();
    assert!(
        status == 200 || body["error"]["kind"] == "pool_exhausted",
        "{status} {body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn leftover_containers_of_a_crashed_run_are_removed_at_startup_and_shutdown_cleans_up() {
    use bollard::models::ContainerCreateBody;
    let s = settings(&[Language::Python]);
    let instance = s.pool.instance.clone();
    // Simulate a crashed earlier run: a labelled container nobody owns.
    let docker = crate::helpers::docker().await;
    let labels = std::collections::HashMap::from([
        (
            codebeaker_pool::LABEL_MANAGED.to_string(),
            "true".to_string(),
        ),
        (
            codebeaker_pool::LABEL_INSTANCE.to_string(),
            instance.clone(),
        ),
    ]);
    let leftover = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            ContainerCreateBody {
                image: Some("codebeaker-python:latest".into()),
                cmd: Some(vec!["sleep".into(), "600".into()]),
                labels: Some(labels),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
    assert_eq!(count_containers(&instance).await, 1);

    let app = spawn_with(s).await;
    // Only the pool's own warm container remains.
    let b = app.run("python", "result = 1", json!({})).await;
    assert_eq!(b["output"], 1);
    let gone = docker
        .inspect_container(
            &leftover,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await;
    assert!(gone.is_err(), "the leftover must be gone");
    app.stop().await;
    assert_eq!(
        count_containers(&instance).await,
        0,
        "shutdown removes our containers"
    );
}

#[tokio::test]
async fn a_lowered_memory_limit_never_follows_the_container_into_the_next_call() {
    let mut s = settings(&[Language::Python]);
    let py = s.pool.languages.get_mut(&Language::Python).unwrap();
    py.max_size = 1;
    let app = spawn_with(s).await;
    // One container: both calls run on it. The first lowers its limit...
    let (st, b) = app
        .execute(json!({"language": "python", "code": "x = bytearray(8 * 1024 * 1024)\nresult = len(x)", "memoryLimitMb": 64}))
        .await;
    assert_eq!((st, b["success"].as_bool()), (200, Some(true)), "{b}");
    // ...and the second, with the default 512 MB, must get all of it back.
    let (st, b) = app
        .execute(json!({"language": "python", "code": "x = bytearray(200 * 1024 * 1024)\nresult = len(x)"}))
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["output"], 200 * 1024 * 1024, "{b}");
    // And the other way round: a lower limit is in force when asked for.
    let (_, b) = app
        .execute(json!({"language": "python", "code": "x = bytearray(200 * 1024 * 1024)\nresult = len(x)", "memoryLimitMb": 64, "timeoutMs": 20000}))
        .await;
    assert_eq!(b["error"]["kind"], "memory_limit_exceeded", "{b}");
    app.stop().await;
}

/// `[pool.engine]`: an explicit engine address is used as given, and a TLS directory
/// without its certificates is refused with a clear error (not a hang or a panic).
#[tokio::test]
async fn the_engine_can_be_named_and_a_tls_engine_needs_its_certificates() {
    use codebeaker_pool::EngineSettings;
    let local = EngineSettings {
        host: "unix:///var/run/docker.sock".into(),
        ..Default::default()
    };
    codebeaker_pool::connect_to(&local).await.unwrap();
    let tls = EngineSettings {
        host: "tcp://127.0.0.1:1".into(),
        tls_dir: std::env::temp_dir().join("codebeaker-no-such-certs"),
    };
    let err = codebeaker_pool::connect_to(&tls).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("cert"), "{err}");
}

/// The pools stop taking work after the HTTP drain, not at the signal: a request whose
/// body was still arriving when SIGTERM came runs and answers.
#[tokio::test]
async fn a_request_still_arriving_at_shutdown_still_runs() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = settings(&[Language::Python]);
    s.server.shutdown_grace_ms = std::time::Duration::from_millis(15_000);
    let app = spawn_with(s).await;
    let body = json!({"language": "python", "code": "result = 2"}).to_string();
    let host = app.addr.trim_start_matches("http://").to_string();
    let mut c = tokio::net::TcpStream::connect(&host).await.unwrap();
    let head = format!(
        "POST /v1/execute HTTP/1.1\r\nHost: x\r\nx-api-key: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        app.key,
        body.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&body.as_bytes()[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.write_all(&body.as_bytes()[10..]).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), c.read_to_string(&mut answer))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"output\":2"), "{answer}");
    app.stop().await;
}
