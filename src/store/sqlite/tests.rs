//! The SQLite store: queue order, fairness, give-backs, callbacks, recovery across a
//! reopen, and a database written by an earlier version.

use super::*;

/// A caller as the engine stores it.
const CALLER: &str =
    r#"{"subject":"key:k","tenant":"t","scopes":["execute"],"quota":{},"jwt":false}"#;
/// A request body as submitted.
const BODY: &str = r#"{"code":"x","language":"python"}"#;

fn job(id: &str, tenant: &str, created: i64) -> JobRecord {
    JobRecord {
        id: id.into(),
        tenant: tenant.into(),
        caller: caller_from_stored(CALLER),
        kind: JobKind::Execute,
        request: None,
        status: Status::Queued,
        created_at: from_millis(created),
        started_at: None,
        finished_at: None,
        result: None,
        error: None,
        attempts: 0,
        idempotency_key: None,
        request_hash: "h".into(),
        callback_url: None,
    }
}

fn end(status: Status, result: Option<&str>, at: i64) -> JobEnd {
    JobEnd {
        status,
        result: result.map(|r| Arc::new(r.to_string())),
        error: None,
        at: from_millis(at),
        callback: None,
    }
}

#[tokio::test]
async fn queue_order_claims_finishing_and_recovery_survive_a_reopen() {
    let dir = std::env::temp_dir().join(format!("cb-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("e.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.insert(&job("b", "t", 2), BODY.into()).await.unwrap();
        s.insert(&job("a", "t", 1), BODY.into()).await.unwrap();
        s.insert(&job("c", "u", 3), BODY.into()).await.unwrap();
        assert_eq!(
            s.queued("t").await.unwrap(),
            QueueDepth {
                tenant: 2,
                total: 3,
                oldest: Some(from_millis(1))
            }
        );
        let first = s.claim_next(from_millis(10), 10).await.unwrap().unwrap();
        assert_eq!(
            (first.id.as_str(), first.status, first.attempts),
            ("a", Status::Running, 1)
        );
        assert!(
            matches!(first.request, Some(Ok(JobRequest::Execute(_)))),
            "a claim carries the typed request"
        );
        assert_eq!(first.caller.as_ref().unwrap().subject, "key:k");
        assert!(
            s.get("u", "a").await.unwrap().is_none(),
            "another tenant's job is not found"
        );
        assert!(s
            .finish("a", &end(Status::Completed, Some("{\"x\":1}"), 11))
            .await
            .unwrap());
        assert!(
            !s.finish("a", &end(Status::Cancelled, None, 12))
                .await
                .unwrap(),
            "final stays final"
        );
        // Tenants take turns: u's job before t's second.
        let c = s.claim_next(from_millis(13), 10).await.unwrap().unwrap();
        assert_eq!(c.id, "c");
        assert!(s
            .finish("c", &end(Status::Completed, Some("{}"), 30))
            .await
            .unwrap());
        // Running when the process dies.
        let b = s.claim_next(from_millis(14), 10).await.unwrap().unwrap();
        assert_eq!(b.id, "b");
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(
        s.recover(from_millis(20)).await.unwrap(),
        Recovered {
            requeued: 1,
            failed: 0
        },
        "b goes back to the queue once"
    );
    let b = s.claim_next(from_millis(21), 10).await.unwrap().unwrap();
    assert_eq!((b.id.as_str(), b.attempts), ("b", 2));
    assert_eq!(
        s.recover(from_millis(22)).await.unwrap(),
        Recovered {
            requeued: 0,
            failed: 1
        },
        "a second interruption fails it"
    );
    assert_eq!(
        s.get("t", "b").await.unwrap().unwrap().status,
        Status::Failed
    );
    let a = s.get("t", "a").await.unwrap().unwrap();
    assert_eq!(a.result.as_deref(), Some("{\"x\":1}"));
    assert!(a.request.is_none(), "a lookup leaves the request out");
    assert_eq!(
        s.purge(from_millis(21)).await.unwrap(),
        1,
        "a finished at 11"
    );
    std::fs::write(
        dir.join("bad.db"),
        b"this is not a database, it only looks like one....",
    )
    .unwrap();
    assert!(SqliteStore::open(&dir.join("bad.db")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn store(name: &str) -> (SqliteStore, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("cb-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (SqliteStore::open(&dir.join("e.db")).unwrap(), dir)
}

#[tokio::test]
async fn tenants_take_turns_and_none_holds_more_than_its_running_cap() {
    let (s, dir) = store("fair");
    for (id, tenant, at) in [
        ("a1", "a", 1),
        ("a2", "a", 2),
        ("a3", "a", 3),
        ("b1", "b", 4),
    ] {
        s.insert(&job(id, tenant, at), BODY.into()).await.unwrap();
    }
    let claim = |now| {
        let s = &s;
        async move {
            s.claim_next(from_millis(now), 2)
                .await
                .unwrap()
                .map(|j| j.id)
        }
    };
    assert_eq!(claim(10).await.as_deref(), Some("a1"));
    assert_eq!(
        claim(11).await.as_deref(),
        Some("b1"),
        "b's turn, though a's are older"
    );
    assert_eq!(claim(12).await.as_deref(), Some("a2"));
    assert_eq!(claim(13).await, None, "a has 2 running: its third waits");
    assert!(s
        .finish("a1", &end(Status::Completed, Some("1"), 14))
        .await
        .unwrap());
    assert_eq!(claim(15).await.as_deref(), Some("a3"));
    // Given back: queued again, first of its tenant, its attempt not counted.
    s.release("a3").await.unwrap();
    let a3 = s.get("a", "a3").await.unwrap().unwrap();
    assert_eq!(
        (a3.status, a3.attempts, a3.started_at),
        (Status::Queued, 0, None)
    );
    assert_eq!(
        claim(16).await.as_deref(),
        Some("a3"),
        "still its tenant's next"
    );
    assert_eq!(s.get("a", "a3").await.unwrap().unwrap().attempts, 1);
    // A list carries neither the request nor the result.
    let listed = s.list("a", Some(Status::Completed), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].result.as_deref(), None);
    assert!(listed[0].request.is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_callback_carries_the_stored_result_and_settled_ones_are_purged() {
    let (s, dir) = store("deliveries");
    s.insert(&job("x", "t", 1), BODY.into()).await.unwrap();
    s.claim_next(from_millis(2), 10).await.unwrap().unwrap();
    let d = Delivery {
        id: "d1".into(),
        execution_id: "x".into(),
        tenant: "t".into(),
        subject: "k".into(),
        url: "http://127.0.0.1:9/".into(),
        method: "PUT".into(),
        payload: r#"{"executionId":"x","result":null,"error":null}"#.into(),
        status: "pending".into(),
        attempts: 0,
        next_attempt_at: 3,
        last_error: None,
        created_at: 3,
        delivered_at: None,
    };
    let result = r#"{"output":{"result":null}}"#;
    let with_callback = JobEnd {
        callback: Some(d),
        ..end(Status::Completed, Some(result), 3)
    };
    assert!(s.finish("x", &with_callback).await.unwrap());
    let due = s.due_deliveries(5, 10).await.unwrap();
    assert_eq!(
        due[0].method, "PUT",
        "the method reads back (Judge0's callbacks)"
    );
    assert_eq!(
        due[0].payload,
        format!(r#"{{"executionId":"x","result":{result},"error":null}}"#)
    );
    assert_eq!(
        s.purge(from_millis(100)).await.unwrap(),
        0,
        "a pending callback keeps both"
    );
    s.delivery_failed("d1", None, "gone").await.unwrap();
    assert_eq!(s.deliveries("t", None, 10).await.unwrap().len(), 1);
    assert_eq!(
        s.purge(from_millis(100)).await.unwrap(),
        2,
        "the dead letter and its execution"
    );
    assert!(s.deliveries("t", None, 10).await.unwrap().is_empty());
    assert_eq!(
        with_result(r#"{"result":null}"#.into(), None),
        r#"{"result":null}"#
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A database an earlier version wrote (before callbacks existed, so without the
/// `callback_url` column) opens, and its rows read as typed records.
#[tokio::test]
async fn a_database_from_an_earlier_version_loads_typed() {
    let dir = std::env::temp_dir().join(format!("cb-store-old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("e.db");
    {
        let conn = Connection::open(&path).unwrap();
        let old_schema = SCHEMA
            .split(";")
            .filter(|s| !s.contains("deliveries"))
            .collect::<Vec<_>>()
            .join(";");
        conn.execute_batch(&old_schema).unwrap();
        conn.execute(
            "INSERT INTO executions (id, tenant, caller, kind, request, status, created_at, attempts, request_hash)
             VALUES ('old', 't', ?1, 'batch', ?2, 'queued', 1700000000000, 0, 'h')",
            params![
                r#"{"subject":"jwt:alice","tenant":"t","scopes":["execute"],"quota":{"max_concurrent":2},"jwt":true}"#,
                r#"{"code":"x","items":[{"id":"1"}],"language":"python"}"#
            ],
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let j = s.claim_next(from_millis(1), 10).await.unwrap().unwrap();
    assert_eq!(j.kind, JobKind::Batch);
    assert_eq!(j.created_at, from_millis(1_700_000_000_000));
    assert!(matches!(j.request, Some(Ok(JobRequest::Batch(ref b))) if b.items.len() == 1));
    let caller = j.caller.unwrap();
    assert_eq!(
        (caller.subject.as_str(), caller.via),
        ("jwt:alice", crate::domain::Via::Jwt)
    );
    assert_eq!(j.callback_url, None);
    std::fs::remove_dir_all(&dir).unwrap();
}
