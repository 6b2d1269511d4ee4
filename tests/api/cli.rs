//! The `codebeaker` binary's client commands (`run`, `batch`, `session`) and `keys list |
//! revoke | rotate`, run as a real process against a gateway started here (docs/cli.md).
//! The process runs under tokio::process with a timeout, so the in-process gateway keeps
//! answering while the test waits for it.

use crate::helpers::{spawn, TestApp};
use codebeaker_proto::Language;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `codebeaker ARGS` with `url` and `key` in its environment (and nothing of ours
/// named CODEBEAKER_*), `stdin` piped in, in `dir`.
async fn cli(
    dir: &Path,
    url: &str,
    key: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> Out {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_codebeaker"));
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, _) in std::env::vars() {
        if k.starts_with("CODEBEAKER") {
            cmd.env_remove(k);
        }
    }
    cmd.env("CODEBEAKER_URL", url);
    if let Some(k) = key {
        cmd.env("CODEBEAKER_API_KEY", k);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("the codebeaker binary starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("codebeaker {args:?} did not finish within 120 s"))
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("unrecognized subcommand"),
        "{} is not this tree's binary (another build into a shared CARGO_TARGET_DIR replaced it?): {stderr}",
        env!("CARGO_BIN_EXE_codebeaker")
    );
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

/// A fresh directory for one test's files.
fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cb-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    name.to_string()
}

impl TestApp {
    async fn cli(&self, dir: &Path, args: &[&str], stdin: &str) -> Out {
        cli(dir, &self.addr, Some(&self.key), args, &[], stdin).await
    }
}

#[tokio::test]
async fn run_prints_result_stdout_stderr_and_exits_with_the_programs_code() {
    let app = spawn(&[Language::Python, Language::JavaScript]).await;
    let dir = workdir();
    let program = write(
        &dir,
        "sum.py",
        "import sys\n\
         data = sys.stdin.read()\n\
         print('argv', sys.argv[1:])\n\
         print('to stderr', file=sys.stderr)\n\
         result = {'sum': sum(input_data['xs']), 'stdin': data}\n",
    );
    write(&dir, "stdin.txt", "from a file\n");
    let out = app
        .cli(
            &dir,
            &[
                "run",
                &program,
                "--input",
                r#"{"xs": [1, 2, 3]}"#,
                "--stdin",
                "@stdin.txt",
                "--arg",
                "-v",
                "--arg",
                "two words",
            ],
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let (result, rest) = out.stdout.split_once("}\n").expect("the result first");
    let result: Value = serde_json::from_str(&format!("{result}}}")).unwrap();
    assert_eq!(result["sum"], 6, "{out:?}");
    assert_eq!(result["stdin"], "from a file\n", "{out:?}");
    assert!(result.to_string().len() < out.stdout.len(), "pretty JSON");
    assert_eq!(rest, "argv ['-v', 'two words']\n", "{out:?}");
    assert_eq!(out.stderr, "to stderr\n", "{out:?}");

    // --input @file, --stdin TEXT, and --json (the whole answer).
    write(&dir, "input.json", r#"{"xs": [10]}"#);
    let out = app
        .cli(
            &dir,
            &[
                "run",
                &program,
                "--input",
                "@input.json",
                "--stdin",
                "typed",
                "--json",
            ],
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let answer: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(answer["output"]["sum"], 10);
    assert_eq!(answer["output"]["stdin"], "typed");
    assert_eq!(answer["success"], true);

    // A plain program's own exit code; a failure without one (a raised error) is 1.
    let exits = write(&dir, "exits.py", "import sys\nprint('bye')\nsys.exit(7)\n");
    let out = app.cli(&dir, &["run", &exits, "--mode", "plain"], "").await;
    assert_eq!(out.code, 7, "{out:?}");
    assert_eq!(out.stdout, "bye\n", "{out:?}");
    let raises = write(&dir, "raises.py", "raise ValueError('no good')\n");
    let out = app.cli(&dir, &["run", &raises], "").await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("ValueError: no good"), "{out:?}");
    assert!(out.stderr.contains("codebeaker: runtime_error:"), "{out:?}");
    let slow = write(&dir, "slow.py", "import time\ntime.sleep(30)\n");
    let out = app
        .cli(&dir, &["run", &slow, "--timeout-ms", "500"], "")
        .await;
    assert_eq!(out.code, 1, "a timeout has no exit code: {out:?}");
    assert!(out.stderr.contains("codebeaker: timeout:"), "{out:?}");

    // The language comes from the extension, unless --language names it.
    let js = write(&dir, "answer.js", "const result = 40 + 2;\n");
    let out = app.cli(&dir, &["run", &js], "").await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "42\n"), "{out:?}");
    let txt = write(&dir, "answer.txt", "result = 'from txt'\n");
    let out = app.cli(&dir, &["run", &txt], "").await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("pass --language"), "{out:?}");
    let out = app.cli(&dir, &["run", &txt, "--language", "py"], "").await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "\"from txt\"\n"),
        "{out:?}"
    );

    // A refused request: its own exit code and the gateway's reason.
    let out = app
        .cli(&dir, &["run", &txt, "--language", "cobol"], "")
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("the gateway refused the request (400 unsupported_language)"),
        "{out:?}"
    );
    let out = app
        .cli(&dir, &["run", &program, "--input", "{nope"], "")
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--input is not JSON"), "{out:?}");
}

