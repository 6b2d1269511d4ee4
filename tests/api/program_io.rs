//! `stdin`, `args` and `files` on every native way of running a program: each of the twelve
//! languages reads its stdin, its arguments (one with a space, one not ASCII) and a file in
//! a subdirectory; edge mode, batch items (each with its own stdin), async executions and
//! the seeds' `/api/execute` take them too; a compiled program's cache key covers the files
//! it includes; a program that never reads a large stdin still ends; and bad paths,
//! oversized parts and a resident instance asked for them are refused before anything runs.

use codebeaker_proto::Language;
use serde_json::{json, Value};

use crate::helpers::{settings, spawn_with, TestApp};

/// Each prints its first stdin line, its arguments joined by commas, and `data/msg.txt`.
const PROGRAMS: &[(&str, &str)] = &[
    ("python", "import sys\nprint(input())\nprint(','.join(sys.argv[1:]))\nprint(open('data/msg.txt').read())"),
    ("javascript", "const fs = require('fs');\nconsole.log(fs.readFileSync(0, 'utf8').split('\\n')[0]);\nconsole.log(process.argv.slice(2).join(','));\nconsole.log(fs.readFileSync('data/msg.txt', 'utf8'));"),
    ("typescript", "const fs = require('fs');\nconst first: string = fs.readFileSync(0, 'utf8').split('\\n')[0];\nconsole.log(first);\nconsole.log(process.argv.slice(2).join(','));\nconsole.log(fs.readFileSync('data/msg.txt', 'utf8'));"),
    ("go", "package main\n\nimport (\n\t\"bufio\"\n\t\"fmt\"\n\t\"os\"\n\t\"strings\"\n)\n\nfunc main() {\n\tl, _ := bufio.NewReader(os.Stdin).ReadString('\\n')\n\tfmt.Println(strings.TrimRight(l, \"\\n\"))\n\tfmt.Println(strings.Join(os.Args[1:], \",\"))\n\tb, _ := os.ReadFile(\"data/msg.txt\")\n\tfmt.Println(string(b))\n}"),
    ("csharp", "using System;\nusing System.IO;\nclass P {\n  static void Main(string[] args) {\n    Console.WriteLine(Console.ReadLine());\n    Console.WriteLine(string.Join(\",\", args));\n    Console.WriteLine(File.ReadAllText(\"data/msg.txt\"));\n  }\n}"),
    ("java", "import java.io.*;\nimport java.nio.file.*;\npublic class Main {\n  public static void main(String[] args) throws Exception {\n    BufferedReader r = new BufferedReader(new InputStreamReader(System.in));\n    System.out.println(r.readLine());\n    System.out.println(String.join(\",\", args));\n    System.out.println(Files.readString(Path.of(\"data/msg.txt\")));\n  }\n}"),
    ("c", "#include <stdio.h>\nint main(int argc, char **argv) {\n  char l[256];\n  if (fgets(l, sizeof l, stdin)) fputs(l, stdout);\n  for (int i = 1; i < argc; i++) printf(i > 1 ? \",%s\" : \"%s\", argv[i]);\n  printf(\"\\n\");\n  FILE *f = fopen(\"data/msg.txt\", \"r\");\n  int c;\n  while (f && (c = fgetc(f)) != EOF) putchar(c);\n  printf(\"\\n\");\n  return 0;\n}"),
    ("cpp", "#include <fstream>\n#include <iostream>\n#include <string>\nint main(int argc, char **argv) {\n  std::string l;\n  std::getline(std::cin, l);\n  std::cout << l << \"\\n\";\n  for (int i = 1; i < argc; i++) std::cout << (i > 1 ? \",\" : \"\") << argv[i];\n  std::cout << \"\\n\";\n  std::ifstream f(\"data/msg.txt\");\n  std::cout << f.rdbuf() << \"\\n\";\n}"),
    ("rust", "use std::io::BufRead;\nfn main() {\n    let mut l = String::new();\n    std::io::stdin().lock().read_line(&mut l).unwrap();\n    println!(\"{}\", l.trim_end());\n    println!(\"{}\", std::env::args().skip(1).collect::<Vec<_>>().join(\",\"));\n    println!(\"{}\", std::fs::read_to_string(\"data/msg.txt\").unwrap());\n}"),
    ("ruby", "puts STDIN.gets\nputs ARGV.join(',')\nputs File.read('data/msg.txt')"),
    ("php", "<?php\necho fgets(STDIN);\necho implode(',', array_slice($argv, 1)), \"\\n\";\necho file_get_contents('data/msg.txt'), \"\\n\";"),
    ("bash", "read -r l\necho \"$l\"\n(IFS=,; echo \"$*\")\ncat data/msg.txt\necho"),
];

