//! The Loopai client, replayed byte for byte.
//!
//! Loopai's CodeBeaker integration (`iyulab/Loopai`, `src/Loopai.Core/CodeBeaker/`) is a C#
//! client: `ClientWebSocket` with no headers (the key rides in the URL), System.Text.Json
//! requests (camelCase, nulls omitted, integer ids, the default encoder's `\u0022`-style
//! escapes, a trailing `"\n"`, one text frame each), and `CodeBeakerRuntimeService`, which
//! writes input.json and the wrapped program with mode `Create` (also on a reused
//! session), runs it with `shell`, and reads output.json's `result.content`. Each reply is
//! checked against the client's record types: `error` a string or null, `durationMs` an
//! integer, `createdAt` a date-time. The cases are the eight of
//! `CodeBeakerIntegrationTests.cs`, with the client's own wrappers and run commands.

use serde_json::Value;
use std::time::Duration;

use codebeaker_proto::Language;

use crate::helpers::{spawn, wait_ready, Rpc, TestApp};

/// A JSON string as System.Text.Json's default encoder writes it: `"`, `'`, `&`, `+`,
/// `<`, `>` and `` ` `` as `\u00XX`, control characters short or `\u00XX`, and everything
/// outside ASCII as `\uXXXX` (UTF-16 units).
pub fn stj_string(s: &str) -> String {
    let mut out = String::from("\"");
    for unit in s.encode_utf16() {
        match unit {
            0x5C => out.push_str("\\\\"),
            0x0A => out.push_str("\\n"),
            0x0D => out.push_str("\\r"),
            0x09 => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0C => out.push_str("\\f"),
            0x22 | 0x27 | 0x26 | 0x2B | 0x3C | 0x3E | 0x60 => {
                out.push_str(&format!("\\u{unit:04X}"))
            }
            0x20..=0x7E => out.push(unit as u8 as char),
            _ => out.push_str(&format!("\\u{unit:04X}")),
        }
    }
    out.push('"');
    out
}

/// The client's `(command, extension)` per language and its wrappers, as in
/// `CodeBeakerRuntimeService.cs`.
fn client_language(language: &str) -> Option<(&'static str, &'static str)> {
    match language {
        "python" => Some(("python3", ".py")),
        "javascript" => Some(("deno", ".js")),
        "go" => Some(("go", ".go")),
        "csharp" => Some(("dotnet", ".cs")),
        _ => None,
    }
}

fn wrap(language: &str, code: &str) -> String {
    let (i, o) = ("/workspace/input.json", "/workspace/output.json");
    match language {
        "python" => format!("\nimport json\n\n# Read input\nwith open('{i}', 'r') as f:\n    input_data = json.load(f)\n\n# User code\n{code}\n\n# Write output (assumes 'result' variable exists)\nwith open('{o}', 'w') as f:\n    json.dump(result, f)\n"),
        "javascript" => format!("\n// Read input using Deno API\nconst inputText = await Deno.readTextFile('{i}');\nconst input_data = JSON.parse(inputText);\n\n// User code\n{code}\n\n// Write output (assumes 'result' variable exists)\nconst outputText = JSON.stringify(result);\nawait Deno.writeTextFile('{o}', outputText);\n"),
        "go" => format!("\npackage main\n\nimport (\n    \"encoding/json\"\n    \"os\"\n)\n\nfunc main() {{\n    // Read input\n    inputFile, _ := os.Open(\"{i}\")\n    defer inputFile.Close()\n    var input_data map[string]interface{{}}\n    json.NewDecoder(inputFile).Decode(&input_data)\n\n    // User code\n    {code}\n\n    // Write output (assumes 'result' variable exists)\n    outputFile, _ := os.Create(\"{o}\")\n    defer outputFile.Close()\n    json.NewEncoder(outputFile).Encode(result)\n}}\n"),
        "csharp" => format!("\nusing System;\nusing System.IO;\nusing System.Text.Json;\n\n// Read input\nvar inputJson = File.ReadAllText(\"{i}\");\nvar input_data = JsonSerializer.Deserialize<JsonElement>(inputJson);\n\n// User code\n{code}\n\n// Write output (assumes 'result' variable exists)\nvar outputJson = JsonSerializer.Serialize(result);\nFile.WriteAllText(\"{o}\", outputJson);\n"),
        _ => code.to_string(),
    }
}

