//! `codebeaker batch FILE INPUTS.jsonl`: one program against many inputs, as one
//! `POST /v1/execute/batch` answered in NDJSON. The gateway's lines are copied to stdout as
//! they arrive (one `{"type":"item",…}` per item in completion order, then
//! `{"type":"summary",…}`); the progress goes to stderr (`progress`). Exit 0 when every
//! item succeeded, 1 when any failed or was skipped.
//!
//! INPUTS.jsonl: one JSON value per line, each an item's input (ids are the line numbers,
//! from 1); with `--items`, each line is an item object `{"id", "input", "stdin"}` itself.
//! Blank lines are skipped.

use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use super::client::{Client, Connection};
use super::{language_for, read_text, CliError};

mod progress;
use progress::{Progress, Show};

#[derive(Debug, clap::Args)]
pub struct BatchArgs {
    /// The program's file; its extension names the language unless --language.
    pub file: PathBuf,
    /// One input per line (JSON Lines), or - for stdin.
    pub inputs: PathBuf,
    #[arg(long, short)]
    pub language: Option<String>,
    /// Items run at once (default: the key's `max_concurrent`).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Each line is an item object (`id`, `input`, `stdin`) rather than an input.
    #[arg(long)]
    pub items: bool,
    /// Skip the items not yet started after the first failure.
    #[arg(long)]
    pub stop_on_first_error: bool,
    /// `edge` (the default) or `plain`.
    #[arg(long, value_parser = ["edge", "plain"])]
    pub mode: Option<String>,
    /// Packages the program imports (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub packages: Vec<String>,
    /// Run-time limit per item, in milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// The progress on stderr: a bar on a terminal and a line a second elsewhere (`auto`),
    /// the bar even when stderr is not a terminal (`always`), or nothing (`never`).
    #[arg(long, value_enum, default_value_t = Show::Auto)]
    pub progress: Show,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn run(a: BatchArgs) -> ExitCode {
    match stream(&a).await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => e.report(),
    }
}

/// The items of the inputs file.
fn items(text: &str, as_items: bool) -> Result<Vec<Value>, CliError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        let value: Value = serde_json::from_str(line)
            .map_err(|e| CliError::Input(format!("inputs line {n} is not JSON: {e}")))?;
        let item = if as_items {
            let Value::Object(mut o) = value else {
                return Err(CliError::Input(format!(
                    "inputs line {n} is not an item object (--items)"
                )));
            };
            o.entry("id").or_insert_with(|| json!(n.to_string()));
            Value::Object(o)
        } else {
            json!({"id": n.to_string(), "input": value})
        };
        out.push(item);
    }
    if out.is_empty() {
        return Err(CliError::Input("the inputs file has no lines".into()));
    }
    Ok(out)
}

fn body(a: &BatchArgs, items: Vec<Value>) -> Result<Value, CliError> {
    let mut b = Map::new();
    b.insert(
        "language".into(),
        json!(language_for(&a.file, a.language.as_deref())?),
    );
    b.insert("code".into(), json!(read_text(&a.file)?));
    b.insert("items".into(), Value::Array(items));
    if let Some(c) = a.concurrency {
        b.insert("maxConcurrency".into(), json!(c));
    }
    if a.stop_on_first_error {
        b.insert("stopOnFirstError".into(), json!(true));
    }
    if let Some(m) = &a.mode {
        b.insert("mode".into(), json!(m));
    }
    let packages: Vec<&str> = a
        .packages
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    if !packages.is_empty() {
        b.insert("packages".into(), json!(packages));
    }
    if let Some(t) = a.timeout_ms {
        b.insert("timeoutMs".into(), json!(t));
    }
    Ok(Value::Object(b))
}

/// Sends the batch and copies its lines; returns how many items failed.
async fn stream(a: &BatchArgs) -> Result<u64, CliError> {
    let text = if a.inputs.as_os_str() == "-" {
        super::text_or_file("@-")?
    } else {
        read_text(&a.inputs)?
    };
    let items = items(&text, a.items)?;
    let total = items.len() as u64;
    let body = body(a, items)?;
    let client = Client::new(&a.conn)?;
    let started = Instant::now();
    let mut resp = client
        .send(
            client
                .post("/v1/execute/batch")
                .header("accept", "application/x-ndjson")
                .json(&body),
        )
        .await?;
    let mut progress = Progress::new(total, a.progress);
    let mut pending: Vec<u8> = Vec::new();
    let mut summary = None;
    let mut out = std::io::stdout();
    loop {
        let chunk = resp
            .chunk()
            .await
            .map_err(|e| CliError::Failed(format!("the batch's answer stopped midway: {e}")))?;
        let Some(chunk) = chunk else { break };
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            // Each line is written whole as it comes, so a reader of stdout sees items as
            // they finish; a closed stdout is not a reason to stop the batch.
            let _ = out.write_all(&line);
            let _ = out.flush();
            match serde_json::from_slice::<Value>(&line) {
                Ok(v) if v["type"] == "item" => {
                    progress.item(v["item"]["success"].as_bool() == Some(true))
                }
                Ok(v) if v["type"] == "summary" => summary = Some(v["summary"].clone()),
                _ => {}
            }
        }
    }
    progress.finish(started.elapsed());
    let Some(summary) = summary else {
        return Err(CliError::Failed(
            "the batch's answer ended before its summary line".into(),
        ));
    };
    let failed = summary["failureCount"].as_u64().unwrap_or(0)
        + summary["skippedCount"].as_u64().unwrap_or(0);
    Ok(failed.max(progress.failed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_inputs_numbered_from_one_or_items_with_ids() {
        let got = items("{\"v\":1}\n\n[2]\n", false).unwrap();
        assert_eq!(
            got,
            vec![
                json!({"id": "1", "input": {"v": 1}}),
                json!({"id": "3", "input": [2]})
            ]
        );
        let got = items(
            "{\"id\":\"a\",\"input\":1}\n{\"input\":2,\"stdin\":\"x\"}",
            true,
        )
        .unwrap();
        assert_eq!(got[0], json!({"id": "a", "input": 1}));
        assert_eq!(got[1], json!({"id": "2", "input": 2, "stdin": "x"}));
        assert!(items("1\n", true).is_err());
        assert!(items("{oops\n", false).is_err());
        assert!(items("\n", false).is_err());
    }
}
