//! `docs/configuration.md` checked against the configuration's own defaults, so that the
//! reference cannot drift from the code (no build of the gateway, no Docker).
//!
//! The defaults are `Settings::default()` serialised: the same rendering the loader feeds
//! to the `config` crate as its first layer, so each key comes out in the unit its name
//! says (`_ms`, `_secs`, …) and with the value a file would give it. Every key must have a
//! row in the document (`| `section.key` | default | unit | meaning |`) whose default is
//! that value, and every row must name a key the loader knows.
//!
//! - Maps keyed by data (`pool.languages`, `pool.variants`) are documented once with a
//!   placeholder (`pool.languages.<lang>.min_idle`); each entry of the default map must
//!   match the row once the placeholder is replaced by the entry's name, and the map's own
//!   row lists the default entries.
//! - Secrets are never serialised, so they are not in the defaults: they are listed in
//!   [`SECRETS`], documented as `unset`, and proven to be known keys by loading a file that
//!   sets them.

use codebeaker::config::Settings;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const DOC: &str = include_str!("../docs/configuration.md");

/// Settings kept out of every rendering of the configuration (`skip_serializing`).
const SECRETS: &[&str] = &[
    "auth.jwt.hs256_secret",
    "auth.jwt.webhook_secret",
    "shared.redis_url",
];

/// Maps whose keys are data, with the placeholder their entries take in the document.
const MAPS: &[(&str, &str)] = &[("pool.languages", "<lang>"), ("pool.variants", "<variant>")];

/// The unit a key's name implies, as the document's unit column spells it.
const UNITS: &[(&str, &str)] = &[
    ("_ms", "ms"),
    ("_secs", "s"),
    ("_minutes", "min"),
    ("_bytes", "bytes"),
    ("_mb", "MiB"),
];

/// One row of a table in the document.
struct Row {
    default: String,
    unit: String,
    line: usize,
}

/// Every table row whose first cell is a backquoted key, by key.
fn documented() -> BTreeMap<String, Row> {
    let mut rows = BTreeMap::new();
    for (i, line) in DOC.lines().enumerate() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let cells: Vec<&str> = rest.split(" | ").collect();
        let key = cells[0].trim_end_matches('`');
        assert!(
            cells.len() >= 4 && !key.contains(['`', ' ']),
            "docs/configuration.md:{}: a key row is | `key` | default | unit | meaning |: {line}",
            i + 1
        );
        let row = Row {
            default: cells[1].trim().to_string(),
            unit: cells[2].trim().to_string(),
            line: i + 1,
        };
        if let Some(earlier) = rows.insert(key.to_string(), row) {
            panic!(
                "docs/configuration.md:{}: `{key}` is documented twice (also line {})",
                i + 1,
                earlier.line
            );
        }
    }
    rows
}

/// The defaults as dotted keys. An empty object is a value (`shared.peers`), not a section.
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

/// Whether a documented default (a table cell) says `value`.
fn says(cell: &str, value: &Value) -> bool {
    let cell = cell.trim();
    let text = cell
        .strip_prefix('`')
        .and_then(|c| c.strip_suffix('`'))
        .unwrap_or(cell);
    match value {
        Value::Null => text == "unset",
        Value::Bool(b) => text == b.to_string(),
        Value::Number(n) => text.replace('_', "").parse::<f64>().ok() == n.as_f64(),
        Value::String(s) if s.is_empty() => text == "\"\"",
        Value::String(s) => text == s,
        Value::Array(_) | Value::Object(_) => {
            serde_json::from_str::<Value>(text).ok().as_ref() == Some(value)
        }
    }
}

/// The document's key for a default's key: entries of a data-keyed map take its placeholder.
fn doc_key(key: &str) -> (String, Option<String>) {
    for (map, placeholder) in MAPS {
        if let Some(rest) = key.strip_prefix(&format!("{map}.")) {
            // Variant names contain `-`, never `.`: the entry's name is the first part.
            let (entry, field) = rest.split_once('.').unwrap_or((rest, ""));
            return (
                format!("{map}.{placeholder}.{field}"),
                Some(entry.to_string()),
            );
        }
    }
    (key.to_string(), None)
}

