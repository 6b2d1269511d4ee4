//! Submission: the request is checked as the synchronous routes would check it, the
//! callback URL against internal addresses, the queue's depth, then the job is stored.
//! An `Idempotency-Key` names one execution per tenant: the same key with the same body
//! (by its hash) answers with that execution, with another body it is refused.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{AsyncEngine, ExecutionsError};
use crate::domain::Principal;
use crate::requests::RequestError;
use crate::store::{JobKind, JobRecord, JobRequest, Status, StoreError};

impl AsyncEngine {
    /// Validates and queues `body` (an execute or a batch body). The same
    /// `idempotency_key` with the same body returns the first execution (and `false`).
    pub async fn submit(
        &self,
        caller: &Principal,
        body: Value,
        idempotency_key: Option<String>,
    ) -> Result<(JobRecord, bool), ExecutionsError> {
        let callback_url = self.callback_url(caller, &body).await?;
        let kind = JobKind::of_body(&body);
        let request = JobRequest::from_value(kind, body.clone())
            .map_err(|e| RequestError::Invalid(format!("invalid request: {e}")))?;
        self.runner.check(caller, request.clone())?;
        // Stored as submitted: the hash is over these bytes, and they are what every
        // version of the store reads back.
        let stored = body.to_string();
        let hash = hex_sha256(stored.as_bytes());
        if let Some(key) = &idempotency_key {
            if let Some(existing) = self.store.by_idempotency_key(&caller.tenant, key).await? {
                return same_request(existing, &hash);
            }
        }
        let depth = self.store.queued(&caller.tenant).await?;
        if depth.tenant >= self.settings.max_queued_per_tenant {
            return Err(ExecutionsError::TenantQueueFull(depth.tenant));
        }
        if depth.total >= self.settings.max_queued {
            return Err(ExecutionsError::QueueFull(depth.total));
        }
        let job = JobRecord {
            id: uuid::Uuid::new_v4().to_string(),
            tenant: caller.tenant.clone(),
            caller: Ok(caller.clone()),
            kind,
            request: Some(Ok(request)),
            status: Status::Queued,
            created_at: crate::store::now(),
            started_at: None,
            finished_at: None,
            result: None,
            error: None,
            attempts: 0,
            idempotency_key,
            request_hash: hash,
            callback_url,
        };
        match self.store.insert(&job, stored).await {
            Ok(()) => {}
            // Two submissions with one key at once: the other one won; answer with it.
            Err(StoreError::Duplicate) => {
                let key = job.idempotency_key.as_deref().unwrap_or_default();
                return match self.store.by_idempotency_key(&job.tenant, key).await? {
                    Some(existing) => same_request(existing, &job.request_hash),
                    None => Err(ExecutionsError::IdempotencyMismatch),
                };
            }
            Err(e) => return Err(e.into()),
        }
        self.wake.notify_one();
        Ok((job, true))
    }

    /// The body's `callbackUrl`, checked: not internal, and the caller can have its
    /// callbacks signed.
    async fn callback_url(
        &self,
        caller: &Principal,
        body: &Value,
    ) -> Result<Option<String>, ExecutionsError> {
        match body.get("callbackUrl") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(url)) => {
                crate::webhooks::check_url(url, self.webhooks.allow_private).await?;
                if self.auth.webhook_secret(&caller.subject).is_none() {
                    return Err(RequestError::Invalid(
                        "callbackUrl: this credential has no webhook signing secret (keys made by `codebeaker keys create` have one; tokens need auth.jwt.webhook_secret)".into(),
                    )
                    .into());
                }
                Ok(Some(url.clone()))
            }
            Some(_) => Err(RequestError::Invalid("callbackUrl must be a string".into()).into()),
        }
    }
}

/// The execution an idempotency key already names: this request's, if its body hashes
/// the same.
fn same_request(existing: JobRecord, hash: &str) -> Result<(JobRecord, bool), ExecutionsError> {
    if existing.request_hash == hash {
        Ok((existing, false))
    } else {
        Err(ExecutionsError::IdempotencyMismatch)
    }
}

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
