//! Turning user code into a complete program with the language's wrapper template.
//!
//! The templates live as plain files under `wrappers/` at the workspace root (so they can
//! be read, linted and run on their own) and are compiled into the binary here.

use codebeaker_proto::Language;

const MARKER: &str = "{{code}}";

fn template(lang: Language) -> &'static str {
    match lang {
        Language::Python => include_str!("../../wrappers/python.py"),
        Language::JavaScript => include_str!("../../wrappers/javascript.js"),
        Language::Go => include_str!("../../wrappers/go.go"),
        Language::CSharp => include_str!("../../wrappers/csharp.cs"),
    }
}

/// The program a resident instance (`"isolation": "program"`) loads: Python and
/// JavaScript runners take the code as written (they supply `input_data` and read
/// `result`); Go compiles it inside the instance template, whose `main` is the runner; C#
/// compiles it inside its instance template (a plain C# program as written), and the
/// resident launcher calls its `Main` per input. `None`: no resident form (a plain Go
/// program carries its own `main`).
pub fn wrap_instance(lang: Language, code: &str, plain: bool) -> Option<String> {
    match lang {
        Language::Python | Language::JavaScript => Some(code.to_string()),
        Language::Go if !plain => {
            Some(include_str!("../../wrappers/instance/go.go").replacen(MARKER, code, 1))
        }
        // The resident launcher calls the program's `Main` per input: a plain program's
        // own, or the one the agent's translator makes of the instance template.
        Language::CSharp if plain => Some(code.to_string()),
        Language::CSharp => {
            Some(include_str!("../../wrappers/instance/csharp.cs").replacen(MARKER, code, 1))
        }
        _ => None,
    }
}

/// Whether `"isolation": "program"` can run a `lang` program (plain or not).
pub fn has_resident_form(lang: Language, plain: bool) -> bool {
    wrap_instance(lang, "", plain).is_some()
}

/// The full program source for `code`: the template with the marker line replaced.
pub fn wrap(lang: Language, code: &str) -> String {
    let t = template(lang);
    // Every template has the marker exactly once (checked by a test below).
    t.replacen(MARKER, code, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_has_one_marker_on_its_own_line() {
        for l in Language::ALL {
            let t = template(l);
            assert_eq!(t.matches(MARKER).count(), 1, "{l}");
            assert!(
                t.lines().any(|line| line == MARKER),
                "{l}: marker must be a whole line"
            );
        }
    }

    #[test]
    fn code_is_inserted_verbatim_and_markers_in_code_are_left_alone() {
        let p = wrap(Language::Python, "result = '{{code}}'");
        assert!(p.contains("result = '{{code}}'"));
        assert!(p.starts_with("# CodeBeaker wrapper for Python"));
        assert!(p.contains("/workspace/output.json"));
    }
}
