//! A job's and a callback's Redis hashes as typed records and back, stream replies, and
//! the keys' escaping: the store's parsing, testable without Redis.

use redis::Value;
use std::collections::HashMap;

use crate::store::record::{caller_from_stored, from_millis};
use crate::store::{Delivery, JobKind, JobRecord, JobRequest, Status};

pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// (entry id, execution id) of each entry in a stream reply (`[[sid, [field, value…]]…]`;
/// an entry deleted meanwhile has no fields).
pub(super) fn entries(v: &Value) -> Vec<(String, Option<String>)> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|e| match e {
            Value::Array(pair) if pair.len() == 2 => {
                let sid = text(&pair[0])?;
                let id = match &pair[1] {
                    Value::Array(kv) => kv.chunks(2).find_map(|c| {
                        (c.len() == 2 && text(&c[0]).as_deref() == Some("id"))
                            .then(|| text(&c[1]))
                            .flatten()
                    }),
                    _ => None,
                };
                Some((sid, id))
            }
            _ => None,
        })
        .collect()
}

pub(super) fn get_i64(h: &HashMap<String, String>, k: &str) -> Option<i64> {
    h.get(k).and_then(|v| v.parse().ok())
}

/// Every field of a job's hash but `sid`, the request first (a claim loads it).
pub(super) const JOB_FIELDS: [&str; 15] = [
    "request",
    "result",
    "idempotency_key",
    "request_hash",
    "id",
    "tenant",
    "caller",
    "kind",
    "status",
    "created_at",
    "started_at",
    "finished_at",
    "error",
    "attempts",
    "callback_url",
];
/// What a lookup loads: all but the request.
pub(super) const LOOKUP_FIELDS: &[&str] = JOB_FIELDS.split_at(1).1;
/// What a list loads: neither the request nor the result.
pub(super) const LIST_FIELDS: &[&str] = JOB_FIELDS.split_at(4).1;

/// The hash's fields (`fields`, with the values HMGET gave) as a record; `None` for a job
/// that is gone (expired with its retention).
pub(super) fn to_job(fields: &[&str], values: Vec<Option<String>>) -> Option<JobRecord> {
    let h: HashMap<String, String> = fields
        .iter()
        .zip(values)
        .filter_map(|(k, v)| Some((k.to_string(), v?)))
        .collect();
    let kind = JobKind::parse(h.get("kind").map(String::as_str).unwrap_or_default());
    Some(JobRecord {
        id: h.get("id")?.clone(),
        tenant: h.get("tenant")?.clone(),
        caller: caller_from_stored(h.get("caller").map(String::as_str).unwrap_or_default()),
        kind,
        request: fields.contains(&"request").then(|| {
            JobRequest::from_stored(
                kind,
                h.get("request").map(String::as_str).unwrap_or_default(),
            )
        }),
        status: Status::parse(h.get("status")?)?,
        created_at: from_millis(get_i64(&h, "created_at").unwrap_or(0)),
        started_at: get_i64(&h, "started_at").map(from_millis),
        finished_at: get_i64(&h, "finished_at").map(from_millis),
        result: h.get("result").cloned(),
        error: h.get("error").cloned(),
        attempts: get_i64(&h, "attempts").unwrap_or(0),
        idempotency_key: h.get("idempotency_key").filter(|s| !s.is_empty()).cloned(),
        request_hash: h.get("request_hash").cloned().unwrap_or_default(),
        callback_url: h.get("callback_url").filter(|s| !s.is_empty()).cloned(),
    })
}

pub(super) fn to_delivery(h: HashMap<String, String>) -> Option<Delivery> {
    Some(Delivery {
        id: h.get("id")?.clone(),
        execution_id: h.get("execution_id")?.clone(),
        tenant: h.get("tenant")?.clone(),
        subject: h.get("subject").cloned().unwrap_or_default(),
        url: h.get("url").cloned().unwrap_or_default(),
        // Written before Judge0 callbacks existed: a POST.
        method: h.get("method").cloned().unwrap_or_else(|| "POST".into()),
        payload: h.get("payload").cloned().unwrap_or_default(),
        status: h.get("status").cloned().unwrap_or_default(),
        attempts: get_i64(&h, "attempts").unwrap_or(0),
        next_attempt_at: get_i64(&h, "next_attempt_at").unwrap_or(0),
        last_error: h.get("last_error").filter(|s| !s.is_empty()).cloned(),
        created_at: get_i64(&h, "created_at").unwrap_or(0),
        delivered_at: get_i64(&h, "delivered_at"),
    })
}

pub(super) fn delivery_fields(d: &Delivery) -> Vec<(&'static str, String)> {
    vec![
        ("id", d.id.clone()),
        ("execution_id", d.execution_id.clone()),
        ("tenant", d.tenant.clone()),
        ("subject", d.subject.clone()),
        ("url", d.url.clone()),
        ("method", d.method.clone()),
        ("payload", d.payload.clone()),
        ("status", d.status.clone()),
        ("attempts", d.attempts.to_string()),
        ("next_attempt_at", d.next_attempt_at.to_string()),
        ("last_error", d.last_error.clone().unwrap_or_default()),
        ("created_at", d.created_at.to_string()),
    ]
}

