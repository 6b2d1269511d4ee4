//! Languages as data: the eight languages that exist only as recipes (TypeScript, Java, C,
//! C++, Rust, Ruby, PHP, Bash) keep the edge contract and plain mode, classify their
//! errors, cache their builds, run as resident instances, and survive hostile programs on
//! a pool of one container each; a recipe written in a temporary directory (no Rust
//! code) is served end to end; a language whose image is missing gets 503, never 500.

use codebeaker_proto::Language;
use serde_json::{json, Value};
use std::path::Path;

use crate::helpers::{settings, spawn_with, TestApp};

/// One language's programs, written as a user of that language would.
struct Case {
    name: &'static str,
    /// Reads `{"xs": [1, 2, 3], "name": "wörld ✓"}`, sets `{"sum": 6, "name": ...}`.
    edge: &'static str,
    /// A whole program that prints `hello` and exits 0.
    plain: &'static str,
    /// Refused before it runs: `compile_error`.
    broken: &'static str,
    /// Fails while it runs (stderr names `kaput`): `runtime_error`.
    fails: &'static str,
    /// Never ends: `timeout`.
    spins: &'static str,
    /// Allocates until the container's memory runs out.
    hogs: &'static str,
    compiled: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "typescript",
        edge: "const xs: number[] = input_data.xs;\nconst result: {sum: number, name: string} = {sum: xs.reduce((a, b) => a + b, 0), name: input_data.name};",
        plain: "const greeting: string = 'hello';\nconsole.log(greeting);",
        broken: "const x: number = ;",
        fails: "throw new Error('kaput');",
        spins: "while (true) {}",
        hogs: "const a: number[][] = [];\nwhile (true) a.push(new Array(1 << 20).fill(1));",
        compiled: false,
    },
    Case {
        name: "java",
        edge: "int s = 0;\nfor (Object x : asList(input_data.get(\"xs\"))) s += asInt(x);\nresult = Map.of(\"sum\", s, \"name\", input_data.get(\"name\"));",
        plain: "public class Hello {\n  public static void main(String[] args) {\n    System.out.println(\"hello\");\n  }\n}",
        broken: "int x = ;",
        fails: "if (true) throw new IllegalStateException(\"kaput\");",
        spins: "while (System.nanoTime() != 0) {}",
        hogs: "List<long[]> hog = new ArrayList<>();\nwhile (true) hog.add(new long[1 << 20]);",
        compiled: true,
    },
    Case {
        name: "c",
        edge: "json_object *xs = json_object_object_get(input_data, \"xs\");\nint s = 0;\nfor (size_t i = 0; i < json_object_array_length(xs); i++) s += json_object_get_int(json_object_array_get_idx(xs, i));\nresult = json_object_new_object();\njson_object_object_add(result, \"sum\", json_object_new_int(s));\njson_object_object_add(result, \"name\", json_object_get(json_object_object_get(input_data, \"name\")));",
        plain: "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }",
        broken: "int x = ;",
        fails: "fprintf(stderr, \"kaput\\n\");\nvolatile int *p = NULL;\n*p = 1;",
        spins: "for (;;) {}",
        hogs: "for (;;) { char *p = malloc(1 << 20); if (p) memset(p, 1, 1 << 20); }",
        compiled: true,
    },
    Case {
        name: "cpp",
        edge: "int s = 0;\nfor (auto &x : input_data[\"xs\"]) s += x.get<int>();\nresult = {{\"sum\", s}, {\"name\", input_data[\"name\"]}};",
        plain: "#include <iostream>\nint main() { std::cout << \"hello\" << std::endl; }",
        broken: "int x = ;",
        fails: "throw std::runtime_error(\"kaput\");",
        spins: "volatile unsigned long n = 0;\nfor (;;) n++;",
        hogs: "std::vector<std::vector<char>> hog;\nfor (;;) hog.emplace_back(1 << 20, 1);",
        compiled: true,
    },
    Case {
        name: "rust",
        edge: "let s: i64 = input_data[\"xs\"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).sum();\nresult = json!({\"sum\": s, \"name\": input_data[\"name\"]});",
        plain: "fn main() {\n    println!(\"hello\");\n}",
        broken: "let x: i32 = \"not a number\";",
        fails: "panic!(\"kaput\");",
        spins: "loop {}",
        hogs: "let mut hog: Vec<Vec<u8>> = Vec::new();\nloop { hog.push(vec![1u8; 1 << 20]); }",
        compiled: true,
    },
    Case {
        name: "ruby",
        edge: "result = {\"sum\" => input_data[\"xs\"].sum, \"name\" => input_data[\"name\"]}",
        plain: "puts \"hello\"",
        broken: "def broken(\n  1 +",
        fails: "raise \"kaput\"",
        spins: "loop {}",
        hogs: "hog = []\nloop { hog << (\"x\" * (1 << 20)) }",
        compiled: false,
    },
    Case {
        name: "php",
        edge: "$result = ['sum' => array_sum($input_data['xs']), 'name' => $input_data['name']];",
        plain: "<?php\necho \"hello\\n\";",
        broken: "$x = ;",
        fails: "throw new RuntimeException('kaput');",
        spins: "while (true) {}",
        hogs: "$hog = [];\nwhile (true) { $hog[] = str_repeat('x', 1 << 20); }",
        compiled: false,
    },
    Case {
        name: "bash",
        edge: "result=$(jq -c '{sum: (.xs | add), name: .name}' <<<\"$input_data\")",
        plain: "echo hello",
        broken: "if then fi (",
        fails: "echo kaput >&2\nexit 3",
        spins: "while :; do :; done",
        hogs: "hog=x\nwhile :; do hog=\"$hog$hog\"; done",
        compiled: false,
    },
];

