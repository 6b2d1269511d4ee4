//! What the store keeps: an execution's record ([`JobRecord`]) with its typed parts, and a
//! webhook callback ([`Delivery`]).
//!
//! The stored form stays text (the caller as JSON, the request as the body submitted,
//! times as Unix milliseconds), so a database or a Redis written by an earlier version
//! loads as it is; the typed form is built when a record is loaded. A part this version
//! cannot read (damaged, or written by another version) is kept as [`Unreadable`]: the
//! worker that takes the job fails it with why, instead of every lookup failing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::BatchRequest;
use crate::domain::{Principal, Quota, Scope, Via};
use crate::requests::ExecuteRequest;

/// Where an execution is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    /// The status's name, as stored and as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "completed" => Status::Completed,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
    }

    /// Whether the execution is over.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
}

/// What an execution runs: one invocation or a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Execute,
    Batch,
    /// A Judge0 submission: an execute (or, for several runs, a batch) with Judge0's own
    /// fields kept beside it (`"judge0"` in the stored body).
    Judge0,
}

impl JobKind {
    /// The kind's name, as stored and as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Execute => "execute",
            JobKind::Batch => "batch",
            JobKind::Judge0 => "judge0",
        }
    }

    /// The kind stored as `s` (anything but `batch` was always run as one invocation).
    pub fn parse(s: &str) -> JobKind {
        match s {
            "batch" => JobKind::Batch,
            "judge0" => JobKind::Judge0,
            _ => JobKind::Execute,
        }
    }

    /// The kind of a submitted body: a Judge0 submission has `judge0`, a batch `items`.
    pub fn of_body(body: &Value) -> JobKind {
        if body.get("judge0").is_some() {
            JobKind::Judge0
        } else if body.get("items").is_some() {
            JobKind::Batch
        } else {
            JobKind::Execute
        }
    }
}

/// An execution's request, typed.
#[derive(Debug, Clone)]
pub enum JobRequest {
    Execute(ExecuteRequest),
    Batch(BatchRequest),
    /// What runs (an execute or a batch), and the submission's Judge0 fields.
    Judge0(Box<JobRequest>, Value),
}

impl JobRequest {
    /// A submitted body as a request of `kind`.
    pub fn from_value(kind: JobKind, mut body: Value) -> Result<JobRequest, serde_json::Error> {
        Ok(match kind {
            JobKind::Execute => JobRequest::Execute(serde_json::from_value(body)?),
            JobKind::Batch => JobRequest::Batch(serde_json::from_value(body)?),
            JobKind::Judge0 => {
                let meta = body
                    .as_object_mut()
                    .and_then(|m| m.remove("judge0"))
                    .unwrap_or_default();
                let inner = JobRequest::from_value(JobKind::of_body(&body), body)?;
                JobRequest::Judge0(Box::new(inner), meta)
            }
        })
    }

    /// A stored body (the text [`JobRequest::from_value`]'s body was stored as).
    pub fn from_stored(kind: JobKind, body: &str) -> Result<JobRequest, Unreadable> {
        let typed = match kind {
            JobKind::Execute => serde_json::from_str(body).map(JobRequest::Execute),
            JobKind::Batch => serde_json::from_str(body).map(JobRequest::Batch),
            JobKind::Judge0 => serde_json::from_str::<Value>(body)
                .and_then(|v| JobRequest::from_value(JobKind::Judge0, v)),
        };
        typed.map_err(|e| Unreadable(format!("stored request unreadable: {e}")))
    }
}

/// A stored part of a record that this version cannot read: why, as the failed
/// execution shows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// One async execution as stored.
#[derive(Debug)]
pub struct JobRecord {
    pub id: String,
    pub tenant: String,
    /// The submitting caller: the job runs with the caller's own quota.
    pub caller: Result<Principal, Unreadable>,
    pub kind: JobKind,
    /// The request. Loaded only where it is needed: by a claim (which runs it) and when
    /// submitted; `None` from lookups and lists, which show no request (and it can be
    /// tens of MB).
    pub request: Option<Result<JobRequest, Unreadable>>,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The result (serialized) when completed.
    pub result: Option<String>,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    /// How many times a worker started it (a restart re-queues a running job once).
    pub attempts: i64,
    pub idempotency_key: Option<String>,
    /// Hash of the request, to tell a repeated `Idempotency-Key` from a reused one.
    pub request_hash: String,
    /// Where the final result is POSTed, if anywhere.
    pub callback_url: Option<String>,
}