#[tokio::test]
async fn batch_streams_ndjson_shows_progress_on_stderr_and_fails_when_an_item_fails() {
    let app = spawn(&[Language::Python]).await;
    let dir = workdir();
    let program = write(
        &dir,
        "double.py",
        "if input_data['v'] < 0:\n    raise ValueError('negative')\nresult = input_data['v'] * 2\n",
    );
    write(&dir, "ok.jsonl", "{\"v\": 1}\n{\"v\": 2}\n\n{\"v\": 3}\n");
    let out = app
        .cli(
            &dir,
            &["batch", &program, "ok.jsonl", "--concurrency", "2"],
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("stdout is NDJSON only"))
        .collect();
    assert_eq!(lines.len(), 4, "three items and the summary: {out:?}");
    let mut outputs: Vec<(String, i64)> = lines[..3]
        .iter()
        .map(|l| {
            assert_eq!(l["type"], "item");
            (
                l["item"]["id"].as_str().unwrap().to_string(),
                l["item"]["output"].as_i64().unwrap(),
            )
        })
        .collect();
    outputs.sort();
    // Ids are the line numbers (the blank line 3 is skipped).
    assert_eq!(outputs, [("1".into(), 2), ("2".into(), 4), ("4".into(), 6)]);
    assert_eq!(lines[3]["type"], "summary");
    assert_eq!(lines[3]["summary"]["successCount"], 3);
    assert!(
        out.stderr.contains("3/3 items, 0 failed") && out.stderr.contains("items/s"),
        "the progress is on stderr: {out:?}"
    );

    // One failing item: every line still comes, and the exit code says it failed. With
    // --progress always the indicatif bar is drawn on stderr even though it is a pipe.
    write(
        &dir,
        "items.jsonl",
        "{\"id\": \"a\", \"input\": {\"v\": 1}}\n{\"id\": \"b\", \"input\": {\"v\": -1}}\n",
    );
    let out = app
        .cli(
            &dir,
            &[
                "batch",
                &program,
                "items.jsonl",
                "--items",
                "--progress",
                "always",
            ],
            "",
        )
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("stdout is NDJSON only"))
        .collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    let b = lines
        .iter()
        .find(|l| l["item"]["id"] == "b")
        .expect("item b");
    assert_eq!(b["item"]["success"], false);
    assert_eq!(lines[2]["summary"]["failureCount"], 1);
    assert!(
        out.stderr.contains("2/2 items · ") && out.stderr.contains("1 failed"),
        "the bar (not only the last line) shows items and failures: {out:?}"
    );
    assert!(out.stderr.contains("items/s"), "{out:?}");

    // Refused whole: a batch over the key's concurrency names the reason, exit 2.
    let out = app
        .cli(
            &dir,
            &["batch", &program, "ok.jsonl", "--concurrency", "100000"],
            "",
        )
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[tokio::test]
async fn session_runs_piped_commands_with_put_and_get_and_closes() {
    let app = spawn(&[Language::Python]).await;
    let dir = workdir();
    write(
        &dir,
        "main.py",
        "import sys\nopen('out.txt', 'w').write('written ' + sys.argv[1])\nprint('ran with', sys.argv[1])\n",
    );
    let script = "\
:put main.py
python3 main.py 'two words'
:get out.txt
:get out.txt copy.txt
# a comment, then a command that fails with its own code
python3 -c 'import sys; sys.exit(4)'
";
    let out = app
        .cli(&dir, &["session", "--language", "python"], script)
        .await;
    assert_eq!(out.code, 4, "the last command's exit code: {out:?}");
    assert_eq!(
        out.stdout, "ran with two words\nwritten two words",
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("copy.txt")).unwrap(),
        "written two words"
    );
    assert!(out.stderr.contains("put main.py -> main.py"), "{out:?}");
    assert!(out.stderr.contains("exit code 4"), "{out:?}");
    assert!(out.stderr.contains("closed"), "{out:?}");
    let (_, sessions) = app.get("/v1/sessions").await;
    assert_eq!(sessions["count"], 0, "the session was closed at EOF");

    // :quit ends it early; what follows is not run.
    let out = app
        .cli(&dir, &["session"], "echo hi\n:quit\necho not-run\n")
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "hi\n"), "{out:?}");
    let (_, sessions) = app.get("/v1/sessions").await;
    assert_eq!(sessions["count"], 0);
}

