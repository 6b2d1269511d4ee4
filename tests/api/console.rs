//! The web console at `/console`: served without a key under a strict Content-Security-
//! Policy, with no inline code, and driven in a real browser: npm `playwright-core`
//! (installed at test time under `target/console-browser`) launches Debian's `chromium`
//! headless, runs a Python program and a 3-item batch through the page, reads the results
//! from the DOM and saves a screenshot to `target/console.png`.

use codebeaker::routes::console::CONTENT_SECURITY_POLICY;
use codebeaker_proto::Language;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::helpers::spawn;

/// The pinned driver (the newest that still runs on Node 18, Debian's).
const PLAYWRIGHT: &str = "playwright-core@1.61.1";
const CHROMIUM: &str = "/usr/bin/chromium";

/// `playwright-core`, installed once per test run under `target/console-browser` (kept
/// between runs: a second run only checks it).
fn driver() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-browser");
        std::fs::create_dir_all(&dir).unwrap();
        for tool in ["node", "npm"] {
            assert!(
                Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success()),
                "the console test drives a browser with npm playwright-core and needs `{tool}` (apt-get install nodejs npm)"
            );
        }
        if !dir.join("node_modules/playwright-core/package.json").is_file() {
            let out = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg(PLAYWRIGHT)
                .output()
                .expect("cannot start npm");
            assert!(
                out.status.success(),
                "npm install {PLAYWRIGHT} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dir
    })
}

#[tokio::test]
async fn the_console_is_public_static_and_under_a_strict_policy() {
    let app = spawn(&[Language::Python]).await;
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        // No key: the page itself holds nothing.
        let r = app
            .client
            .get(format!("{}{path}", app.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        let header = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            header("content-security-policy").as_deref(),
            Some(CONTENT_SECURITY_POLICY),
            "{path}"
        );
        assert!(header("content-type").unwrap().starts_with(kind), "{path}");
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
        assert_eq!(header("referrer-policy").as_deref(), Some("no-referrer"));
    }
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'none'",
        "base-uri 'none'",
    ] {
        assert!(CONTENT_SECURITY_POLICY.contains(directive), "{directive}");
    }
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));

    // No inline code the policy would have to allow: every <script> has a src and no
    // body, no <style> element, no style attribute, no on* handler.
    let page = app
        .client
        .get(format!("{}/console", app.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lower = page.to_lowercase();
    let mut scripts = 0;
    for (at, _) in lower.match_indices("<script") {
        let tag_end = at + lower[at..].find('>').unwrap();
        assert!(
            lower[at..tag_end].contains(" src="),
            "inline script at byte {at}"
        );
        assert!(
            lower[tag_end + 1..].starts_with("</script>"),
            "a script with a src and a body at byte {at}"
        );
        scripts += 1;
    }
    assert_eq!(scripts, 1);
    assert!(!lower.contains("<style"), "inline <style>");
    assert!(!lower.contains(" style="), "inline style attribute");
    let handler = inline_handler(&lower);
    assert!(handler.is_none(), "inline event handler: {handler:?}");
    assert!(page.contains("href=\"/openapi.json\""));

    // It adds no authority: the routes it calls still want the key.
    let r = app
        .client
        .get(format!("{}/v1/languages", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}

/// The first ` on…=` attribute in the page, if any.
fn inline_handler(html: &str) -> Option<String> {
    html.match_indices(" on").find_map(|(at, _)| {
        let name: String = html[at + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        html[at + 1 + name.len()..].starts_with('=').then_some(name)
    })
}

#[tokio::test]
async fn a_python_program_and_a_batch_run_through_the_console_in_headless_chromium() {
    let chromium = std::env::var("CODEBEAKER_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
    assert!(
        Path::new(&chromium).is_file(),
        "the console test drives Debian's Chromium and needs {chromium} (apt-get install chromium)"
    );
    let dir = tokio::task::spawn_blocking(driver).await.unwrap();
    let app = spawn(&[Language::Python]).await;
    // Beside node_modules: ESM resolves `import 'playwright-core'` from the script's folder.
    let script = dir.join("console_test.mjs");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/console_test.mjs"),
        &script,
    )
    .unwrap();
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console.png");
    let _ = std::fs::remove_file(&screenshot);
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("node")
            .arg(&script)
            .current_dir(dir)
            .env("CONSOLE_URL", &app.addr)
            .env("CODEBEAKER_API_KEY", &app.key)
            .env("CHROMIUM", &chromium)
            .env("SCREENSHOT", &screenshot)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the console test did not finish within 180 s")
    .unwrap();
    assert!(
        out.status.success(),
        "console_test.mjs:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );
    app.stop().await;
}
