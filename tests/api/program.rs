//! Resident program instances (`"isolation": "program"`), against real containers: fresh
//! top-level variables per call, what persists, recycling, pipelined batches, and the
//! isolation and adversarial cases that make sense in this mode.

use codebeaker_proto::Language;
use serde_json::{json, Value};

use crate::helpers::{settings, spawn, spawn_with, TestApp};

async fn batch(app: &TestApp, body: Value) -> Value {
    let r = app
        .post("/v1/execute/batch")
        .json(&body)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    let b: Value = r.json().await.unwrap();
    assert_eq!(st, 200, "{b}");
    b
}

async fn program(app: &TestApp, key: &str, language: &str, code: &str, input: Value) -> Value {
    let (st, b) = app
        .api_as(key)
        .call(
            reqwest::Method::POST,
            "/v1/execute",
            Some(json!({"language": language, "code": code, "input": input, "isolation": "program", "timeoutMs": 2000})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    b
}

fn items(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": format!("i{i}"), "input": {"i": i}}))
        .collect()
}

/// Python: `n` is a fresh top-level variable in each of 100 calls, though all 100 run on
/// one instance (module state counts them).
#[tokio::test]
async fn top_level_variables_are_fresh_per_call_while_module_state_persists() {
    let app = spawn(&[Language::Python]).await;
    let code = "try:\n    n += 1\nexcept NameError:\n    n = 1\nimport sys\nsys.k = getattr(sys, 'k', 0) + 1\nresult = [n, sys.k]";
    let b = batch(
        &app,
        json!({"language": "python", "code": code, "items": items(100), "maxConcurrency": 1, "isolation": "program"}),
    )
    .await;
    let results = b["results"].as_array().unwrap();
    assert_eq!(results.len(), 100);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["success"], true, "{r}");
        assert_eq!(r["output"][0], 1, "item {i}: {r}");
        assert_eq!(
            r["output"][1],
            i as u64 + 1,
            "one instance served them in order: {r}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn javascript_and_go_get_fresh_locals_per_call_too() {
    let app = spawn(&[Language::JavaScript, Language::Go]).await;
    let js = "var n; n = (n || 0) + 1;\nglobalThis.k = (globalThis.k || 0) + 1;\nconst result = [n, globalThis.k];";
    let b = batch(
        &app,
        json!({"language": "javascript", "code": js, "items": items(20), "maxConcurrency": 1, "isolation": "program"}),
    )
    .await;
    for (i, r) in b["results"].as_array().unwrap().iter().enumerate() {
        assert_eq!(r["output"], json!([1, i + 1]), "{r}");
    }
    let go = "n := 0\nn++\nresult := n";
    let b = batch(
        &app,
        json!({"language": "go", "code": go, "items": items(20), "maxConcurrency": 1, "isolation": "program"}),
    )
    .await;
    for r in b["results"].as_array().unwrap() {
        assert_eq!(r["output"], 1, "{r}");
    }
    app.stop().await;
}

/// Two tenants never share a container or an instance; two programs of one tenant never
/// share an instance. A repeated call of one program reuses its instance.
#[tokio::test]
async fn instances_are_per_tenant_and_per_program() {
    let app = spawn(&[Language::Python]).await;
    let a = app.add_tenant_key("tenant-a");
    let b = app.add_tenant_key("tenant-b");
    let count = "import sys\nsys.k = getattr(sys, 'k', 0) + 1\nresult = sys.k";
    let a1 = program(&app, &a, "python", count, json!({})).await;
    let a2 = program(&app, &a, "python", count, json!({})).await;
    assert_eq!(a1["output"], 1, "{a1}");
    assert_eq!(a2["output"], 2, "the second call reused the instance: {a2}");
    assert_eq!(a1["containerId"], a2["containerId"]);
    let b1 = program(&app, &b, "python", count, json!({})).await;
    assert_eq!(
        b1["output"], 1,
        "another tenant gets its own instance: {b1}"
    );
    assert_ne!(
        b1["containerId"], a1["containerId"],
        "and its own container: {a1} {a2} {b1}"
    );
    let other = format!("{count}\n# another program");
    let a3 = program(&app, &a, "python", &other, json!({})).await;
    assert_eq!(
        a3["output"], 1,
        "another program gets its own instance: {a3}"
    );
    // Operators see them: idle instances and instances started.
    let text = app
        .client
        .get(format!("{}/metrics", app.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    };
    assert!(value("codebeaker_resident_instances_idle") >= 1.0);
    assert!(value("codebeaker_resident_instances_started_total") >= 3.0);
    app.stop().await;
}

/// Item 5 loops forever: it times out alone, every other item succeeds, and item 6 runs on
/// a new instance (the module-level counter starts again).
#[tokio::test]
async fn a_timeout_fails_one_item_and_the_next_runs_on_a_new_instance() {
    let app = spawn(&[Language::Python]).await;
    let code = "import sys\nsys.k = getattr(sys, 'k', 0) + 1\nif input_data['i'] == 5:\n    while True:\n        pass\nprint('item', input_data['i'])\nresult = sys.k";
    let b = batch(
        &app,
        json!({"language": "python", "code": code, "items": items(10), "maxConcurrency": 1, "timeoutMs": 500, "isolation": "program"}),
    )
    .await;
    let r = b["results"].as_array().unwrap();
    for (i, item) in r.iter().enumerate() {
        if i == 5 {
            assert_eq!(item["error"]["kind"], "timeout", "{item}");
            continue;
        }
        assert_eq!(item["success"], true, "{item}");
        assert_eq!(item["stdout"], format!("item {i}\n"), "its own prints only");
    }
    assert_eq!(r[4]["output"], 5);
    assert_eq!(
        r[6]["output"], 1,
        "a new instance after the timeout: {}",
        r[6]
    );
    app.stop().await;
}

/// `sys.exit(3)` / `process.exit(3)` / `os.Exit(3)`: exit code 3 for that item, the next
/// one works (on a new instance); an exception keeps the instance.
#[tokio::test]
async fn exits_end_their_call_and_the_next_call_works() {
    let app = spawn(&[Language::Python, Language::JavaScript, Language::Go]).await;
    let cases = [
        (
            "python",
            "import sys\nsys.k = getattr(sys, 'k', 0) + 1\nif input_data['i'] == 1:\n    sys.exit(3)\nif input_data['i'] == 2:\n    raise ValueError('boom')\nresult = sys.k",
        ),
        (
            "javascript",
            "globalThis.k = (globalThis.k || 0) + 1;\nif (input_data.i === 1) process.exit(3);\nif (input_data.i === 2) throw new Error('boom');\nconst result = globalThis.k;",
        ),
        (
            "go",
            "k, _ := strconv.Atoi(os.Getenv(\"K\"))\nk++\nos.Setenv(\"K\", strconv.Itoa(k))\nif input_data[\"i\"].(float64) == 1 {\n\tos.Exit(3)\n}\nif input_data[\"i\"].(float64) == 2 {\n\tpanic(\"boom\")\n}\nresult := k",
        ),
    ];
    for (language, code) in cases {
        let b = batch(
            &app,
            json!({"language": language, "code": code, "items": items(4), "maxConcurrency": 1, "isolation": "program"}),
        )
        .await;
        let r = b["results"].as_array().unwrap();
        assert_eq!(r[0]["output"], 1, "{language}: {}", r[0]);
        assert_eq!(r[1]["exitCode"], 3, "{language}: {}", r[1]);
        assert_eq!(r[1]["error"]["kind"], "runtime_error", "{language}");
        assert_eq!(
            r[2]["error"]["kind"], "runtime_error",
            "{language}: {}",
            r[2]
        );
        assert!(
            r[2]["stderr"].as_str().unwrap().contains("boom"),
            "{language}: {}",
            r[2]
        );
        assert_eq!(r[2]["success"], false);
        assert_eq!(
            r[3]["output"], 2,
            "{language}: a new instance after the exit, kept after the exception: {}",
            r[3]
        );
    }
    app.stop().await;
}

/// A thread or a child process left behind by a call recycles the instance.
#[tokio::test]
async fn a_thread_or_child_left_behind_recycles_the_instance() {
    let app = spawn(&[Language::Python]).await;
    let code = "import sys, threading, time, subprocess\nsys.k = getattr(sys, 'k', 0) + 1\nif input_data['i'] == 1:\n    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\nif input_data['i'] == 3:\n    subprocess.Popen(['sleep', '60'])\nresult = sys.k";
    let b = batch(
        &app,
        json!({"language": "python", "code": code, "items": items(5), "maxConcurrency": 1, "isolation": "program"}),
    )
    .await;
    let out: Vec<Value> = b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["output"].clone())
        .collect();
    assert_eq!(out, vec![json!(1), json!(2), json!(1), json!(2), json!(1)]);
    app.stop().await;
}

/// The memory limit and the output caps hold per call; the adversarial programs that make
/// sense here (fork bomb, memory bomb, output flood, network, secrets) are contained, and
/// the instance serves the next call.
#[tokio::test]
async fn hostile_calls_are_contained_per_call() {
    let mut s = settings(&[Language::Python]);
    s.limits.stream_limit_bytes = std::num::NonZeroU64::new(10_000).unwrap();
    let app = spawn_with(s).await;
    let code = r#"
import os, sys, socket
m = input_data['m']
if m == 'memory':
    x = bytearray(2 * 1024 * 1024 * 1024)
if m == 'flood':
    print('x' * 1000000)
if m == 'fork':
    while True:
        try:
            os.fork()
        except OSError:
            pass
if m == 'network':
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(('1.1.1.1', 80))
        result = 'connected'
    except OSError as e:
        result = 'refused'
if m == 'secrets':
    result = sorted(k for k in os.environ if 'KEY' in k or 'SECRET' in k or 'TOKEN' in k)
if m == 'huge':
    result = 'x' * 50_000_000
if m == 'ok':
    result = 'ok'
"#;
    let list = [
        "memory", "ok", "flood", "ok", "fork", "ok", "network", "secrets", "ok", "huge", "ok",
    ];
    let items: Vec<Value> = list
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"id": format!("{i}"), "input": {"m": m}}))
        .collect();
    let b = batch(
        &app,
        json!({"language": "python", "code": code, "items": items, "maxConcurrency": 1, "timeoutMs": 3000, "isolation": "program"}),
    )
    .await;
    let r = b["results"].as_array().unwrap();
    assert_eq!(r[0]["error"]["kind"], "memory_limit_exceeded", "{}", r[0]);
    assert_eq!(r[1]["output"], "ok", "{}", r[1]);
    assert_eq!(
        r[2]["stdout"].as_str().unwrap().len(),
        10_000,
        "cut at the stream limit"
    );
    assert_eq!(r[3]["output"], "ok");
    assert_eq!(r[3]["stdout"], "", "the flood stayed in its own call");
    assert!(
        ["process_limit_exceeded", "timeout"].contains(&r[4]["error"]["kind"].as_str().unwrap()),
        "{}",
        r[4]
    );
    assert_eq!(r[5]["output"], "ok", "{}", r[5]);
    assert_eq!(r[6]["output"], "refused", "no network: {}", r[6]);
    assert_eq!(r[7]["output"], json!([]), "no secrets in the environment");
    assert_eq!(r[8]["output"], "ok");
    assert_eq!(r[9]["error"]["kind"], "output_too_large", "{}", r[9]);
    assert_eq!(r[10]["output"], "ok", "{}", r[10]);
    app.stop().await;
}

