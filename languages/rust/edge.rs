#![allow(unused, non_snake_case, non_camel_case_types, non_upper_case_globals)] use serde_json::{json, Map, Number, Value}; use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque}; fn __cb_body(input_data: Value, __cb_out: &mut Option<Result<Value, serde_json::Error>>) -> Result<(), Box<dyn std::error::Error>> { let mut result: Value = __cb_unset();
{{code}}
    *__cb_out = Some(result.__cb_json());
    Ok(())
}

// CodeBeaker wrapper for Rust: the user's code is the body of a function.
//
// The contract, in Rust's idiom:
// - `input_data: serde_json::Value` is the input (`input_data["x"].as_i64().unwrap()`).
// - `result` is a `serde_json::Value` declared (unset) by this template: assign it,
//       result = json!(input_data["x"].as_i64().unwrap() + 1);
//   or declare your own with any serializable value (it shadows this one):
//       let result = vec![1, 2, 3];
//   Build an object in place from `result = json!({});` then `result["k"] = json!(v);`.
//   A `result` never set (or a `return Ok(())` before the end) writes no output.
// - The function returns `Result<(), Box<dyn std::error::Error>>`, so `?` works; an `Err`
//   is printed as a `main` returning it prints it (`Error: ...`, exit code 1).
// - `json!`, `Value`, `Map`, `Number` and the std collections are in scope; `use` lines,
//   `fn`s, `struct`s and `impl`s may be written inside the code. serde_json is built with
//   `preserve_order` (objects keep their key order); there is no `#[derive(Serialize)]`.
//
// The template's head is its first line so that the code's line N is line N + 1 of
// program.rs in rustc's messages and panics (the marker is line 2).

// `result` as a Value: itself when it is one, `serde_json::to_value(&result)` otherwise
// (picked by method resolution: the common case compiles no serializer, ~0.4 s less).
trait __CbIsValue {
    fn __cb_json(self) -> Result<Value, serde_json::Error>;
}
impl __CbIsValue for Value {
    fn __cb_json(self) -> Result<Value, serde_json::Error> {
        Ok(self)
    }
}
trait __CbSerialize {
    fn __cb_json(self) -> Result<Value, serde_json::Error>;
}
impl<T: serde::Serialize + ?Sized> __CbSerialize for &T {
    fn __cb_json(self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

// `result` before the code sets it: a string no JSON input carries, so "never set" and
// "set to null" differ as in the other languages.
const __CB_UNSET: &str = "\u{0}codebeaker: result not set\u{0}";
fn __cb_unset() -> Value {
    Value::String(String::from(__CB_UNSET))
}

fn main() {
    // `str::parse` and `to_string` (serde_json's FromStr and Display for Value) are
    // compiled in the prebuilt library: the parser is not compiled again for each program.
    let input_data = std::fs::read_to_string("/workspace/input.json")
        .map_err(|e| e.to_string())
        .and_then(|t| t.parse::<Value>().map_err(|e| e.to_string()));
    let input_data = match input_data {
        Ok(v) => v,
        Err(e) => {
            eprintln!("codebeaker: input is not JSON: {}", e);
            std::process::exit(1);
        }
    };
    let mut out = None;
    if let Err(e) = __cb_body(input_data, &mut out) {
        eprintln!("Error: {:?}", e);
        std::process::exit(1);
    }
    let text = match out {
        Some(Ok(Value::String(s))) if s == __CB_UNSET => return,
        Some(Ok(v)) => v.to_string(),
        Some(Err(e)) => {
            eprintln!("codebeaker: result is not JSON-serializable: {}", e);
            std::process::exit(1);
        }
        _ => return,
    };
    if let Err(e) = std::fs::write("/workspace/output.json", text) {
        eprintln!("codebeaker: cannot write output: {}", e);
        std::process::exit(1);
    }
}
