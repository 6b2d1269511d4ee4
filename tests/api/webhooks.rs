//! Webhook callbacks: signed deliveries to a local receiver, retries, dead letters and the
//! refusal of internal addresses.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use codebeaker_proto::Language;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::{eventually, eventually_every, settings, spawn, spawn_with, Redis, TestApp};

/// What the receiver saw: (headers, body) per request.
pub(crate) type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A receiver on 127.0.0.1 that answers the given statuses in turn (then 200).
pub(crate) async fn receiver(answers: Vec<u16>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State((seen, answers)): State<(Seen, Arc<Mutex<std::vec::IntoIter<u16>>>)>,
                 headers: HeaderMap,
                 body: String| async move {
                    seen.lock().unwrap().push((headers, body));
                    let code = answers.lock().unwrap().next().unwrap_or(200);
                    StatusCode::from_u16(code).unwrap()
                },
            ),
        )
        .with_state((seen.clone(), answers));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

fn webhook_secret(app: &TestApp) -> String {
    let id = app.key.split('_').nth(1).unwrap();
    let file: toml::Table =
        toml::from_str(&std::fs::read_to_string(&app.keys_file).unwrap()).unwrap();
    file["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"].as_str() == Some(id))
        .unwrap()["webhook_secret"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn submit(app: &TestApp, body: Value) -> (u16, Value) {
    app.api()
        .call(reqwest::Method::POST, "/v1/executions", Some(body))
        .await
}

async fn execution(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/executions/{id}")).await.1
}

/// Waits up to 30 s for `done` (a check of what a receiver saw).
pub(crate) async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    eventually(Duration::from_secs(30), what, || {
        let d = done();
        async move { d }
    })
    .await
}

fn webhook_settings() -> codebeaker::config::Settings {
    let mut s = settings(&[Language::Python]);
    s.webhooks.allow_private = true; // the receiver is on loopback
    s.webhooks.backoff_ms = std::time::Duration::from_millis(50);
    s.webhooks.max_attempts = 3;
    s
}

#[tokio::test]
async fn callbacks_are_signed_and_retried_until_accepted() {
    let app = spawn_with(webhook_settings()).await;
    let (url, seen) = receiver(vec![500, 503]).await;
    let (st, v) = submit(
        &app,
        json!({"language": "python", "code": "result = 6 * 7", "callbackUrl": url}),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    let id = v["executionId"].as_str().unwrap().to_string();
    wait_for("three attempts", || seen.lock().unwrap().len() >= 3).await;
    let (headers, body) = seen.lock().unwrap()[2].clone();
    let ts: i64 = headers["x-codebeaker-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    let signature = headers["x-codebeaker-signature"].to_str().unwrap();
    assert_eq!(
        signature,
        codebeaker::webhooks::sign(&webhook_secret(&app), ts, &body),
        "HMAC of timestamp.body with the key's secret"
    );
    let payload: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (payload["executionId"].as_str(), payload["status"].as_str()),
        (Some(id.as_str()), Some("completed"))
    );
    assert_eq!(payload["result"]["output"], 42);
    let view = eventually(
        Duration::from_secs(10),
        "the callback to be recorded as delivered",
        || async {
            let view = execution(&app, &id).await;
            match view["callbacks"][0]["status"] == "delivered" {
                true => Ok(view),
                false => Err(view.to_string()),
            }
        },
    )
    .await;
    assert_eq!(
        view["callbacks"][0]["attempts"], 3,
        "two failures, then the third attempt: {view}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_callback_ends_in_the_dead_letters() {
    let app = spawn_with(webhook_settings()).await;
    // A port that was just free: nothing listens there.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}/hook");
    let (st, v) = submit(
        &app,
        json!({"language": "python", "code": "result = 1", "callbackUrl": url}),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    let dead = eventually_every(
        Duration::from_secs(30),
        Duration::from_millis(100),
        "a dead letter",
        || async {
            let (_, dead) = app.get("/v1/webhooks/dead").await;
            match dead["count"] == 1 {
                true => Ok(dead),
                false => Err(dead.to_string()),
            }
        },
    )
    .await;
    assert_eq!(dead["count"], 1, "{dead}");
    let d = &dead["deliveries"][0];
    assert_eq!(
        (
            d["executionId"].as_str(),
            d["attempts"].as_i64(),
            d["status"].as_str()
        ),
        (v["executionId"].as_str(), Some(3), Some("dead")),
        "{d}"
    );
    let last_error = d["lastError"].as_str().unwrap();
    assert!(last_error.contains("not delivered"), "{d}");
    // A class, not the connection's own error: that would tell a caller which ports
    // answer behind an address.
    assert!(
        !last_error.contains("refused")
            && !last_error.contains("os error")
            && !last_error.contains(&closed.port().to_string()),
        "{d}"
    );
    app.stop().await;
}

#[tokio::test]
async fn internal_callback_addresses_are_refused_by_default() {
    let app = spawn(&[Language::Python]).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://10.0.0.1/x",
        "ftp://example.com/x",
    ] {
        let (st, v) = submit(
            &app,
            json!({"language": "python", "code": "result = 1", "callbackUrl": url}),
        )
        .await;
        assert_eq!(
            (st, v["error"]["kind"].as_str()),
            (422, Some("invalid_request")),
            "{url}: {v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("callbackUrl"),
            "{v}"
        );
    }
    app.stop().await;
}

/// A receiver that accepts connections and never answers (holding them open).
async fn silent_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}/hook")
}