/// A batch in program mode pipelines its items; NDJSON streams them with their ids.
#[tokio::test]
async fn a_pipelined_batch_answers_every_item_with_its_id_as_ndjson_too() {
    let app = spawn(&[Language::Python]).await;
    let body = json!({"language": "python", "code": "result = input_data['i'] * 2", "items": items(500), "maxConcurrency": 2, "isolation": "program"});
    let r = app
        .post("/v1/execute/batch")
        .header("accept", "application/x-ndjson")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    let mut seen = vec![false; 500];
    for line in text.lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        if line["type"] != "item" {
            continue; // the summary line
        }
        let v = &line["item"];
        let i = v["index"].as_u64().unwrap();
        assert_eq!(v["id"], format!("i{i}"));
        assert_eq!(v["output"], i * 2, "{v}");
        seen[i as usize] = true;
    }
    let missing: Vec<usize> = (0..500).filter(|i| !seen[*i]).collect();
    assert!(
        missing.is_empty(),
        "every item answered; missing {missing:?}: {}",
        &text[..text.len().min(2000)]
    );
    app.stop().await;
}

/// Program mode is refused clearly where a language has no resident form (plain Go).
#[tokio::test]
async fn a_program_with_no_resident_form_is_refused_with_422() {
    let app = spawn(&[Language::Go]).await;
    let (st, b) = app
        .execute(json!({"language": "go", "code": "package main\nfunc main() {}", "mode": "plain", "isolation": "program"}))
        .await;
    assert_eq!(st, 422, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resident instance"),
        "{b}"
    );
    let (st, b) = app
        .execute(json!({"language": "python", "code": "result = 1", "isolation": "sometimes"}))
        .await;
    assert!(st == 400 || st == 422, "{st} {b}");
    app.stop().await;
}