/// A tenant as it appears in an idempotency key: length-prefixed, so that tenant `a` with
/// key `b:c` and tenant `a:b` with key `c` (a JWT claim may hold a colon) never meet.
/// The finish script builds the same form (`string.len(tenant) .. '.' .. tenant`).
pub(super) fn idem_tenant(tenant: &str) -> String {
    format!("{}.{tenant}", tenant.len())
}

/// Escapes a glob's special characters (a prefix or tenant in a SCAN pattern).
pub(super) fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn values(fields: &[&str], h: &[(&str, &str)]) -> Vec<Option<String>> {
        fields
            .iter()
            .map(|f| h.iter().find(|(k, _)| k == f).map(|(_, v)| v.to_string()))
            .collect()
    }

    /// A job's hash as the insert and claim scripts leave it.
    const HASH: [(&str, &str); 12] = [
        ("id", "j1"),
        ("tenant", "t"),
        (
            "caller",
            r#"{"subject":"key:k","tenant":"t","scopes":["execute"],"quota":{},"jwt":false}"#,
        ),
        ("kind", "batch"),
        (
            "request",
            r#"{"code":"x","items":[{"id":"1"}],"language":"python"}"#,
        ),
        ("status", "running"),
        ("created_at", "1700000000000"),
        ("started_at", "1700000000500"),
        ("attempts", "1"),
        ("idempotency_key", ""),
        ("request_hash", "h"),
        ("callback_url", ""),
    ];

    #[test]
    fn a_hash_reads_as_a_typed_record_with_only_the_fields_asked_for() {
        let claimed = to_job(&JOB_FIELDS, values(&JOB_FIELDS, &HASH)).unwrap();
        assert_eq!(
            (claimed.id.as_str(), claimed.kind, claimed.status),
            ("j1", JobKind::Batch, Status::Running)
        );
        assert!(matches!(claimed.request, Some(Ok(JobRequest::Batch(_)))));
        assert_eq!(claimed.caller.unwrap().subject, "key:k");
        assert_eq!(claimed.created_at, from_millis(1_700_000_000_000));
        assert_eq!(claimed.started_at, Some(from_millis(1_700_000_000_500)));
        assert_eq!(claimed.finished_at, None);
        // Empty strings are how the hash says "none".
        assert_eq!(
            (claimed.idempotency_key, claimed.callback_url),
            (None, None)
        );

        let looked_up = to_job(LOOKUP_FIELDS, values(LOOKUP_FIELDS, &HASH)).unwrap();
        assert!(
            looked_up.request.is_none(),
            "a lookup leaves the request out"
        );
        assert_eq!(LIST_FIELDS.len(), 11);
        assert!(!LIST_FIELDS.contains(&"result") && !LIST_FIELDS.contains(&"request"));

        // Expired (every field missing), or a hash without a known status.
        assert!(to_job(LIST_FIELDS, vec![None; LIST_FIELDS.len()]).is_none());
        let mut odd = HASH;
        odd[5] = ("status", "weird");
        assert!(to_job(&JOB_FIELDS, values(&JOB_FIELDS, &odd)).is_none());
    }

    #[test]
    fn a_request_this_version_cannot_read_fails_its_job_not_the_claim() {
        let mut broken = HASH;
        broken[4] = ("request", "{not json");
        let job = to_job(&JOB_FIELDS, values(&JOB_FIELDS, &broken)).unwrap();
        let why = job.request.unwrap().unwrap_err();
        assert!(why.0.starts_with("stored request unreadable"), "{why}");
    }

    #[test]
    fn a_delivery_reads_back_as_it_was_written() {
        let d = Delivery {
            id: "d1".into(),
            execution_id: "j1".into(),
            tenant: "t".into(),
            subject: "key:k".into(),
            url: "https://example.com/hook".into(),
            method: "PUT".into(),
            payload: "{}".into(),
            status: "pending".into(),
            attempts: 2,
            next_attempt_at: 10,
            last_error: None,
            created_at: 5,
            delivered_at: None,
        };
        let h: HashMap<String, String> = delivery_fields(&d)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let back = to_delivery(h).unwrap();
        assert_eq!(
            (
                back.id,
                back.attempts,
                back.next_attempt_at,
                back.last_error
            ),
            (d.id, 2, 10, None)
        );
    }

    #[test]
    fn stream_replies_give_entry_and_execution_ids() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk("1700000000000-0"),
                Value::Array(vec![bulk("id"), bulk("j1")]),
            ]),
            // Deleted while pending: no fields.
            Value::Array(vec![bulk("1700000000001-0"), Value::Nil]),
            Value::Int(3),
        ]);
        assert_eq!(
            entries(&reply),
            vec![
                ("1700000000000-0".to_string(), Some("j1".to_string())),
                ("1700000000001-0".to_string(), None),
            ]
        );
        assert!(entries(&Value::Nil).is_empty());
        assert_eq!(text(&Value::Int(7)).as_deref(), Some("7"));
    }

    #[test]
    fn keys_do_not_let_tenants_or_patterns_meet() {
        assert_eq!(idem_tenant("a:b"), "3.a:b");
        assert_ne!(
            format!("{}:{}", idem_tenant("a"), "b:c"),
            format!("{}:{}", idem_tenant("a:b"), "c")
        );
        assert_eq!(glob_escape("cb*[x]?\\"), "cb\\*\\[x\\]\\?\\\\");
    }
}
