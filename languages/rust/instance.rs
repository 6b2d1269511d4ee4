#![allow(unused, non_snake_case, non_camel_case_types, non_upper_case_globals)] use serde_json::{json, Map, Number, Value}; use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque}; fn __cb_body(input_data: Value, __cb_out: &mut Option<Result<Value, serde_json::Error>>) -> Result<(), Box<dyn std::error::Error>> { let mut result: Value = __cb_unset();
{{code}}
    *__cb_out = Some(result.__cb_json());
    Ok(())
}

// CodeBeaker resident runner for Rust ("isolation": "program"): this template with the
// user's code in place of the marker, compiled once, is itself the runner (protocol:
// agent/src/instance.rs). The code is the body of a function called once per input, as in
// call mode (edge.rs: the same contract, `input_data` in, `result` out), so its variables
// are fresh on every call; what it leaves outside (files, environment variables, `static`s,
// a panic hook it set, threads) is process state, by design of the mode.
//
// A panic in the call is printed by Rust's panic hook as an uncaught one is (`thread 'main'
// panicked at ...`) and ends the call with exit code 101, as call mode's process does; the
// runner lives on. `std::process::exit(n)` ends the call with n and the runner (the agent
// starts a fresh one), as does an abort (a panic while panicking, a stack overflow). A
// thread still running after the call is seen by the agent (a Rust program starts no
// thread of its own) and the instance is replaced.
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
    use std::io::{BufRead, Write};
    use std::os::unix::io::{AsRawFd, FromRawFd, IntoRawFd};
    extern "C" {
        fn dup2(old: i32, new: i32) -> i32;
    }
    // The control socket moves from fd 0 to a close-on-exec descriptor above 2 (what
    // `try_clone` makes) and fd 0 becomes /dev/null: the code reads an empty stdin, its
    // child processes do not get the socket.
    let fd0 = unsafe { std::os::unix::net::UnixStream::from_raw_fd(0) };
    let ctl = fd0.try_clone();
    let _ = fd0.into_raw_fd();
    let null = std::fs::File::open("/dev/null");
    let (mut ctl, null) = match (ctl, null) {
        (Ok(c), Ok(n)) if unsafe { dup2(n.as_raw_fd(), 0) } == 0 => (c, n),
        _ => {
            eprintln!("codebeaker: cannot move the control socket off stdin");
            std::process::exit(1);
        }
    };
    drop(null);
    if std::env::args().nth(2).as_deref() == Some("plain") {
        // A plain Rust program is a whole program with its own `main`: there is no
        // function to call again, so it has no resident form.
        eprintln!("codebeaker: plain Rust programs cannot run as a resident instance");
        std::process::exit(1);
    }
    let mut input = match ctl.try_clone() {
        Ok(c) => std::io::BufReader::with_capacity(64 * 1024, c),
        Err(_) => std::process::exit(1),
    };
    __cb_send(&mut ctl, b"ready\n".to_vec());
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(n) if n > 0 => {}
            _ => std::process::exit(0),
        }
        let (exit, payload) = __cb_call(&line);
        // What the call printed reaches the pipe before `done` (stdout is line-buffered).
        let _ = std::io::stdout().flush();
        let size = payload.as_ref().map_or(-1, |p| p.len() as i64);
        let mut msg = format!("done {} {} 0\n", exit, size).into_bytes();
        msg.extend_from_slice(payload.as_deref().unwrap_or_default());
        __cb_send(&mut ctl, msg);
    }
}

// One call: the exit code call mode's process would have, and the result JSON (None: none).
fn __cb_call(line: &str) -> (i32, Option<Vec<u8>>) {
    let input_data = match line.trim_end().parse::<Value>() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("codebeaker: input is not JSON: {}", e);
            return (1, None);
        }
    };
    let mut out = None;
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        __cb_body(input_data, &mut out)
    }));
    match ran {
        // The panic hook has printed the message; a payload whose drop panics would abort.
        Err(payload) => {
            std::mem::forget(payload);
            return (101, None);
        }
        Ok(Err(e)) => {
            eprintln!("Error: {:?}", e);
            return (1, None);
        }
        Ok(Ok(())) => {}
    }
    match out {
        Some(Ok(Value::String(s))) if s == __CB_UNSET => (0, None),
        Some(Ok(v)) => (0, Some(v.to_string().into_bytes())),
        Some(Err(e)) => {
            eprintln!("codebeaker: result is not JSON-serializable: {}", e);
            (1, None)
        }
        None => (0, None),
    }
}

fn __cb_send(ctl: &mut std::os::unix::net::UnixStream, msg: Vec<u8>) {
    use std::io::Write;
    if ctl.write_all(&msg).is_err() {
        std::process::exit(1);
    }
}
