//! The deployment files, checked offline: the Helm chart rendered in every mode and each
//! object validated against the Kubernetes JSON schemas (deploy/helm/render.py with
//! kubernetes-validate from PyPI; helm itself is not reachable here and is not run), the
//! configuration the chart and Compose hand the gateway loaded by the gateway's own strict
//! loader, and the Compose file checked by `docker-compose config`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with kubernetes-validate that `make test` prepares in target/py.
fn python() -> PathBuf {
    let py = root().join("target/py/bin/python");
    assert!(
        py.is_file(),
        "target/py is missing: run `make test` (it installs kubernetes-validate there from PyPI)"
    );
    py
}

#[test]
fn the_helm_chart_renders_to_valid_kubernetes_objects_in_every_mode() {
    let out = Command::new(python())
        .arg(root().join("deploy/helm/render.py"))
        .arg("--check")
        .output()
        .expect("deploy/helm/render.py runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for mode in ["daemonset (default)", "dind with the HPA"] {
        assert!(text.contains(&format!("{mode}: ")), "{text}");
    }
    assert!(!text.contains("INVALID"), "{text}");
}

/// Extracts `codebeaker.toml` from the rendered ConfigMap.
fn chart_config() -> String {
    let dir = std::env::temp_dir().join(format!("cb-helm-{}", std::process::id()));
    let out = Command::new(python())
        .arg(root().join("deploy/helm/render.py"))
        .args(["--out", dir.to_str().unwrap()])
        .output()
        .expect("deploy/helm/render.py runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = std::fs::read_to_string(dir.join("codebeaker.yaml")).unwrap();
    let script = "import sys, yaml\nfor d in yaml.safe_load_all(open(sys.argv[1])):\n    if d and d['kind'] == 'ConfigMap':\n        print(d['data']['codebeaker.toml'])";
    let out = Command::new(python())
        .args(["-c", script, dir.join("codebeaker.yaml").to_str().unwrap()])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{manifest}");
    String::from_utf8(out.stdout).unwrap()
}

fn loads(name: &str, toml: &str) {
    let path = std::env::temp_dir().join(format!("cb-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, toml).unwrap();
    let loaded = codebeaker::config::Settings::load_unvalidated(Some(&path));
    let _ = std::fs::remove_file(&path);
    if let Err(e) = loaded {
        panic!("the gateway refuses {name}'s configuration: {e}\n{toml}");
    }
}

#[test]
fn the_gateway_accepts_the_configuration_the_chart_and_compose_give_it() {
    loads("helm", &chart_config());
    let compose_toml = std::fs::read_to_string(root().join("deploy/codebeaker.toml")).unwrap();
    loads("compose", &compose_toml);
}

#[test]
fn the_compose_file_is_valid() {
    let compose = root().join("deploy/compose.yaml");
    let out = Command::new("docker-compose")
        .args(["-f", compose.to_str().unwrap(), "config", "-q"])
        .env("CODEBEAKER_BUNDLE", "/opt/codebeaker/agent-bundle")
        .env("CODEBEAKER_COMPILE_CACHE", "/var/lib/codebeaker-compile-cache")
        .env("DOCKER_GID", "999")
        .current_dir(Path::new(&root()))
        .output()
        .unwrap_or_else(|e| {
            panic!("docker-compose is needed to check deploy/compose.yaml (apt-get install docker-compose): {e}")
        });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The metric names a query uses (`codebeaker_…`), a histogram's `_bucket`, `_count` and
/// `_sum` series taken as the histogram's own name.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("codebeaker_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(base.to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_dashboard_and_the_alerts_query_metrics_the_gateway_exports() {
    // What the gateway registers: every name given to counter!, gauge! or histogram!.
    let exported = metric_names(&std::fs::read_to_string(root().join("src/metrics.rs")).unwrap());
    let files = root().join("deploy/helm/codebeaker/files");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(files.join("dashboard.json")).unwrap())
            .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().expect("targets") {
            queries.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let alerts = std::fs::read_to_string(files.join("alerts.yaml")).unwrap();
    let rules: Vec<&str> = alerts
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .collect();
    for alert in [
        "CodeBeakerNotReady",
        "CodeBeakerEngineUnavailable",
        "CodeBeakerPoolExhausted",
        "CodeBeakerWebhookDeadLetters",
        "CodeBeakerHighErrorRatio",
    ] {
        assert!(rules.iter().any(|r| r.contains(alert)), "no alert {alert}");
    }
    queries.push(alerts);
    for q in &queries {
        let used = metric_names(q);
        assert!(!used.is_empty(), "a query names no CodeBeaker metric: {q}");
        for name in used {
            assert!(
                exported.contains(&name),
                "{name} (in {q:?}) is not a metric the gateway exports"
            );
        }
    }
    // The panels the issue asks for.
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for want in [
        "Calls per second",
        "Latency p99",
        "Queue wait",
        "Pool containers",
        "Docker containers",
        "Rejections",
        "Sessions",
        "Async executions",
        "Webhook",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(want)),
            "no panel for {want}: {titles:?}"
        );
    }
}