#[tokio::test]
async fn keys_list_revoke_and_rotate_edit_the_keys_file_the_gateway_reloads() {
    let app = spawn(&[Language::Python]).await;
    let dir = workdir();
    let keys_file = app.keys_file.to_str().unwrap().to_string();
    let env = [("CODEBEAKER_AUTH__KEYS_FILE", keys_file.as_str())];
    // Closures cannot return a future borrowing their arguments: macros, then.
    macro_rules! keys {
        ($($a:expr),* $(,)?) => { cli(&dir, &app.addr, None, &[$($a),*], &env, "").await };
    }
    let created = keys!(
        "keys",
        "create",
        "--name",
        "cli-test",
        "--tenant",
        "cli-tenant",
        "--scopes",
        "execute",
    );
    assert_eq!(created.code, 0, "{created:?}");
    let key = created.stdout.trim().to_string();
    let id = key.split('_').nth(1).unwrap().to_string();
    let secret = key.rsplit('_').next().unwrap().to_string();
    app.reload_keys();

    let list = keys!("keys", "list");
    assert_eq!(list.code, 0, "{list:?}");
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("the key is listed: {list:?}"));
    for want in ["cli-test", "cli-tenant", "execute", "no"] {
        assert!(row.contains(want), "{want} in {row:?}");
    }
    assert!(list.stdout.starts_with("ID "), "a header: {list:?}");
    assert!(
        !list.stdout.contains(&secret)
            && !list.stdout.contains("sha256")
            && !list.stdout.contains("whsec"),
        "never a secret: {list:?}"
    );

    let program = write(&dir, "p.py", "result = 'ok'\n");
    macro_rules! run_as {
        ($key:expr) => {
            cli(&dir, &app.addr, Some($key), &["run", &program], &[], "").await
        };
    }
    assert_eq!(run_as!(&key).code, 0);

    // Rotate: a new secret for the same id; the old one is refused after the reload.
    let rotated = keys!("keys", "rotate");
    assert_eq!(rotated.code, 2, "rotate needs an id: {rotated:?}");
    let rotated = keys!("keys", "rotate", &id);
    assert_eq!(rotated.code, 0, "{rotated:?}");
    let new_key = rotated.stdout.trim().to_string();
    assert!(new_key.starts_with(&format!("cb_{id}_")) && new_key != key);
    app.reload_keys();
    let out = run_as!(&new_key);
    assert_eq!((out.code, out.stdout.as_str()), (0, "\"ok\"\n"), "{out:?}");
    let out = run_as!(&key);
    assert_eq!(out.code, 77, "{out:?}");
    assert!(
        out.stderr.contains("the gateway refused the API key (401"),
        "{out:?}"
    );

    // Revoke: the key is refused after the reload, and listed as revoked.
    let revoked = keys!("keys", "revoke", &id);
    assert_eq!(revoked.code, 0, "{revoked:?}");
    app.reload_keys();
    let out = run_as!(&new_key);
    assert_eq!(out.code, 77, "{out:?}");
    let list = keys!("keys", "list", "--json");
    let rec: Value = list
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["id"] == id.as_str())
        .expect("listed");
    assert_eq!(rec["revoked"], true);
    let missing = keys!("keys", "revoke", "nosuchid");
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.contains("no key with id"), "{missing:?}");
}

#[tokio::test]
async fn a_gateway_that_is_down_or_a_wrong_or_missing_key_get_one_clear_sentence() {
    let dir = workdir();
    let program = write(&dir, "p.py", "result = 1\n");
    // A port nothing listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = format!("http://127.0.0.1:{port}");
    for args in [vec!["run", program.as_str()], vec!["session"]] {
        let out = cli(&dir, &down, Some("cb_x_y"), &args, &[], "").await;
        assert_eq!(out.code, 69, "{out:?}");
        assert_eq!(
            out.stderr.trim(),
            format!("codebeaker: cannot reach the gateway at {down} (connection refused); start it with `codebeaker serve` or point CODEBEAKER_URL (or --url) at it"),
        );
    }

    let app = spawn(&[Language::Python]).await;
    let wrong = format!("cb_{}_{}", "0".repeat(12), "0".repeat(64));
    let out = cli(&dir, &app.addr, Some(&wrong), &["run", &program], &[], "").await;
    assert_eq!(out.code, 77, "{out:?}");
    assert!(
        out.stderr
            .starts_with("codebeaker: the gateway refused the API key (401")
            && out
                .stderr
                .trim_end()
                .ends_with("check CODEBEAKER_API_KEY or --key"),
        "{out:?}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    let out = cli(&dir, &app.addr, None, &["batch", &program, "-"], &[], "1\n").await;
    assert_eq!(out.code, 77, "{out:?}");
    assert!(
        out.stderr
            .starts_with("codebeaker: no API key: set CODEBEAKER_API_KEY or pass --key"),
        "{out:?}"
    );
    // --url and --key override the environment.
    let out = cli(
        &dir,
        &down,
        Some(&wrong),
        &["run", &program, "--url", &app.addr, "--key", &app.key],
        &[],
        "",
    )
    .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "1\n"), "{out:?}");
}
