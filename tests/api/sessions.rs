//! Sessions over WebSocket JSON-RPC 2.0 and REST, against real containers.

use codebeaker::domain::{Quota, Scope};
use codebeaker_proto::Language;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{generous, revoke_key, settings, spawn, spawn_with, Rpc};

fn program(lang: &Language) -> (&'static str, &'static str, Value) {
    match lang.name() {
        "python" => (
            "program.py",
            "import json\nd = json.load(open('/workspace/input.json'))\njson.dump({'sum': sum(d['xs'])}, open('/workspace/output.json', 'w'))\n",
            json!({"commandName": "python3", "args": ["/workspace/program.py"]}),
        ),
        "javascript" => (
            "program.js",
            "const fs = require('fs');\nconst d = JSON.parse(fs.readFileSync('/workspace/input.json'));\nfs.writeFileSync('/workspace/output.json', JSON.stringify({sum: d.xs.reduce((a, b) => a + b, 0)}));\n",
            json!({"commandName": "node", "args": ["/workspace/program.js"]}),
        ),
        "go" => (
            "program.go",
            "package main\nimport (\"encoding/json\"; \"os\")\nfunc main() {\n var d map[string][]float64\n b, _ := os.ReadFile(\"/workspace/input.json\")\n json.Unmarshal(b, &d)\n s := 0.0\n for _, x := range d[\"xs\"] { s += x }\n o, _ := json.Marshal(map[string]float64{\"sum\": s})\n os.WriteFile(\"/workspace/output.json\", o, 0644)\n}\n",
            json!({"commandName": "go", "args": ["run", "/workspace/program.go"], "env": {"GO111MODULE": "off", "GOCACHE": "/tmp/gocache"}}),
        ),
        "csharp" => (
            "program.cs",
            "using System.IO;\nusing System.Linq;\nclass P { static void Main() {\n var s = File.ReadAllText(\"/workspace/input.json\");\n var xs = s.Substring(s.IndexOf('[') + 1, s.IndexOf(']') - s.IndexOf('[') - 1).Split(',').Select(int.Parse);\n File.WriteAllText(\"/workspace/output.json\", \"{\\\"sum\\\":\" + xs.Sum() + \"}\");\n} }\n",
            json!({"commandName": "sh", "args": ["-c", "mcs -out:/tmp/p.exe /workspace/program.cs && mono /tmp/p.exe"]}),
        ),
        other => panic!("no session program for {other}"),
    }
}

#[tokio::test]
async fn loopai_flow_over_websocket_for_every_language() {
    let app = spawn(&Language::FIRST_FOUR).await;
    let mut rpc = Rpc::connect(&app, &app.key).await;
    for lang in Language::FIRST_FOUR {
        let created = rpc.ok("session.create", json!({"language": lang.name(), "idleTimeoutMinutes": 10, "maxLifetimeMinutes": 60, "memoryLimitMB": 256})).await;
        let sid = created["sessionId"].as_str().unwrap().to_string();
        assert_eq!(created["language"], lang.name());
        assert_eq!(created["state"], "Active");
        // Integers stay JSON integers (the .NET client's fields are `int`).
        assert_eq!(created["config"]["idleTimeoutMinutes"], 10);
        assert!(created["containerId"].as_str().unwrap().len() >= 12);
        let (file, source, mut run) = program(&lang);
        let w = rpc.exec(&sid, json!({"type": "write_file", "path": "/workspace/input.json", "content": "{\"xs\": [1, 2, 3]}", "mode": "Create"})).await;
        assert_eq!(w["success"], true, "{w}");
        assert_eq!(w["result"]["bytes"], 17);
        let w = rpc.exec(&sid, json!({"type": "write_file", "path": format!("/workspace/{file}"), "content": source})).await;
        assert_eq!(w["success"], true, "{w}");
        run["type"] = json!("execute_shell");
        run["timeoutMs"] = json!(60_000);
        let r = rpc.exec(&sid, run).await;
        assert_eq!(r["success"], true, "{lang}: {r}");
        assert_eq!(r["result"]["exitCode"], 0);
        let out = rpc
            .exec(
                &sid,
                json!({"type": "read_file", "path": "/workspace/output.json"}),
            )
            .await;
        let parsed: Value =
            serde_json::from_str(out["result"]["content"].as_str().unwrap()).unwrap();
        assert_eq!(parsed["sum"].as_f64(), Some(6.0), "{lang}: {out}");
        let closed = rpc.ok("session.close", json!({"sessionId": sid})).await;
        assert_eq!(closed, json!({"sessionId": sid, "closed": true}));
        let gone = rpc.call("session.execute", json!({"sessionId": sid, "command": {"type": "list_directory", "path": "/workspace"}})).await;
        assert_eq!(gone["error"]["code"], -32001, "{gone}");
    }
    app.stop().await;
}