const ARGS: [&str; 3] = ["one", "two words", "ünï"];

async fn gateway(names: &[&str]) -> TestApp {
    let langs: Vec<Language> = names.iter().map(|n| Language::new(n).unwrap()).collect();
    let mut s = settings(&langs);
    for ls in s.pool.languages.values_mut() {
        ls.min_idle = 1;
        ls.max_size = 1;
    }
    s.pool.limits.memory_mb = 256;
    s.pool.queue_timeout_ms = std::time::Duration::from_millis(60_000);
    s.limits.compile_timeout_ms = std::time::Duration::from_millis(60_000);
    spawn_with(s).await
}

fn io_request(language: &str, code: &str) -> Value {
    json!({
        "language": language, "code": code, "mode": "plain",
        "stdin": "hello from stdin\nsecond line\n",
        "args": ARGS,
        "files": [{"path": "data/msg.txt", "content": "ZmlsZS1jb250ZW50LTQy", "encoding": "base64"}],
        "timeoutMs": 20000,
    })
}

fn check_io(language: &str, b: &Value) {
    let out = b["stdout"].as_str().unwrap_or_default();
    assert_eq!(b["success"], true, "{language}: {b}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"hello from stdin"),
        "{language}: {out:?}"
    );
    assert_eq!(
        lines.get(1),
        Some(&"one,two words,ünï"),
        "{language}: {out:?}"
    );
    assert_eq!(
        lines.get(2),
        Some(&"file-content-42"),
        "{language}: {out:?}"
    );
}

#[tokio::test]
async fn every_language_reads_its_stdin_args_and_files() {
    let names: Vec<&str> = PROGRAMS.iter().map(|(n, _)| *n).collect();
    let app = gateway(&names).await;
    for (language, code) in PROGRAMS {
        let (st, b) = app.execute(io_request(language, code)).await;
        assert_eq!(st, 200, "{language}: {b}");
        check_io(language, &b);
    }
}

#[tokio::test]
async fn edge_batch_async_and_seed_routes_take_them_too() {
    let app = gateway(&["python", "c"]).await;

    // Edge mode: the wrapper's contract plus the program's stdin, argv and files.
    let (st, b) = app
        .execute(json!({
            "language": "python",
            "code": "import sys\nfrom helper import double\nresult = {'line': sys.stdin.readline().strip(), 'args': sys.argv[1:], 'n': double(input_data['n'])}",
            "input": {"n": 21},
            "stdin": "edge stdin\n",
            "args": ["a", "b"],
            "files": [{"path": "helper.py", "content": "def double(x):\n    return 2 * x\n"}],
        }))
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        b["output"],
        json!({"line": "edge stdin", "args": ["a", "b"], "n": 42}),
        "{b}"
    );

    // A batch: its args and files for every item, each item's own stdin or the batch's.
    let r = app
        .post("/v1/execute/batch")
        .json(&json!({
            "language": "python",
            "code": "import sys\nresult = {'in': sys.stdin.read(), 'args': sys.argv[1:], 'f': open('f.txt').read(), 'x': input_data['x']}",
            "stdin": "batch default",
            "args": ["--flag"],
            "files": [{"path": "f.txt", "content": "shared"}],
            "items": [
                {"id": "a", "input": {"x": 1}, "stdin": "item a"},
                {"id": "b", "input": {"x": 2}},
                {"id": "c", "input": {"x": 3}, "stdin": ""},
            ],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    let outs: Vec<Value> = b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["output"].clone())
        .collect();
    assert_eq!(
        outs,
        vec![
            json!({"in": "item a", "args": ["--flag"], "f": "shared", "x": 1}),
            json!({"in": "batch default", "args": ["--flag"], "f": "shared", "x": 2}),
            json!({"in": "", "args": ["--flag"], "f": "shared", "x": 3}),
        ],
        "{b}"
    );

    // An async execution keeps them until it runs.
    let api = app.api();
    let id = api
        .submit(json!({"language": "python", "code": "import sys\nprint(sys.stdin.read().upper(), sys.argv[1])", "mode": "plain", "stdin": "queued", "args": ["x"]}))
        .await;
    let done = api.wait_final(&id).await;
    assert_eq!(done["result"]["stdout"], "QUEUED x\n", "{done}");

    // The seeds' REST API.
    let r = app
        .post("/api/execute")
        .json(&json!({"language": "python", "code": "print(input()[::-1])", "stdin": "seed"}))
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["stdout"], "dees\n", "{b}");

    // A compiled program's key covers the header it includes: changing the header changes
    // the program, never a stale cached binary.
    let code = "#include <stdio.h>\n#include \"msg.h\"\nint main(void) { puts(MSG); return 0; }";
    for msg in ["first", "second", "first"] {
        let (st, b) = app
            .execute(json!({"language": "c", "code": code, "mode": "plain",
                "files": [{"path": "msg.h", "content": format!("#define MSG \"{msg}\"\n")}]}))
            .await;
        assert_eq!(
            (st, b["stdout"].as_str()),
            (200, Some(format!("{msg}\n").as_str())),
            "{b}"
        );
    }

    // A program that never reads its stdin (1 MiB: more than a pipe holds) still ends, and
    // the container serves the next call.
    let (st, b) = app
        .execute(
            json!({"language": "python", "code": "print('ignored')", "mode": "plain",
            "stdin": "z".repeat(1024 * 1024)}),
        )
        .await;
    assert_eq!((st, b["stdout"].as_str()), (200, Some("ignored\n")), "{b}");
    let (st, b) = app
        .execute(json!({"language": "python", "code": "import sys\nprint(len(sys.stdin.read()))", "mode": "plain",
            "stdin": "y".repeat(1024 * 1024)}))
        .await;
    assert_eq!((st, b["stdout"].as_str()), (200, Some("1048576\n")), "{b}");
}