fn kind(b: &Value) -> &str {
    b["error"]["kind"].as_str().unwrap_or("<none>")
}

/// Every recipe-only language, one container each (so "the next call" is on the container
/// the hostile one used), with a memory limit small enough to reach quickly.
async fn eight_languages() -> TestApp {
    let langs: Vec<Language> = CASES
        .iter()
        .map(|c| Language::new(c.name).unwrap())
        .collect();
    let mut s = settings(&langs);
    for l in &langs {
        let p = s.pool.languages.get_mut(l).unwrap();
        p.min_idle = 1;
        p.max_size = 1;
    }
    s.pool.limits.memory_mb = 256;
    s.pool.queue_timeout_ms = std::time::Duration::from_millis(60_000);
    s.limits.compile_timeout_ms = std::time::Duration::from_millis(60_000);
    s.limits.stream_limit_bytes = std::num::NonZeroU64::new(64 * 1024).unwrap();
    spawn_with(s).await
}

async fn call(app: &TestApp, body: Value) -> Value {
    let (status, b) = app.execute(body).await;
    assert_eq!(status, 200, "{b}");
    b
}

#[tokio::test]
async fn every_recipe_language_keeps_the_contract_classifies_errors_and_caches_builds() {
    let app = eight_languages().await;
    let input = json!({"xs": [1, 2, 3], "name": "wörld ✓"});
    let want = json!({"sum": 6, "name": "wörld ✓"});
    for c in CASES {
        let l = c.name;
        let b = call(&app, json!({"language": l, "code": c.edge, "input": input})).await;
        assert_eq!(b["success"], true, "{l}: {b}");
        assert_eq!(b["output"], want, "{l}: {b}");
        assert_eq!(b["language"], l, "{l}: {b}");
        // The same program again: a compiled one comes from the compile cache.
        let again = call(&app, json!({"language": l, "code": c.edge, "input": input})).await;
        assert_eq!(again["output"], want, "{l}: {again}");
        if c.compiled {
            assert_eq!(again["cacheHit"], true, "{l}: {again}");
        } else {
            assert_eq!(again["cacheHit"], Value::Null, "{l}: {again}");
        }

        let b = call(
            &app,
            json!({"language": l, "code": c.plain, "mode": "plain"}),
        )
        .await;
        assert_eq!(b["success"], true, "{l}: {b}");
        assert_eq!(b["stdout"], "hello\n", "{l}: {b}");
        assert_eq!(b["output"], Value::Null, "{l}: {b}");

        let b = call(&app, json!({"language": l, "code": c.broken})).await;
        assert_eq!(kind(&b), "compile_error", "{l}: {b}");

        let b = call(&app, json!({"language": l, "code": c.fails})).await;
        assert_eq!(kind(&b), "runtime_error", "{l}: {b}");
        assert!(b["stderr"].as_str().unwrap().contains("kaput"), "{l}: {b}");

        let b = call(
            &app,
            json!({"language": l, "code": c.spins, "timeoutMs": 1000}),
        )
        .await;
        assert_eq!(kind(&b), "timeout", "{l}: {b}");

        // A runtime's own out-of-memory error (the JVM's heap, PHP's memory_limit) is
        // the program's runtime error; the kernel's OOM kill is memory_limit_exceeded.
        let b = call(
            &app,
            json!({"language": l, "code": c.hogs, "timeoutMs": 20000}),
        )
        .await;
        assert!(
            matches!(kind(&b), "memory_limit_exceeded" | "runtime_error"),
            "{l}: {b}"
        );

        // The container is healthy after all of that.
        let b = call(&app, json!({"language": l, "code": c.edge, "input": input})).await;
        assert_eq!(b["output"], want, "{l} after the hostile calls: {b}");
    }
    app.stop().await;
}

