//! The batch's progress on stderr: an indicatif bar (items done of total, items/s,
//! failures) when stderr is a terminal, a plain line a second when it is not (a CI log
//! gets lines, not cursor movements), and always a last line with the totals.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// When to draw the bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Show {
    Auto,
    Always,
    Never,
}

pub struct Progress {
    bar: Option<ProgressBar>,
    /// Lines instead of a bar (stderr is not a terminal, `auto`).
    lines: bool,
    quiet: bool,
    total: u64,
    done: u64,
    failed: u64,
    started: Instant,
    last_line: Instant,
}

const TEMPLATE: &str =
    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} items · {per_sec} · {msg}";

impl Progress {
    pub fn new(total: u64, show: Show) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let bar = match show {
            Show::Never => None,
            Show::Auto if !terminal => None,
            Show::Auto => Some(ProgressBar::with_draw_target(
                Some(total),
                ProgressDrawTarget::stderr(),
            )),
            // indicatif draws nothing on a stderr that is not a terminal; `always` gives it
            // one that writes the same escape sequences to stderr whatever it is.
            Show::Always => Some(ProgressBar::with_draw_target(
                Some(total),
                ProgressDrawTarget::term_like(Box::new(Stderr)),
            )),
        };
        if let Some(b) = &bar {
            b.set_style(
                ProgressStyle::with_template(TEMPLATE)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.set_message("0 failed");
            b.enable_steady_tick(Duration::from_millis(200));
        }
        let now = Instant::now();
        Progress {
            bar,
            lines: show == Show::Auto && !terminal,
            quiet: show == Show::Never,
            total,
            done: 0,
            failed: 0,
            started: now,
            last_line: now,
        }
    }

    pub fn item(&mut self, success: bool) {
        self.done += 1;
        if !success {
            self.failed += 1;
        }
        if let Some(b) = &self.bar {
            b.set_message(format!("{} failed", self.failed));
            b.inc(1);
        }
        if self.lines && self.last_line.elapsed() >= Duration::from_secs(1) {
            self.last_line = Instant::now();
            eprintln!("codebeaker: batch: {}", self.status(self.started.elapsed()));
        }
    }

    pub fn failed(&self) -> u64 {
        self.failed
    }

    fn status(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-3);
        format!(
            "{}/{} items, {} failed, {:.1} s, {:.1} items/s",
            self.done,
            self.total,
            self.failed,
            secs,
            self.done as f64 / secs
        )
    }

    pub fn finish(&self, elapsed: Duration) {
        if let Some(b) = &self.bar {
            b.finish();
        }
        if !self.quiet {
            eprintln!("codebeaker: batch done: {}", self.status(elapsed));
        }
    }
}

/// stderr as indicatif's terminal, whether or not it is one (`--progress always`).
#[derive(Debug)]
struct Stderr;

impl Stderr {
    fn put(&self, s: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(s.as_bytes())
    }
}

impl TermLike for Stderr {
    fn width(&self) -> u16 {
        80
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}A"))?;
        }
        Ok(())
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}B"))?;
        }
        Ok(())
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}C"))?;
        }
        Ok(())
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}D"))?;
        }
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(&format!("{s}\n"))
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.put(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.put("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
