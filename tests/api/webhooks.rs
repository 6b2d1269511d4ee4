//! Webhook callbacks: signed deliveries to a local receiver, retries, dead letters and the
//! refusal of internal addresses.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use codebeaker_proto::Language;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::{settings, spawn, spawn_with, TestApp};

/// What the receiver saw: (headers, body) per request.
type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A receiver on 127.0.0.1 that answers the given statuses in turn (then 200).
async fn receiver(answers: Vec<u16>) -> (String, Seen) {
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
    let r = app
        .client
        .post(format!("{}/v1/executions", app.addr))
        .header("x-api-key", &app.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn execution(app: &TestApp, id: &str) -> Value {
    app.client
        .get(format!("{}/v1/executions/{id}", app.addr))
        .header("x-api-key", &app.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn webhook_settings() -> codebeaker::config::Settings {
    let mut s = settings(&[Language::Python]);
    s.webhooks.allow_private = true; // the receiver is on loopback
    s.webhooks.backoff_ms = 50;
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
    let mut view = execution(&app, &id).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while view["callbacks"][0]["status"] != "delivered" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        view = execution(&app, &id).await;
    }
    assert_eq!(view["callbacks"][0]["status"], "delivered", "{view}");
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
    let mut dead = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        dead = app
            .client
            .get(format!("{}/v1/webhooks/dead", app.addr))
            .header("x-api-key", &app.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if dead["count"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    assert!(
        d["lastError"].as_str().unwrap().contains("not delivered"),
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