#[tokio::test]
async fn every_recipe_language_runs_as_a_resident_instance_and_lists_itself() {
    let app = eight_languages().await;
    let (status, langs) = app.get("/v1/languages").await;
    assert_eq!(status, 200);
    for c in CASES {
        let l = c.name;
        let info = langs
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == l)
            .unwrap_or_else(|| panic!("{l} is not listed: {langs}"));
        assert_eq!(info["available"], true, "{info}");
        assert_eq!(info["compiled"], c.compiled, "{info}");
        assert!(
            info["toolchain"].as_str().is_some_and(|t| !t.is_empty()),
            "{info}"
        );
        assert_eq!(info["resident"]["edge"], true, "{info}");
        // The same program, three inputs, one instance: each call has its own variables.
        for n in [1, 2, 3] {
            let input = json!({"xs": [n, n], "name": format!("call {n}")});
            let b = call(
                &app,
                json!({"language": l, "code": c.edge, "input": input, "isolation": "program"}),
            )
            .await;
            assert_eq!(
                b["output"],
                json!({"sum": 2 * n, "name": format!("call {n}")}),
                "{l}: {b}"
            );
        }
        let b = call(
            &app,
            json!({"language": l, "code": c.fails, "isolation": "program"}),
        )
        .await;
        assert_eq!(kind(&b), "runtime_error", "{l}: {b}");
    }
    // Aliases resolve to their language.
    for (alias, is) in [
        ("ts", "typescript"),
        ("c++", "cpp"),
        ("rs", "rust"),
        ("rb", "ruby"),
        ("sh", "bash"),
    ] {
        let code = CASES.iter().find(|c| c.name == is).unwrap().plain;
        let b = call(
            &app,
            json!({"language": alias, "code": code, "mode": "plain"}),
        )
        .await;
        assert_eq!(b["language"], is, "{alias}: {b}");
        assert_eq!(b["stdout"], "hello\n", "{alias}: {b}");
    }
    app.stop().await;
}

/// A fork bomb in the two languages where one is a line: the process limit stops it, and
/// the next call on the same container runs.
#[tokio::test]
async fn fork_bombs_in_bash_and_c_are_contained() {
    let langs = [Language::new("bash").unwrap(), Language::new("c").unwrap()];
    let mut s = settings(&langs);
    for l in &langs {
        let p = s.pool.languages.get_mut(l).unwrap();
        p.min_idle = 1;
        p.max_size = 1;
    }
    s.pool.queue_timeout_ms = std::time::Duration::from_millis(60_000);
    let app = spawn_with(s).await;
    for (l, bomb, after) in [
        (
            "bash",
            "bomb() { bomb | bomb & }; bomb; sleep 5",
            "result=42",
        ),
        (
            "c",
            "#include <unistd.h>\nint main(void) { for (;;) fork(); }",
            "result = json_object_new_int(42);",
        ),
    ] {
        let mode = if l == "c" { "plain" } else { "edge" };
        let b = call(
            &app,
            json!({"language": l, "code": bomb, "mode": mode, "timeoutMs": 3000}),
        )
        .await;
        assert_eq!(b["success"], false, "{l}: {b}");
        let b = call(&app, json!({"language": l, "code": after})).await;
        assert_eq!(b["output"], 42, "{l} after its fork bomb: {b}");
    }
    app.stop().await;
}

