//! The real gateway binary as a child process (for tests that kill it, restart it, read
//! its log, or run several replicas of it).

use serde_json::Value;
use std::time::Duration;

use super::eventually::eventually;

/// The real gateway binary, running (for tests that kill it, restart it or read its log).
pub struct GatewayProcess {
    pub child: std::process::Child,
    pub port: u16,
    /// Every line it writes (stdout and stderr), in order, from its start.
    pub lines: std::sync::mpsc::Receiver<String>,
    /// The lines read before the port was known.
    pub early: Vec<String>,
}

/// Starts `codebeaker serve` on port 0 with JSON logs, this checkout's agent bundle, only
/// Python enabled, and `env` on top; returns once it logged its port.
pub fn start_gateway_process(env: &[(&str, &std::ffi::OsStr)]) -> GatewayProcess {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codebeaker"));
    cmd.arg("serve")
        .env("CODEBEAKER_SERVER__BIND", "127.0.0.1:0")
        .env("CODEBEAKER_SERVER__LOG_FORMAT", "json")
        .env(
            "CODEBEAKER_POOL__AGENT_BUNDLE",
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/agent-bundle"),
        )
        .env("CODEBEAKER_LANGUAGES__ENABLED", "python")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start the gateway binary");
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let pipes: [Box<dyn std::io::Read + Send>; 2] = [
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    for pipe in pipes {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut early = Vec::new();
    let port = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the gateway logs its port");
        early.push(line.clone());
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if let Some(p) = v["fields"]["port"].as_u64() {
                break p as u16;
            }
        }
    };
    GatewayProcess {
        child,
        port,
        lines,
        early,
    }
}

impl GatewayProcess {
    /// `http://127.0.0.1:port`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Keeps draining its output on a thread (nobody reads it); returns the child and its
    /// port.
    pub fn drain(self) -> (std::process::Child, u16) {
        let lines = self.lines;
        std::thread::spawn(move || while lines.recv().is_ok() {});
        (self.child, self.port)
    }
}

/// Polls `base/readyz` until it answers 200 (or `timeout` passes).
pub async fn wait_ready(client: &reqwest::Client, base: &str, timeout: Duration) {
    eventually(timeout, format!("{base} to be ready"), || async {
        match client.get(format!("{base}/readyz")).send().await {
            Ok(r) if r.status() == 200 => Ok(()),
            Ok(r) => Err(format!("{}", r.status())),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}
