//! The served OpenAPI document: the annotations' document, made as precise as the
//! handlers are. What the annotations cannot say is added here: what this gateway serves
//! (its languages and aliases, its packages, its programs' file names), the limits of its
//! configuration, the constraints that join fields (`isolation: program` takes no stdin,
//! args or files; a batch item needs a language and code from itself or the batch),
//! `additionalProperties: false` on the bodies `Strict<T>` reads, and the refusals every
//! authenticated route can answer. schemathesis holds the result against the live gateway
//! (tests/api/openapi.rs).

use serde_json::{json, Value};

use crate::config::Settings;
use crate::state::AppState;

/// The document `GET /openapi.json` answers: `base` (the annotations' document) refined.
pub fn document(base: Value, state: &AppState) -> Value {
    let served = Served::of(state);
    refine(base, &state.settings, &served)
}

/// What this gateway serves, as requests name it.
pub struct Served {
    /// Every language name and alias.
    pub languages: Vec<String>,
    /// Every package some built variant has.
    pub packages: Vec<String>,
    /// The programs' own file names (a request's files may not replace them).
    pub program_files: Vec<String>,
    /// The container's memory limit (MB): the most a request may ask.
    pub memory_mb: u64,
}

impl Served {
    fn of(state: &AppState) -> Served {
        let recipes = state.pools.recipes();
        let mut languages = Vec::new();
        let mut program_files = Vec::new();
        for d in recipes.iter() {
            languages.push(d.language().to_string());
            languages.extend(d.recipe.aliases.iter().cloned());
            program_files.push(d.recipe.file.clone());
        }
        let mut packages: Vec<String> = state
            .pools
            .status()
            .into_iter()
            .filter_map(|p| p.packages)
            .flat_map(|p| p.into_keys())
            .collect();
        packages.sort();
        packages.dedup();
        Served {
            languages,
            packages,
            program_files,
            memory_mb: state.pools.settings().limits.memory_mb,
        }
    }
}

/// Schemas by name.
fn schema<'a>(doc: &'a mut Value, name: &str) -> &'a mut Value {
    &mut doc["components"]["schemas"][name]
}

fn set(v: &mut Value, key: &str, value: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_string(), value);
    }
}

/// A relative path of normal components: none empty, `.` or `..`, no NUL or backslash.
/// Components of at most 63 characters (`requests::MAX_PATH_COMPONENT_CHARS`), none of
/// them empty, `.` or `..`.
const PATH_PATTERN: &str = r"^(?:[^/\\\x00.][^/\\\x00]{0,62}|\.[^/\\\x00.][^/\\\x00]{0,61}|\.\.[^/\\\x00]{1,61})(?:/(?:[^/\\\x00.][^/\\\x00]{0,62}|\.[^/\\\x00.][^/\\\x00]{0,61}|\.\.[^/\\\x00]{1,61}))*$";
/// Standard base64, padded.
/// Standard base64, padded, canonical (the unused bits of the last symbol are zero, as the
/// decoder requires).
const BASE64_PATTERN: &str =
    r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$";

