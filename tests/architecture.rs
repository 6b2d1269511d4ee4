//! The gateway's architecture invariants, checked on the source (no build, no Docker).
//!
//! - The modules under `src/` depend on each other in one direction: no cycle.
//! - Leaves (`domain`, `failure`, `metrics`) use no module of the crate but other leaves.
//! - Every module is a leaf, a layer or a transport (a new module must be placed).
//! - Layers (`auth`, `batch`, `config`, `executions`, `invoke`, `limits`, `requests`,
//!   `sessions`, `shared`, `store`, `webhooks`) know nothing of the transports (`state`,
//!   `error`, `routes`, `jsonrpc`, `openapi`, `serve`, `startup`, `telemetry`) nor of
//!   HTTP (`axum`): each returns its own error enum, mapped once per transport.
//! - Only `pool/` talks to Docker: nothing under `src/` names `bollard`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const LEAVES: &[&str] = &["domain", "failure", "metrics"];
const LAYERS: &[&str] = &[
    "auth",
    "batch",
    "config",
    "executions",
    "invoke",
    "limits",
    "requests",
    "sessions",
    "shared",
    "store",
    "webhooks",
];
const TRANSPORTS: &[&str] = &[
    "state",
    "error",
    "routes",
    "jsonrpc",
    "openapi",
    "serve",
    "startup",
    // The HTTP request span and the process's subscriber.
    "telemetry",
];

/// Source text without `//` comments (doc comments mention modules freely).
fn code_of(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level module → (its files' code).
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = p.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            if module == "lib" || module == "main" {
                continue;
            }
            out.entry(module).or_default().push_str(&code_of(&p));
        }
    }
    out
}

fn uses(code: &str, names: &BTreeSet<String>) -> BTreeSet<String> {
    names
        .iter()
        .filter(|n| {
            code.contains(&format!("crate::{n}::"))
                || code.contains(&format!("crate::{n}::{{"))
                || code.contains(&format!("crate::{n};"))
                || code.contains(&format!("crate::{n},"))
                || code.contains(&format!("crate::{{{n}"))
        })
        .cloned()
        .collect()
}

#[test]
fn gateway_modules_depend_in_one_direction() {
    let mods = modules();
    let names: BTreeSet<String> = mods.keys().cloned().collect();
    let graph: BTreeMap<String, BTreeSet<String>> = mods
        .iter()
        .map(|(m, code)| {
            let mut deps = uses(code, &names);
            deps.remove(m);
            (m.clone(), deps)
        })
        .collect();
    // Depth-first search for a cycle, reporting its path.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(n) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == n) {
            panic!("import cycle: {} -> {n}", path[i..].join(" -> "));
        }
        path.push(n.to_string());
        for d in &g[n] {
            visit(d, g, path, done);
        }
        path.pop();
        done.insert(n.to_string());
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        visit(n, &graph, &mut Vec::new(), &mut done);
    }
    let placed: BTreeSet<String> = LEAVES
        .iter()
        .chain(LAYERS)
        .chain(TRANSPORTS)
        .map(|m| m.to_string())
        .collect();
    let unplaced: Vec<_> = names.difference(&placed).collect();
    assert!(
        unplaced.is_empty(),
        "modules in no list (leaf, layer or transport): {unplaced:?}"
    );
    for leaf in LEAVES {
        let beyond: Vec<_> = graph[*leaf]
            .iter()
            .filter(|d| !LEAVES.contains(&d.as_str()))
            .collect();
        assert!(beyond.is_empty(), "leaf {leaf} uses {beyond:?}");
    }
    for layer in LAYERS {
        let bad: Vec<_> = graph[*layer]
            .iter()
            .filter(|d| TRANSPORTS.contains(&d.as_str()))
            .collect();
        assert!(
            bad.is_empty(),
            "layer {layer} reaches into transports {bad:?}"
        );
        assert!(
            !mods[*layer].contains("axum::"),
            "layer {layer} knows HTTP (axum)"
        );
    }
    for (m, code) in &mods {
        assert!(
            !code.contains("bollard::") && !code.contains("use bollard"),
            "{m} talks to Docker: only pool/ may"
        );
    }
}
