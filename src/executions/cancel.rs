//! Cancelling: a queued execution never runs; a running one is recorded cancelled first,
//! then its worker is stopped (its result, if any, is discarded: `finish` keeps the first
//! final status). A finished one is left as it is.

use super::{AsyncEngine, ExecutionsError};
use crate::domain::Principal;
use crate::store::{JobRecord, Status};

impl AsyncEngine {
    /// Cancels the caller's tenant's execution `id`; answers with it as it is after.
    pub async fn cancel(&self, caller: &Principal, id: &str) -> Result<JobRecord, ExecutionsError> {
        // With its request: a Judge0 submission's callback is built from it.
        let job = self.get_with_request(caller, id).await?;
        if !job.status.is_final() {
            let end = self.end(
                &job,
                Status::Cancelled,
                None,
                Some("cancelled by the caller".into()),
            );
            self.store.finish(&job.id, &end).await?;
            if let Some(token) = self.running().get(&job.id) {
                token.cancel();
            }
            crate::metrics::execution_finished(Status::Cancelled.as_str());
        }
        self.get(caller, id).await
    }
}