/// The `shell` command's argv for `program`.
fn run_args(language: &str, script: &str) -> Vec<String> {
    match language {
        "go" => vec!["run".into(), script.into()],
        "csharp" => vec!["script".into(), script.into()],
        _ => vec![script.into()],
    }
}

/// What `EdgeExecutionResult` carries back to Loopai.
#[derive(Debug)]
pub struct EdgeResult {
    pub success: bool,
    pub error: Option<String>,
    pub output: Option<Value>,
}

/// One client session of the client's pool.
struct PooledSession {
    id: String,
    language: String,
}

/// `CodeBeakerClient` + `CodeBeakerSessionPool` + `CodeBeakerRuntimeService`, replayed.
pub struct LoopaiClient {
    /// The transport only: the client writes its own frames.
    rpc: Rpc,
    next_id: i32,
    idle: Vec<PooledSession>,
    pub created: usize,
    /// Every raw frame the gateway sent (for the shape checks).
    pub frames: Vec<String>,
}

impl LoopaiClient {
    /// `new ClientWebSocket().ConnectAsync(new Uri(WebSocketUrl))`: no headers at all.
    pub async fn connect(url: &str) -> LoopaiClient {
        LoopaiClient {
            rpc: Rpc::connect_url(url)
                .await
                .reply_timeout(Duration::from_secs(120)),
            next_id: 0,
            idle: Vec::new(),
            created: 0,
            frames: Vec::new(),
        }
    }