pub fn refine(mut doc: Value, settings: &Settings, served: &Served) -> Value {
    let limits = &settings.limits;
    let mut names: Vec<Value> = served.languages.iter().map(|l| json!(l)).collect();
    names.push(Value::Null);
    // A batch's and an item's language and code may be null (absent): the other gives it.
    let language_or_null = json!({"enum": names,
        "description": "A served language's name or alias, or null."});
    let language = json!({"type": "string", "enum": served.languages,
        "description": "A served language's name or alias (`GET /v1/languages`)."});
    let packages = if served.packages.is_empty() {
        json!({"type": "array", "maxItems": 0, "items": {"type": "string"},
            "description": "Packages the program imports; this gateway has no package variant built."})
    } else {
        json!({"type": "array", "maxItems": 64, "uniqueItems": false,
            "items": {"type": "string", "enum": served.packages},
            "description": "Packages the program imports (every one from a variant of its language: `GET /v1/languages`)."})
    };
    let code = json!({"type": "string", "minLength": 1, "pattern": r"\S",
        "maxLength": limits.max_code_bytes.get(),
        "description": "The program (not blank; at most `limits.max_code_bytes` bytes)."});
    let timeout = json!({"type": ["integer", "null"], "minimum": 1,
        "maximum": limits.max_timeout_ms.as_millis() as u64,
        "description": "Run-time limit in milliseconds (the server default when absent)."});
    let memory = json!({"type": ["integer", "null"], "minimum": 32, "maximum": served.memory_mb,
        "description": "Memory limit in MB (32 to the container's limit)."});
    let args = json!({"type": "array", "maxItems": limits.max_args.get(),
        "items": {"type": "string", "pattern": r"^[^\x00]*$", "maxLength": 65536}});
    let stdin = json!({"type": "string", "maxLength": limits.max_stdin_bytes.get()});
    let files = json!({"type": "array", "maxItems": limits.max_files.get(),
        "uniqueItems": true, "items": {"$ref": "#/components/schemas/FileSpec"}});
    // `program` runs on a resident instance: started once, it takes no stdin, args or files.
    let resident = json!({
        "if": {"properties": {"isolation": {"const": "program"}}, "required": ["isolation"]},
        "then": {"properties": {"stdin": {"maxLength": 0}, "args": {"maxItems": 0},
            "files": {"maxItems": 0}}}
    });

    {
        let s = schema(&mut doc, "ExecuteRequest");
        let p = &mut s["properties"];
        p["language"] = language.clone();
        p["code"] = code.clone();
        p["packages"] = packages.clone();
        p["timeoutMs"] = timeout.clone();
        p["memoryLimitMb"] = memory.clone();
        p["args"] = args.clone();
        p["stdin"] = stdin.clone();
        p["files"] = files.clone();
        p["input"] = json!({"description": "Any JSON value, written to `/workspace/input.json`. Defaults to `{}`."});
        set(s, "additionalProperties", json!(false));
        set(s, "if", resident["if"].clone());
        set(s, "then", resident["then"].clone());
    }
    {
        let s = schema(&mut doc, "BatchRequest");
        let p = &mut s["properties"];
        // Any string where every item names its own language (see `allOf` below).
        p["language"] = json!({"type": ["string", "null"]});
        // Blank only where every item brings its own code (see `allOf` below).
        p["code"] = json!({"type": ["string", "null"]});
        p["packages"] = packages.clone();
        p["timeoutMs"] = timeout.clone();
        p["memoryLimitMb"] = memory.clone();
        p["args"] = args.clone();
        p["stdin"] = stdin.clone();
        p["files"] = files.clone();
        p["maxConcurrency"] = json!({"type": ["integer", "null"], "minimum": 1, "maximum": u32::MAX,
            "description": "Items run at once (default and maximum: the caller's `max_concurrent`)."});
        p["items"] = json!({"type": "array", "minItems": 1, "maxItems": limits.max_batch_items.get(),
            "items": {"$ref": "#/components/schemas/BatchItem"}});
        set(s, "additionalProperties", json!(false));
        // Every item needs a language and code, its own or the batch's; with `program`,
        // neither the batch nor an item brings stdin, args or files.
        set(
            s,
            "allOf",
            json!([
                {"anyOf": [{"required": ["language"], "properties": {"language": language.clone()}},
                    {"properties": {"items": {"items": {"required": ["language"],
                        "properties": {"language": {"type": "string"}}}}}}]},
                {"anyOf": [{"required": ["code"], "properties": {"code": {"type": "string", "pattern": r"\S",
                    "maxLength": limits.max_code_bytes.get()}}},
                    {"properties": {"items": {"items": {"required": ["code"],
                        "properties": {"code": {"type": "string"}}}}}}]},
                {"if": resident["if"].clone(),
                 "then": {"properties": {"stdin": {"maxLength": 0}, "args": {"maxItems": 0},
                    "files": {"maxItems": 0},
                    "items": {"items": {"properties": {"stdin": {"type": ["null"]}}}}}}}
            ]),
        );
    }
    {
        let s = schema(&mut doc, "BatchItem");
        let p = &mut s["properties"];
        p["language"] = language_or_null;
        p["code"] = nullable(&code);
        p["stdin"] = json!({"type": ["string", "null"], "maxLength": limits.max_stdin_bytes.get()});
        p["input"] = json!({"description": "Any JSON value (default `{}`)."});
        set(s, "additionalProperties", json!(false));
    }
    {
        let s = schema(&mut doc, "FileSpec");
        let mut reserved = served.program_files.clone();
        reserved.extend(["input.json".to_string(), "output.json".to_string()]);
        s["properties"]["path"] = json!({"type": "string", "minLength": 1, "maxLength": 255,
            "pattern": PATH_PATTERN, "not": {"enum": reserved},
            "description": "Relative to `/workspace`: no `..`, no leading `/`, not the program's own file, `input.json` or `output.json`; two files may not be one inside the other."});
        set(
            s,
            "if",
            json!({"properties": {"encoding": {"const": "base64"}}, "required": ["encoding"]}),
        );
        set(
            s,
            "then",
            json!({"properties": {"content": {"pattern": BASE64_PATTERN}}}),
        );
        // The native routes refuse a file's unknown members too (`files.N.x`).
        set(s, "additionalProperties", json!(false));
    }
    {
        let s = schema(&mut doc, "CreateSession");
        let p = &mut s["properties"];
        p["language"] = language.clone();
        p["packages"] = packages.clone();
        let minutes = json!({"type": ["number", "null"], "exclusiveMinimum": 0});
        p["idleTimeoutMinutes"] = minutes.clone();
        p["maxLifetimeMinutes"] = minutes;
        p["memoryLimitMB"] = memory.clone();
        p["cpuShares"] = json!({"type": ["integer", "null"], "minimum": 2, "maximum": i64::MAX,
            "description": "Relative CPU weight (Docker's `--cpu-shares`), lowered to `sessions.max_cpu_shares`."});
    }
    // Members the annotations type too loosely.
    let isolation = json!({"type": "string", "enum": ["call", "program"], "default": "call"});
    schema(&mut doc, "ExecuteRequest")["properties"]["isolation"] = isolation.clone();
    schema(&mut doc, "BatchRequest")["properties"]["isolation"] = isolation;
    schema(&mut doc, "FileSpec")["properties"]["encoding"] =
        json!({"type": "string", "enum": ["utf8", "base64"], "default": "utf8"});
    let any = json!({"description": "Any JSON value, or null"});
    schema(&mut doc, "ExecuteResponse")["properties"]["output"] = any.clone();
    schema(&mut doc, "ItemResult")["properties"]["output"] = any.clone();
    schema(&mut doc, "ExecutionResource")["properties"]["result"] = any;
    schema(&mut doc, "VariantInfo")["properties"]["pool"] = json!({"type": ["object", "null"]});
    // An async execution's body is an execute or a batch body.
    doc["paths"]["/v1/executions"]["post"]["requestBody"] = json!({"required": true,
        "content": {"application/json": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/ExecuteRequest"},
            {"$ref": "#/components/schemas/BatchRequest"}]}}}});
    doc["paths"]["/v1/sessions/{id}/commands"]["post"]["requestBody"] = json!({"required": true,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SessionCommand"}}}});
    doc["components"]["schemas"]["SessionCommand"] = session_command();
    common_responses(&mut doc);
    doc
}

/// A session command (`POST /v1/sessions/{id}/commands`, and JSON-RPC `session.execute`'s
/// `command`), one shape per `type`. Members a command does not know are ignored.
fn session_command() -> Value {
    let kind = |names: &[&str]| json!({"type": "string", "enum": names});
    let string = json!({"type": "string"});
    let encoding = json!({"type": "string", "enum": ["utf8", "base64"], "default": "utf8"});
    let timeout = json!({"type": ["integer", "null"], "minimum": 1, "maximum": u32::MAX});
    let shape = |names: &[&str], props: Value, required: &[&str]| {
        let mut p = props;
        p["type"] = kind(names);
        let mut r = vec!["type"];
        r.extend_from_slice(required);
        json!({"type": "object", "properties": p, "required": r})
    };
    json!({"oneOf": [
        shape(&["write_file"], json!({"path": string, "content": string, "encoding": encoding,
            "mode": {"type": "string", "enum": ["Create", "Overwrite", "create", "overwrite",
                "CreateNew", "createNew", "create_new", "Append", "append", "Truncate", "truncate"]}}),
            &["path", "content"]),
        shape(&["read_file"], json!({"path": string, "encoding": encoding}), &["path"]),
        shape(&["list_directory"], json!({"path": string}), &[]),
        shape(&["create_directory", "create_dir"], json!({"path": string}), &["path"]),
        shape(&["delete_file"], json!({"path": string, "recursive": {"type": "boolean"}}), &["path"]),
        shape(&["copy_file"], json!({"source": string, "destination": string,
            "overwrite": {"type": "boolean"}}), &["source", "destination"]),
        shape(&["execute_shell", "shell"], json!({"commandName": string,
            "args": {"type": "array", "items": string},
            "workingDirectory": {"type": ["string", "null"]},
            "env": {"type": "object", "additionalProperties": string},
            "timeoutMs": timeout, "stdin": {"type": ["string", "null"]},
            "stream": {"type": "boolean"}}), &["commandName"]),
        shape(&["run_code"], json!({"code": string, "input": {"description": "Any JSON value"},
            "timeoutMs": timeout}), &["code"]),
    ]})
}

/// `schema` (a string's), or null.
fn nullable(schema: &Value) -> Value {
    let mut s = schema.clone();
    s["type"] = json!(["string", "null"]);
    s
}

fn error(description: &str) -> Value {
    json!({"description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
}

/// The refusals any authenticated route can answer, and those of any JSON body.
fn common_responses(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            let secured = op.get("security").is_some();
            let has_body = op.get("requestBody").is_some();
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| error(description));
            };
            if secured {
                add("401", "Missing or invalid credential");
                add(
                    "403",
                    "The credential lacks the route's scope, or asks above its limits",
                );
                add(
                    "429",
                    "Rate limit or concurrency cap (see Retry-After, RateLimit-*)",
                );
                add(
                    "503",
                    "The gateway is at capacity or a dependency is unavailable (see Retry-After)",
                );
            }
            if has_body {
                add(
                    "400",
                    "Malformed JSON, an unknown member, or an unsupported language",
                );
                add(
                    "408",
                    "The body did not arrive within `server.body_read_timeout_ms`",
                );
                add("413", "The body, or a part of it, is too large");
                add("415", "Not `application/json`");
                add("422", "A member has an invalid value");
            }
        }
    }
}
