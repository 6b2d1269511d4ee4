//! The gateway edge: authentication, scopes, rate limits, caps, shedding, metrics, OpenAPI.

use codebeaker::domain::{Quota, Scope};
use codebeaker_proto::Language;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

use crate::helpers::{
    generous, revoke_key, settings, spawn, spawn_with, JWT_AUDIENCE, JWT_HS256_SECRET, JWT_ISSUER,
};

const PY: &str = "result = 1";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

pub(crate) fn claims(overrides: Value) -> Value {
    let mut c = json!({
        "sub": "user-1", "iss": JWT_ISSUER, "aud": JWT_AUDIENCE,
        "exp": now() + 600, "nbf": now() - 10,
        "cb": {"tenant": "jwt-tenant", "scopes": ["execute"]}
    });
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

pub(crate) fn hs256(c: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        c,
        &EncodingKey::from_secret(JWT_HS256_SECRET.as_bytes()),
    )
    .unwrap()
}

fn rs256(c: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(&fixture("jwt-rs256-private.pem")).unwrap();
    encode(&Header::new(Algorithm::RS256), c, &key).unwrap()
}

fn es256(c: &Value) -> String {
    let key = EncodingKey::from_ec_pem(&fixture("jwt-es256-private.pem")).unwrap();
    encode(&Header::new(Algorithm::ES256), c, &key).unwrap()
}

fn b64(v: &[u8]) -> String {
    // base64url without padding, enough for test tokens.
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in v.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..(chunk.len() + 1) {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn status_of(
    app: &crate::helpers::TestApp,
    header: Option<(&str, &str)>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = app
        .execute_as(header, json!({"language": "python", "code": PY}))
        .await;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.json().await.unwrap_or(Value::Null), headers)
}

#[tokio::test]
async fn api_keys_missing_wrong_revoked_rotated_and_scoped() {
    let app = spawn(&[Language::Python]).await;

    let (st, b, h) = status_of(&app, None).await;
    assert_eq!(
        (st, b["error"]["kind"].as_str()),
        (401, Some("unauthenticated")),
        "{b}"
    );
    assert!(h["www-authenticate"].to_str().unwrap().contains("Bearer"));

    let wrong = format!("{}0", &app.key[..app.key.len() - 1]);
    let wrong = if wrong == app.key {
        format!("{}1", &app.key[..app.key.len() - 1])
    } else {
        wrong
    };
    assert_eq!(status_of(&app, Some(("x-api-key", &wrong))).await.0, 401);
    assert_eq!(status_of(&app, Some(("x-api-key", "garbage"))).await.0, 401);
    // Both header forms work.
    let (st, b, _) = status_of(
        &app,
        Some(("authorization", &format!("ApiKey {}", app.key))),
    )
    .await;
    assert_eq!(st, 200, "{b}");

    // Rotation: a new key works and the old one is revoked, by editing the file only.
    let new_key = app.add_key(vec![Scope::Execute], generous());
    revoke_key(&app, &app.key).await;
    let (st, b, _) = status_of(&app, Some(("x-api-key", &new_key))).await;
    assert_eq!(st, 200, "new key: {b}");
    let (st, b, _) = status_of(&app, Some(("x-api-key", &app.key))).await;
    assert_eq!(st, 401, "revoked key: {b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("revoked"),
        "{b}"
    );

    // A key without the execute scope may list languages but not execute.
    let sessions_only = app.add_key(vec![Scope::Sessions], generous());
    let (st, b, _) = status_of(&app, Some(("x-api-key", &sessions_only))).await;
    assert_eq!(
        (st, b["error"]["kind"].as_str()),
        (403, Some("forbidden")),
        "{b}"
    );
    let r = app
        .api_as(&sessions_only)
        .request(reqwest::Method::GET, "/v1/languages")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // Limits per key: language and timeout above the key's maximum are refused (403).
    let limited = app.add_key(
        vec![Scope::Execute],
        Quota {
            languages: vec![Language::Go],
            max_timeout_ms: Some(1000),
            ..generous()
        },
    );
    let (st, b, _) = status_of(&app, Some(("x-api-key", &limited))).await;
    assert_eq!(
        (st, b["error"]["kind"].as_str()),
        (403, Some("forbidden")),
        "{b}"
    );
    app.stop().await;
}

#[tokio::test]
async fn jwt_valid_tokens_pass_and_bad_ones_are_rejected() {
    let app = spawn(&[Language::Python]).await;
    let bearer = |t: &str| format!("Bearer {t}");
    for (name, token) in [
        ("HS256", hs256(&claims(json!({})))),
        ("RS256", rs256(&claims(json!({})))),
        ("ES256", es256(&claims(json!({})))),
    ] {
        let (st, b, _) = status_of(&app, Some(("authorization", &bearer(&token)))).await;
        assert_eq!(st, 200, "{name}: {b}");
        // Cached: a second use passes too.
        assert_eq!(
            status_of(&app, Some(("authorization", &bearer(&token))))
                .await
                .0,
            200
        );
    }
    let rsa_public = fixture("jwt-rs256-public.pem");
    let none_token = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims(json!({})).to_string().as_bytes())
    );
    let bad = [
        ("expired", hs256(&claims(json!({"exp": now() - 3600})))),
        (
            "not yet valid",
            hs256(&claims(json!({"nbf": now() + 3600}))),
        ),
        (
            "wrong audience",
            hs256(&claims(json!({"aud": "someone-else"}))),
        ),
        ("wrong issuer", hs256(&claims(json!({"iss": "evil"})))),
        ("no exp", hs256(&claims(json!({"exp": null})))),
        ("alg none", none_token),
        (
            "HS256 signed with the RSA public key",
            encode(
                &Header::new(Algorithm::HS256),
                &claims(json!({})),
                &EncodingKey::from_secret(&rsa_public),
            )
            .unwrap(),
        ),
        (
            "wrong HS secret",
            encode(
                &Header::new(Algorithm::HS256),
                &claims(json!({})),
                &EncodingKey::from_secret(b"nope"),
            )
            .unwrap(),
        ),
    ];
    for (name, token) in bad {
        let (st, b, _) = status_of(&app, Some(("authorization", &bearer(&token)))).await;
        assert_eq!(st, 401, "{name} must be rejected: {b}");
    }
    // A token whose `cb` claim lacks the execute scope gets 403.
    let t = hs256(&claims(json!({"cb": {"scopes": ["sessions"]}})));
    assert_eq!(
        status_of(&app, Some(("authorization", &bearer(&t))))
            .await
            .0,
        403
    );
    app.stop().await;
}