    /// `SendRequestAsync`: `{"jsonrpc":"2.0","id":N,"method":M,"params":P}` + "\n".
    async fn request(&mut self, method: &str, params_json: String) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let frame = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":{},\"params\":{params_json}}}\n",
            stj_string(method)
        );
        self.rpc.send_text(frame).await;
        loop {
            let text = self.rpc.recv_text().await;
            let v: Value = serde_json::from_str(&text).expect("a reply is JSON");
            check_response(&v, &text);
            self.frames.push(text);
            // `ProcessMessage`: messages without an id are ignored.
            if v["id"].as_i64() == Some(id as i64) {
                return v;
            }
        }
    }

    /// `CreateSessionAsync` with the pool's `SessionCreateParams` (newer client: `runtime`).
    pub async fn create_session(&mut self, language: &str) -> Result<String, (i64, String)> {
        let runtime = match language {
            "javascript" => "deno",
            "python" => "python",
            _ => "docker",
        };
        let params = format!(
            "{{\"language\":{},\"runtime\":{},\"idleTimeoutMinutes\":30,\"maxLifetimeMinutes\":120,\"memoryLimitMB\":512,\"cpuShares\":1024}}",
            stj_string(language),
            stj_string(runtime)
        );
        let v = self.request("session.create", params).await;
        if let Some(e) = v.get("error") {
            return Err((
                e["code"].as_i64().unwrap(),
                e["message"].as_str().unwrap().to_string(),
            ));
        }
        let r = &v["result"];
        check_session_create_result(r);
        assert_eq!(
            r["language"], language,
            "the pool matches sessions by language"
        );
        assert_eq!(r["runtime"], runtime, "runtime is echoed: {r}");
        self.created += 1;
        Ok(r["sessionId"].as_str().unwrap().to_string())
    }

    /// `ExecuteAsync` with one command (its STJ body, without the discriminator).
    pub async fn execute(&mut self, session: &str, kind: &str, body: &str) -> Value {
        let params = format!(
            "{{\"sessionId\":{},\"command\":{{\"type\":{}{}{body}}}}}",
            stj_string(session),
            stj_string(kind),
            if body.is_empty() { "" } else { "," }
        );
        let v = self.request("session.execute", params).await;
        assert!(v.get("error").is_none(), "session.execute failed: {v}");
        check_command_result(&v["result"]);
        v["result"].clone()
    }

    pub async fn write_file(&mut self, session: &str, path: &str, content: &str) -> Value {
        // `Mode` defaults to "Create" and is not null, so it is always sent.
        let body = format!(
            "\"path\":{},\"content\":{},\"mode\":\"Create\"",
            stj_string(path),
            stj_string(content)
        );
        self.execute(session, "write_file", &body).await
    }

    pub async fn close_session(&mut self, session: &str) {
        let v = self
            .request(
                "session.close",
                format!("{{\"sessionId\":{}}}", stj_string(session)),
            )
            .await;
        assert_eq!(v["result"]["sessionId"], session, "{v}");
        assert_eq!(v["result"]["closed"], true, "{v}");
    }

    /// `CodeBeakerRuntimeService.ExecuteAsync(code, language, input)`.
    pub async fn run(&mut self, code: &str, language: &str, input: &str) -> EdgeResult {
        let Some((command, ext)) = client_language(language) else {
            return EdgeResult {
                success: false,
                error: Some(format!("Unsupported language: {language}")),
                output: None,
            };
        };
        // `AcquireSessionAsync`: an idle session of the language, or a new one.
        let session = match self.idle.iter().position(|s| s.language == language) {
            Some(i) => self.idle.remove(i),
            None => match self.create_session(language).await {
                Ok(id) => PooledSession {
                    id,
                    language: language.to_string(),
                },
                Err((code, message)) => {
                    return EdgeResult {
                        success: false,
                        error: Some(format!(
                            "Execution error: Failed to create session: {message} ({code})"
                        )),
                        output: None,
                    }
                }
            },
        };
        let script = format!("/workspace/program{ext}");
        let input_json =
            serde_json::to_string(&serde_json::from_str::<Value>(input).unwrap()).unwrap();
        self.write_file(&session.id, "/workspace/input.json", &input_json)
            .await;
        self.write_file(&session.id, &script, &wrap(language, code))
            .await;
        let args: Vec<String> = run_args(language, &script)
            .iter()
            .map(|a| stj_string(a))
            .collect();
        let shell = self
            .execute(
                &session.id,
                "shell",
                &format!(
                    "\"commandName\":{},\"args\":[{}]",
                    stj_string(command),
                    args.join(",")
                ),
            )
            .await;
        let result = if shell["success"] != true {
            EdgeResult {
                success: false,
                error: Some(
                    shell["error"]
                        .as_str()
                        .unwrap_or("Execution failed")
                        .to_string(),
                ),
                output: None,
            }
        } else {
            let read = self
                .execute(
                    &session.id,
                    "read_file",
                    &format!("\"path\":{}", stj_string("/workspace/output.json")),
                )
                .await;
            match read["result"]["content"].as_str() {
                Some(content) if read["success"] == true => EdgeResult {
                    success: true,
                    error: None,
                    output: Some(serde_json::from_str(content).expect("output.json is JSON")),
                },
                _ => EdgeResult {
                    success: false,
                    error: Some("Failed to read output".into()),
                    output: None,
                },
            }
        };
        self.idle.push(session);
        result
    }

    pub async fn dispose(mut self) {
        for s in std::mem::take(&mut self.idle) {
            self.close_session(&s.id).await;
        }
        self.rpc.close().await;
    }
}

/// `JsonRpcResponse`: `id` int?, `error` {code int, message string}?.
fn check_response(v: &Value, raw: &str) {
    assert!(
        v["id"].is_null() || v["id"].is_i64(),
        "id must be an int or absent: {raw}"
    );
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        assert!(e["code"].is_i64(), "error.code must be an int: {raw}");
        assert!(
            e["message"].is_string(),
            "error.message must be a string: {raw}"
        );
    }
}

/// `SessionCreateResult`: required strings and a `DateTime`.
fn check_session_create_result(r: &Value) {
    for f in ["sessionId", "containerId", "language", "state"] {
        assert!(r[f].is_string(), "{f} must be a string: {r}");
    }
    let created = r["createdAt"].as_str().expect("createdAt is a string");
    chrono::DateTime::parse_from_rfc3339(created).expect("createdAt is an ISO 8601 date-time");
    for f in ["idleTimeoutMinutes", "maxLifetimeMinutes"] {
        assert!(
            r["config"][f].is_i64(),
            "config.{f} must be an integer: {r}"
        );
    }
}

