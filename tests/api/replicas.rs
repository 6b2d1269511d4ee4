//! Several gateway replicas sharing one Redis (`[shared]`): two real gateway processes
//! (different instance labels, the same Docker engine, the same keys file) and a real
//! `redis-server` started by the test.

use codebeaker::domain::{Quota, Scope};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{add_key, generous, get, remove_instance, wait_final};

/// A `redis-server` on a free port, without persistence, killed on drop.
pub(crate) struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    pub(crate) fn start(port: Option<u16>) -> Redis {
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One replica: the gateway binary with the shared Redis.
struct Replica {
    child: Child,
    base: String,
    instance: String,
}

struct Cluster {
    dir: PathBuf,
    keys: PathBuf,
    redis_url: String,
    prefix: String,
}

impl Cluster {
    fn new(redis: &Redis) -> Cluster {
        let dir =
            std::env::temp_dir().join(format!("cb-replicas-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Cluster {
            keys: dir.join("keys.toml"),
            dir,
            redis_url: redis.url(),
            prefix: format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        }
    }

    fn key(&self, quota: Quota) -> String {
        add_key(&self.keys, vec![Scope::Admin], quota)
    }

    fn start(&self, instance: &str) -> Replica {
        let db = self.dir.join(format!("{instance}.db"));
        let gw = crate::helpers::start_gateway_process(&[
            ("RUST_LOG", "info".as_ref()),
            ("CODEBEAKER_AUTH__KEYS_FILE", self.keys.as_os_str()),
            ("CODEBEAKER_EXECUTIONS__DATABASE", db.as_os_str()),
            ("CODEBEAKER_EXECUTIONS__WORKERS", "2".as_ref()),
            ("CODEBEAKER_EXECUTIONS__POLL_INTERVAL_MS", "50".as_ref()),
            ("CODEBEAKER_POOL__INSTANCE", instance.as_ref()),
            ("CODEBEAKER_POOL__LANGUAGES__PYTHON__MIN_IDLE", "2".as_ref()),
            ("CODEBEAKER_POOL__LANGUAGES__PYTHON__MAX_SIZE", "3".as_ref()),
            ("CODEBEAKER_SHARED__REDIS_URL", self.redis_url.as_ref()),
            ("CODEBEAKER_SHARED__PREFIX", self.prefix.as_ref()),
            ("CODEBEAKER_SHARED__HEARTBEAT_MS", "300".as_ref()),
            ("CODEBEAKER_SHARED__REPLICA_TTL_MS", "1000".as_ref()),
            ("CODEBEAKER_SHARED__VISIBILITY_TIMEOUT_MS", "3000".as_ref()),
        ]);
        let lines = gw.lines;
        std::thread::spawn(move || while lines.recv().is_ok() {});
        Replica {
            child: gw.child,
            base: format!("http://127.0.0.1:{}", gw.port),
            instance: instance.to_string(),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Replica {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn stop(mut self) {
        self.kill();
        remove_instance(&self.instance).await;
    }
}

fn instance(name: &str) -> String {
    format!(
        "rep{name}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client.request(method, url).header("x-api-key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "{base} not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn work_queued_on_either_replica_survives_the_other_being_killed() {
    let redis = Redis::start(None);
    let cluster = Cluster::new(&redis);
    let key = cluster.key(generous());
    let client = reqwest::Client::new();
    let (ia, ib) = (instance("a"), instance("b"));
    let mut a = cluster.start(&ia);
    let b = cluster.start(&ib);
    wait_ready(&client, &a.base).await;
    wait_ready(&client, &b.base).await;

    let mut ids = Vec::new();
    for i in 0..200 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let (st, v) = call(
            &client,
            reqwest::Method::POST,
            format!("{base}/v1/executions"),
            &key,
            Some(json!({"language": "python", "code": "import time\ntime.sleep(0.1)\nresult = input_data['i']", "input": {"i": i}})),
        )
        .await;
        assert_eq!(st, 202, "{v}");
        ids.push(v["executionId"].as_str().unwrap().to_string());
    }
    // Mid-way: A dies with executions in flight (no shutdown, no cleanup).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, done) = get(
        &client,
        &b.base,
        &key,
        "/v1/executions?status=completed&limit=1000",
    )
    .await;
    a.kill();
    let done_before_kill = done["count"].as_u64().unwrap();
    assert!(
        done_before_kill < 150,
        "A must die mid-way: {done_before_kill} were done"
    );
    for (i, id) in ids.iter().enumerate() {
        let v = wait_final(&client, &b.base, &key, id).await;
        assert_eq!(v["status"], "completed", "{v}");
        assert_eq!(v["result"]["output"], i, "{v}");
    }
    // At least once: only what A was running when it died ran again (A had 2 workers).
    let attempts = |v: &Value| v["attempts"].as_i64().unwrap_or(0);
    let mut twice = 0;
    let mut seen = Vec::new();
    for id in &ids {
        let (_, v) = get(&client, &b.base, &key, &format!("/v1/executions/{id}")).await;
        assert!((1..=2).contains(&attempts(&v)), "{v}");
        twice += (attempts(&v) == 2) as usize;
        seen.push((id.clone(), attempts(&v), v["completedAt"].clone()));
    }
    assert!(
        twice <= 2,
        "{twice} executions ran twice; A could only have been running 2"
    );
    eprintln!("{done_before_kill} done when A was killed; {twice} ran twice (A's in-flight work, taken over by B)");
    // A comes back: nothing that finished runs again.
    let a = cluster.start(&ia);
    wait_ready(&client, &a.base).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    for (id, n, finished) in seen {
        let (_, v) = get(&client, &a.base, &key, &format!("/v1/executions/{id}")).await;
        assert_eq!(attempts(&v), n, "{v}");
        assert_eq!(v["completedAt"], finished, "{v}");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_rate_limit_holds_across_replicas() {
    let redis = Redis::start(None);
    let cluster = Cluster::new(&redis);
    let rate = 20;
    let key = cluster.key(Quota {
        rate_per_second: rate,
        burst: 1,
        ..generous()
    });
    let client = reqwest::Client::new();
    let ia = instance("a");
    let a = cluster.start(&ia);
    let b = cluster.start(&instance("b"));
    wait_ready(&client, &a.base).await;
    wait_ready(&client, &b.base).await;
    // Hammer both for 3 s with 8 callers each.
    let window = Duration::from_secs(3);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for base in [a.base.clone(), b.base.clone()] {
        for _ in 0..8 {
            let (client, base, key) = (client.clone(), base.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut limited) = (0u32, 0u32);
                while started.elapsed() < window {
                    let r = client
                        .get(format!("{base}/v1/languages"))
                        .header("x-api-key", &key)
                        .send()
                        .await
                        .unwrap();
                    match r.status().as_u16() {
                        200 => ok += 1,
                        429 => limited += 1,
                        s => panic!("unexpected {s}"),
                    }
                }
                (ok, limited)
            }));
        }
    }
    let (mut ok, mut limited) = (0, 0);
    for t in tasks {
        let (o, l) = t.await.unwrap();
        ok += o;
        limited += l;
    }
    let expected = rate as f64 * window.as_secs_f64();
    eprintln!("{ok} admitted and {limited} refused in {window:?} at {rate}/s through two replicas");
    assert!(limited > 0);
    assert!(
        (ok as f64) >= expected * 0.8 && (ok as f64) <= expected * 1.2 + 1.0,
        "{ok} admitted in {window:?} at {rate}/s across two replicas (expected ~{expected}; {limited} refused)"
    );
    // A second live process with A's instance label is refused: it would take A's queue
    // claims and sessions for its own.
    let out = Command::new(env!("CARGO_BIN_EXE_codebeaker"))
        .arg("serve")
        .env("CODEBEAKER_SERVER__BIND", "127.0.0.1:0")
        .env("CODEBEAKER_AUTH__KEYS_FILE", &cluster.keys)
        .env(
            "CODEBEAKER_EXECUTIONS__DATABASE",
            cluster.dir.join("twin.db"),
        )
        .env("CODEBEAKER_POOL__INSTANCE", &ia)
        .env("CODEBEAKER_POOL__LANGUAGES__JAVASCRIPT__ENABLED", "false")
        .env("CODEBEAKER_POOL__LANGUAGES__GO__ENABLED", "false")
        .env("CODEBEAKER_POOL__LANGUAGES__CSHARP__ENABLED", "false")
        .env(
            "CODEBEAKER_POOL__AGENT_BUNDLE",
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/agent-bundle"),
        )
        .env("CODEBEAKER_SHARED__REDIS_URL", &cluster.redis_url)
        .env("CODEBEAKER_SHARED__PREFIX", &cluster.prefix)
        .env("CODEBEAKER_SHARED__HEARTBEAT_MS", "300")
        .env("CODEBEAKER_SHARED__REPLICA_TTL_MS", "1000")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(64), "{text}");
    assert!(text.contains("another live replica"), "{text}");
    // ... and it touched nothing of A's: A still serves from its warm containers.
    let (st, r) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/execute", a.base),
        &key,
        Some(json!({"language": "python", "code": "result = 2"})),
    )
    .await;
    assert!(st == 200 || st == 429, "{st} {r}");
    a.stop().await;
    b.stop().await;
}

async fn command(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
    cmd: Value,
) -> (u16, Value) {
    call(
        client,
        reqwest::Method::POST,
        format!("{base}/v1/sessions/{id}/commands"),
        key,
        Some(cmd),
    )
    .await
}

#[tokio::test]
async fn a_session_follows_its_replica_from_anywhere() {
    let redis = Redis::start(None);
    let cluster = Cluster::new(&redis);
    let key = cluster.key(generous());
    let client = reqwest::Client::new();
    let ia = instance("a");
    let mut a = cluster.start(&ia);
    let b = cluster.start(&instance("b"));
    wait_ready(&client, &a.base).await;
    wait_ready(&client, &b.base).await;

    let (st, s) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/sessions", a.base),
        &key,
        Some(json!({"language": "python"})),
    )
    .await;
    assert_eq!(st, 201, "{s}");
    let id = s["sessionId"].as_str().unwrap().to_string();
    assert!(
        id.starts_with(&format!("{ia}.")),
        "the id names its replica: {id}"
    );
    let (st, r) = command(
        &client,
        &a.base,
        &key,
        &id,
        json!({"type": "write_file", "path": "/workspace/note.txt", "content": "from A"}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    // Reads the session's note through B (REST, forwarded to the owner).
    let read_note = || {
        command(
            &client,
            &b.base,
            &key,
            &id,
            json!({"type": "read_file", "path": "/workspace/note.txt"}),
        )
    };
    // Through B: the same session, the same files (REST, forwarded).
    let (st, r) = read_note().await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["result"]["content"], "from A", "{r}");
    let (st, r) = get(&client, &b.base, &key, &format!("/v1/sessions/{id}")).await;
    assert_eq!(st, 200, "{r}");
    // And over B's WebSocket (JSON-RPC, the one call forwarded).
    let ws_url = format!(
        "{}/ws/jsonrpc?api_key={key}",
        b.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let call_rpc = json!({"jsonrpc": "2.0", "id": 1, "method": "session.execute", "params": {"sessionId": id, "command": {"type": "execute_shell", "commandName": "cat", "args": ["/workspace/note.txt"]}}});
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        call_rpc.to_string().into(),
    ))
    .await
    .unwrap();
    let reply: Value = loop {
        match ws.next().await.unwrap().unwrap() {
            tokio_tungstenite::tungstenite::Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v.get("id") == Some(&json!(1)) {
                    break v;
                }
            }
            _ => continue,
        }
    };
    assert_eq!(reply["result"]["result"]["stdout"], "from A", "{reply}");

    // A down: B says the session is unavailable, not that it does not exist.
    a.kill();
    let (st, r) = read_note().await;
    assert_eq!(st, 503, "{r}");
    assert_eq!(r["error"]["kind"], "session_unavailable", "{r}");
    // A back (it re-adopts its sessions): the session works through B again.
    let a = cluster.start(&ia);
    wait_ready(&client, &a.base).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (st, r) = read_note().await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["result"]["content"], "from A", "{r}");
    let (st, _) = call(
        &client,
        reqwest::Method::DELETE,
        format!("{}/v1/sessions/{id}", b.base),
        &key,
        None,
    )
    .await;
    assert_eq!(st, 200);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn redis_unreachable_at_startup_is_exit_64_and_lost_at_run_time_is_503_then_recovery() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_codebeaker"))
        .arg("serve")
        .env("CODEBEAKER_SERVER__BIND", "127.0.0.1:0")
        .env(
            "CODEBEAKER_SHARED__REDIS_URL",
            format!("redis://127.0.0.1:{port}"),
        )
        .env("CODEBEAKER_SHARED__COMMAND_TIMEOUT_MS", "300")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("shared.redis_url"), "{text}");

    let redis = Redis::start(None);
    let cluster = Cluster::new(&redis);
    let key = cluster.key(Quota {
        rate_per_second: 1000,
        burst: 1000,
        ..generous()
    });
    let client = reqwest::Client::new();
    let a = cluster.start(&instance("a"));
    wait_ready(&client, &a.base).await;
    let exec = json!({"language": "python", "code": "result = 1"});
    let (st, _) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/execute", a.base),
        &key,
        Some(exec.clone()),
    )
    .await;
    assert_eq!(st, 200);
    let port = redis.port;
    drop(redis);
    let (st, r) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/execute", a.base),
        &key,
        Some(exec.clone()),
    )
    .await;
    assert_eq!(st, 503, "{r}");
    assert_eq!(r["error"]["kind"], "shared_state_unavailable", "{r}");
    let health = client
        .get(format!("{}/healthz", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the gateway stays up");
    let ready = client
        .get(format!("{}/readyz", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "not ready without Redis");
    // Redis returns (empty: it kept nothing): requests work again.
    let _redis = Redis::start(Some(port));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (st, r) = call(
            &client,
            reqwest::Method::POST,
            format!("{}/v1/execute", a.base),
            &key,
            Some(exec.clone()),
        )
        .await;
        if st == 200 {
            assert_eq!(r["output"], 1);
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {st} {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (st, v) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/executions", a.base),
        &key,
        Some(exec),
    )
    .await;
    assert_eq!(st, 202, "the queue works again: {v}");
    a.stop().await;
}

/// `max_sessions` and `GET /v1/sessions` are per replica (documented under "Several
/// replicas"): a key may hold `max_sessions` sessions on each replica, and a listing shows
/// the sessions of the replica that answers it. This pins the documented scope.
#[tokio::test]
async fn max_sessions_and_the_session_list_count_per_replica() {
    let redis = Redis::start(None);
    let cluster = Cluster::new(&redis);
    let key = cluster.key(Quota {
        max_sessions: 1,
        ..generous()
    });
    let client = reqwest::Client::new();
    let a = cluster.start(&instance("a"));
    let b = cluster.start(&instance("b"));
    wait_ready(&client, &a.base).await;
    wait_ready(&client, &b.base).await;
    let create = |base: String| {
        let (client, key) = (client.clone(), key.clone());
        async move {
            call(
                &client,
                reqwest::Method::POST,
                format!("{base}/v1/sessions"),
                &key,
                Some(json!({"language": "python"})),
            )
            .await
        }
    };
    let (st, s) = create(a.base.clone()).await;
    assert_eq!(st, 201, "{s}");
    let (st, s) = create(a.base.clone()).await;
    assert_eq!(
        st, 429,
        "the second on the same replica is over max_sessions: {s}"
    );
    let (st, s) = create(b.base.clone()).await;
    assert_eq!(st, 201, "another replica counts its own: {s}");
    let (st, list) = call(
        &client,
        reqwest::Method::GET,
        format!("{}/v1/sessions", b.base),
        &key,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(list["count"], 1, "a replica lists its own sessions: {list}");
}
