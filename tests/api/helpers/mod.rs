//! Test harness: start the real gateway on port 0 against the real Docker engine.
//!
//! - `TestApp` (here): an in-process gateway, its key, and requests that carry the key;
//! - `api`: HTTP to one gateway with one key (`Api`), for `TestApp` and gateway processes;
//! - `rpc`: the WebSocket JSON-RPC client;
//! - `eventually`: polling for a condition, with one timeout and a message naming it;
//! - `process`: the gateway binary as a child process;
//! - `cluster`: `redis-server` and gateway processes sharing it.

mod api;
mod cluster;
mod eventually;
mod process;
mod rpc;

pub use api::Api;
pub use cluster::{instance, Cluster, Redis, Replica};
pub use eventually::{eventually, eventually_every};
pub use process::{start_gateway_process, wait_ready};
pub use rpc::Rpc;

use codebeaker::auth::keys;
use codebeaker::config::Settings;
use codebeaker::domain::{Quota, Scope};
use codebeaker::startup::Application;
use codebeaker_proto::Language;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub addr: String,
    pub client: reqwest::Client,
    pub instance: String,
    /// A key with every scope and generous limits, sent by the helpers below.
    pub key: String,
    pub keys_file: PathBuf,
    pub metrics_port: Option<u16>,
    pub sessions: std::sync::Arc<codebeaker::sessions::Sessions>,
    auth: std::sync::Arc<codebeaker::auth::Authenticator>,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Remove every container of this instance when dropped (off for a restart hand-off).
    cleanup_on_drop: bool,
}

/// Settings for tests: only the given languages, one warm container each, small caps.
pub fn settings(languages: &[Language]) -> Settings {
    let mut s = Settings::default();
    s.server.bind = "127.0.0.1:0".parse().unwrap();
    s.server.shutdown_grace_ms = std::time::Duration::from_millis(2_000);
    s.pool.instance = format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    s.pool.agent_bundle = concat!(env!("CARGO_MANIFEST_DIR"), "/target/agent-bundle").into();
    s.pool.warm_interval_ms = std::time::Duration::from_millis(100);
    // Only the languages the test names are served (an empty list would serve all).
    assert!(
        !languages.is_empty(),
        "a test gateway serves at least one language"
    );
    s.languages.dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("languages");
    s.languages.enabled = languages.iter().map(|l| l.name().to_string()).collect();
    s.pool.languages = languages
        .iter()
        .map(|l| {
            let ls = codebeaker_pool::LanguageSettings {
                min_idle: 1,
                max_size: 2,
                ..Default::default()
            };
            (l.clone(), ls)
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("codebeaker-{}", s.pool.instance));
    std::fs::create_dir_all(&dir).unwrap();
    s.auth.keys_file = Some(dir.join("keys.toml"));
    s.executions.database = dir.join("executions.db");
    // Each test starts with an empty shared compile cache, so cache hits are its own.
    s.pool.compile_cache_dir = dir.join("compile-cache");
    s.executions.poll_interval_ms = std::time::Duration::from_millis(50);
    s.auth.reload_interval_ms = std::time::Duration::from_millis(100);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    s.auth.jwt.hs256_secret = Some(JWT_HS256_SECRET.into());
    s.auth.jwt.rs256_public_keys = vec![fixtures.join("jwt-rs256-public.pem")];
    s.auth.jwt.es256_public_keys = vec![fixtures.join("jwt-es256-public.pem")];
    s.auth.jwt.issuer = Some(JWT_ISSUER.into());
    s.auth.jwt.audience = Some(JWT_AUDIENCE.into());
    s.auth.jwt.leeway_secs = std::time::Duration::from_secs(5);
    s
}

pub const JWT_HS256_SECRET: &str = "test-only-hs256-secret-0123456789abcdef";
pub const JWT_ISSUER: &str = "codebeaker-tests";
pub const JWT_AUDIENCE: &str = "codebeaker-api";

/// Adds a key of tenant `tenant-a` to `keys_file` and returns its secret form.
pub fn add_key(keys_file: &Path, scopes: Vec<Scope>, limits: Quota) -> String {
    add_tenant_key(keys_file, "tenant-a", scopes, limits)
}

/// Adds a key of `tenant` to `keys_file` and returns its secret form.
pub fn add_tenant_key(keys_file: &Path, tenant: &str, scopes: Vec<Scope>, limits: Quota) -> String {
    let (key, record) = keys::generate("test", tenant, scopes, limits);
    keys::append_to_file(keys_file, record).unwrap();
    key
}

/// Marks `key` revoked in the keys file (as an operator would, by editing the file) and
/// reloads it, as the file watcher or SIGHUP would.
pub async fn revoke_key(app: &TestApp, key: &str) {
    let keys_file = app.keys_file.as_path();
    let id = key.split('_').nth(1).unwrap();
    let mut file: toml::Table =
        toml::from_str(&std::fs::read_to_string(keys_file).unwrap()).unwrap();
    for k in file["keys"].as_array_mut().unwrap() {
        if k["id"].as_str() == Some(id) {
            k.as_table_mut()
                .unwrap()
                .insert("revoked".into(), toml::Value::Boolean(true));
        }
    }
    std::fs::write(keys_file, toml::to_string(&file).unwrap()).unwrap();
    app.reload_keys();
}

/// Limits that never get in a test's way.
pub fn generous() -> Quota {
    Quota {
        rate_per_second: 10_000,
        burst: 10_000,
        max_concurrent: 1_000,
        max_sessions: 1_000,
        ..Quota::default()
    }
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
    let keys_file = settings
        .auth
        .keys_file
        .clone()
        .expect("tests use a keys file");
    let key = add_key(&keys_file, vec![Scope::Admin], generous());
    let shutdown = CancellationToken::new();
    let app = match Application::build(settings, shutdown.clone()).await {
        Ok(app) => app,
        Err(e) => panic!(
            "These integration tests need a running Docker engine and could not use one: {e}"
        ),
    };
    let pools = app.pools();
    let sessions = app.sessions();
    let auth = app.auth();
    let metrics_port = app.metrics_port();
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
        key,
        keys_file,
        metrics_port,
        sessions,
        auth,
        shutdown,
        server: Some(server),
        cleanup_on_drop: true,
    }
}

