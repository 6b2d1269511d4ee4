//! The gateway's architecture invariants, checked on the source (no build, no Docker).
//!
//! - The modules under `src/` depend on each other in one direction: no cycle.
//! - Leaves (`domain`, `failure`, `metrics`) use no module of the crate but other leaves.
//! - Every module is a leaf, a layer or a transport (a new module must be placed).
//! - Layers (`auth`, `batch`, `config`, `executions`, `invoke`, `limits`, `requests`,
//!   `sessions`, `shared`, `store`, `webhooks`) know nothing of the transports (`state`,
//!   `error`, `routes`, `jsonrpc`, `openapi`, `serve`, `startup`, `telemetry`) nor of
//!   HTTP (`axum`): each returns its own error enum, mapped once per transport.
//! - Only `pool/` talks to Docker: nothing under `src/` names `bollard`, and
//!   `pool/src/lib.rs` re-exports no bollard type the gateway could name.
//! - The modules of `pool/src` and of `agent/src` have no import cycle either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const LEAVES: &[&str] = &["domain", "failure", "json_int", "metrics"];
const LAYERS: &[&str] = &[
    "auth",
    "batch",
    "config",
    "executions",
    "invoke",
    "judge0",
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
    "openapi_refine",
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

/// Top-level module of the gateway → (its files' code).
fn modules() -> BTreeMap<String, String> {
    modules_in("src")
}

/// Top-level module of the crate whose sources are `dir` (relative to the workspace) →
/// (its files' code).
fn modules_in(dir: &str) -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
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
            // `cli` is the binary's client commands: wiring, like `main`.
            if module == "lib" || module == "main" || module == "cli" {
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

/// Depth-first search for a cycle, panicking with its path.
fn assert_no_cycle(graph: &BTreeMap<String, BTreeSet<String>>) {
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
        visit(n, graph, &mut Vec::new(), &mut done);
    }
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
    assert_no_cycle(&graph);
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

/// The sibling modules `code` (a top-level module of a flat crate) names: through
/// `crate::x`, `crate::{x, y::z}` or `super::x` (a top-level module's `super` is the
/// crate root), in paths and in `use` lines alike.
fn sibling_uses(code: &str, names: &BTreeSet<String>) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for prefix in ["crate::", "super::"] {
        for (i, _) in code.match_indices(prefix) {
            // `super::super::x` and the like: only one level is the crate root.
            let rest = &code[i + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // Top-level names of the group, up to its closing brace.
                let mut depth = 0;
                let mut item_start = true;
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        _ if item_start && !c.is_whitespace() => {
                            out.insert(ident(&group[j..]));
                            item_start = false;
                        }
                        _ => {}
                    }
                }
            } else {
                out.insert(ident(rest));
            }
        }
    }
    out.retain(|n| names.contains(n));
    out
}

/// The import graph of the flat crate in `dir`.
fn crate_graph(dir: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules_in(dir);
    let names: BTreeSet<String> = mods.keys().cloned().collect();
    mods.iter()
        .map(|(m, code)| {
            let mut deps = sibling_uses(code, &names);
            deps.remove(m);
            (m.clone(), deps)
        })
        .collect()
}

#[test]
fn the_dependency_scan_sees_every_way_of_naming_a_sibling() {
    let names: BTreeSet<String> = ["a", "b", "c", "d", "e"].map(String::from).into();
    let code = "use crate::a::X;\nuse crate::{b, c::{Y, Z}};\nfn f() { super::d::g(); e::h(); }";
    let found: Vec<String> = sibling_uses(code, &names).into_iter().collect();
    assert_eq!(found, ["a", "b", "c", "d"]);
}

#[test]
fn pool_modules_have_no_import_cycle() {
    let graph = crate_graph("pool/src");
    assert!(graph.contains_key("docker") && graph.contains_key("pools"));
    assert_no_cycle(&graph);
}

#[test]
fn agent_modules_have_no_import_cycle() {
    let graph = crate_graph("agent/src");
    assert!(graph.contains_key("exec") && graph.contains_key("zygote"));
    assert_no_cycle(&graph);
}

#[test]
fn no_docker_type_reaches_the_gateway() {
    for (m, code) in &modules() {
        // A log filter may say "bollard=warn"; a path to one of its types may not.
        assert!(
            !code.contains("bollard::") && !code.contains("use bollard"),
            "{m} names a bollard type: only pool/ may talk to Docker"
        );
    }
    let lib = code_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("pool/src/lib.rs"));
    let exports: Vec<&str> = lib
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("pub use"))
        .collect();
    assert!(!exports.is_empty(), "pool/src/lib.rs re-exports its API");
    for line in exports {
        assert!(
            !line.contains("bollard"),
            "pool/src/lib.rs re-exports a Docker type: {line}"
        );
    }
    // Nor does a public function of the crate root hand one out.
    for line in lib.lines().filter(|l| l.trim_start().starts_with("pub ")) {
        assert!(!line.contains("bollard"), "pool/src/lib.rs: {line}");
    }
}

/// `wrappers/` is the one place to read every language's wrapper: each recipe's edge
/// template is linked there as `<language>.<ext>`, and nothing there points elsewhere.
#[test]
fn every_language_has_its_wrapper_in_wrappers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let recipes = codebeaker_recipe::Registry::load(&root.join("languages")).unwrap();
    for def in recipes.iter() {
        let edge = &def.recipe.wrap.edge;
        let ext = Path::new(edge).extension().unwrap().to_str().unwrap();
        let link = root
            .join("wrappers")
            .join(format!("{}.{ext}", def.language().name()));
        let target = root
            .join("languages")
            .join(def.language().name())
            .join(edge);
        assert_eq!(
            std::fs::canonicalize(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display())),
            std::fs::canonicalize(&target).unwrap(),
            "wrappers/ must link each language's edge template"
        );
    }
    for dir in ["wrappers", "wrappers/instance"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() || p.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let real = std::fs::canonicalize(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(
                real.starts_with(root.join("languages").canonicalize().unwrap()),
                "{} points outside languages/",
                p.display()
            );
        }
    }
}
