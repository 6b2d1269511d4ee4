//! The OpenAPI document holds: schemathesis (PyPI) generates requests from
//! `/openapi.json` for every native route and checks the live gateway's answers against
//! the document (every check: statuses, response schemas and content types, schema-valid
//! requests accepted, schema-invalid ones refused, authentication). Zero failures.

use crate::helpers::{generous, settings, spawn_with};
use codebeaker::domain::{Quota, Scope};
use codebeaker_proto::Language;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The schemathesis this test pins (works on Python 3.11).
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// Generated cases per operation: enough to find a wrong bound or status, small enough
/// for the run to take a couple of minutes.
const MAX_EXAMPLES: &str = "25";
/// Fixed, so a CI run is reproducible (a new failure shows up here, not by chance).
const SEED: &str = "24";
/// The native routes; the compatibility routes are documented in docs/compat.md.
const NATIVE: &str = r"^/(v1/.*|healthz|readyz|metrics|openapi\.json)$";

/// schemathesis' configuration: a request the document bounds (a body, code or stdin too
/// large) is refused with 413, which the document lists for it.
const CONFIG: &str = r#"
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
"#;

/// `st`, run by the venv's python.
const ST_MAIN: &str =
    "import sys; sys.argv[0] = 'st'; from schemathesis.cli import schemathesis; sys.exit(schemathesis())";

/// schemathesis in a venv under `target/schemathesis-venv`, installed once per test run
/// (kept between runs: a second run only checks it).
fn schemathesis() -> &'static PathBuf {
    static ST: OnceLock<PathBuf> = OnceLock::new();
    ST.get_or_init(|| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis-venv");
        let python = venv.join("bin/python");
        let run = |cmd: &mut std::process::Command, what: &str| {
            let out = cmd.output().unwrap_or_else(|e| {
                panic!("the OpenAPI test needs python3 with venv (apt-get install python3-venv): {what}: {e}")
            });
            assert!(
                out.status.success(),
                "{what} failed (the OpenAPI test needs python3-venv and PyPI):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        if !venv.join("bin/python").is_file() {
            run(
                std::process::Command::new("python3").args(["-m", "venv"]).arg(&venv),
                "python3 -m venv",
            );
        }
        run(
            std::process::Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                SCHEMATHESIS,
            ]),
            "pip install schemathesis",
        );
        python
    })
}

#[tokio::test]
async fn schemathesis_finds_no_failure_on_the_native_routes() {
    let python = tokio::task::spawn_blocking(|| schemathesis().clone())
        .await
        .unwrap();
    let mut s = settings(&[Language::Python]);
    // Generated programs really run: short ones only.
    s.limits.default_timeout_ms = Duration::from_millis(1_000);
    s.limits.max_timeout_ms = Duration::from_millis(2_000);
    // Bounds the generated requests reach (the document states them): small ones keep
    // the bodies small.
    s.limits.max_code_bytes = std::num::NonZeroUsize::new(4096).unwrap();
    s.limits.max_stdin_bytes = std::num::NonZeroUsize::new(4096).unwrap();
    // Generated sessions take containers: room for them beside the executions.
    // Resident instances ("isolation": "program") hold one each until they idle out.
    if let Some(p) = s.pool.languages.get_mut(&Language::Python) {
        p.max_size = 8;
    }
    s.instances.idle_secs = Duration::from_secs(2);
    // A call waits for a container rather than being shed with 503 while generated
    // sessions hold some.
    s.pool.queue_timeout_ms = Duration::from_secs(20);
    let app = spawn_with(s).await;
    // One session at a time for this key: more are refused with 429 (documented), never
    // left waiting for a container.
    let key = app.add_key(
        vec![Scope::Admin],
        Quota {
            max_sessions: 1,
            ..generous()
        },
    );
    let report = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis-report");
    // schemathesis replays the failures it stored in `.schemathesis/` of its working
    // directory: each run starts from none, so it tests this document only.
    let _ = std::fs::remove_dir_all(report.join(".schemathesis"));
    std::fs::create_dir_all(&report).unwrap();
    let config = report.join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new(&python)
            .args(["-c", ST_MAIN])
            .arg("--config-file")
            .arg(&config)
            .arg("run")
            .arg(format!("{}/openapi.json", app.addr))
            .args(["--header", &format!("X-API-Key: {key}")])
            .args(["--checks", "all"])
            // `DELETE /v1/executions/{id}` cancels: the execution stays readable, as
            // cancelled (docs/api.md), which this check takes for a deleted resource.
            .args(["--exclude-checks", "use_after_free"])
            .args(["--include-path-regex", NATIVE])
            .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
            .args(["--request-timeout", "30", "--workers", "2"])
            .arg("--report-dir")
            .arg(&report)
            .args(["--report", "junit"])
            .env("NO_COLOR", "1")
            .current_dir(&report)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("schemathesis did not finish within 600 s")
    .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The summary, also on success: the CI log shows what was covered.
    println!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "schemathesis found failures (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    app.stop().await;
}
