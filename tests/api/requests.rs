//! Bad requests: each gets the right status and a precise JSON error, and costs nothing.

use codebeaker_proto::Language;
use serde_json::{json, Value};

use crate::helpers::{settings, spawn_with};

fn kind(b: &Value) -> &str {
    b["error"]["kind"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn malformed_unknown_oversized_and_over_limit_requests_are_refused() {
    let mut s = settings(&[Language::Python]);
    s.limits.max_code_bytes = std::num::NonZeroUsize::new(1000).unwrap();
    s.limits.max_input_bytes = std::num::NonZeroUsize::new(2000).unwrap();
    s.limits.max_body_bytes = std::num::NonZeroUsize::new(10_000).unwrap();
    let app = spawn_with(s).await;

    let (st, b) = app.execute(json!({"language": "cobol", "code": "x"})).await;
    assert_eq!((st, kind(&b)), (400, "unsupported_language"), "{b}");
    let msg = b["error"]["message"].as_str().unwrap();
    // The message names what this gateway serves (only Python here), with
    // aliases, and not the languages it knows but has not enabled.
    assert!(msg.contains("python (py, python3)"), "{msg}");
    assert!(!msg.contains("javascript"), "{msg}");

    let r = app
        .post_raw("{\"language\": \"python\", \"code\": ", "application/json")
        .await;
    assert_eq!(r.status().as_u16(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(kind(&b), "malformed_json", "{b}");

    let (st, b) = app.execute(json!({"language": "python"})).await;
    assert_eq!((st, kind(&b)), (422, "invalid_request"), "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("code"),
        "{b}"
    );

    let r = app
        .post_raw(r#"{"language":"python","code":"result=1"}"#, "text/plain")
        .await;
    assert_eq!(r.status().as_u16(), 415);

    let (st, b) = app
        .execute(json!({"language": "python", "code": "x".repeat(1001)}))
        .await;
    assert_eq!((st, kind(&b)), (413, "payload_too_large"), "{b}");

    let (st, b) = app
        .execute(
            json!({"language": "python", "code": "result=1", "input": {"s": "y".repeat(3000)}}),
        )
        .await;
    assert_eq!((st, kind(&b)), (413, "payload_too_large"), "{b}");

    let r = app
        .post_raw(
            &format!("{{\"code\":\"{}\"}}", "z".repeat(20_000)),
            "application/json",
        )
        .await;
    assert_eq!(r.status().as_u16(), 413);
    let b: Value = r.json().await.unwrap();
    assert_eq!(kind(&b), "payload_too_large", "{b}");

    let (st, b) = app
        .execute(json!({"language": "python", "code": "result=1", "timeoutMs": 10_000_000}))
        .await;
    assert_eq!((st, kind(&b)), (403, "limit_exceeded"), "{b}");
    let (st, b) = app
        .execute(json!({"language": "python", "code": "result=1", "memoryLimitMb": 100_000}))
        .await;
    assert_eq!((st, kind(&b)), (403, "limit_exceeded"), "{b}");

    // None of that disturbed the pool.
    let b = app
        .run("python", "result = input_data", json!({"ok": true}))
        .await;
    assert_eq!(b["output"], json!({"ok": true}));
    // `input` defaults to {}.
    let (st, b) = app
        .execute(json!({"language": "python", "code": "result = input_data"}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(b["output"], json!({}));
    app.stop().await;
}
