//! The CodeBeaker gateway: HTTP, configuration and wiring.
//!
//! Architecture Invariant: nothing in this crate talks to Docker or opens a path inside a
//! container; it asks `codebeaker-pool` to run invocations.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod sessions;
pub mod startup;
pub mod state;
pub mod telemetry;
