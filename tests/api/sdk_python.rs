//! The Python SDK (`clients/python`) against a live gateway: the SDK is installed with pip
//! into a venv under `target/sdk-py-venv` (as its users install it) and its pytest suite
//! runs against this test's gateway, including the OpenAPI drift check.

use codebeaker::domain::{Quota, Scope};
use codebeaker_proto::Language;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::helpers::{settings, spawn_with};

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
    // pytest's summary ("N passed in …"), for `--nocapture` runs.
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{}", stdout.lines().last().unwrap_or_default());
}

/// The venv with the SDK (installed afresh each run: it is this tree's code) and pytest.
fn venv() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let venv = root.join("target/sdk-py-venv");
        assert!(
            Command::new("python3")
                .args(["-c", "import venv, ensurepip"])
                .output()
                .is_ok_and(|o| o.status.success()),
            "the Python SDK tests need `python3` with venv and ensurepip (apt-get install python3-venv)"
        );
        if !venv.join("bin/pip").is_file() {
            run(
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
                "python3 -m venv",
            );
        }
        run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "pytest"])
                .arg(root.join("clients/python")),
            "pip install ./clients/python pytest",
        );
        run(
            Command::new(venv.join("bin/pip"))
                .args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--force-reinstall",
                    "--no-deps",
                ])
                .arg(root.join("clients/python")),
            "pip install ./clients/python",
        );
        venv
    })
}

#[tokio::test]
async fn the_python_sdk_passes_its_tests_against_the_live_gateway() {
    let venv = tokio::task::spawn_blocking(venv).await.unwrap();
    let mut s = settings(&[Language::Python]);
    // Sessions, streamed batches and async executions at once: room for all of them.
    s.pool
        .languages
        .get_mut(&Language::Python)
        .unwrap()
        .max_size = 4;
    s.webhooks.allow_private = true; // the callback receiver is the test's own, on loopback
    let app = spawn_with(s).await;
    // A key over whose rate the retry tests go: one call per second, no burst.
    let slow = app.add_key(
        vec![Scope::Execute, Scope::Sessions],
        Quota {
            rate_per_second: 1,
            burst: 1,
            max_concurrent: 4,
            max_sessions: 2,
            ..Quota::default()
        },
    );
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python");
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        // `bin/pytest`, not `python -m pytest`: the tests import the installed package,
        // not the source directory beside them.
        tokio::process::Command::new(venv.join("bin/pytest"))
            .args([
                "-q",
                "-p",
                "no:cacheprovider",
                "-W",
                "error::DeprecationWarning",
            ])
            .current_dir(&sdk)
            .env("CODEBEAKER_URL", &app.addr)
            .env("CODEBEAKER_API_KEY", &app.key)
            .env("CODEBEAKER_SLOW_API_KEY", &slow)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the Python SDK's tests did not finish within 300 s")
    .expect("cannot start pytest");
    assert!(
        out.status.success(),
        "the Python SDK's tests failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // pytest's summary ("N passed in …"), for `--nocapture` runs.
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{}", stdout.lines().last().unwrap_or_default());
}
