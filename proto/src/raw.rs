//! JSON values that cross the gateway and the agent as text, each step done once.
//!
//! An invocation's input is parsed once at the HTTP edge (validated, and kept as the
//! caller's text), sent to the agent verbatim inside the request line, and written to
//! `input.json` verbatim; the program's `output.json` is validated once by the agent and
//! travels back the same way into the HTTP response. No step builds a tree of it.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;

/// One valid JSON value as text with no line break, so that it can sit inside a
/// one-line protocol frame. Spaces are kept (Python's `json.dumps` writes `{"a": 1}`, and
/// rewriting every result to drop them would cost more than it saves).
///
/// Deserializing validates without building a tree, and compacts text that has
/// whitespace outside its strings (a pretty-printed request body), so the value can be
/// written verbatim wherever it goes next.
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

/// The deepest nesting of arrays and objects a value may have on any path through
/// CodeBeaker: a request's input, a program's `output.json`. Answers wrap a value in a few
/// levels of their own (a batch answer puts an item's output three levels down, an async
/// batch's stored result four), and every answer must stay within the 128 levels that
/// serde_json (and Python's and most clients' parsers) accept, so a value may use 120 of
/// them. Validating as raw text skips serde_json's own limit, so it is checked here.
pub const MAX_JSON_DEPTH: usize = 120;

/// The message of a value nested deeper than [`MAX_JSON_DEPTH`]; the gateway recognises a
/// deserialization error by it (a syntax-level refusal, 400 `malformed_json`).
pub const TOO_DEEP: &str = "JSON nested deeper than the limit of 120 levels";

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if !within_depth(raw.get(), MAX_JSON_DEPTH) {
            return Err(serde::de::Error::custom(TOO_DEEP));
        }
        Ok(RawJson(raw).compact())
    }
}

/// Whether valid JSON `text` nests arrays and objects at most `limit` deep (one pass over
/// the bytes, no tree).
pub fn within_depth(text: &str, limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

impl RawJson {
    /// `null`.
    pub fn null() -> RawJson {
        RawJson::from_value(&serde_json::Value::Null)
    }

    /// The text of a JSON value built in code.
    pub fn from_value(v: &serde_json::Value) -> RawJson {
        RawJson(serde_json::value::to_raw_value(v).expect("a Value always serializes"))
    }

    /// Validates `bytes` as one JSON value (surrounding whitespace allowed). Text with a
    /// line break (pretty-printed) has its whitespace outside strings removed in one pass;
    /// anything else is kept as it is.
    /// A value nested deeper than [`MAX_JSON_DEPTH`] is refused ([`TOO_DEEP`]).
    pub fn from_slice(bytes: &[u8]) -> Result<RawJson, serde_json::Error> {
        let raw: &RawValue = serde_json::from_slice(bytes)?;
        if !within_depth(raw.get(), MAX_JSON_DEPTH) {
            return Err(serde::de::Error::custom(TOO_DEEP));
        }
        Ok(RawJson::compacted(raw))
    }

    /// Makes a deserialized value safe for a one-line frame (see [`RawJson::from_slice`]).
    pub fn compact(self) -> RawJson {
        if is_compact(self.0.get()) {
            self
        } else {
            RawJson::compacted(&self.0)
        }
    }

    fn compacted(raw: &RawValue) -> RawJson {
        let text = raw.get();
        if is_compact(text) {
            return RawJson(raw.to_owned());
        }
        let compact = strip_whitespace(text);
        RawJson(RawValue::from_string(compact).expect("stripping whitespace keeps JSON valid"))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    pub fn is_null(&self) -> bool {
        self.0.get() == "null"
    }

    /// A tree of the value, for the few places that look inside it (never fails: a
    /// `RawJson` is valid and within [`MAX_JSON_DEPTH`]; a value built from a `Value`
    /// came from a tree).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl Default for RawJson {
    fn default() -> Self {
        RawJson::null()
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

/// Whether `text` has no line break (JSON strings cannot hold a raw one, so a line break
/// is always whitespace between tokens).
fn is_compact(text: &str) -> bool {
    !text.bytes().any(|b| matches!(b, b'\n' | b'\r'))
}

/// Removes whitespace outside strings from valid JSON text. Inside a string JSON allows
/// no raw control characters, so a newline there cannot occur; spaces there are kept.
fn strip_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\n' | '\r' | '\t') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_limited_at_serde_jsons_own_limit() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let ok = nested(MAX_JSON_DEPTH);
        assert!(RawJson::from_slice(ok.as_bytes()).is_ok());
        // Whatever is accepted can also be parsed into a tree.
        assert!(serde_json::from_str::<serde_json::Value>(&ok).is_ok());
        let deep = nested(MAX_JSON_DEPTH + 1);
        let e = RawJson::from_slice(deep.as_bytes()).unwrap_err();
        assert!(e.to_string().contains(TOO_DEEP), "{e}");
        assert!(serde_json::from_str::<RawJson>(&nested(100_000)).is_err());
        // Brackets inside strings, escaped quotes included, do not count.
        let s = format!(r#"["\"{}"]"#, "[".repeat(500));
        assert!(RawJson::from_slice(s.as_bytes()).is_ok());
        let mixed = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
        assert!(RawJson::from_slice(mixed.as_bytes()).is_err());
    }

    #[test]
    fn pretty_text_is_compacted_and_strings_are_untouched() {
        let r =
            RawJson::from_slice(b"  {\n  \"a b\": [1, \"x \\\" y\"],\n\t\"c\": null }\n").unwrap();
        assert_eq!(r.get(), r#"{"a b":[1,"x \" y"],"c":null}"#);
        assert_eq!(
            r.to_value(),
            serde_json::json!({"a b": [1, "x \" y"], "c": null})
        );
        let c = RawJson::from_slice(br#"{"k": "v"}"#).unwrap();
        assert_eq!(c.get(), r#"{"k": "v"}"#, "one line: kept as it is");
        assert!(RawJson::from_slice(b"{\"a\":").is_err());
        assert!(RawJson::default().is_null());
    }

    #[test]
    fn it_travels_verbatim_inside_a_frame() {
        #[derive(Serialize, Deserialize)]
        struct Frame {
            input: RawJson,
        }
        let line = serde_json::to_string(&Frame {
            input: RawJson::from_slice("[1, \"é\\n\"]".as_bytes()).unwrap(),
        })
        .unwrap();
        assert_eq!(line, r#"{"input":[1, "é\n"]}"#);
        let back: Frame = serde_json::from_str(&line).unwrap();
        assert_eq!(back.input.get(), r#"[1, "é\n"]"#);
        // Pretty text in a body is compacted as it is read; a tree converts too.
        let pretty: Frame = serde_json::from_str("{\"input\": {\n \"a\": [1, 2]\n}}").unwrap();
        assert_eq!(pretty.input.get(), r#"{"a":[1,2]}"#);
        let tree: Frame = serde_json::from_value(serde_json::json!({"input": {"a": 1}})).unwrap();
        assert_eq!(tree.input.get(), r#"{"a":1}"#);
    }
}