#[tokio::test]
async fn rate_limit_refuses_the_next_request_and_spares_other_keys() {
    let app = spawn(&[Language::Python]).await;
    let tight = app.add_key(
        vec![Scope::Execute],
        Quota {
            rate_per_second: 1,
            burst: 3,
            ..generous()
        },
    );
    let other = app.add_key(
        vec![Scope::Execute],
        Quota {
            rate_per_second: 1,
            burst: 3,
            ..generous()
        },
    );
    let get = |key: String| {
        let req = app
            .api_as(&key)
            .request(reqwest::Method::GET, "/v1/languages");
        async move { req.send().await.unwrap() }
    };
    for i in 0..3 {
        let r = get(tight.clone()).await;
        assert_eq!(r.status().as_u16(), 200, "request {i}");
        assert_eq!(r.headers()["ratelimit-limit"], "3");
        assert_eq!(
            r.headers()["ratelimit-remaining"],
            (2 - i).to_string().as_str()
        );
    }
    let r = get(tight.clone()).await;
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    assert!(r.headers().contains_key("ratelimit-reset"));
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["kind"], "rate_limited");
    // The other key, at the same moment, is unaffected.
    assert_eq!(get(other).await.status().as_u16(), 200);
    app.stop().await;
}

#[tokio::test]
async fn concurrency_cap_holds_and_admission_sheds_at_once() {
    let mut s = settings(&[Language::Python]);
    s.pool
        .languages
        .get_mut(&Language::Python)
        .unwrap()
        .max_size = 3;
    s.limits.admission_limit = std::num::NonZeroUsize::new(2).unwrap();
    let app = spawn_with(s).await;
    let capped = app.add_key(
        vec![Scope::Execute],
        Quota {
            max_concurrent: 1,
            ..generous()
        },
    );
    let slow = json!({"language": "python", "code": "import time\ntime.sleep(1.5)\nresult = 1"});
    let send = |key: String, body: Value| {
        let req = app.api_as(&key).post("/v1/execute").json(&body);
        async move { req.send().await.unwrap() }
    };
    // Per-key concurrency: the second parallel call of the capped key gets 429.
    let first = tokio::spawn(send(capped.clone(), slow.clone()));
    // A sleep, not a wait for a condition: nothing outside the gateway shows reliably that a
    // call holds its place (waiting for `/readyz` to count a busy container let the next
    // request in too early).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = send(capped.clone(), json!({"language": "python", "code": PY})).await;
    assert_eq!(r.status().as_u16(), 429);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["kind"], "concurrency_limit", "{b}");
    // Global shedding: with two invocations admitted, a third is refused at once.
    let second = tokio::spawn(send(app.key.clone(), slow.clone()));
    // A sleep, not a wait for a condition: nothing outside the gateway shows reliably that a
    // call holds its place (waiting for `/readyz` to count a busy container let the next
    // request in too early).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let r = send(app.key.clone(), json!({"language": "python", "code": PY})).await;
    assert_eq!(r.status().as_u16(), 503);
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "shed must not queue: {:?}",
        started.elapsed()
    );
    assert_eq!(r.headers()["retry-after"], "1");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["kind"], "overloaded", "{b}");
    assert_eq!(first.await.unwrap().status().as_u16(), 200);
    assert_eq!(second.await.unwrap().status().as_u16(), 200);
    app.stop().await;
}

fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_expose_the_named_series_and_they_move() {
    let mut s = settings(&[Language::Python]);
    s.server.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    let app = spawn_with(s).await;
    let port = app.metrics_port.expect("separate metrics listener");
    let scrape = || async {
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // /metrics is not on the main listener when it has its own address.
    assert_eq!(
        app.client
            .get(format!("{}/metrics", app.addr))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    let before = scrape().await;
    app.run("python", PY, json!({})).await;
    app.run("python", "raise SystemExit(2)", json!({})).await;
    let _ = app
        .execute_as(None, json!({"language": "python", "code": PY}))
        .await;
    let after = scrape().await;
    for name in [
        "codebeaker_http_requests_total",
        "codebeaker_http_request_duration_seconds_bucket",
        "codebeaker_invocations_total",
        "codebeaker_queue_wait_seconds_bucket",
        "codebeaker_container_run_seconds_bucket",
        "codebeaker_invocation_duration_seconds_bucket",
        "codebeaker_pool_containers",
        "codebeaker_containers_created_total",
        "codebeaker_containers_recycled_total",
        "codebeaker_containers_retired_total",
        "codebeaker_rejections_total",
        "codebeaker_tenant_invocations_total",
        "codebeaker_ready",
        "codebeaker_engine_up",
        "codebeaker_sessions_open",
    ] {
        assert!(after.contains(name), "{name} missing from:\n{after}");
    }
    let ok = r#"outcome="success""#;
    assert!(
        metric(&after, "codebeaker_invocations_total", &[ok])
            >= metric(&before, "codebeaker_invocations_total", &[ok]) + 1.0
    );
    assert!(
        metric(
            &after,
            "codebeaker_invocations_total",
            &[r#"outcome="runtime_error""#]
        ) >= 1.0
    );
    assert!(metric(&after, "codebeaker_rejections_total", &[r#"reason="auth""#]) >= 1.0);
    assert!(
        metric(
            &after,
            "codebeaker_pool_containers",
            &[r#"language="python""#, r#"state="total""#]
        ) >= 1.0
    );
    assert!(!after.contains(&app.key), "no secrets in metrics");
    app.stop().await;
}

#[tokio::test]
async fn openapi_document_is_valid_and_covers_every_route() {
    let app = spawn(&[Language::Python]).await;
    let r = app
        .client
        .get(format!("{}/openapi.json", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let doc: Value = r.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    let paths = doc["paths"].as_object().unwrap();
    let routes = [
        ("/v1/execute", "post"),
        ("/v1/execute/batch", "post"),
        ("/api/execute", "post"),
        ("/v1/executions", "post"),
        ("/v1/executions", "get"),
        ("/v1/executions/{id}", "get"),
        ("/v1/executions/{id}", "delete"),
        ("/v1/webhooks/dead", "get"),
        ("/v1/webhooks/secret", "get"),
        ("/v1/languages", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/v1/sessions", "post"),
        ("/v1/sessions", "get"),
        ("/v1/sessions/{id}", "get"),
        ("/v1/sessions/{id}", "delete"),
        ("/v1/sessions/{id}/commands", "post"),
    ];
    for (path, method) in routes {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} undocumented"
        );
    }
    let distinct: std::collections::BTreeSet<&str> = routes.iter().map(|r| r.0).collect();
    assert_eq!(
        paths.len(),
        distinct.len(),
        "documented paths that do not exist: {:?}",
        paths.keys()
    );
    // Every documented path is served (not 404; a made-up session id is rightly 404, so
    // those routes are checked for a JSON session_not_found instead of axum's bare 404).
    for (path, method) in routes {
        if path.contains("{id}") {
            let url = path.replace("{id}", "no-such-session");
            let req = match method {
                "post" => app.post(&url).json(&json!({"type": "list_directory"})),
                "delete" => app.delete(&url),
                _ => app.request(reqwest::Method::GET, &url),
            };
            let body: Value = req.send().await.unwrap().json().await.unwrap();
            let expected = if path.starts_with("/v1/executions") {
                "execution_not_found"
            } else {
                "session_not_found"
            };
            assert_eq!(body["error"]["kind"], expected, "{method} {path}");
            continue;
        }
        let req = match method {
            "post" => app
                .post(path)
                .json(&json!({"language": "python", "code": PY})),
            _ => app.request(reqwest::Method::GET, path),
        };
        let st = req.send().await.unwrap().status().as_u16();
        assert_ne!(st, 404, "{method} {path}");
    }
    // Referenced schemas exist.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in ["ExecuteRequest", "ExecuteResponse", "ErrorBody"] {
        assert!(schemas.contains_key(s), "{s}");
    }
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    app.stop().await;
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let app = spawn(&[Language::Python]).await;
    let r = app
        .post("/v1/execute")
        .header("x-request-id", "req-123")
        .json(&json!({"language": "python", "code": PY}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-123");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["requestId"], "req-123");
    let r = app.execute_as(None, json!({})).await;
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.headers()["x-request-id"].to_str().unwrap().len(),
        36,
        "generated uuid"
    );
    app.stop().await;
}
