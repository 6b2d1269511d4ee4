//! Test harness: start the real gateway on port 0 against the real Docker engine.

use codebeaker::config::Settings;
use codebeaker::startup::Application;
use codebeaker_proto::Language;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub addr: String,
    pub client: reqwest::Client,
    pub instance: String,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Settings for tests: only the given languages, one warm container each, small caps.
pub fn settings(languages: &[Language]) -> Settings {
    let mut s = Settings::default();
    s.server.bind = "127.0.0.1:0".parse().unwrap();
    s.server.shutdown_grace_ms = 2_000;
    s.pool.instance = format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    s.pool.agent_bundle = concat!(env!("CARGO_MANIFEST_DIR"), "/target/agent-bundle").into();
    s.pool.warm_interval_ms = 100;
    for (l, ls) in s.pool.languages.iter_mut() {
        ls.enabled = languages.contains(l);
        ls.min_idle = 1;
        ls.max_size = 2;
    }
    s
}

/// Starts a gateway with `settings` and waits until its pools are warm.
pub async fn spawn_with(settings: Settings) -> TestApp {
    codebeaker::telemetry::init_with(settings.server.log_format, "warn");
    assert!(
        settings
            .pool
            .agent_bundle
            .join("codebeaker-agent")
            .is_file(),
        "the agent bundle is missing: run `make agent` (or `make test`, which builds it)"
    );
    let instance = settings.pool.instance.clone();
    let shutdown = CancellationToken::new();
    let app = match Application::build(settings, shutdown.clone()).await {
        Ok(app) => app,
        Err(e) => panic!(
            "These integration tests need a running Docker engine and could not use one: {e}"
        ),
    };
    let pools = app.pools();
    let addr = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run());
    if !pools.wait_warm(Duration::from_secs(120)).await {
        panic!(
            "pools did not warm within 120 s (are the runtime images built? run `make images`): {:?}",
            pools.status()
        );
    }
    TestApp {
        addr,
        client: reqwest::Client::new(),
        instance,
        shutdown,
        server: Some(server),
    }
}

pub async fn spawn(languages: &[Language]) -> TestApp {
    spawn_with(settings(languages)).await
}

impl TestApp {
    pub async fn post_raw(&self, body: &str, content_type: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/execute", self.addr))
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .expect("request failed")
    }

    /// POST /v1/execute; returns status and JSON body.
    pub async fn execute(&self, body: Value) -> (u16, Value) {
        let r = self.post_raw(&body.to_string(), "application/json").await;
        let status = r.status().as_u16();
        (status, r.json().await.expect("response is not JSON"))
    }

    /// Runs `code` and asserts the request itself succeeded (HTTP 200).
    pub async fn run(&self, language: &str, code: &str, input: Value) -> Value {
        let (status, body) = self
            .execute(json!({"language": language, "code": code, "input": input}))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.addr))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Stops the gateway the way SIGTERM would and waits for it to clean up.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
    }
}

impl Drop for TestApp {
    /// Even when a test panics, remove every container it created.
    fn drop(&mut self) {
        self.shutdown.cancel();
        let instance = self.instance.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(docker) = codebeaker_pool::connect().await {
                    let _ = codebeaker_pool::remove_instance(&docker, &instance).await;
                }
            });
        })
        .join();
    }
}

/// Number of containers carrying this instance label.
pub async fn count_containers(instance: &str) -> usize {
    use bollard::query_parameters::ListContainersOptionsBuilder;
    let docker = codebeaker_pool::connect().await.unwrap();
    let filters = std::collections::HashMap::from([(
        "label".to_string(),
        vec![format!("{}={instance}", codebeaker_pool::LABEL_INSTANCE)],
    )]);
    docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap()
        .len()
}