/// Writes `dir/<name>/` with a recipe and an edge template.
fn write_recipe(dir: &Path, name: &str, recipe: &str, edge: &str) {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("language.toml"), recipe).unwrap();
    std::fs::write(d.join("edge.sh"), edge).unwrap();
}

/// A new language is a directory, not code: `posix` (plain `sh`, with `sed` as its tiny
/// JSON helper) is written in a temporary languages directory and served end to end on
/// the Bash image. `ghost` names an image nobody built: listed as unavailable, and its
/// calls get 503 naming the command that builds it.
#[tokio::test]
async fn a_recipe_in_a_temporary_directory_is_a_new_language() {
    let dir = std::env::temp_dir().join(format!(
        "codebeaker-recipes-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let edge = "input_data=$(cat /workspace/input.json)\n{{code}}\nif [ -n \"${result+set}\" ]; then printf '%s' \"$result\" > /workspace/output.json; fi\n";
    write_recipe(
        &dir,
        "posix",
        r#"name = "posix"
title = "POSIX sh (a test recipe)"
aliases = ["test-sh"]
file = "program.sh"
image = "bash"
version = ["sh", "-c", "echo posix sh"]
note = "a recipe written by a test"

[run]
argv = ["sh", "{program}"]
compile_error_stderr = ["Syntax error"]

[wrap]
edge = "edge.sh"
"#,
        edge,
    );
    write_recipe(
        &dir,
        "ghost",
        r#"name = "ghost"
title = "Ghost"
file = "program.sh"
image = "ghost-never-built"
version = ["sh", "-c", "echo ghost"]

[run]
argv = ["sh", "{program}"]

[wrap]
edge = "edge.sh"
"#,
        edge,
    );
    let mut s = settings(&[
        Language::new("posix").unwrap(),
        Language::new("ghost").unwrap(),
    ]);
    s.languages.dir = dir.clone();
    let app = spawn_with(s).await;

    // The helper is `sed`: the "n" field of a flat object.
    let code = "n=$(printf '%s' \"$input_data\" | sed 's/.*\"n\": *\\([0-9]*\\).*/\\1/')\nresult=\"{\\\"twice\\\": $((n * 2))}\"";
    let b = call(
        &app,
        json!({"language": "test-sh", "code": code, "input": {"n": 21}}),
    )
    .await;
    assert_eq!(b["success"], true, "{b}");
    assert_eq!(b["language"], "posix", "{b}");
    assert_eq!(b["output"], json!({"twice": 42}), "{b}");
    let b = call(
        &app,
        json!({"language": "posix", "code": "echo plain", "mode": "plain"}),
    )
    .await;
    assert_eq!(b["stdout"], "plain\n", "{b}");
    let b = call(&app, json!({"language": "posix", "code": "if then fi ("})).await;
    assert_eq!(kind(&b), "compile_error", "{b}");

    let (_, langs) = app.get("/v1/languages").await;
    let find = |n: &str| {
        langs
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == n)
            .cloned()
            .unwrap()
    };
    let posix = find("posix");
    assert_eq!(posix["available"], true, "{posix}");
    assert_eq!(posix["image"], "codebeaker-bash:latest", "{posix}");
    assert_eq!(posix["toolchain"], "posix sh", "{posix}");
    assert_eq!(posix["note"], "a recipe written by a test", "{posix}");
    let ghost = find("ghost");
    assert_eq!(ghost["available"], false, "{ghost}");

    let (status, b) = app
        .execute(json!({"language": "ghost", "code": "result=1"}))
        .await;
    assert_eq!(status, 503, "{b}");
    assert_eq!(b["error"]["kind"], "language_unavailable", "{b}");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("docker/build-images.sh ghost-never-built"),
        "{msg}"
    );
    // A language outside the directory is not served.
    let (status, b) = app
        .execute(json!({"language": "python", "code": "result = 1"}))
        .await;
    assert_eq!(status, 400, "{b}");
    assert_eq!(b["error"]["kind"], "unsupported_language", "{b}");
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
