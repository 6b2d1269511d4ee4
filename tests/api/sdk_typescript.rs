//! The TypeScript SDK (`clients/typescript`) against the live gateway: the test installs
//! its dev dependencies (npm `typescript`, `ws`) from the lock file into
//! `clients/typescript/node_modules` (git-ignored, kept between runs), compiles it with
//! `tsc`, and runs its `node --test` suite (`clients/typescript/test/*.test.mjs`), which
//! covers execute, batches (JSON and NDJSON), async executions and webhooks, sessions over
//! REST and JSON-RPC, error kinds, retries and the OpenAPI document.

use codebeaker::domain::{Quota, Scope};
use codebeaker_proto::Language;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::helpers::{generous, settings, spawn_with};

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/typescript")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Installs (once, from package-lock.json) and compiles the SDK; blocking, so it runs on
/// a blocking thread.
fn build() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = sdk_dir();
        for tool in ["node", "npm"] {
            assert!(
                Command::new(tool)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success()),
                "the TypeScript SDK's tests need `{tool}` (apt-get install nodejs npm)"
            );
        }
        if !dir.join("node_modules/typescript/package.json").is_file()
            || !dir.join("node_modules/ws/package.json").is_file()
        {
            run(
                Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund"])
                    .current_dir(&dir),
                "npm ci (clients/typescript)",
            );
        }
        run(
            Command::new("node")
                .args(["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"])
                .current_dir(&dir),
            "tsc (clients/typescript)",
        );
        dir
    })
}

#[tokio::test]
async fn the_typescript_sdk_passes_its_tests_against_the_live_gateway() {
    let dir = tokio::task::spawn_blocking(build).await.unwrap().clone();

    let mut s = settings(&[Language::Python]);
    // The suite's files run in parallel, and its webhook test's receiver is on loopback.
    s.pool
        .languages
        .get_mut(&Language::Python)
        .unwrap()
        .max_size = 4;
    s.pool.queue_timeout_ms = Duration::from_millis(30_000);
    s.webhooks.allow_private = true;
    let app = spawn_with(s).await;
    // A key with a tiny rate limit, for the retry-on-429 tests.
    let slow = app.add_key(
        vec![Scope::Execute, Scope::Sessions],
        Quota {
            rate_per_second: 1,
            burst: 1,
            ..generous()
        },
    );

    let mut tests: Vec<PathBuf> = std::fs::read_dir(dir.join("test"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    tests.sort();
    assert!(tests.len() >= 7, "the SDK's test files: {tests:?}");

    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new("node")
            .arg("--test")
            .args(&tests)
            .current_dir(&dir)
            .env("CODEBEAKER_URL", &app.addr)
            .env("CODEBEAKER_API_KEY", &app.key)
            .env("CODEBEAKER_SLOW_API_KEY", &slow)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("node --test did not finish within 300 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every test ran: none skipped (the retry tests skip without the slow key).
    assert!(stdout.contains("# fail 0"), "{stdout}");
    assert!(stdout.contains("# skipped 0"), "{stdout}");
}
