//! C# as .NET writes it today, on Mono: top-level statements and `System.Text.Json`.
//!
//! Debian has no .NET SDK and no registry is reachable, so the C# image runs Mono 6.8,
//! whose compiler (`mcs`) predates top-level statements. Loopai's generated programs are
//! top-level statements (`using System.Text.Json;` then `var input_data = ...;`). This
//! module turns such a file into a program `mcs` compiles ([`to_program`]): `using`
//! directives are hoisted, type declarations stay at namespace level, and every other
//! line becomes the body of a generated `Main`, with `#line` directives so that compile
//! errors name the user's own file and line. The same translation serves the stateless
//! path (`runtime.rs`) and `dotnet script FILE` in sessions ([`dotnet_main`]: this binary
//! is installed as `dotnet` in the C# image), so both accept exactly the same programs.
//!
//! `System.Text.Json` itself is a library built from `languages/csharp/image/json` when the image
//! is built (see docs/csharp.md for the subset).

use std::fmt::Write as _;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::digest::digest;

/// Where the image installs the `System.Text.Json` subset for Mono.
pub const JSON_LIBRARY_DIR: &str = "/usr/lib/codebeaker";
pub const JSON_LIBRARY: &str = "/usr/lib/codebeaker/System.Text.Json.dll";
/// The generated class that holds the top-level statements.
const ENTRY_CLASS: &str = "__CodeBeakerTopLevel";
/// `dotnet script` compiles into the caller's own scratch space (uid 1000 can write /tmp);
/// in a session the cache lives as long as the session's container.
const SCRIPT_CACHE: &str = "/tmp/.dotnet-script";

/// What the lexer knows at the start of each line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LineStart {
    depth: i32,
    /// Inside a block comment or a multi-line (verbatim) string.
    in_literal: bool,
}

