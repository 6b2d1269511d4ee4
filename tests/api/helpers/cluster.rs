//! Several gateways on one Redis (`[shared]`): a real `redis-server` started by the test,
//! and gateway processes (different instance labels, the same Docker engine, the same keys
//! file) pointed at it.

use codebeaker::domain::{Quota, Scope};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::api::Api;
use super::eventually::eventually;
use super::process::{start_gateway_process, wait_ready};
use super::{add_key, remove_instance};

/// A `redis-server` on a free port, without persistence, killed on drop.
pub struct Redis {
    child: Child,
    pub port: u16,
}

impl Redis {
    /// Starts one on `port` (or a free one) and waits until it accepts connections.
    pub async fn start(port: Option<u16>) -> Redis {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect(
                "redis-server is not installed: the replica tests need it (apt-get install redis-server)",
            );
        eventually(
            Duration::from_secs(10),
            "redis-server to accept connections",
            || async { std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() },
        )
        .await;
        Redis { child, port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory with one keys file, one Redis and one key prefix, for gateway processes.
pub struct Cluster {
    pub dir: PathBuf,
    pub keys: PathBuf,
    pub redis_url: String,
    pub prefix: String,
    client: reqwest::Client,
}

/// What a replica of the replica tests runs with (on top of the cluster's own settings).
const REPLICA_ENV: [(&str, &str); 8] = [
    ("RUST_LOG", "info"),
    ("CODEBEAKER_EXECUTIONS__WORKERS", "2"),
    ("CODEBEAKER_EXECUTIONS__POLL_INTERVAL_MS", "50"),
    ("CODEBEAKER_POOL__LANGUAGES__PYTHON__MIN_IDLE", "2"),
    ("CODEBEAKER_POOL__LANGUAGES__PYTHON__MAX_SIZE", "3"),
    ("CODEBEAKER_SHARED__HEARTBEAT_MS", "300"),
    ("CODEBEAKER_SHARED__REPLICA_TTL_MS", "1000"),
    ("CODEBEAKER_SHARED__VISIBILITY_TIMEOUT_MS", "3000"),
];

impl Cluster {
    pub fn new(redis: &Redis) -> Cluster {
        let dir =
            std::env::temp_dir().join(format!("cb-replicas-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Cluster {
            keys: dir.join("keys.toml"),
            dir,
            redis_url: redis.url(),
            prefix: format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            client: reqwest::Client::new(),
        }
    }

    /// Adds an all-scopes key of `tenant-a` with `quota` to the cluster's keys file.
    pub fn key(&self, quota: Quota) -> String {
        add_key(&self.keys, vec![Scope::Admin], quota)
    }

    /// Starts a replica with the replica tests' settings.
    pub fn start(&self, instance: &str) -> Replica {
        self.start_with(instance, &REPLICA_ENV)
    }

    /// Starts a gateway process labelled `instance` with the cluster's keys file, Redis and
    /// prefix, its own database, and `env` on top.
    pub fn start_with(&self, instance: &str, env: &[(&str, &str)]) -> Replica {
        let db = self.dir.join(format!("{instance}.db"));
        let mut all: Vec<(&str, &OsStr)> = vec![
            ("CODEBEAKER_AUTH__KEYS_FILE", self.keys.as_os_str()),
            ("CODEBEAKER_EXECUTIONS__DATABASE", db.as_os_str()),
            ("CODEBEAKER_POOL__INSTANCE", instance.as_ref()),
            ("CODEBEAKER_SHARED__REDIS_URL", self.redis_url.as_ref()),
            ("CODEBEAKER_SHARED__PREFIX", self.prefix.as_ref()),
        ];
        all.extend(env.iter().map(|(k, v)| (*k, OsStr::new(v))));
        let gw = start_gateway_process(&all);
        let base = gw.base();
        let (child, _) = gw.drain();
        Replica {
            child,
            base,
            instance: instance.to_string(),
            client: self.client.clone(),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One gateway process of a cluster.
pub struct Replica {
    child: Child,
    pub base: String,
    pub instance: String,
    client: reqwest::Client,
}

impl Replica {
    /// Requests to this replica with `key`.
    pub fn api(&self, key: &str) -> Api {
        Api::new(&self.client, &self.base, key)
    }

    /// Waits (up to 120 s) until `/readyz` answers 200.
    pub async fn ready(&self) {
        wait_ready(&self.client, &self.base, Duration::from_secs(120)).await;
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills it and removes its containers.
    pub async fn stop(mut self) {
        self.kill();
        remove_instance(&self.instance).await;
    }
}

/// An instance label for a replica named `name`, unique to this run.
pub fn instance(name: &str) -> String {
    format!(
        "rep{name}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
}
