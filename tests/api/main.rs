//! Integration tests: the real gateway over HTTP, against real Docker containers.
//! They need a running Docker engine and the runtime images (`make test` prepares both).

mod helpers;

mod async_work;
mod batch;
mod cli;
mod compat;
mod console;
mod edge;
mod executions;
mod hardening;
mod healing;
mod hostile;
mod jwt;
mod languages;
mod loopai;
mod openapi;
mod pool;
mod program;
mod program_io;
mod recipes;
mod replicas;
mod requests;
mod runsc;
mod sdk_python;
mod sdk_typescript;
mod sessions;
mod shared_state;
mod tenants;
mod variants;
mod webhooks;
