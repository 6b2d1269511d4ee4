//! Tenant affinity: a container that served one tenant is never handed to another, and
//! a tenant at its share of a pool queues for its own containers.

use codebeaker_proto::Language;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

use crate::helpers::{eventually_every, settings, spawn_with, TestApp};

async fn run_as(app: &TestApp, key: &str, code: &str) -> Value {
    let r = app
        .api_as(key)
        .post("/v1/execute")
        .json(&json!({"language": "python", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], true, "{body}");
    body
}

fn container(body: &Value) -> String {
    body["containerId"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn two_tenants_alternating_never_share_a_container() {
    let mut s = settings(&[Language::Python]);
    let py = s.pool.languages.get_mut(&Language::Python).unwrap();
    py.max_size = 4;
    let app = spawn_with(s).await;
    let (a, b) = (app.add_tenant_key("alpha"), app.add_tenant_key("beta"));
    let (mut seen_a, mut seen_b) = (HashSet::new(), HashSet::new());
    for _ in 0..6 {
        seen_a.insert(container(&run_as(&app, &a, "result = 1").await));
        seen_b.insert(container(&run_as(&app, &b, "result = 2").await));
    }
    assert!(
        seen_a.is_disjoint(&seen_b),
        "alpha {seen_a:?} and beta {seen_b:?} shared a container"
    );
    // Each tenant keeps the container it claimed (one at a time, one container).
    assert_eq!(seen_a.len(), 1, "{seen_a:?}");
    assert_eq!(seen_b.len(), 1, "{seen_b:?}");
    let (_, langs) = app.get("/v1/languages").await;
    let pool = &langs[0]["pool"];
    assert_eq!(pool["tenants"], 2, "{pool}");
    app.stop().await;
}

#[tokio::test]
async fn without_tenant_affinity_an_idle_container_serves_any_tenant() {
    let mut s = settings(&[Language::Python]);
    s.pool.tenant_affinity = false;
    let py = s.pool.languages.get_mut(&Language::Python).unwrap();
    py.max_size = 1;
    let app = spawn_with(s).await;
    let (a, b) = (app.add_tenant_key("alpha"), app.add_tenant_key("beta"));
    let first = container(&run_as(&app, &a, "result = 1").await);
    let second = container(&run_as(&app, &b, "result = 2").await);
    assert_eq!(first, second, "one container, shared in turn");
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_at_its_share_queues_for_its_own_container_and_others_are_served() {
    let mut s = settings(&[Language::Python]);
    s.pool.tenant_max_share = 0.5;
    s.pool.queue_timeout_ms = std::time::Duration::from_millis(10_000);
    let py = s.pool.languages.get_mut(&Language::Python).unwrap();
    py.max_size = 2;
    let app = spawn_with(s).await;
    let (a, b) = (app.add_tenant_key("alpha"), app.add_tenant_key("beta"));
    let slow = "import time\ntime.sleep(1.5)\nresult = 1";
    let (first, second) = tokio::join!(run_as(&app, &a, slow), async {
        // A sleep: nothing outside the gateway shows reliably that the first call holds
        // its container (waiting for `/readyz` to count a busy one was tried: too early).
        tokio::time::sleep(Duration::from_millis(300)).await;
        run_as(&app, &a, slow).await
    });
    // Alpha's share is one container: its second call waited for it.
    assert_eq!(container(&first), container(&second));
    assert!(second["queueMs"].as_u64().unwrap() > 0, "{second}");

    // While alpha holds its share, beta still gets a container of its own.
    let (busy, other) = tokio::join!(run_as(&app, &a, slow), async {
        // A sleep: nothing outside the gateway shows reliably that the first call holds
        // its container (waiting for `/readyz` to count a busy one was tried: too early).
        tokio::time::sleep(Duration::from_millis(300)).await;
        run_as(&app, &b, "result = 2").await
    });
    assert_ne!(container(&busy), container(&other));
    assert_eq!(container(&busy), container(&first));
    app.stop().await;
}

#[tokio::test]
async fn a_tenants_idle_containers_are_retired_after_the_idle_time() {
    let mut s = settings(&[Language::Python]);
    s.pool.tenant_idle_secs = std::time::Duration::from_secs(1);
    let app = spawn_with(s).await;
    let a = app.add_tenant_key("alpha");
    run_as(&app, &a, "result = 1").await;
    eventually_every(
        Duration::from_secs(20),
        Duration::from_millis(200),
        "the idle container to be retired",
        || async {
            let (_, langs) = app.get("/v1/languages").await;
            let pool = langs[0]["pool"].clone();
            match pool["tenants"] == 0 && pool["lifecycle"]["retiredIdle"].as_u64().unwrap() >= 1 {
                true => Ok(()),
                false => Err(pool.to_string()),
            }
        },
    )
    .await;
    app.stop().await;
}