/// `CommandResult`: `success` bool, `error` string?, `durationMs` int.
fn check_command_result(r: &Value) {
    assert!(r["success"].is_boolean(), "success must be a bool: {r}");
    assert!(
        r["error"].is_null() || r["error"].is_string(),
        "error must be a string or null: {r}"
    );
    let d = r["durationMs"]
        .as_i64()
        .expect("durationMs must be an integer");
    assert!(
        (0..=i32::MAX as i64).contains(&d),
        "durationMs must fit an int: {r}"
    );
    if r["success"] == false {
        assert!(
            !r["error"].as_str().unwrap_or("").is_empty(),
            "a failure says why: {r}"
        );
    }
}

fn url_with_key(app: &TestApp) -> String {
    format!(
        "{}/ws/jsonrpc?api_key={}",
        app.addr.replace("http://", "ws://"),
        app.key
    )
}

fn output_of(r: &EdgeResult) -> i64 {
    assert!(r.success, "{:?}", r.error);
    r.output.as_ref().unwrap()["output"].as_i64().unwrap()
}

/// The four `ExecuteAsync_*Code_ShouldReturnCorrectResult` cases: {"value": 21} → 42.
#[tokio::test]
async fn loopai_client_runs_every_language_unchanged() {
    let app = spawn(&Language::FIRST_FOUR).await;
    let mut client = LoopaiClient::connect(&url_with_key(&app)).await;
    let cases = [
        ("python", "\nresult = {'output': input_data['value'] * 2}\n"),
        ("javascript", "\nconst result = { output: input_data.value * 2 };\n"),
        ("go", "\nvalue := input_data[\"value\"].(float64)\nresult := map[string]interface{}{\"output\": value * 2}\n"),
        ("csharp", "\nvar value = input_data.GetProperty(\"value\").GetInt32();\nvar result = new { output = value * 2 };\n"),
    ];
    for (language, code) in cases {
        let r = client.run(code, language, "{\"value\": 21}").await;
        assert_eq!(output_of(&r), 42, "{language}");
    }
    // The same programs again, on the now idle sessions: input.json and program.* are
    // rewritten with mode Create, and the compile caches are warm.
    for (language, code) in cases {
        let r = client.run(code, language, "{\"value\": 50}").await;
        assert_eq!(
            r.output.unwrap()["output"].as_i64(),
            Some(100),
            "{language} reused"
        );
    }
    assert_eq!(client.created, 4, "one session per language, reused");
    client.dispose().await;
    app.stop().await;
}

/// `SessionPool_ShouldReuseSession`, `..._ShouldCreateMultipleSessionsForDifferentLanguages`,
/// `ExecuteAsync_WithErrorInCode_ShouldReturnError` (on a reused session that still holds
/// an earlier output.json) and `ExecuteAsync_UnsupportedLanguage_ShouldReturnError`.
#[tokio::test]
async fn loopai_client_reuses_sessions_and_reports_errors() {
    let app = spawn(&[Language::Python, Language::JavaScript]).await;
    let mut client = LoopaiClient::connect(&url_with_key(&app)).await;
    let r1 = client
        .run("\nresult = {'count': 1}\n", "python", "{}")
        .await;
    let r2 = client
        .run("\nresult = {'count': 1}\n", "python", "{}")
        .await;
    assert!(r1.success && r2.success, "{r1:?} {r2:?}");
    assert_eq!(client.created, 1, "the second call reused the session");

    let js = client
        .run("const result = {lang: 'javascript'};", "javascript", "{}")
        .await;
    assert!(js.success, "{js:?}");
    assert_eq!(js.output.unwrap()["lang"], "javascript");
    assert_eq!(client.created, 2, "one session per language");

    // The python session still holds output.json from the calls above: a failing program
    // must be reported as a failure, not as the stale result.
    let bad = client
        .run(
            "\n# This will cause an error\nundefined_variable\n",
            "python",
            "{}",
        )
        .await;
    assert!(!bad.success, "{bad:?}");
    let error = bad.error.unwrap();
    assert!(error.starts_with("exit code 1"), "{error}");
    assert!(
        error.contains("NameError"),
        "the last stderr line ends the message: {error}"
    );

    let rust = client.run("some code", "rust", "{}").await;
    assert!(rust.error.unwrap().contains("Unsupported language"));
    // And if a client asks the server for it anyway, the refusal is a JSON-RPC error the
    // client's `CodeBeakerException` can carry.
    let refused = client.create_session("rust").await.unwrap_err();
    assert_eq!(refused.0, -32602);
    assert!(refused.1.contains("unsupported language"), "{}", refused.1);
    client.dispose().await;
    app.stop().await;
}