pub async fn spawn(languages: &[Language]) -> TestApp {
    spawn_with(settings(languages)).await
}

impl TestApp {
    /// Reloads the keys file now (what the file watcher and SIGHUP do), so tests need not
    /// wait for the watcher's next poll.
    pub fn reload_keys(&self) {
        self.auth.keys.reload().expect("the keys file reloads");
    }

    /// Adds a key and reloads the keys file.
    pub fn add_key(&self, scopes: Vec<Scope>, quota: Quota) -> String {
        let key = add_key(&self.keys_file, scopes, quota);
        self.reload_keys();
        key
    }

    /// Adds an all-scopes key of `tenant` and reloads the keys file.
    pub fn add_tenant_key(&self, tenant: &str) -> String {
        let key = add_tenant_key(&self.keys_file, tenant, vec![Scope::Admin], generous());
        self.reload_keys();
        key
    }

    /// Starts shutting the gateway down (as SIGTERM does) without waiting for it.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Requests to this gateway with its all-scopes key.
    pub fn api(&self) -> Api {
        Api::new(&self.client, &self.addr, &self.key)
    }

    /// Requests to this gateway with another key.
    pub fn api_as(&self, key: &str) -> Api {
        Api::new(&self.client, &self.addr, key)
    }

    /// `method addr+path` with the key.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.api().request(method, path)
    }

    /// `POST addr+path` with the key.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.api().post(path)
    }

    /// `DELETE addr+path` with the key.
    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.api().delete(path)
    }

    /// GET with the key: status and JSON body (null if the body is not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.api().get(path).await
    }

    /// Polls until the execution is final (or 90 s pass).
    pub async fn wait_final(&self, id: &str) -> Value {
        self.api().wait_final(id).await
    }

    /// POST /v1/execute with `body` as it is, of `content_type`.
    pub async fn post_raw(&self, body: &str, content_type: &str) -> reqwest::Response {
        self.post("/v1/execute")
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .expect("request failed")
    }

    /// Creates a session over REST with `body` (asserting 201) and returns its id.
    pub async fn create_session(&self, body: Value) -> String {
        let r = self
            .post("/v1/sessions")
            .json(&body)
            .send()
            .await
            .expect("request failed");
        assert_eq!(r.status(), 201, "a session is created");
        let session: Value = r.json().await.unwrap();
        session["sessionId"].as_str().unwrap().to_string()
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

    /// POST /v1/execute with the given credential header (or none), for the tests of
    /// credentials themselves.
    pub async fn execute_as(&self, header: Option<(&str, &str)>, body: Value) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}/v1/execute", self.addr))
            .json(&body);
        if let Some((k, v)) = header {
            req = req.header(k, v);
        }
        req.send().await.expect("request failed")
    }

    /// Stops the gateway as SIGTERM would, leaving live sessions' containers running for the
    /// next gateway process with the same instance name.
    pub async fn stop_for_restart(mut self) {
        self.cleanup_on_drop = false;
        self.shutdown.cancel();
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
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
        if !self.cleanup_on_drop {
            return;
        }
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
    let docker = codebeaker_pool::connect().await.unwrap();
    codebeaker_pool::list_instance(&docker, instance)
        .await
        .unwrap()
        .len()
}

/// The Docker engine itself, for tests that look behind the gateway's back (the pool
/// crate keeps its own engine handle to itself).
pub async fn docker() -> bollard::Docker {
    bollard::Docker::connect_with_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

/// Removes every container of `instance` (after a test that ran the gateway binary).
pub async fn remove_instance(instance: &str) {
    let docker = codebeaker_pool::connect().await.unwrap();
    let _ = codebeaker_pool::remove_instance(&docker, instance).await;
}