/// Idle instances never make a call wait: with both containers of the pool held by idle
/// instances, a call-mode call (and a third program) gets a container at once, the
/// longest-idle instance being ended for it.
#[tokio::test]
async fn idle_instances_give_way_to_other_work() {
    let mut s = settings(&[Language::Python]);
    s.pool.queue_timeout_ms = std::time::Duration::from_secs(10);
    s.pool.max_queue_wait_ms = std::time::Duration::from_secs(20);
    let app = spawn_with(s).await;
    let key = app.key.clone();
    program(&app, &key, "python", "result = 1", json!({})).await;
    program(&app, &key, "python", "result = 2", json!({})).await;
    let (st, b) = app
        .execute(json!({"language": "python", "code": "result = 3"}))
        .await;
    assert_eq!(st, 200, "{b}");
    assert!(
        b["queueMs"].as_u64().unwrap() < 5_000,
        "the call did not queue behind idle instances: {b}"
    );
    let third = program(&app, &key, "python", "result = 4", json!({})).await;
    assert_eq!(third["output"], 4);
    assert!(third["queueMs"].as_u64().unwrap() < 5_000, "{third}");
    app.stop().await;
}

/// C#: fresh locals per call, statics persist; an exception keeps the instance,
/// `Environment.Exit(3)` ends its call and the next one runs on a new instance.
#[tokio::test]
async fn csharp_runs_resident_with_fresh_locals_and_persistent_statics() {
    let app = spawn(&[Language::CSharp]).await;
    let code = "int local = 0;\nlocal++;\nvar k = (int)(AppDomain.CurrentDomain.GetData(\"k\") ?? 0) + 1;\nAppDomain.CurrentDomain.SetData(\"k\", k);\nvar i = input_data.GetProperty(\"i\").GetInt32();\nif (i == 1) Environment.Exit(3);\nif (i == 2) throw new Exception(\"boom\");\nvar result = new[] { local, k };";
    let b = batch(
        &app,
        json!({"language": "csharp", "code": code, "items": items(4), "maxConcurrency": 1, "isolation": "program"}),
    )
    .await;
    let r = b["results"].as_array().unwrap();
    assert_eq!(r[0]["output"], json!([1, 1]), "{}", r[0]);
    assert_eq!(r[1]["exitCode"], 3, "{}", r[1]);
    assert_eq!(r[2]["error"]["kind"], "runtime_error", "{}", r[2]);
    assert!(
        r[2]["stderr"].as_str().unwrap().contains("boom"),
        "{}",
        r[2]
    );
    assert_eq!(
        r[3]["output"],
        json!([1, 2]),
        "new instance after the exit, kept after the exception: {}",
        r[3]
    );
    app.stop().await;
}
