//! Several gateway replicas sharing one Redis (`[shared]`): two real gateway processes
//! (different instance labels, the same Docker engine, the same keys file) and a real
//! `redis-server` started by the test.

use codebeaker::domain::Quota;
use reqwest::Method;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{eventually, eventually_every, generous, instance, Cluster, Redis, Rpc};

#[tokio::test]
async fn work_queued_on_either_replica_survives_the_other_being_killed() {
    let redis = Redis::start(None).await;
    let cluster = Cluster::new(&redis);
    let key = cluster.key(generous());
    let (ia, ib) = (instance("a"), instance("b"));
    let mut a = cluster.start(&ia);
    let b = cluster.start(&ib);
    a.ready().await;
    b.ready().await;

    let (api_a, api_b) = (a.api(&key), b.api(&key));
    let mut ids = Vec::new();
    for i in 0..200 {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        ids.push(api.submit(json!({"language": "python", "code": "import time\ntime.sleep(0.1)\nresult = input_data['i']", "input": {"i": i}})).await);
    }
    // Mid-way: A dies with executions in flight (no shutdown, no cleanup), once a tenth of
    // them are done.
    let done = eventually(
        Duration::from_secs(60),
        "20 executions to complete",
        || async {
            let (_, done) = api_b
                .get("/v1/executions?status=completed&limit=1000")
                .await;
            match done["count"].as_u64() {
                Some(n) if n >= 20 => Ok(done),
                _ => Err(done.to_string()),
            }
        },
    )
    .await;
    a.kill();
    let done_before_kill = done["count"].as_u64().unwrap();
    assert!(
        done_before_kill < 150,
        "A must die mid-way: {done_before_kill} were done"
    );
    for (i, id) in ids.iter().enumerate() {
        let v = api_b.wait_final(id).await;
        assert_eq!(v["status"], "completed", "{v}");
        assert_eq!(v["result"]["output"], i, "{v}");
    }
    // At least once: only what A was running when it died ran again (A had 2 workers).
    let attempts = |v: &Value| v["attempts"].as_i64().unwrap_or(0);
    let mut twice = 0;
    let mut seen = Vec::new();
    for id in &ids {
        let (_, v) = api_b.get(&format!("/v1/executions/{id}")).await;
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
    a.ready().await;
    // Time passes: A gets 4 s to (wrongly) run anything again before it is checked.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for (id, n, finished) in seen {
        let (_, v) = a.api(&key).get(&format!("/v1/executions/{id}")).await;
        assert_eq!(attempts(&v), n, "{v}");
        assert_eq!(v["completedAt"], finished, "{v}");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_rate_limit_holds_across_replicas() {
    let redis = Redis::start(None).await;
    let cluster = Cluster::new(&redis);
    let rate = 20;
    let key = cluster.key(Quota {
        rate_per_second: rate,
        burst: 1,
        ..generous()
    });
    let ia = instance("a");
    let a = cluster.start(&ia);
    let b = cluster.start(&instance("b"));
    a.ready().await;
    b.ready().await;
    // Hammer both for 3 s with 8 callers each.
    let window = Duration::from_secs(3);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for replica in [&a, &b] {
        for _ in 0..8 {
            let api = replica.api(&key);
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut limited) = (0u32, 0u32);
                while started.elapsed() < window {
                    let r = api
                        .request(Method::GET, "/v1/languages")
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
        .env("CODEBEAKER_LANGUAGES__ENABLED", "python")
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
    let (st, r) = a
        .api(&key)
        .call(
            Method::POST,
            "/v1/execute",
            Some(json!({"language": "python", "code": "result = 2"})),
        )
        .await;
    assert!(st == 200 || st == 429, "{st} {r}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_session_follows_its_replica_from_anywhere() {
    let redis = Redis::start(None).await;
    let cluster = Cluster::new(&redis);
    let key = cluster.key(generous());
    let ia = instance("a");
    let mut a = cluster.start(&ia);
    let b = cluster.start(&instance("b"));
    a.ready().await;
    b.ready().await;

    let (st, s) = a
        .api(&key)
        .call(
            Method::POST,
            "/v1/sessions",
            Some(json!({"language": "python"})),
        )
        .await;
    assert_eq!(st, 201, "{s}");
    let id = s["sessionId"].as_str().unwrap().to_string();
    assert!(
        id.starts_with(&format!("{ia}.")),
        "the id names its replica: {id}"
    );
    let commands = format!("/v1/sessions/{id}/commands");
    let (st, r) = a
        .api(&key)
        .call(
            Method::POST,
            &commands,
            Some(json!({"type": "write_file", "path": "/workspace/note.txt", "content": "from A"})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    // Reads the session's note through B (REST, forwarded to the owner).
    let api_b = b.api(&key);
    let read_note = || {
        api_b.call(
            Method::POST,
            &commands,
            Some(json!({"type": "read_file", "path": "/workspace/note.txt"})),
        )
    };
    // Through B: the same session, the same files (REST, forwarded).
    let (st, r) = read_note().await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["result"]["content"], "from A", "{r}");
    let (st, r) = api_b.get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(st, 200, "{r}");
    // And over B's WebSocket (JSON-RPC, the one call forwarded).
    let ws_url = format!(
        "{}/ws/jsonrpc?api_key={key}",
        b.base.replace("http://", "ws://")
    );
    let mut rpc = Rpc::connect_url(&ws_url).await;
    let reply = rpc
        .call(
            "session.execute",
            json!({"sessionId": id, "command": {"type": "execute_shell", "commandName": "cat", "args": ["/workspace/note.txt"]}}),
        )
        .await;
    assert_eq!(reply["result"]["result"]["stdout"], "from A", "{reply}");

    // A down: B says the session is unavailable, not that it does not exist.
    a.kill();
    let (st, r) = read_note().await;
    assert_eq!(st, 503, "{r}");
    assert_eq!(r["error"]["kind"], "session_unavailable", "{r}");
    // A back (it re-adopts its sessions): the session works through B again.
    let a = cluster.start(&ia);
    a.ready().await;
    let r = eventually(
        Duration::from_secs(10),
        "the session to work through B again",
        || async {
            match read_note().await {
                (200, r) => Ok(r),
                (st, r) => Err(format!("{st} {r}")),
            }
        },
    )
    .await;
    assert_eq!(r["result"]["content"], "from A", "{r}");
    let (st, _) = b
        .api(&key)
        .call(Method::DELETE, &format!("/v1/sessions/{id}"), None)
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

    let redis = Redis::start(None).await;
    let cluster = Cluster::new(&redis);
    let key = cluster.key(Quota {
        rate_per_second: 1000,
        burst: 1000,
        ..generous()
    });
    let a = cluster.start(&instance("a"));
    a.ready().await;
    let exec = json!({"language": "python", "code": "result = 1"});
    let (st, _) = a
        .api(&key)
        .call(Method::POST, "/v1/execute", Some(exec.clone()))
        .await;
    assert_eq!(st, 200);
    let port = redis.port;
    drop(redis);
    let (st, r) = a
        .api(&key)
        .call(Method::POST, "/v1/execute", Some(exec.clone()))
        .await;
    assert_eq!(st, 503, "{r}");
    assert_eq!(r["error"]["kind"], "shared_state_unavailable", "{r}");
    let client = reqwest::Client::new();
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
    let _redis = Redis::start(Some(port)).await;
    let r = eventually_every(
        Duration::from_secs(20),
        Duration::from_millis(200),
        "recovery",
        || async {
            match a
                .api(&key)
                .call(Method::POST, "/v1/execute", Some(exec.clone()))
                .await
            {
                (200, r) => Ok(r),
                (st, r) => Err(format!("{st} {r}")),
            }
        },
    )
    .await;
    assert_eq!(r["output"], 1);
    let (st, v) = a
        .api(&key)
        .call(Method::POST, "/v1/executions", Some(exec))
        .await;
    assert_eq!(st, 202, "the queue works again: {v}");
    a.stop().await;
}

/// `max_sessions` and `GET /v1/sessions` are per replica (documented under "Several
/// replicas"): a key may hold `max_sessions` sessions on each replica, and a listing shows
/// the sessions of the replica that answers it. This pins the documented scope.
#[tokio::test]
async fn max_sessions_and_the_session_list_count_per_replica() {
    let redis = Redis::start(None).await;
    let cluster = Cluster::new(&redis);
    let key = cluster.key(Quota {
        max_sessions: 1,
        ..generous()
    });
    let a = cluster.start(&instance("a"));
    let b = cluster.start(&instance("b"));
    a.ready().await;
    b.ready().await;
    let create = |replica: &crate::helpers::Replica| {
        let api = replica.api(&key);
        async move {
            api.call(
                Method::POST,
                "/v1/sessions",
                Some(json!({"language": "python"})),
            )
            .await
        }
    };
    let (st, s) = create(&a).await;
    assert_eq!(st, 201, "{s}");
    let (st, s) = create(&a).await;
    assert_eq!(
        st, 429,
        "the second on the same replica is over max_sessions: {s}"
    );
    let (st, s) = create(&b).await;
    assert_eq!(st, 201, "another replica counts its own: {s}");
    let (st, list) = b.api(&key).call(Method::GET, "/v1/sessions", None).await;
    assert_eq!(st, 200);
    assert_eq!(list["count"], 1, "a replica lists its own sessions: {list}");
}