/// `create_dir`, `delete_file`, the write modes, and a failed shell's result shape.
#[tokio::test]
async fn loopai_command_names_modes_and_failure_shape() {
    let app = spawn(&[Language::Python]).await;
    let mut c = LoopaiClient::connect(&url_with_key(&app)).await;
    let sid = c.create_session("python").await.unwrap();
    let mkdir = c
        .execute(&sid, "create_dir", "\"path\":\"/workspace/data\"")
        .await;
    assert_eq!(mkdir["success"], true, "{mkdir}");
    c.write_file(&sid, "/workspace/data/a.txt", "one").await;
    let again = c.write_file(&sid, "/workspace/data/a.txt", "two").await;
    assert_eq!(
        again["success"], true,
        "Create truncates an existing file: {again}"
    );
    let new = c
        .execute(
            &sid,
            "write_file",
            "\"path\":\"data/a.txt\",\"content\":\"x\",\"mode\":\"CreateNew\"",
        )
        .await;
    assert_eq!(
        (new["success"].as_bool(), new["errorKind"].as_str()),
        (Some(false), Some("already_exists")),
        "{new}"
    );
    assert!(new["errorCode"].is_i64(), "{new}");
    c.execute(
        &sid,
        "write_file",
        "\"path\":\"data/a.txt\",\"content\":\"+\",\"mode\":\"Append\"",
    )
    .await;
    let trunc = c
        .execute(
            &sid,
            "write_file",
            "\"path\":\"data/missing.txt\",\"content\":\"x\",\"mode\":\"Truncate\"",
        )
        .await;
    assert_eq!(
        trunc["errorKind"], "not_found",
        "Truncate needs an existing file: {trunc}"
    );
    c.execute(
        &sid,
        "write_file",
        "\"path\":\"data/b.txt\",\"content\":\"old\",\"mode\":\"Overwrite\"",
    )
    .await;
    let read = c
        .execute(&sid, "read_file", "\"path\":\"/workspace/data/a.txt\"")
        .await;
    assert_eq!(read["result"]["content"], "two+");
    let del = c
        .execute(&sid, "delete_file", "\"path\":\"/workspace/data/a.txt\"")
        .await;
    assert_eq!(del["success"], true, "{del}");
    let gone = c
        .execute(&sid, "read_file", "\"path\":\"/workspace/data/a.txt\"")
        .await;
    assert_eq!(gone["errorKind"], "not_found", "{gone}");

    // An unknown mode is invalid params, naming the allowed values.
    c.next_id += 1;
    let frame = format!("{{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"session.execute\",\"params\":{{\"sessionId\":\"{sid}\",\"command\":{{\"type\":\"write_file\",\"path\":\"x\",\"content\":\"\",\"mode\":\"OpenOrCreate\"}}}}}}\n", c.next_id);
    c.rpc.send_text(frame).await;
    let v = c.rpc.recv().await;
    assert_eq!(v["error"]["code"], -32602, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CreateNew"),
        "{v}"
    );

    // A failing shell: success false, a one-line error, and the output still in result.
    let failed = c
        .execute(&sid, "shell", "\"commandName\":\"sh\",\"args\":[\"-c\",\"echo partial; echo first >&2; echo boom >&2; exit 3\"]")
        .await;
    assert_eq!(failed["success"], false);
    assert_eq!(failed["error"], "exit code 3: boom", "{failed}");
    assert_eq!(failed["errorKind"], "exit_status");
    assert_eq!(failed["result"]["stdout"], "partial\n");
    assert_eq!(failed["result"]["exitCode"], 3);
    assert_eq!(failed["result"]["timedOut"], false);
    let slow = c
        .execute(
            &sid,
            "shell",
            "\"commandName\":\"sleep\",\"args\":[\"5\"],\"timeoutMs\":300",
        )
        .await;
    assert_eq!(
        (
            slow["success"].as_bool(),
            slow["result"]["timedOut"].as_bool()
        ),
        (Some(false), Some(true)),
        "{slow}"
    );
    assert!(
        slow["error"]
            .as_str()
            .unwrap()
            .starts_with("timed out after 300 ms"),
        "{slow}"
    );
    // Unknown members never fail a command.
    let extra = c.execute(&sid, "shell", "\"commandName\":\"true\",\"args\":[],\"workingDirectory\":\"/workspace\",\"futureField\":1").await;
    assert_eq!(extra["success"], true, "{extra}");
    c.close_session(&sid).await;
    c.rpc.close().await;
    app.stop().await;
}

