//! Each language's happy path and each program-error kind.

use codebeaker_proto::Language;
use serde_json::{json, Value};

use crate::helpers::spawn;

fn unicode_input() -> Value {
    json!({"name": "wörld ✓ 漢字", "nested": {"a": [1, 2.5, {"b": "ü", "c": null, "d": true}]}})
}

async fn assert_echo(language: Language, code: &str) {
    let app = spawn(std::slice::from_ref(&language)).await;
    let input = unicode_input();
    let body = app.run(language.name(), code, input.clone()).await;
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["error"], Value::Null);
    assert_eq!(body["exitCode"], 0);
    assert_eq!(body["output"]["echo"], input, "{body}");
    assert_eq!(body["output"]["greeting"], "héllo wörld ✓ 漢字");
    assert!(body["executionId"].as_str().is_some_and(|s| s.len() == 36));
    // A second call on the warm pool works the same (and hits the compile cache).
    let again = app.run(language.name(), code, input.clone()).await;
    assert_eq!(again["output"], body["output"]);
    let recipe = codebeaker_recipe::Recipe::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("languages")
            .join(language.name()),
    )
    .unwrap();
    if recipe.is_compiled() {
        assert_eq!(again["cacheHit"], true, "{again}");
    }
    app.stop().await;
}

#[tokio::test]
async fn python_round_trips_nested_json_and_unicode() {
    assert_echo(
        Language::Python,
        r#"result = {"echo": input_data, "greeting": "héllo " + input_data["name"]}"#,
    )
    .await;
}

#[tokio::test]
async fn javascript_round_trips_nested_json_and_unicode() {
    assert_echo(
        Language::JavaScript,
        r#"const result = {echo: input_data, greeting: "héllo " + input_data.name};"#,
    )
    .await;
}

#[tokio::test]
async fn go_round_trips_nested_json_and_unicode() {
    assert_echo(
        Language::Go,
        r#"result := map[string]interface{}{"echo": input_data, "greeting": "héllo " + input_data["name"].(string)}"#,
    )
    .await;
}

#[tokio::test]
async fn csharp_round_trips_nested_json_and_unicode() {
    assert_echo(
        Language::CSharp,
        r#"var result = new Dictionary<string, object> { { "echo", input_data }, { "greeting", "héllo " + input_data.GetProperty("name").GetString() } };"#,
    )
    .await;
}

fn kind(body: &Value) -> &str {
    body["error"]["kind"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn program_errors_have_distinct_kinds() {
    let app = spawn(&[
        Language::Python,
        Language::JavaScript,
        Language::Go,
        Language::CSharp,
    ])
    .await;

    let b = app.run("go", "result := undefinedThing", json!({})).await;
    assert_eq!(kind(&b), "compile_error", "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("undefinedThing"),
        "{b}"
    );
    assert_eq!(b["success"], false);

    let b = app.run("csharp", "var result = ;", json!({})).await;
    assert_eq!(kind(&b), "compile_error", "{b}");
    // Outside the System.Text.Json subset: a compile error naming the member, never a
    // wrong answer; the line is the user's own (the wrapper's lines are not counted).
    let b = app
        .run(
            "csharp",
            "var g = input_data.GetGuid();\nvar result = 1;",
            json!({}),
        )
        .await;
    assert_eq!(kind(&b), "compile_error", "{b}");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("does not contain a definition for `GetGuid'"),
        "{msg}"
    );

    let b = app
        .run("python", "raise ValueError('boom')", json!({}))
        .await;
    assert_eq!(kind(&b), "runtime_error", "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ValueError: boom"),
        "{b}"
    );
    assert!(b["stderr"].as_str().unwrap().contains("Traceback"), "{b}");
    assert_eq!(b["exitCode"], 1);

    let b = app
        .run("javascript", "throw new Error('kaput')", json!({}))
        .await;
    assert_eq!(kind(&b), "runtime_error", "{b}");
    assert!(b["stderr"].as_str().unwrap().contains("kaput"), "{b}");

    let b = app
        .run("csharp", "var result = 1 / int.Parse(\"0\");", json!({}))
        .await;
    assert_eq!(kind(&b), "runtime_error", "{b}");
    assert!(
        b["stderr"].as_str().unwrap().contains("DivideByZero"),
        "{b}"
    );

    let b = app.run("python", "x = 1", json!({})).await;
    assert_eq!(kind(&b), "missing_result", "{b}");
    assert_eq!(b["output"], Value::Null);

    let b = app.run("javascript", "let y = 2;", json!({})).await;
    assert_eq!(kind(&b), "missing_result", "{b}");

    let b = app.run("python", "result = {1, 2}", json!({})).await;
    assert_eq!(kind(&b), "invalid_output", "{b}");

    let b = app
        .run("javascript", "var result = () => 1;", json!({}))
        .await;
    assert_eq!(kind(&b), "invalid_output", "{b}");

    // User processes are the OOM killer's first choice, not the agent, in every language.
    for (lang, code) in [
        ("python", "result = open('/proc/self/oom_score_adj').read().strip()"),
        ("javascript", "const result = require('fs').readFileSync('/proc/self/oom_score_adj', 'utf8').trim();"),
        ("go", "b, _ := os.ReadFile(\"/proc/self/oom_score_adj\")\nresult := strings.TrimSpace(string(b))"),
    ] {
        let b = app.run(lang, code, json!({})).await;
        assert_eq!(b["output"], "1000", "{lang}: {b}");
    }

    // The pool is healthy after all of that.
    let b = app.run("python", "result = 42", json!({})).await;
    assert_eq!(b["output"], 42);
    app.stop().await;
}

