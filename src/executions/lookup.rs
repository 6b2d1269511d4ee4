//! Reading executions back: one, a tenant's list, their callbacks, the queue's depth.

use std::time::Duration;

use super::{AsyncEngine, ExecutionsError};
use crate::domain::Principal;
use crate::store::{Delivery, JobRecord, Status};

impl AsyncEngine {
    /// The caller's tenant's execution.
    pub async fn get(&self, caller: &Principal, id: &str) -> Result<JobRecord, ExecutionsError> {
        self.store
            .get(&caller.tenant, id)
            .await?
            .ok_or(ExecutionsError::NotFound)
    }

    /// The caller's tenant's execution with its request (a Judge0 submission shows what it
    /// was submitted with).
    pub async fn get_with_request(
        &self,
        caller: &Principal,
        id: &str,
    ) -> Result<JobRecord, ExecutionsError> {
        self.store
            .get_with_request(&caller.tenant, id)
            .await?
            .ok_or(ExecutionsError::NotFound)
    }

    /// The caller's tenant's executions, newest first.
    pub async fn list(
        &self,
        caller: &Principal,
        status: Option<Status>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, ExecutionsError> {
        Ok(self.store.list(&caller.tenant, status, limit).await?)
    }

    /// The callbacks of the caller's execution `id`, or (with `None`) its dead letters.
    pub async fn deliveries(
        &self,
        caller: &Principal,
        id: Option<&str>,
    ) -> Result<Vec<Delivery>, ExecutionsError> {
        Ok(self.store.deliveries(&caller.tenant, id, 100).await?)
    }

    /// Queue depth and the age of the oldest queued execution (for metrics).
    pub async fn queue_depth(&self) -> (usize, Option<Duration>) {
        match self.store.queued("").await {
            Ok(depth) => (
                depth.total,
                depth
                    .oldest
                    .map(|t| (crate::store::now() - t).to_std().unwrap_or(Duration::ZERO)),
            ),
            Err(_) => (0, None),
        }
    }
}
