//! Traces reach an OTLP/HTTP receiver. Its own test binary: the tracing subscriber is
//! process-wide, and this one must be installed with the exporter switched on.

#[allow(dead_code, unused_imports)]
#[path = "api/helpers/mod.rs"]
mod helpers;

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use codebeaker_proto::Language;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_receiver_under_the_callers_trace() {
    // A minimal OTLP/HTTP receiver: it keeps every export body.
    let received: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let sink = {
        let received = received.clone();
        Router::new().route(
            "/v1/traces",
            post(move |body: Bytes| {
                let received = received.clone();
                async move {
                    received.lock().unwrap().push(body);
                    ""
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, sink).await });
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    );
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");

    let app = helpers::spawn(&[Language::Python]).await;
    let r = app
        .post("/v1/execute")
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .json(&json!({"language": "python", "code": "result = 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let trace_id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&TRACE_ID[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    helpers::eventually_every(
        Duration::from_secs(20),
        Duration::from_millis(200),
        "a span with the caller's trace id (and auth, pool.checkout, agent.run spans) at the receiver",
        || async {
            tokio::task::spawn_blocking(codebeaker::telemetry::flush)
                .await
                .unwrap();
            let received = received.lock().unwrap();
            let all: Vec<u8> = received.iter().flat_map(|b| b.to_vec()).collect();
            let has = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
            match has(&trace_id) && has(b"agent.run") && has(b"pool.checkout") && has(b"auth") {
                true => Ok(()),
                false => Err(format!("{} exports", received.len())),
            }
        },
    )
    .await;
    app.stop().await;
}
