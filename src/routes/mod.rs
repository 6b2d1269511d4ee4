//! HTTP routes. Each file owns one group of endpoints.

pub mod auth;
pub mod batch;
pub mod compat;
pub mod console;
pub mod execute;
pub mod executions;
pub mod forward;
pub mod judge0;
pub mod meta;
pub mod piston;
pub mod sessions;
pub mod strict;
