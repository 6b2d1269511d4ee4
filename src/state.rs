//! What every handler can reach.

use codebeaker_pool::Pools;
use std::sync::Arc;

use crate::config::Settings;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pools: Arc<Pools>,
}
