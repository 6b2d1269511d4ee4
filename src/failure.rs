//! Whose fault a refusal is, said once by the layer whose error it is.
//!
//! Every layer's error implements [`Failure`]: a stable `kind` (the public contract of the
//! error body) and a [`Class`]. The transports turn class plus kind into their own terms
//! (`error.rs` into an HTTP status and headers, `jsonrpc.rs` into a JSON-RPC code) without
//! matching any layer's nested enums.

use std::time::Duration;

/// The four families of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The request cannot be served as sent: sending it again fails again (4xx).
    Caller,
    /// Over a limit: the caller's own (`quota`: its rate, concurrency or queue, 429) or
    /// the gateway's capacity (503). The same request may succeed after `retry_after`.
    Overload { retry_after: Duration, quota: bool },
    /// Our fault, or an outage below us (the engine, Redis, a replica). Details go to the
    /// log, never to the caller. `transient`: the same request may succeed shortly (503).
    Internal { transient: bool },
    /// This gateway cannot serve the request until its operator acts (an enabled
    /// language whose image is not built): 503 with a message that names the fix, and no
    /// retry hint, because retrying soon does not help.
    Unavailable,
}

/// A refusal a transport can answer.
pub trait Failure: std::error::Error {
    /// The error body's stable `kind`.
    fn kind(&self) -> &'static str;
    fn class(&self) -> Class;
}

/// An overload of the gateway's capacity that passes within a second.
pub const BUSY: Class = Class::Overload {
    retry_after: Duration::from_secs(1),
    quota: false,
};

/// The caller's own limit, free again within a second.
pub const OVER_QUOTA: Class = Class::Overload {
    retry_after: Duration::from_secs(1),
    quota: true,
};

/// The `codebeaker_rejections_total` reason a refusal of this kind counts as, if any.
/// Each transport counts where it answers (`error.rs`, `jsonrpc.rs`) with this one table;
/// `serve.rs` counts connections refused before any request (`too_many_connections`), and
/// `jsonrpc.rs` sockets dropped for not reading (`websocket_not_reading`).
pub fn rejection_reason(kind: &str) -> Option<&'static str> {
    match kind {
        "unauthenticated" => Some("auth"),
        "rate_limited" => Some("rate_limit"),
        "concurrency_limit" => Some("concurrency"),
        "overloaded" | "queue_full" => Some("shed"),
        "forbidden" | "limit_exceeded" => Some("forbidden"),
        _ => None,
    }
}