fn defaults() -> BTreeMap<String, Value> {
    let tree = serde_json::to_value(Settings::default()).expect("the defaults serialise");
    let mut flat = BTreeMap::new();
    flatten("", &tree, &mut flat);
    flat
}

#[test]
fn every_default_is_documented_with_its_value_and_unit() {
    let rows = documented();
    let mut wrong = Vec::new();
    for (key, value) in defaults() {
        let (doc_key, entry) = doc_key(&key);
        let Some(row) = rows.get(&doc_key) else {
            wrong.push(format!("`{doc_key}` (default {value}) has no row"));
            continue;
        };
        let default = match &entry {
            Some(name) => MAPS
                .iter()
                .fold(row.default.clone(), |d, (_, p)| d.replace(p, name)),
            None => row.default.clone(),
        };
        if !says(&default, &value) {
            wrong.push(format!(
                "line {}: `{key}` defaults to {value}, the document says {}",
                row.line, row.default
            ));
        }
        if let Some((_, unit)) = UNITS.iter().find(|(suffix, _)| key.ends_with(suffix)) {
            if row.unit != *unit {
                wrong.push(format!(
                    "line {}: `{key}` is in {unit}, the document says {:?}",
                    row.line, row.unit
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/configuration.md disagrees with Settings::default():\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_data_keyed_maps_list_their_default_entries() {
    let tree = serde_json::to_value(Settings::default()).unwrap();
    let rows = documented();
    for (map, _) in MAPS {
        let entries: BTreeSet<String> = map
            .split('.')
            .try_fold(&tree, |v, part| v.get(part))
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("{map} is a map in the defaults"))
            .keys()
            .cloned()
            .collect();
        let row = rows
            .get(*map)
            .unwrap_or_else(|| panic!("`{map}` has no row listing its default entries"));
        let listed: BTreeSet<String> = row
            .default
            .split(',')
            .map(|e| e.trim().trim_matches('`').to_string())
            .collect();
        assert_eq!(listed, entries, "docs/configuration.md:{}", row.line);
    }
}

#[test]
fn every_documented_key_exists() {
    let known: BTreeSet<String> = defaults().keys().map(|k| doc_key(k).0).collect();
    let mut unknown = Vec::new();
    for (key, row) in documented() {
        let is_map = MAPS.iter().any(|(m, _)| *m == key);
        if known.contains(&key) || is_map {
            continue;
        }
        if SECRETS.contains(&key.as_str()) {
            assert!(
                says(&row.default, &Value::Null) || says(&row.default, &Value::from("")),
                "line {}: the secret `{key}` has no default, the document says {}",
                row.line,
                row.default
            );
            continue;
        }
        unknown.push(format!("line {}: `{key}`", row.line));
    }
    assert!(
        unknown.is_empty(),
        "docs/configuration.md documents keys the configuration does not have:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn the_secrets_are_documented_and_known_to_the_loader() {
    let rows = documented();
    for key in SECRETS {
        assert!(rows.contains_key(*key), "`{key}` has no row");
        // The loader refuses unknown keys, so loading a file that sets it proves it exists.
        let (section, leaf) = key.rsplit_once('.').unwrap();
        let toml = format!("[{section}]\n{leaf} = \"redis://example:6379/0\"\n");
        let path =
            std::env::temp_dir().join(format!("cb-config-docs-{}-{leaf}.toml", std::process::id()));
        std::fs::write(&path, toml).unwrap();
        let loaded = Settings::load_unvalidated(Some(&path));
        let _ = std::fs::remove_file(&path);
        if let Err(e) = loaded {
            panic!("`{key}` is documented but the loader refuses it: {e}");
        }
    }
}