#[tokio::test]
async fn a_receiver_that_never_answers_does_not_delay_other_callbacks() {
    silent_receiver_does_not_delay_others(webhook_settings()).await;
}

/// The same with the shared store, whose sender leases the deliveries it takes.
#[tokio::test]
async fn a_receiver_that_never_answers_does_not_delay_other_callbacks_on_redis() {
    let redis = Redis::start(None).await;
    let mut s = webhook_settings();
    s.shared.redis_url = redis.url().into();
    s.shared.prefix = format!("wh{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    silent_receiver_does_not_delay_others(s).await;
}

async fn silent_receiver_does_not_delay_others(mut s: codebeaker::config::Settings) {
    // Each attempt on the silent receiver holds its connection this long.
    s.webhooks.timeout_ms = std::time::Duration::from_millis(60_000);
    s.executions.workers = 4;
    let app = spawn_with(s).await;
    let silent = silent_receiver().await;
    let (url, seen) = receiver(vec![]).await;
    let mut silent_ids = Vec::new();
    for _ in 0..40 {
        let (st, v) = submit(
            &app,
            json!({"language": "python", "code": "result = 1", "callbackUrl": silent}),
        )
        .await;
        assert_eq!(st, 202, "{v}");
        silent_ids.push(v["executionId"].as_str().unwrap().to_string());
    }
    // Every callback to the silent receiver is due (its execution has finished) before
    // the other receiver's execution is submitted.
    for id in &silent_ids {
        app.api()
            .wait_status(id, "completed", Duration::from_secs(60))
            .await;
    }
    let (st, v) = submit(
        &app,
        json!({"language": "python", "code": "result = 2", "callbackUrl": url}),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    eventually_every(
        Duration::from_secs(5),
        Duration::from_millis(20),
        "the other receiver's callback, behind 40 to a receiver that never answers",
        || async { !seen.lock().unwrap().is_empty() },
    )
    .await;
    let (_, body) = seen.lock().unwrap()[0].clone();
    let payload: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(payload["executionId"], v["executionId"]);
    // The silent receiver's deliveries are pending, no attempt counted yet (each started
    // one is still waiting for its 60 s), and those beyond its 4 in flight were put off
    // by the store: due again later, not held (a Redis lease would hold them 10 min).
    let mut put_off = 0;
    for id in &silent_ids {
        let view = execution(&app, id).await;
        let d = &view["callbacks"][0];
        assert_eq!(
            (d["status"].as_str(), d["attempts"].as_i64()),
            (Some("pending"), Some(0)),
            "{view}"
        );
        let (created, next) = (
            d["createdAt"].as_i64().unwrap(),
            d["nextAttemptAt"].as_i64().unwrap(),
        );
        assert!(
            next < created + 60_000,
            "put off briefly, not leased: {view}"
        );
        if next > created {
            put_off += 1;
        }
    }
    assert!(put_off >= 30, "only {put_off} of 40 were put off");
    app.stop().await;
}