/// Brace depth at the start of every line, skipping strings, chars and comments.
fn scan(source: &str) -> Vec<LineStart> {
    let b = source.as_bytes();
    let mut starts = vec![LineStart {
        depth: 0,
        in_literal: false,
    }];
    let mut depth = 0i32;
    let mut i = 0;
    // Pushes a line start for every newline in b[from..to] that lies inside a literal.
    let mark_literal_lines = |starts: &mut Vec<LineStart>, from: usize, to: usize, depth: i32| {
        for &c in &b[from..to.min(b.len())] {
            if c == b'\n' {
                starts.push(LineStart {
                    depth,
                    in_literal: true,
                });
            }
        }
    };
    while i < b.len() {
        match b[i] {
            b'\n' => {
                starts.push(LineStart {
                    depth,
                    in_literal: false,
                });
                i += 1;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = source[i + 2..]
                    .find("*/")
                    .map_or(b.len(), |p| i + 2 + p + 2);
                mark_literal_lines(&mut starts, i, end, depth);
                i = end;
            }
            b'"' | b'@' | b'$' => match string_end(b, i) {
                Some(end) => {
                    mark_literal_lines(&mut starts, i, end, depth);
                    i = end;
                }
                None => i += 1,
            },
            b'\'' => {
                // A char literal: 'x', '\n', '\u0041', '\''.
                let mut j = i + 1;
                while j < b.len() && b[j] != b'\'' && b[j] != b'\n' {
                    if b[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                i = (j + 1).min(b.len());
            }
            b'{' => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                depth -= 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    starts
}

/// If a string literal starts at `i` (`"…"`, `@"…"`, `$"…"`, `$@"…"`, `@$"…"`), the index
/// just past its end.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let (mut verbatim, mut interpolated) = (false, false);
    while j < b.len() && (b[j] == b'@' || b[j] == b'$') {
        verbatim |= b[j] == b'@';
        interpolated |= b[j] == b'$';
        j += 1;
    }
    if b.get(j) != Some(&b'"') || j - i > 2 {
        return None;
    }
    j += 1;
    while j < b.len() {
        match b[j] {
            b'\\' if !verbatim => j += 2,
            b'"' if verbatim && b.get(j + 1) == Some(&b'"') => j += 2,
            b'"' => return Some(j + 1),
            b'{' if interpolated && b.get(j + 1) == Some(&b'{') => j += 2,
            b'{' if interpolated => j = hole_end(b, j + 1),
            b'\n' if !verbatim => return Some(j),
            _ => j += 1,
        }
    }
    Some(b.len())
}

/// The index past the `}` closing an interpolation hole that starts at `i`.
fn hole_end(b: &[u8], mut i: usize) -> usize {
    let mut depth = 1;
    while i < b.len() {
        match b[i] {
            b'"' | b'@' | b'$' => match string_end(b, i) {
                Some(end) => i = end,
                None => i += 1,
            },
            b'{' => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    i
}

/// `using X;`, `using static X;`, `using A = B;` (not `using (…)` or `using var`).
fn is_using_directive(line: &str) -> bool {
    let t = line.trim();
    let Some(rest) = t.strip_prefix("using ") else {
        return false;
    };
    let Some(body) = rest.trim().strip_suffix(';') else {
        return false;
    };
    let body = body.trim();
    let body = body.strip_prefix("static ").unwrap_or(body).trim();
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == ':')
    };
    match body.split_once('=') {
        Some((alias, target)) => {
            name_ok(alias.trim())
                && !target.trim().is_empty()
                && !target.contains('(')
                && !alias.trim().contains('.')
        }
        None => name_ok(body) && body != "var",
    }
}

/// A line that starts a type declaration (class, struct, interface, enum, delegate).
fn starts_type(line: &str) -> bool {
    const MODIFIERS: &[&str] = &[
        "public",
        "internal",
        "private",
        "protected",
        "static",
        "sealed",
        "abstract",
        "partial",
        "unsafe",
        "readonly",
        "ref",
        "new",
    ];
    let mut words = line.split_whitespace();
    for w in words.by_ref() {
        if MODIFIERS.contains(&w) {
            continue;
        }
        return matches!(w, "class" | "struct" | "interface" | "enum" | "delegate")
            && words.next().is_some_and(|n| {
                n.chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
            });
    }
    false
}

/// Translates a top-level-statements C# file into a program `mcs` compiles. A file with
/// no statements (only usings and types) is returned as it is (behind a `#line`), so an
/// ordinary program with its own `Main` still works.
pub fn to_program(source: &str, file_name: &str) -> String {
    let lines: Vec<&str> = source.split('\n').collect();
    let starts = scan(source);
    let mut usings = Vec::new();
    let mut types = Vec::new();
    let mut statements = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let at = starts.get(i).copied().unwrap_or(LineStart {
            depth: 0,
            in_literal: false,
        });
        let line = lines[i];
        if at.depth == 0 && !at.in_literal && is_using_directive(line) {
            usings.push(i);
            i += 1;
        } else if at.depth == 0 && !at.in_literal && starts_type(line) {
            // The declaration runs until the depth is back at 0 after its body opened (or,
            // for a delegate or a body-less declaration, to the `;` on a depth-0 line).
            let first = i;
            let mut j = i + 1;
            let mut opened = line.contains('{');
            while j < lines.len() {
                let d = starts.get(j).map_or(0, |s| s.depth);
                if opened && d == 0 {
                    break;
                }
                if !opened && d == 0 && lines[j - 1].trim_end().ends_with(';') {
                    break;
                }
                if d > 0 {
                    opened = true;
                }
                j += 1;
            }
            types.push((first, j));
            i = j;
        } else {
            statements.push(i);
            i += 1;
        }
    }
    let has_statements = statements.iter().any(|&n| !is_blank_or_comment(lines[n]));
    let file = file_name.replace('\\', "/").replace('"', "");
    if !has_statements {
        // Compiled as it is; the directive keeps compile errors naming the user's file.
        return format!("#line 1 \"{file}\"\n{source}");
    }
    let mut out = String::with_capacity(source.len() + 512);
    for &n in &usings {
        let _ = writeln!(out, "#line {} \"{file}\"", n + 1);
        out.push_str(lines[n]);
        out.push('\n');
    }
    let is_async = statements.iter().any(|&n| contains_word(lines[n], "await"));
    out.push_str("#line hidden\n");
    let _ = writeln!(out, "internal static class {ENTRY_CLASS}\n{{");
    if is_async {
        // An async entry point, written out: mcs has no `async Main`.
        out.push_str("    public static void Main(string[] args) { __RunAsync(args).GetAwaiter().GetResult(); }\n");
        out.push_str("    private static async System.Threading.Tasks.Task __RunAsync(string[] args)\n    {\n");
    } else {
        out.push_str("    public static void Main(string[] args)\n    {\n");
    }
    let mut expected_next = usize::MAX;
    for &n in &statements {
        if n != expected_next {
            let _ = writeln!(out, "#line {} \"{file}\"", n + 1);
        }
        out.push_str(lines[n]);
        out.push('\n');
        expected_next = n + 1;
    }
    out.push_str("#line hidden\n    }\n}\n");
    for (first, end) in types {
        let _ = writeln!(out, "#line {} \"{file}\"", first + 1);
        for line in &lines[first..end] {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with("//")
}

fn contains_word(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(p, _)| {
        let before = line[..p].chars().next_back();
        let after = line[p + word.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// The `mcs` argv for a program: the JSON library and the assemblies generated code uses.
pub fn compiler_argv(src: &str, out: &str) -> Vec<String> {
    vec![
        "mcs".into(),
        "-nologo".into(),
        format!("-r:{JSON_LIBRARY}"),
        "-r:System.Core.dll".into(),
        "-r:System.Numerics.dll".into(),
        "-r:Microsoft.CSharp.dll".into(),
        "-optimize+".into(),
        format!("-out:{out}"),
        src.into(),
    ]
}

/// `dotnet`, as installed in the C# image: `dotnet script FILE.cs [args…]` compiles the
/// file once (cached by a hash of its translation) and runs it with Mono; `dotnet
/// --version` answers. Anything else says plainly what this `dotnet` is.
pub fn dotnet_main(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        Some("script") => match args.get(1) {
            Some(file) if !file.starts_with('-') => match run_script(file, &args[2..]) {
                // `run_script` only returns on failure: success replaces this process.
                Ok(code) => code,
                Err(e) => {
                    eprintln!("dotnet script: {e}");
                    ExitCode::from(1)
                }
            },
            _ => {
                eprintln!("usage: dotnet script FILE.cs [args...]");
                ExitCode::from(2)
            }
        },
        Some("--version") => {
            println!("{}", mono_version().unwrap_or_else(|| "mono".into()));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "this `dotnet` is CodeBeaker's Mono shim: only `dotnet script FILE.cs` is available \
                 (C# with top-level statements and the System.Text.Json subset in docs/csharp.md)"
            );
            ExitCode::from(2)
        }
    }
}

fn mono_version() -> Option<String> {
    let out = Command::new("mono").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(|l| l.trim().to_string())
}

fn run_script(file: &str, script_args: &[String]) -> io::Result<ExitCode> {
    let source = std::fs::read_to_string(file)
        .map_err(|e| io::Error::new(e.kind(), format!("{file}: {e}")))?;
    let name = Path::new(file)
        .file_name()
        .map_or_else(|| file.to_string(), |n| n.to_string_lossy().into_owned());
    let program = to_program(&source, &name);
    let key = digest(&[
        codebeaker_recipe::Translator::CsharpTopLevel
            .version()
            .as_bytes(),
        program.as_bytes(),
    ]);
    let dir = PathBuf::from(SCRIPT_CACHE).join(&key);
    let exe = dir.join("program.exe");
    if !exe.is_file() {
        std::fs::create_dir_all(&dir)?;
        let src = dir.join("program.g.cs");
        std::fs::write(&src, &program)?;
        let tmp = dir.join(format!("program.{}.exe", std::process::id()));
        let argv = compiler_argv(&src.display().to_string(), &tmp.display().to_string());
        let out = Command::new(&argv[0]).args(&argv[1..]).output()?;
        if !out.status.success() {
            // mcs writes its diagnostics to stdout; the caller looks at stderr.
            let mut msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let err = String::from_utf8_lossy(&out.stderr);
            if !err.trim().is_empty() {
                msg.push('\n');
                msg.push_str(err.trim());
            }
            eprintln!("{msg}");
            let _ = std::fs::remove_file(&tmp);
            return Ok(ExitCode::from(1));
        }
        std::fs::rename(&tmp, &exe)?;
    }
    let err = Command::new("mono")
        .arg(&exe)
        .args(script_args)
        .env("MONO_PATH", JSON_LIBRARY_DIR)
        .exec();
    Err(io::Error::new(
        err.kind(),
        format!("cannot start mono: {err}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPAI: &str = "\nusing System;\nusing System.IO;\nusing System.Text.Json;\n\n// Read input\nvar inputJson = File.ReadAllText(\"/workspace/input.json\");\nvar input_data = JsonSerializer.Deserialize<JsonElement>(inputJson);\n\n// User code\n\nvar value = input_data.GetProperty(\"value\").GetInt32();\nvar result = new { output = value * 2 };\n\n\n// Write output (assumes 'result' variable exists)\nvar outputJson = JsonSerializer.Serialize(result);\nFile.WriteAllText(\"/workspace/output.json\", outputJson);\n";

    #[test]
    fn loopai_wrapper_becomes_a_main_with_usings_hoisted() {
        let p = to_program(LOOPAI, "program.cs");
        let class_at = p.find("class __CodeBeakerTopLevel").unwrap();
        for u in [
            "using System;",
            "using System.IO;",
            "using System.Text.Json;",
        ] {
            assert!(p.find(u).unwrap() < class_at, "{u} hoisted:\n{p}");
        }
        let main_at = p.find("public static void Main").unwrap();
        assert!(p.find("var result = new").unwrap() > main_at);
        assert!(p.contains("#line 5 \"program.cs\""), "{p}");
        assert!(!p.contains("__RunAsync"));
    }

    #[test]
    fn types_stay_outside_main_and_await_gets_an_async_body() {
        let src = "using System;\nvar p = new Point { X = 1 };\nawait System.Threading.Tasks.Task.Delay(1);\nConsole.WriteLine(Add(p.X, 2));\nint Add(int a, int b) { return a + b; }\npublic class Point\n{\n    public int X { get; set; }\n    public string S = \"}\";\n}\nenum Color { Red, Green }\n";
        let p = to_program(src, "a.cs");
        let main_end = p.find("#line hidden\n    }\n}").unwrap();
        assert!(p.find("public class Point").unwrap() > main_end, "{p}");
        assert!(p.find("enum Color").unwrap() > main_end, "{p}");
        assert!(
            p.find("int Add(int a").unwrap() < main_end,
            "local function stays: {p}"
        );
        assert!(p.contains("__RunAsync"));
    }

    #[test]
    fn a_classic_program_is_left_alone() {
        let src =
            "using System;\nclass P {\n  static void Main() { Console.WriteLine(\"{\"); }\n}\n";
        assert_eq!(to_program(src, "p.cs"), format!("#line 1 \"p.cs\"\n{src}"));
    }

    #[test]
    fn braces_in_strings_and_comments_do_not_count() {
        let src = "var a = \"{{{\";\nvar b = @\"}\n}\";\nvar c = $\"{a.Length} {{ }}\";\n/* { */ var d = '{';\nclass K { }\n";
        let p = to_program(src, "x.cs");
        let main_end = p.find("#line hidden\n    }\n}").unwrap();
        assert!(p.find("class K").unwrap() > main_end, "{p}");
        assert!(p.find("var d").unwrap() < main_end, "{p}");
    }

    #[test]
    fn the_instance_template_keeps_its_call_class_out_of_main() {
        // The resident runner (Launcher.cs) finds `__CodeBeakerCall` at namespace level and
        // calls Main per input; user types and usings keep working as in call mode.
        let code = "using System.Text;\nvar sb = new StringBuilder(\"a\");\nvar result = new P { X = sb.Length };\nclass P { public int X { get; set; } }";
        let src = include_str!("../../languages/csharp/instance.cs").replacen("{{code}}", code, 1);
        let p = to_program(&src, "program.cs");
        let main_end = p.find("#line hidden\n    }\n}").unwrap();
        assert!(p.find("class __CodeBeakerCall").unwrap() > main_end, "{p}");
        assert!(p.find("class P").unwrap() > main_end, "{p}");
        assert!(
            p.find("using System.Text;").unwrap() < p.find("class __CodeBeakerTopLevel").unwrap()
        );
        assert!(p.find("__CodeBeakerCall.Result = outputJson;").unwrap() < main_end);
        // The lines above the code are languages/csharp/edge.cs's: compile errors name the same line.
        let call = include_str!("../../languages/csharp/edge.cs");
        let line_of = |t: &str| t.lines().position(|l| l == "{{code}}");
        assert_eq!(
            line_of(call),
            line_of(include_str!("../../languages/csharp/instance.cs"))
        );
    }

    #[test]
    fn using_directives_are_told_from_using_statements() {
        assert!(is_using_directive("using System.Linq;"));
        assert!(is_using_directive("  using static System.Math;"));
        assert!(is_using_directive("using J = System.Text.Json;"));
        assert!(!is_using_directive("using var f = File.OpenRead(p);"));
        assert!(!is_using_directive("using (var f = File.OpenRead(p)) { }"));
    }
}