#[tokio::test]
async fn file_commands_persist_and_run_code_uses_the_session_workspace() {
    let app = spawn(&[Language::Python]).await;
    let mut rpc = Rpc::connect(&app, &app.key).await;
    let sid = rpc.create(json!({"language": "py"})).await;
    rpc.exec(
        &sid,
        json!({"type": "write_file", "path": "notes/a.txt", "content": "one\n"}),
    )
    .await;
    let e = rpc
        .exec(
            &sid,
            json!({"type": "write_file", "path": "notes/a.txt", "content": "x"}),
        )
        .await;
    assert_eq!(e["success"], false, "parent directory missing: {e}");
    rpc.exec(
        &sid,
        json!({"type": "create_directory", "path": "/workspace/notes/deep"}),
    )
    .await;
    rpc.exec(
        &sid,
        json!({"type": "write_file", "path": "notes/a.txt", "content": "one\n"}),
    )
    .await;
    let dup = rpc
        .exec(
            &sid,
            json!({"type": "write_file", "path": "notes/a.txt", "content": "x", "mode": "CreateNew"}),
        )
        .await;
    assert_eq!(dup["errorKind"], "already_exists", "{dup}");
    assert!(dup["error"].as_str().unwrap().contains("exists"), "{dup}");
    rpc.exec(
        &sid,
        json!({"type": "write_file", "path": "notes/a.txt", "content": "two\n", "mode": "Append"}),
    )
    .await;
    rpc.exec(&sid, json!({"type": "write_file", "path": "bin.dat", "content": "AAEC/w==", "encoding": "base64"})).await;
    let b = rpc
        .exec(
            &sid,
            json!({"type": "read_file", "path": "bin.dat", "encoding": "base64"}),
        )
        .await;
    assert_eq!(b["result"]["content"], "AAEC/w==");
    assert_eq!(b["result"]["bytes"], 4);
    let c = rpc.exec(&sid, json!({"type": "copy_file", "source": "notes/a.txt", "destination": "notes/deep/b.txt"})).await;
    assert_eq!(c["success"], true, "{c}");
    let r = rpc
        .exec(
            &sid,
            json!({"type": "read_file", "path": "/workspace/notes/deep/b.txt"}),
        )
        .await;
    assert_eq!(r["result"]["content"], "one\ntwo\n");
    let l = rpc
        .exec(&sid, json!({"type": "list_directory", "path": "notes"}))
        .await;
    let names: Vec<&str> = l["result"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.txt", "deep"]);
    let entry = &l["result"]["entries"][0];
    assert_eq!(entry["type"], "file");
    assert_eq!(entry["size"], 8);
    assert!(entry["modified"].as_str().unwrap().ends_with('Z'));
    let d = rpc
        .exec(&sid, json!({"type": "delete_file", "path": "notes"}))
        .await;
    assert_eq!(
        d["success"], false,
        "non-empty directory needs recursive: {d}"
    );
    let d = rpc
        .exec(
            &sid,
            json!({"type": "delete_file", "path": "notes", "recursive": true}),
        )
        .await;
    assert_eq!(d["success"], true, "{d}");
    // run_code: the edge contract inside the session's own persistent workspace.
    let rc = rpc.exec(&sid, json!({"type": "run_code", "code": "open('/workspace/kept.txt', 'w').write('hi')\nresult = {'double': input_data['n'] * 2}", "input": {"n": 21}})).await;
    assert_eq!(rc["success"], true, "{rc}");
    assert_eq!(rc["result"]["output"], json!({"double": 42}));
    let k = rpc
        .exec(&sid, json!({"type": "read_file", "path": "kept.txt"}))
        .await;
    assert_eq!(
        k["result"]["content"], "hi",
        "state persists after run_code: {k}"
    );
    let list = rpc.ok("session.list", json!({})).await;
    assert_eq!(list["count"], 1);
    let s = &list["sessions"][0];
    assert_eq!(s["sessionId"], sid.as_str());
    assert!(s["executionCount"].as_u64().unwrap() >= 10, "{s}");
    for k in [
        "containerId",
        "language",
        "createdAt",
        "lastActivity",
        "state",
        "idleMinutes",
        "lifetimeMinutes",
    ] {
        assert!(!s[k].is_null(), "{k} missing: {s}");
    }
    app.stop().await;
}

#[tokio::test]
async fn json_rpc_protocol_errors_batches_and_notifications() {
    let app = spawn(&[Language::Python]).await;
    let mut rpc = Rpc::connect(&app, &app.key).await;
    rpc.send_text("{not json".into()).await;
    let v = rpc.recv().await;
    assert_eq!(
        (v["error"]["code"].as_i64(), &v["id"]),
        (Some(-32700), &Value::Null),
        "{v}"
    );
    rpc.send_text(r#"{"jsonrpc":"1.0","id":7,"method":"session.list"}"#.into())
        .await;
    assert_eq!(rpc.recv().await["error"]["code"], -32600);
    rpc.send_text("[]".into()).await;
    assert_eq!(rpc.recv().await["error"]["code"], -32600);
    rpc.send_text("42".into()).await;
    assert_eq!(rpc.recv().await["error"]["code"], -32600);
    let v = rpc.call("session.explode", json!({})).await;
    assert_eq!(v["error"]["code"], -32601, "{v}");
    let v = rpc
        .call("session.create", json!({"idleTimeoutMinutes": 5}))
        .await;
    assert_eq!(v["error"]["code"], -32602, "missing language: {v}");
    let v = rpc
        .call(
            "session.execute",
            json!({"sessionId": "x", "command": {"type": "format_disk"}}),
        )
        .await;
    assert_eq!(v["error"]["code"], -32602, "{v}");
    let v = rpc
        .call(
            "session.execute",
            json!({"sessionId": "nope", "command": {"type": "list_directory"}}),
        )
        .await;
    assert_eq!(v["error"]["code"], -32001, "{v}");
    // A notification gets no response: the next message is the following request's.
    rpc.send_text(r#"{"jsonrpc":"2.0","method":"session.list","params":{}}"#.into())
        .await;
    let v = rpc.call("session.list", json!({})).await;
    assert_eq!(v["result"]["count"], 0, "{v}");
    // A batch: responses for the requests only, matched by id.
    rpc.send_text(
        json!([
            {"jsonrpc": "2.0", "id": "a", "method": "session.list"},
            {"jsonrpc": "2.0", "method": "session.list"},
            {"jsonrpc": "2.0", "id": "b", "method": "nope"},
            {"jsonrpc": "2.0", "id": "c", "method": "execution.run", "params": {"language": "python", "code": "result = input_data['x'] + 1", "input": {"x": 1}}}
        ])
        .to_string(),
    )
    .await;
    let v = rpc.recv().await;
    let arr = v.as_array().expect("batch response is an array");
    assert_eq!(arr.len(), 3, "{v}");
    let by_id = |id: &str| arr.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id("a")["result"]["count"], 0);
    assert_eq!(by_id("b")["error"]["code"], -32601);
    assert_eq!(by_id("c")["result"]["output"], 2, "{v}");
    app.stop().await;
}

#[tokio::test]
async fn streaming_output_arrives_before_the_final_response() {
    let app = spawn(&[Language::Python]).await;
    let mut rpc = Rpc::connect(&app, &app.key).await;
    let sid = rpc.create(json!({"language": "python"})).await;
    let r = rpc
        .exec(&sid, json!({"type": "execute_shell", "commandName": "sh", "args": ["-c", "echo one; sleep 0.5; echo two >&2; echo three"], "stream": true}))
        .await;
    assert_eq!(r["result"]["stdout"], "one\nthree\n", "{r}");
    let notes: Vec<&Value> = rpc
        .notes
        .iter()
        .filter(|n| n["method"] == "session.output")
        .collect();
    assert!(!notes.is_empty(), "no session.output notifications");
    assert!(notes
        .iter()
        .all(|n| n["params"]["sessionId"] == sid.as_str() && n.get("id").is_none()));
    let joined: String = notes
        .iter()
        .filter(|n| n["params"]["stream"] == "stdout")
        .map(|n| n["params"]["data"].as_str().unwrap())
        .collect();
    assert_eq!(joined, "one\nthree\n");
    assert!(notes
        .iter()
        .any(|n| n["params"]["stream"] == "stderr" && n["params"]["data"] == "two\n"));
    app.stop().await;
}

#[tokio::test]
async fn path_escapes_are_refused() {
    let app = spawn(&[Language::Python]).await;
    let mut rpc = Rpc::connect(&app, &app.key).await;
    let sid = rpc.create(json!({"language": "python"})).await;
    let ln = rpc
        .exec(&sid, json!({"type": "execute_shell", "commandName": "sh", "args": ["-c", "ln -s /etc/passwd /workspace/link && ln -s /etc /workspace/etcdir && ln -s ../../etc/hostname /workspace/rel"]}))
        .await;
    assert_eq!(ln["success"], true, "{ln}");
    for path in [
        "../../etc/passwd",
        "/etc/passwd",
        "link",
        "/workspace/etcdir/passwd",
        "rel",
        "/workspace/../etc/passwd",
        "a\u{0}b",
    ] {
        let r = rpc
            .exec(&sid, json!({"type": "read_file", "path": path}))
            .await;
        assert_eq!(r["success"], false, "{path}: {r}");
        assert_eq!(r["errorCode"], -32005, "{path}: {r}");
        assert_eq!(r["errorKind"], "path_outside_workspace");
    }
    for cmd in [
        json!({"type": "write_file", "path": "link", "content": "pwned"}),
        json!({"type": "write_file", "path": "etcdir/evil", "content": "x"}),
        json!({"type": "copy_file", "source": "link", "destination": "copy"}),
        json!({"type": "list_directory", "path": "etcdir"}),
        json!({"type": "execute_shell", "commandName": "true", "workingDirectory": "/etc"}),
    ] {
        let r = rpc.exec(&sid, cmd.clone()).await;
        assert_eq!(r["errorCode"], -32005, "{cmd}: {r}");
    }
    // Deleting the symlink itself is fine and does not touch its target.
    let d = rpc
        .exec(&sid, json!({"type": "delete_file", "path": "link"}))
        .await;
    assert_eq!(d["success"], true, "{d}");
    app.stop().await;
}

#[tokio::test]
async fn idle_sessions_expire() {
    let app = spawn(&[Language::Python]).await;
    let mut rpc = Rpc::connect(&app, &app.key).await;
    let sid = rpc
        .ok(
            "session.create",
            json!({"language": "python", "idleTimeoutMinutes": 0.01}),
        )
        .await["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    // Instead of waiting out the idle timeout (0.6 s), the test asks the session manager
    // what has expired at a later time, as the janitor does at every tick.
    assert_eq!(
        app.sessions
            .expire_at(Instant::now() + Duration::from_secs(2)),
        1
    );
    let v = rpc
        .call(
            "session.execute",
            json!({"sessionId": sid, "command": {"type": "list_directory"}}),
        )
        .await;
    assert_eq!(v["error"]["code"], -32001, "{v}");
    assert_eq!(rpc.ok("session.list", json!({})).await["count"], 0);
    app.stop().await;
}

#[tokio::test]
async fn tenants_cannot_see_each_others_sessions_and_caps_hold() {
    let app = spawn(&[Language::Python]).await;
    let mut a = Rpc::connect(&app, &app.key).await;
    let sid = a.ok("session.create", json!({"language": "python"})).await["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    // Another tenant's key.
    let (other_key, mut rec) = codebeaker::auth::keys::generate(
        "b",
        "tenant-b",
        vec![Scope::Sessions],
        Quota {
            max_sessions: 1,
            ..generous()
        },
    );
    rec.tenant = "tenant-b".into();
    codebeaker::auth::keys::append_to_file(&app.keys_file, rec).unwrap();
    app.reload_keys();
    let mut b = Rpc::connect(&app, &other_key).await;
    assert_eq!(b.ok("session.list", json!({})).await["count"], 0);
    for (method, params) in [
        (
            "session.execute",
            json!({"sessionId": sid, "command": {"type": "read_file", "path": "x"}}),
        ),
        ("session.close", json!({"sessionId": sid})),
    ] {
        let v = b.call(method, params).await;
        assert_eq!(v["error"]["code"], -32001, "{method}: {v}");
    }
    let r = app
        .api_as(&other_key)
        .request(reqwest::Method::GET, &format!("/v1/sessions/{sid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // The per-tenant session cap (1 for tenant-b).
    b.ok("session.create", json!({"language": "python"})).await;
    let v = b
        .call("session.create", json!({"language": "python"}))
        .await;
    assert_eq!(v["error"]["code"], -32003, "{v}");
    // A key without the sessions scope is refused.
    let exec_only = app.add_key(vec![Scope::Execute], generous());
    let mut c = Rpc::connect(&app, &exec_only).await;
    assert_eq!(
        c.call("session.list", json!({})).await["error"]["code"],
        -32004
    );
    // The owner still has its session.
    assert_eq!(a.ok("session.list", json!({})).await["count"], 1);
    // Revoking a key takes effect on an already open socket.
    revoke_key(&app, &other_key).await;
    b.send_text(json!({"jsonrpc": "2.0", "id": 9, "method": "session.list"}).to_string())
        .await;
    assert_eq!(b.recv().await["error"]["code"], -32004);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_commands_on_one_session_are_serialized_then_refused_as_busy() {
    let mut s = settings(&[Language::Python]);
    s.sessions.busy_wait_ms = std::time::Duration::from_millis(1500);
    let app = spawn_with(s).await;
    let mut rpc = Rpc::connect(&app, &app.key).await;
    let sid = rpc.create(json!({"language": "python"})).await;
    let timed = json!({"type": "execute_shell", "commandName": "sh", "args": ["-c", "date +%s%N; sleep 0.4; date +%s%N"]});
    // Two requests in flight on one socket, answered by id.
    let ids = [101, 102];
    for id in ids {
        rpc.send_text(json!({"jsonrpc": "2.0", "id": id, "method": "session.execute", "params": {"sessionId": sid, "command": timed}}).to_string()).await;
    }
    let mut spans = Vec::new();
    for _ in ids {
        let v = rpc.recv().await;
        let out = v["result"]["result"]["stdout"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_string();
        let t: Vec<u128> = out.lines().map(|l| l.parse().unwrap()).collect();
        spans.push((t[0], t[1]));
    }
    spans.sort();
    assert!(spans[0].1 <= spans[1].0, "commands overlapped: {spans:?}");
    // A command that waits longer than busy_wait_ms gets "session busy".
    let long = json!({"type": "execute_shell", "commandName": "sleep", "args": ["3"]});
    rpc.send_text(json!({"jsonrpc": "2.0", "id": 201, "method": "session.execute", "params": {"sessionId": sid, "command": long}}).to_string()).await;
    // A moment for the long command to take the session: nothing outside the gateway
    // shows that a session is busy, so this is a sleep, not a wait for a condition.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let v = rpc
        .call(
            "session.execute",
            json!({"sessionId": sid, "command": {"type": "list_directory"}}),
        )
        .await;
    assert_eq!(v["error"]["code"], -32002, "{v}");
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    app.stop().await;
}

#[tokio::test]
async fn sessions_survive_a_gateway_restart_with_their_files_and_ids() {
    let s = settings(&[Language::Python]);
    let app = spawn_with(s.clone()).await;
    let r = app
        .post("/v1/sessions")
        .json(&json!({"language": "python", "idleTimeoutMinutes": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.unwrap();
    let sid = created["sessionId"].as_str().unwrap().to_string();
    let w = app
        .post(&format!("/v1/sessions/{sid}/commands"))
        .json(&json!({"type": "write_file", "path": "state.txt", "content": "survives"}))
        .send()
        .await
        .unwrap();
    assert_eq!(w.status().as_u16(), 200);
    app.stop_for_restart().await;

    // A new gateway process with the same instance name re-adopts the session.
    let app2 = spawn_with(s).await;
    let r = app2
        .request(reqwest::Method::GET, &format!("/v1/sessions/{sid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["config"]["idleTimeoutMinutes"], 7.0, "{info}");
    let r: Value = app2
        .post(&format!("/v1/sessions/{sid}/commands"))
        .json(&json!({"type": "read_file", "path": "state.txt"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["result"]["content"], "survives", "{r}");
    // REST close, then not found.
    let d = app2
        .delete(&format!("/v1/sessions/{sid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(d.status().as_u16(), 200);
    let g = app2
        .request(reqwest::Method::GET, &format!("/v1/sessions/{sid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(g.status().as_u16(), 404);
    let list: Value = app2
        .request(reqwest::Method::GET, "/v1/sessions")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["count"], 0);
    app2.stop().await;
}

/// SIGTERM with a command in flight on a WebSocket: the client gets the command's answer,
/// then a clear close (1001, "going away"), within the shutdown grace.
#[tokio::test]
async fn a_websocket_command_in_flight_at_shutdown_gets_its_answer_then_a_close() {
    let app = spawn(&[Language::Python]).await;
    let mut rpc = Rpc::connect(&app, &app.key).await;
    let sid = rpc.create(json!({"language": "python"})).await;
    let id = 77;
    rpc.send_text(json!({"jsonrpc": "2.0", "id": id, "method": "session.execute", "params": {"sessionId": sid, "command": {"type": "execute_shell", "commandName": "sh", "args": ["-c", "sleep 0.7; echo done"]}}}).to_string()).await;
    // Let the command reach the container, then shut down (the test grace is 2 s). A
    // sleep: nothing outside the gateway shows that the command has started.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    app.begin_shutdown();
    let reply = rpc.recv().await;
    assert_eq!(reply["id"], id, "{reply}");
    assert_eq!(reply["result"]["result"]["stdout"], "done\n", "{reply}");
    let close = tokio::time::timeout(Duration::from_secs(5), rpc.ws.next())
        .await
        .expect("the server closes the socket")
        .expect("a close frame, not a dropped connection")
        .unwrap();
    match close {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
            assert!(frame.reason.contains("shutting down"), "{frame:?}");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "within the grace: {:?}",
        started.elapsed()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_closes_gets_the_servers_close_frame_back() {
    // Without the server's half of the close handshake, the npm `ws` client waits 30 s and
    // reports 1006 (abnormal); a well-behaved server answers at once.
    let app = spawn(&[Language::Python]).await;
    let mut rpc = Rpc::connect(&app, &app.key).await;
    let r = rpc.call("session.list", json!({})).await;
    assert!(r.get("result").is_some(), "{r}");
    use futures_util::SinkExt;
    rpc.ws
        .send(Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "bye".into(),
            },
        )))
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match rpc.ws.next().await {
                Some(Ok(Message::Close(frame))) => return Some(frame),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("the server answers a Close within 2 s");
    assert!(
        reply.is_some(),
        "the server dropped the socket without its Close frame"
    );
}
