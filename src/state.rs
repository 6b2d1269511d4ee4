//! What every handler can reach: the transports' view of the gateway.

use codebeaker_pool::Pools;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::executions::AsyncEngine;
use crate::invoke::Invoker;
use crate::limits::{Admission, RateLimits};
use crate::sessions::Sessions;
use crate::shared::Shared;

/// The shared handles every handler and transport task gets.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pools: Arc<Pools>,
    pub auth: Arc<Authenticator>,
    pub rate: Arc<RateLimits>,
    pub admission: Arc<Admission>,
    pub invoker: Arc<Invoker>,
    pub metrics: PrometheusHandle,
    pub sessions: Arc<Sessions>,
    pub executions: Arc<AsyncEngine>,
    /// The compatibility APIs' anonymous caller, when `compat.anonymous` is on.
    pub anonymous: Option<Arc<crate::domain::Principal>>,
    /// The Redis shared with other replicas, when `[shared]` is configured.
    pub shared: Option<Arc<Shared>>,
    /// Cancelled at shutdown; WebSocket loops and their tasks watch it.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Every task of the process (background loops, workers, transport tasks), joined by
    /// the one shutdown sequence (`startup::Stopping::stop`).
    pub tasks: tokio_util::task::TaskTracker,
}