#[tokio::test]
async fn oversized_output_json_is_refused() {
    let mut s = crate::helpers::settings(&[Language::Python]);
    s.limits.result_limit_bytes = std::num::NonZeroU64::new(1000).unwrap();
    let app = crate::helpers::spawn_with(s).await;
    let b = app.run("python", "result = 'x' * 5000", json!({})).await;
    assert_eq!(kind(&b), "output_too_large", "{b}");
    app.stop().await;
}

#[tokio::test]
async fn languages_endpoint_lists_aliases_images_and_pools() {
    let app = spawn(&[Language::Python]).await;
    let (status, body) = app.get("/v1/languages").await;
    assert_eq!(status, 200);
    let py = &body.as_array().unwrap()[0];
    assert_eq!(py["name"], "python");
    assert_eq!(py["aliases"], json!(["py", "python3"]));
    assert_eq!(py["image"], "codebeaker-python:latest");
    assert!(
        py["toolchain"].as_str().unwrap().starts_with("Python 3"),
        "{py}"
    );
    assert!(py["pool"]["idle"].as_u64().unwrap() >= 1, "{py}");
    // Aliases work on execute.
    for alias in ["py", "PYTHON3", "python"] {
        let b = app.run(alias, "result = 1", json!({})).await;
        assert_eq!(b["output"], 1);
    }
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200);
    app.stop().await;
}

/// Input and output travel as the caller's and the program's JSON text (validated and
/// compacted, never rebuilt): a pretty-printed request body, a program that writes
/// pretty-printed `output.json` itself, and text a tree would normalise all come through.
#[tokio::test]
async fn json_text_travels_through_intact_whatever_its_layout() {
    let app = spawn(&[Language::Python]).await;
    // `result` is left unset so that the program's own file is what is read back.
    let code = "import json\nwith open('/workspace/output.json', 'w') as f:\n    json.dump({'n': input_data['n'], 'big': input_data['big'], 'keys': list(input_data)}, f, indent=2)\n";
    let body = format!(
        "{{\n  \"language\": \"python\",\n  \"code\": {},\n  \"input\": {{\n    \"n\": 1.50,\n    \"big\": 123456789012345678901234567890,\n    \"z\": \"a\\nb\", \"a\": [ ]\n  }}\n}}",
        serde_json::to_string(code).unwrap()
    );
    let r = app
        .post("/v1/execute")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["success"], true, "{v}");
    // Key order as the caller sent it, and numbers as Python read them.
    assert_eq!(v["output"]["keys"], json!(["n", "big", "z", "a"]), "{v}");
    assert_eq!(v["output"]["n"], json!(1.5));
    // The program's pretty-printed file came back compact, inside one response line.
    assert!(
        text.contains(r#""output":{"n":1.5,"big":123456789012345678901234567890,"#),
        "{text}"
    );
    app.stop().await;
}