/// The caller as stored with its job (JSON): the shape every version reads and writes.
#[derive(Debug, Serialize, Deserialize)]
struct StoredCaller {
    subject: String,
    tenant: String,
    scopes: Vec<Scope>,
    quota: Quota,
    jwt: bool,
}

/// `caller` as it is stored.
pub fn caller_to_stored(p: &Principal) -> String {
    let stored = StoredCaller {
        subject: p.subject.clone(),
        tenant: p.tenant.clone(),
        scopes: p.scopes.clone(),
        quota: p.quota.clone(),
        jwt: p.via == Via::Jwt,
    };
    serde_json::to_string(&stored).unwrap_or_default()
}

/// A stored caller.
pub fn caller_from_stored(s: &str) -> Result<Principal, Unreadable> {
    let c: StoredCaller = serde_json::from_str(s)
        .map_err(|e| Unreadable(format!("stored caller unreadable: {e}")))?;
    Ok(Principal {
        subject: c.subject,
        tenant: c.tenant,
        scopes: c.scopes,
        quota: c.quota,
        via: if c.jwt { Via::Jwt } else { Via::ApiKey },
    })
}

/// A time as stored: Unix milliseconds.
pub fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A stored time.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Now, to the millisecond (what the store keeps, so a record reads back as it was).
pub fn now() -> DateTime<Utc> {
    from_millis(Utc::now().timestamp_millis())
}

/// One webhook callback: the final result of an execution, to be POSTed until it is
/// accepted or has used its attempts (then it is a dead letter).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    pub execution_id: String,
    #[serde(skip)]
    pub tenant: String,
    /// Whose secret signs it.
    #[serde(skip)]
    pub subject: String,
    pub url: String,
    /// `POST` (CodeBeaker's callbacks) or `PUT` (Judge0's).
    pub method: String,
    #[serde(skip)]
    pub payload: String,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// A callback's payload is stored without the execution's result, which would be a
/// second copy of up to `limits.max_batch_result_bytes` (the payload is the execution as
/// `GET /v1/executions/{id}` shows it, serialized by the engine with `"result":null`,
/// whose first such member is the result's: the members before it are ids, names and
/// times). The stored result takes its place when the callback is taken to be sent.
pub fn with_result(payload: String, result: Option<String>) -> String {
    const EMPTY: &str = "\"result\":null";
    let (Some(result), Some(at)) = (result, payload.find(EMPTY)) else {
        return payload;
    };
    let mut out = String::with_capacity(payload.len() + result.len());
    out.push_str(&payload[..at]);
    out.push_str("\"result\":");
    out.push_str(&result);
    out.push_str(&payload[at + EMPTY.len()..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_reads_back_as_it_was_stored_and_a_damaged_one_says_so() {
        let p = Principal {
            subject: "jwt:alice".into(),
            tenant: "acme".into(),
            scopes: vec![Scope::Execute],
            quota: Quota::default(),
            via: Via::Jwt,
        };
        let back = caller_from_stored(&caller_to_stored(&p)).unwrap();
        assert_eq!(
            (back.subject, back.tenant, back.scopes, back.quota, back.via),
            (p.subject, p.tenant, p.scopes, p.quota, p.via)
        );
        // As an earlier version wrote it.
        let old =
            r#"{"subject":"key:k1","tenant":"t","scopes":["execute"],"quota":{},"jwt":false}"#;
        assert_eq!(caller_from_stored(old).unwrap().via, Via::ApiKey);
        assert!(caller_from_stored("{")
            .unwrap_err()
            .0
            .starts_with("stored caller unreadable"));
    }

    #[test]
    fn kinds_and_requests_read_as_submitted() {
        let batch = serde_json::json!({"language": "python", "code": "x", "items": []});
        assert_eq!(JobKind::of_body(&batch), JobKind::Batch);
        assert!(matches!(
            JobRequest::from_stored(JobKind::Batch, &batch.to_string()),
            Ok(JobRequest::Batch(_))
        ));
        let one = serde_json::json!({"language": "python", "code": "x"});
        assert_eq!(JobKind::of_body(&one), JobKind::Execute);
        assert!(matches!(
            JobRequest::from_value(JobKind::Execute, one),
            Ok(JobRequest::Execute(_))
        ));
        assert_eq!(JobKind::parse("batch").as_str(), "batch");
        assert_eq!(JobKind::parse("execute"), JobKind::Execute);
        assert!(JobRequest::from_stored(JobKind::Execute, "[]").is_err());
        let t = now();
        assert_eq!(from_millis(to_millis(t)), t);
    }
}
