//! What every handler can reach.

use codebeaker_pool::Pools;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

use crate::auth::jwt::JwtVerifier;
use crate::auth::keys::KeyStore;
use crate::config::Settings;
use crate::limits::{Admission, Concurrency, RateLimits};
use crate::sessions::Sessions;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pools: Arc<Pools>,
    pub keys: Arc<KeyStore>,
    pub jwt: Arc<JwtVerifier>,
    pub rate: Arc<RateLimits>,
    pub concurrency: Arc<Concurrency>,
    pub admission: Arc<Admission>,
    pub metrics: PrometheusHandle,
    pub sessions: Arc<Sessions>,
}
