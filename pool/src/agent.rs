//! The client side of the agent protocol, over a Docker attach stream.
//!
//! The container's stdin and stdout are the transport: one JSON request per line in, one
//! JSON reply per line out. Docker multiplexes stdout and stderr on the attach stream, so the
//! agent's diagnostics (stderr) arrive as separate frames and are only logged.

use bollard::container::LogOutput;
use codebeaker_proto::{Reply, Request};
use futures_util::{Stream, StreamExt};
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::AgentError;

/// A live connection to one container's agent.
/// The reply buffer's capacity kept between replies (most replies are far smaller).
const KEEP_BUFFER: usize = 64 * 1024;

pub struct AgentConn {
    container: String,
    input: Pin<Box<dyn AsyncWrite + Send>>,
    output: Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>,
    /// Bytes of stdout received but not yet consumed as a full line.
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no newline: each frame is scanned once,
    /// so a reply of many frames costs linear, not quadratic, time.
    scanned: usize,
    /// Requests queued for one write (pipelined resident calls).
    outgoing: Vec<u8>,
}

impl AgentConn {
    pub fn new(container: String, attach: bollard::container::AttachContainerResults) -> Self {
        AgentConn {
            container,
            input: attach.input,
            output: attach.output,
            pending: Vec::new(),
            scanned: 0,
            outgoing: Vec::new(),
        }
    }

    /// Sends one request and waits (up to `timeout`) for its reply.
    pub async fn call(&mut self, req: &Request, timeout: Duration) -> Result<Reply, AgentError> {
        let mut line = serde_json::to_vec(req).map_err(AgentError::Encode)?;
        line.push(b'\n');
        tokio::time::timeout(timeout, async {
            self.input.write_all(&line).await.map_err(AgentError::Io)?;
            self.input.flush().await.map_err(AgentError::Io)?;
            self.read_reply().await
        })
        .await
        .map_err(|_| AgentError::Timeout(timeout))?
    }

    /// Encodes a request into the outgoing buffer, written by [`AgentConn::flush`]: many
    /// pipelined calls then cost one write through the engine's attach stream.
    pub fn queue(&mut self, req: &Request) -> Result<(), AgentError> {
        serde_json::to_writer(&mut self.outgoing, req).map_err(AgentError::Encode)?;
        self.outgoing.push(b'\n');
        Ok(())
    }

    /// Writes what [`AgentConn::queue`] buffered.
    pub async fn flush(&mut self) -> Result<(), AgentError> {
        if self.outgoing.is_empty() {
            return Ok(());
        }
        self.input
            .write_all(&self.outgoing)
            .await
            .map_err(AgentError::Io)?;
        self.input.flush().await.map_err(AgentError::Io)?;
        self.outgoing.clear();
        if self.outgoing.capacity() > KEEP_BUFFER {
            self.outgoing.shrink_to(KEEP_BUFFER);
        }
        Ok(())
    }

    /// Sends one request line without waiting for a reply (for multi-reply commands).
    pub async fn send(&mut self, req: &Request) -> Result<(), AgentError> {
        let mut line = serde_json::to_vec(req).map_err(AgentError::Encode)?;
        line.push(b'\n');
        self.input.write_all(&line).await.map_err(AgentError::Io)?;
        self.input.flush().await.map_err(AgentError::Io)
    }

    /// Reads the next reply line (used for the `ready` line at startup as well).
    pub async fn read_reply(&mut self) -> Result<Reply, AgentError> {
        loop {
            let newline = self.pending[self.scanned..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| self.scanned + i);
            if let Some(pos) = newline {
                let line: Vec<u8> = self.pending.drain(..=pos).collect();
                self.scanned = 0;
                // A large reply (an output flood) must not keep its buffer for the
                // container's whole life: give back what is above a small working size.
                if self.pending.capacity() > KEEP_BUFFER && self.pending.len() <= KEEP_BUFFER {
                    self.pending.shrink_to(KEEP_BUFFER);
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line).map_err(|e| {
                    AgentError::Protocol(format!(
                        "bad reply line ({e}): {}",
                        String::from_utf8_lossy(&line[..line.len().min(200)])
                    ))
                });
            }
            self.scanned = self.pending.len();
            match self.output.next().await {
                Some(Ok(LogOutput::StdOut { message })) => self.pending.extend_from_slice(&message),
                Some(Ok(LogOutput::StdErr { message })) => {
                    tracing::debug!(container = %short(&self.container), agent_stderr = %String::from_utf8_lossy(&message).trim_end());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(AgentError::Attach(e)),
                None => return Err(AgentError::Closed),
            }
        }
    }
}

/// The first 12 characters of a container id, as `docker ps` shows it.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