#[tokio::test]
async fn bad_files_and_oversized_parts_are_refused_before_anything_runs() {
    let app = gateway(&["python"]).await;
    let base = json!({"language": "python", "code": "print(1)", "mode": "plain"});
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (files, why) in [
        (json!([{"path": "../escape", "content": "x"}]), ".."),
        (json!([{"path": "/etc/passwd", "content": "x"}]), "relative"),
        (json!([{"path": "program.py", "content": "x"}]), "own file"),
        (json!([{"path": "output.json", "content": "x"}]), "own file"),
        (json!([{"path": "a//b", "content": "x"}]), "empty"),
        (
            json!([{"path": "d", "content": "x"}, {"path": "d/e", "content": "y"}]),
            "both",
        ),
        (
            json!([{"path": "b.bin", "content": "not base64!", "encoding": "base64"}]),
            "base64",
        ),
    ] {
        let (st, b) = app.execute(with(json!({"files": files}))).await;
        assert_eq!(
            (st, b["error"]["kind"].as_str()),
            (422, Some("invalid_request")),
            "{why}: {b}"
        );
        assert!(
            b["error"]["message"].as_str().unwrap().contains("files"),
            "{b}"
        );
    }
    let (st, b) = app
        .execute(with(json!({"stdin": "s".repeat(1024 * 1024 + 1)})))
        .await;
    assert_eq!(
        (st, b["error"]["kind"].as_str()),
        (413, Some("payload_too_large")),
        "{b}"
    );
    let many: Vec<String> = (0..65).map(|i| i.to_string()).collect();
    let (st, b) = app.execute(with(json!({"args": many}))).await;
    assert_eq!(
        (st, b["error"]["kind"].as_str()),
        (422, Some("invalid_request")),
        "{b}"
    );
    let files: Vec<Value> = (0..33)
        .map(|i| json!({"path": format!("f{i}"), "content": ""}))
        .collect();
    let (st, b) = app.execute(with(json!({"files": files}))).await;
    assert_eq!(
        (st, b["error"]["kind"].as_str()),
        (422, Some("invalid_request")),
        "{b}"
    );
    let (st, b) = app
        .execute(json!({"language": "python", "code": "result = 1", "isolation": "program", "stdin": "x"}))
        .await;
    assert_eq!(
        (st, b["error"]["kind"].as_str()),
        (422, Some("invalid_request")),
        "{b}"
    );
}