/// The upgrade takes `?api_key=` and `?access_token=`; a wrong key is 401; a key in the URL
/// of any other route is 401 with the reason.
#[tokio::test]
async fn credentials_in_the_url_only_on_the_websocket_upgrade() {
    let app = spawn(&[Language::Python]).await;
    let ws = app.addr.replace("http://", "ws://") + "/ws/jsonrpc";
    let mut c = LoopaiClient::connect(&format!("{ws}?api_key={}", app.key)).await;
    c.create_session("python").await.unwrap();
    c.rpc.close().await;

    let token = crate::edge::hs256(&crate::edge::claims(
        serde_json::json!({"sub": "loopai", "cb": {"scopes": ["sessions"], "tenant": "t-url"}}),
    ));
    let mut c = LoopaiClient::connect(&format!("{ws}?access_token={token}")).await;
    c.create_session("python").await.unwrap();
    c.rpc.close().await;

    let wrong = format!("{ws}?api_key=cb_nope_0000000000000000000000000000");
    match tokio_tungstenite::connect_async(wrong.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!(
            "a wrong key in the URL must be refused: {:?}",
            other.map(|_| ())
        ),
    }
    let r = app
        .client
        .post(format!("{}/v1/execute?api_key={}", app.addr, app.key))
        .json(&serde_json::json!({"language": "python", "code": "result = 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "unauthenticated");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("only on the WebSocket upgrade"), "{msg}");
    assert!(!msg.contains(&app.key), "the message never echoes the key");
    app.stop().await;
}

/// The gateway's own log output, at debug level, never holds a key sent in the URL.
#[tokio::test]
async fn a_key_in_the_url_never_reaches_the_logs() {
    use std::process::Command;
    let mut s = crate::helpers::settings(&[Language::Python]);
    let keys_file = s.auth.keys_file.clone().unwrap();
    let key = crate::helpers::add_key(
        &keys_file,
        vec![codebeaker::domain::Scope::Admin],
        crate::helpers::generous(),
    );
    s.pool
        .languages
        .get_mut(&Language::Python)
        .unwrap()
        .min_idle = 1;
    let db = keys_file.with_file_name("executions.db");
    let gw = crate::helpers::start_gateway_process(&[
        ("RUST_LOG", "debug".as_ref()),
        ("CODEBEAKER_AUTH__KEYS_FILE", keys_file.as_os_str()),
        ("CODEBEAKER_EXECUTIONS__DATABASE", db.as_os_str()),
        ("CODEBEAKER_POOL__INSTANCE", s.pool.instance.as_ref()),
        ("CODEBEAKER_POOL__LANGUAGES__PYTHON__MIN_IDLE", "1".as_ref()),
    ]);
    let (mut child, port, rx, mut log) = (gw.child, gw.port, gw.lines, gw.early);
    let base = format!("127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_ready(&http, &format!("http://{base}"), Duration::from_secs(60)).await;
    let mut c = LoopaiClient::connect(&format!("ws://{base}/ws/jsonrpc?api_key={key}")).await;
    let r = c.run("result = 1", "python", "{}").await;
    assert!(r.success, "{r:?}");
    c.dispose().await;
    let wrong_secret = format!("{}x", &key[..key.len() - 1]);
    let _ =
        tokio_tungstenite::connect_async(format!("ws://{base}/ws/jsonrpc?api_key={wrong_secret}"))
            .await;
    let _ = http
        .post(format!("http://{base}/v1/execute?api_key={key}"))
        .json(&serde_json::json!({}))
        .send()
        .await;
    // SIGTERM, then read everything it wrote.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        log.push(line);
    }
    let all = log.join("\n");
    assert!(
        all.contains("authentication failed"),
        "the refusals were logged:\n{all}"
    );
    let secret = key.rsplit('_').next().unwrap();
    assert!(
        !all.contains(secret),
        "the key's secret appeared in the log"
    );
    assert!(
        !all.contains(&wrong_secret[wrong_secret.len() - 20..]),
        "a presented wrong secret appeared in the log"
    );
    assert!(
        !all.contains("api_key="),
        "a query string appeared in the log"
    );
}

/// The System.Text.Json subset's own checks (`docker/csharp/tests/JsonTests.cs`) run in a
/// session with `dotnet script`, and a program using a member outside the subset fails to
/// compile with an error naming it.
#[tokio::test]
async fn csharp_json_subset_passes_its_checks_and_refuses_what_it_lacks() {
    let app = spawn(&[Language::CSharp]).await;
    let mut c = LoopaiClient::connect(&url_with_key(&app)).await;
    let sid = c.create_session("csharp").await.unwrap();
    let tests = include_str!("../../docker/csharp/tests/JsonTests.cs");
    c.write_file(&sid, "/workspace/JsonTests.cs", tests).await;
    let r = c
        .execute(&sid, "shell", "\"commandName\":\"dotnet\",\"args\":[\"script\",\"/workspace/JsonTests.cs\"],\"timeoutMs\":120000")
        .await;
    let stdout = r["result"]["stdout"].as_str().unwrap_or("");
    let summary = stdout.lines().last().unwrap_or("");
    assert_eq!(r["success"], true, "{r}");
    assert!(summary.ends_with(" passed, 0 failed"), "{summary}");
    println!("System.Text.Json subset: {summary}");

    let unsupported = include_str!("../../docker/csharp/tests/Unsupported.cs");
    c.write_file(&sid, "/workspace/Unsupported.cs", unsupported)
        .await;
    let r = c
        .execute(&sid, "shell", "\"commandName\":\"dotnet\",\"args\":[\"script\",\"/workspace/Unsupported.cs\"],\"timeoutMs\":120000")
        .await;
    assert_eq!(r["success"], false, "{r}");
    let stderr = r["result"]["stderr"].as_str().unwrap();
    assert!(
        stderr.contains("does not contain a definition for `SerializeToUtf8Bytes'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Unsupported.cs("),
        "errors name the user's file: {stderr}"
    );
    c.close_session(&sid).await;
    c.rpc.close().await;
    app.stop().await;
}

/// `cpuShares` is applied to the session's container, lowered to the server's cap, and
/// `memoryLimitMB` too; both come back as integers in `config`.
#[tokio::test]
async fn cpu_shares_and_memory_are_applied_to_the_session_container() {
    let app = spawn(&[Language::Python]).await;
    let mut c = LoopaiClient::connect(&url_with_key(&app)).await;
    let docker = crate::helpers::docker().await;
    for (asked, applied) in [(512, 512), (4096, 1024)] {
        let v = c
            .request(
                "session.create",
                format!("{{\"language\":\"python\",\"memoryLimitMB\":256,\"cpuShares\":{asked}}}"),
            )
            .await;
        let r = &v["result"];
        assert_eq!(r["config"]["cpuShares"], applied, "{v}");
        assert_eq!(r["config"]["memoryLimitMB"], 256, "{v}");
        let info = docker
            .inspect_container(
                r["containerId"].as_str().unwrap(),
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .unwrap();
        let host = info.host_config.unwrap();
        assert_eq!(host.cpu_shares, Some(applied), "Docker has the weight");
        assert_eq!(host.memory, Some(256 * 1024 * 1024));
    }
    let v = c
        .request(
            "session.create",
            "{\"language\":\"python\",\"cpuShares\":1}".into(),
        )
        .await;
    assert_eq!(v["error"]["code"], -32602, "{v}");
    c.rpc.close().await;
    app.stop().await;
}

/// `python3 FILE` (run by the Python container's zygote) and `go run FILE` (built once
/// per program) behave as the real commands do: argv, working directory, `sys.path[0]`,
/// `__file__`, exit codes and messages.
#[tokio::test]
async fn python3_and_go_run_behave_like_the_real_commands() {
    let app = spawn(&[Language::Python, Language::Go]).await;
    let mut c = LoopaiClient::connect(&url_with_key(&app)).await;
    let py = c.create_session("python").await.unwrap();
    c.execute(&py, "create_dir", "\"path\":\"pkg\"").await;
    c.write_file(&py, "/workspace/pkg/helper.py", "VALUE = 7\n")
        .await;
    c.write_file(&py, "/workspace/pkg/main.py", "import sys, os, helper\nprint(sys.argv, os.getcwd(), __file__, helper.VALUE, __name__)\nsys.exit(int(sys.argv[1]))\n").await;
    let r = c
        .execute(
            &py,
            "shell",
            "\"commandName\":\"python3\",\"args\":[\"pkg/main.py\",\"3\",\"x y\"]",
        )
        .await;
    assert_eq!(
        r["result"]["stdout"],
        "['pkg/main.py', '3', 'x y'] /workspace /workspace/pkg/main.py 7 __main__\n",
        "{r}"
    );
    assert_eq!(r["result"]["exitCode"], 3, "{r}");
    let r = c
        .execute(&py, "shell", "\"commandName\":\"python3\",\"args\":[\"main.py\",\"0\"],\"workingDirectory\":\"/workspace/pkg\"")
        .await;
    assert_eq!(r["success"], true, "cwd-relative script: {r}");
    let r = c
        .execute(
            &py,
            "shell",
            "\"commandName\":\"python3\",\"args\":[\"nope.py\"]",
        )
        .await;
    assert_eq!(r["result"]["exitCode"], 2, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("can't open file '/workspace/nope.py'"),
        "{r}"
    );
    let r = c
        .execute(&py, "shell", "\"commandName\":\"python3\",\"args\":[\"-c\",\"import sys; print(sys.flags.isolated)\"]")
        .await;
    assert_eq!(
        r["result"]["stdout"], "0\n",
        "flags go to the real python3: {r}"
    );

    let go = c.create_session("go").await.unwrap();
    let prog = "package main\nimport (\"fmt\"; \"os\")\nfunc main() {\n fmt.Println(os.Args[1:])\n if len(os.Args) > 1 && os.Args[1] == \"fail\" { os.Exit(4) }\n}\n";
    c.write_file(&go, "/workspace/m.go", prog).await;
    for _ in 0..2 {
        let r = c
            .execute(
                &go,
                "shell",
                "\"commandName\":\"go\",\"args\":[\"run\",\"/workspace/m.go\",\"a\",\"b\"]",
            )
            .await;
        assert_eq!(r["result"]["stdout"], "[a b]\n", "{r}");
    }
    let r = c
        .execute(
            &go,
            "shell",
            "\"commandName\":\"go\",\"args\":[\"run\",\"/workspace/m.go\",\"fail\"]",
        )
        .await;
    assert_eq!(
        r["result"]["exitCode"], 1,
        "go run exits 1 when the program fails: {r}"
    );
    assert!(
        r["result"]["stderr"]
            .as_str()
            .unwrap()
            .ends_with("exit status 4\n"),
        "{r}"
    );
    c.write_file(
        &go,
        "/workspace/m.go",
        "package main\nfunc main() { undefinedThing() }\n",
    )
    .await;
    let r = c
        .execute(
            &go,
            "shell",
            "\"commandName\":\"go\",\"args\":[\"run\",\"/workspace/m.go\"]",
        )
        .await;
    assert_eq!(r["success"], false);
    assert!(
        r["result"]["stderr"]
            .as_str()
            .unwrap()
            .contains("undefined: undefinedThing"),
        "{r}"
    );
    let r = c
        .execute(
            &go,
            "shell",
            "\"commandName\":\"go\",\"args\":[\"version\"]",
        )
        .await;
    assert!(
        r["result"]["stdout"]
            .as_str()
            .unwrap()
            .starts_with("go version go1."),
        "{r}"
    );
    c.rpc.close().await;
    app.stop().await;
}
