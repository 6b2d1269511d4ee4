//! The CodeBeaker gateway: HTTP, configuration and wiring.
//!
//! Architecture Invariant: nothing in this crate talks to Docker or opens a path inside a
//! container; it asks `codebeaker-pool` to run invocations.
#![forbid(unsafe_code)]

// Leaves: what every layer may use.
pub mod domain;
pub mod failure;
pub mod metrics;
pub mod telemetry;
// Layers, each with its own error enum and no knowledge of HTTP or `AppState`.
pub mod auth;
pub mod batch;
pub mod config;
pub mod executions;
pub mod invoke;
pub mod limits;
pub mod requests;
pub mod sessions;
pub mod shared;
pub mod store;
pub mod webhooks;
// Transports: the only modules that know `AppState` and map errors.
pub mod error;
pub mod json_int;
pub mod jsonrpc;
pub mod judge0;
pub mod openapi;
pub mod openapi_refine;
pub mod routes;
pub mod state;
// Wiring.
pub mod serve;
pub mod startup;
