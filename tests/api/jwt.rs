//! JWT callers: each token's tenant is its own (no shared fallback tenant), issuer and
//! audience are required, and each tenant's callbacks have their own signing secret.

use codebeaker_proto::Language;
use serde_json::{json, Value};
use std::time::Duration;

use crate::edge::{claims, hs256};
use crate::helpers::{settings, spawn_with, TestApp};
use crate::webhooks::{receiver, wait_for};

const MASTER: &str = "test-only-jwt-webhook-master";

/// A token of `sub` with no `cb.tenant` (its scopes are the configured defaults).
fn token(sub: &str, extra: Value) -> String {
    let mut c = claims(json!({"sub": sub, "cb": {}}));
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    hs256(&c)
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = app
        .client
        .request(method, format!("{}{path}", app.addr))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_token_that_names_no_tenant_is_refused() {
    let mut s = settings(&[Language::Python]);
    s.auth.jwt.tenant_claim = "org".into();
    let app = spawn_with(s).await;
    let body = json!({"language": "python", "code": "result = 1"});
    let (st, v) = call(
        &app,
        reqwest::Method::POST,
        "/v1/execute",
        &token("alice", json!({})),
        Some(body.clone()),
    )
    .await;
    assert_eq!(st, 401, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("names no tenant"),
        "{v}"
    );
    let (st, v) = call(
        &app,
        reqwest::Method::POST,
        "/v1/execute",
        &token("alice", json!({"org": "acme"})),
        Some(body),
    )
    .await;
    assert_eq!((st, &v["success"]), (200, &json!(true)), "{v}");
    app.stop().await;
}

#[tokio::test]
async fn jwt_tenants_are_apart_and_sign_callbacks_with_their_own_secret() {
    let mut s = settings(&[Language::Python]);
    s.auth.jwt.webhook_secret = Some(MASTER.into());
    s.webhooks.allow_private = true; // the receiver is on loopback
    let app = spawn_with(s).await;
    let (url, seen) = receiver(vec![]).await;
    let (alice, bob) = (token("alice", json!({})), token("bob", json!({})));
    let mut ids = Vec::new();
    for t in [&alice, &bob] {
        let (st, v) = call(
            &app,
            reqwest::Method::POST,
            "/v1/executions",
            t,
            Some(json!({"language": "python", "code": "result = 7", "callbackUrl": url})),
        )
        .await;
        assert_eq!(st, 202, "{v}");
        ids.push(v["executionId"].as_str().unwrap().to_string());
    }
    // Neither lists nor reads the other's execution.
    for (me, mine, theirs) in [(&alice, &ids[0], &ids[1]), (&bob, &ids[1], &ids[0])] {
        let (st, list) = call(&app, reqwest::Method::GET, "/v1/executions", me, None).await;
        assert_eq!(st, 200, "{list}");
        let listed: Vec<&str> = list["executions"]
            .as_array()
            .unwrap_or_else(|| panic!("{list}"))
            .iter()
            .filter_map(|e| e["executionId"].as_str())
            .collect();
        assert!(listed.contains(&mine.as_str()), "{list}");
        assert!(!listed.contains(&theirs.as_str()), "{list}");
        let path = format!("/v1/executions/{theirs}");
        let (st, v) = call(&app, reqwest::Method::GET, &path, me, None).await;
        assert_eq!(st, 404, "{v}");
    }
    wait_for("both callbacks", || seen.lock().unwrap().len() >= 2).await;
    let mut secrets = Vec::new();
    for (t, tenant) in [(&alice, "jwt:alice"), (&bob, "jwt:bob")] {
        let (st, v) = call(&app, reqwest::Method::GET, "/v1/webhooks/secret", t, None).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["tenant"], tenant, "{v}");
        let secret = v["secret"].as_str().unwrap().to_string();
        assert_eq!(
            secret,
            codebeaker::auth::jwt::derive_webhook_secret(MASTER, tenant),
            "the documented derivation"
        );
        assert_ne!(secret, MASTER);
        secrets.push(secret);
    }
    assert_ne!(secrets[0], secrets[1]);
    for (headers, body) in seen.lock().unwrap().iter() {
        let payload: Value = serde_json::from_str(body).unwrap();
        let who = ids
            .iter()
            .position(|id| payload["executionId"].as_str() == Some(id.as_str()))
            .unwrap();
        let ts: i64 = headers["x-codebeaker-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let signature = headers["x-codebeaker-signature"].to_str().unwrap();
        assert_eq!(
            signature,
            codebeaker::webhooks::sign(&secrets[who], ts, body),
            "signed with its own tenant's secret"
        );
        assert_ne!(
            signature,
            codebeaker::webhooks::sign(&secrets[1 - who], ts, body)
        );
    }
    // A moment before shutdown, as the test always had; it waits for no condition.
    tokio::time::sleep(Duration::from_millis(10)).await;
    app.stop().await;
}

#[tokio::test]
async fn the_gateway_refuses_to_start_with_jwt_but_no_issuer_or_audience() {
    for missing in ["issuer", "audience"] {
        let mut s = settings(&[Language::Python]);
        match missing {
            "issuer" => s.auth.jwt.issuer = None,
            _ => s.auth.jwt.audience = None,
        }
        let e =
            codebeaker::startup::Application::build(s, tokio_util::sync::CancellationToken::new())
                .await
                .err()
                .expect("refused");
        assert!(
            e.to_string().contains("issuer and audience are required"),
            "{missing}: {e}"
        );
    }
}
