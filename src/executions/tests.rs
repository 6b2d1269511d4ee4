//! The engine against a real store (SQLite in a temporary file) and a stand-in runner, on
//! paused time: the worker loop, fairness, giving back, cancelling, recording failures,
//! losing a claim, purging, and submission's limits and idempotency.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::run::{RunError, Runner};
use super::{AsyncEngine, ExecutionsError};
use crate::auth::Authenticator;
use crate::config::{AuthSettings, ExecutionSettings, WebhookSettings};
use crate::domain::{Principal, Quota, Scope, Via};
use crate::requests::RequestError;
use crate::store::{
    Delivery, JobEnd, JobRecord, JobRequest, JobStore, QueueDepth, Recovered, SqliteStore, Status,
    StoreError,
};

/// One run the stand-in runner saw: which job, when it started and (if it did) ended.
#[derive(Debug, Clone)]
struct Ran {
    id: String,
    started: Instant,
    ended: Option<Instant>,
}

/// Runs every job for `took` (paused time), after answering `busy` times that it has no
/// room; keeps what it saw.
#[derive(Default)]
struct FakeRunner {
    took: Duration,
    busy: AtomicUsize,
    runs: Mutex<Vec<Ran>>,
    /// Jobs of each tenant running now, and the most at once.
    running: Mutex<HashMap<String, (usize, usize)>>,
    /// Runs stopped before they ended (cancelled, or lost to another replica).
    stopped: AtomicUsize,
}

/// Counts a run in and out, and whether it was stopped midway.
struct Running<'a> {
    runner: &'a FakeRunner,
    tenant: String,
    index: usize,
    done: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.runner.running.lock().unwrap().get_mut(&self.tenant) {
            n.0 -= 1;
        }
        if self.done {
            self.runner.runs.lock().unwrap()[self.index].ended = Some(Instant::now());
        } else {
            self.runner.stopped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl FakeRunner {
    fn taking(took: Duration) -> Arc<FakeRunner> {
        Arc::new(FakeRunner {
            took,
            ..FakeRunner::default()
        })
    }

    fn runs(&self) -> Vec<Ran> {
        self.runs.lock().unwrap().clone()
    }

    fn ran(&self, id: &str) -> Ran {
        self.runs()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("{id} did not run"))
    }

    fn peak(&self, tenant: &str) -> usize {
        self.running.lock().unwrap().get(tenant).map_or(0, |n| n.1)
    }
}

#[async_trait]
impl Runner for FakeRunner {
    fn check(&self, _caller: &Principal, _request: JobRequest) -> Result<(), RequestError> {
        Ok(())
    }

    async fn run(
        &self,
        id: &str,
        caller: &Principal,
        _request: JobRequest,
    ) -> Result<String, RunError> {
        if self
            .busy
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(RunError::Busy);
        }
        let index = {
            let mut runs = self.runs.lock().unwrap();
            runs.push(Ran {
                id: id.to_string(),
                started: Instant::now(),
                ended: None,
            });
            runs.len() - 1
        };
        {
            let mut running = self.running.lock().unwrap();
            let n = running.entry(caller.tenant.clone()).or_default();
            n.0 += 1;
            n.1 = n.1.max(n.0);
        }
        let mut guard = Running {
            runner: self,
            tenant: caller.tenant.clone(),
            index,
            done: false,
        };
        tokio::time::sleep(self.took).await;
        guard.done = true;
        Ok(format!(r#"{{"ran":"{id}"}}"#))
    }
}

/// A SQLite store whose `finish` of a result can be made to fail, and whose `renew`
/// reports the jobs in `lost` as taken over by another replica.
struct Flaky {
    inner: SqliteStore,
    fail_results: AtomicBool,
    lost: Mutex<Vec<String>>,
}

#[async_trait]
impl JobStore for Flaky {
    async fn insert(&self, job: &JobRecord, request: String) -> Result<(), StoreError> {
        self.inner.insert(job, request).await
    }
    async fn by_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        self.inner.by_idempotency_key(tenant, key).await
    }
    async fn get(&self, tenant: &str, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.inner.get(tenant, id).await
    }
    async fn get_with_request(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        self.inner.get_with_request(tenant, id).await
    }
    async fn list(
        &self,
        tenant: &str,
        status: Option<Status>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        self.inner.list(tenant, status, limit).await
    }
    async fn claim_next(
        &self,
        now: DateTime<Utc>,
        max_running: usize,
    ) -> Result<Option<JobRecord>, StoreError> {
        self.inner.claim_next(now, max_running).await
    }
    async fn release(&self, id: &str) -> Result<(), StoreError> {
        self.inner.release(id).await
    }
    async fn finish(&self, id: &str, end: &JobEnd) -> Result<bool, StoreError> {
        if end.result.is_some() && self.fail_results.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt {
                path: "test".into(),
                detail: "the write is refused".into(),
            });
        }
        self.inner.finish(id, end).await
    }
    async fn due_deliveries(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.inner.due_deliveries(now, limit).await
    }
    async fn delivered(&self, id: &str, now: i64) -> Result<(), StoreError> {
        self.inner.delivered(id, now).await
    }
    async fn delivery_failed(
        &self,
        id: &str,
        next: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.inner.delivery_failed(id, next, error).await
    }
    async fn postpone_deliveries(&self, ids: &[String], at: i64) -> Result<(), StoreError> {
        self.inner.postpone_deliveries(ids, at).await
    }
    async fn deliveries(
        &self,
        tenant: &str,
        execution_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner.deliveries(tenant, execution_id, limit).await
    }
    async fn queued(&self, tenant: &str) -> Result<QueueDepth, StoreError> {
        self.inner.queued(tenant).await
    }
    async fn recover(&self, now: DateTime<Utc>) -> Result<Recovered, StoreError> {
        self.inner.recover(now).await
    }
    async fn purge(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        self.inner.purge(before).await
    }
    async fn renew(&self) -> Result<Vec<String>, StoreError> {
        Ok(std::mem::take(&mut *self.lost.lock().unwrap()))
    }
}

/// A fresh database under the temporary directory (removed when the test ends).
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> TempDb {
        let dir = std::env::temp_dir().join(format!("cb-engine-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDb(dir)
    }

    fn flaky(&self) -> Arc<Flaky> {
        Arc::new(Flaky {
            inner: SqliteStore::open(&self.0.join("e.db")).unwrap(),
            fail_results: AtomicBool::new(false),
            lost: Mutex::new(Vec::new()),
        })
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn settings(workers: usize, max_running_per_tenant: usize) -> ExecutionSettings {
    ExecutionSettings {
        workers,
        max_running_per_tenant,
        ..ExecutionSettings::default()
    }
}

fn engine(
    store: Arc<dyn JobStore>,
    runner: Arc<FakeRunner>,
    settings: ExecutionSettings,
) -> Arc<AsyncEngine> {
    AsyncEngine::with_runner(
        store,
        runner,
        Arc::new(Authenticator::new(&AuthSettings::default()).unwrap()),
        settings,
        WebhookSettings::default(),
    )
}

fn caller(tenant: &str) -> Principal {
    Principal {
        subject: format!("key:{tenant}"),
        tenant: tenant.into(),
        scopes: vec![Scope::Execute],
        quota: Quota::default(),
        via: Via::ApiKey,
    }
}

fn body(code: &str) -> serde_json::Value {
    json!({"language": "python", "code": code})
}

/// Starts `n` workers; they stop when the returned token is cancelled.
fn start_workers(engine: &Arc<AsyncEngine>, n: usize) -> CancellationToken {
    let stop = CancellationToken::new();
    for _ in 0..n {
        tokio::spawn(engine.clone().worker(stop.clone()));
    }
    stop
}

/// The job once it has `status` (polled on paused time; at most ten virtual minutes).
async fn until(engine: &AsyncEngine, tenant: &str, id: &str, status: Status) -> JobRecord {
    let give_up = Instant::now() + Duration::from_secs(600);
    loop {
        let job = engine.get(&caller(tenant), id).await.unwrap();
        if job.status == status {
            return job;
        }
        assert!(
            Instant::now() < give_up,
            "{id} is {:?}, not {status:?}",
            job.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn submit(engine: &AsyncEngine, tenant: &str, code: &str) -> String {
    engine
        .submit(&caller(tenant), body(code), None)
        .await
        .unwrap()
        .0
        .id
}

#[tokio::test(start_paused = true)]
async fn a_worker_runs_a_job_and_records_its_result() {
    let db = TempDb::new("run");
    let runner = FakeRunner::taking(Duration::from_secs(3));
    let engine = engine(db.flaky(), runner.clone(), settings(1, 0));
    let id = submit(&engine, "t", "a").await;
    let stop = start_workers(&engine, 1);
    let done = until(&engine, "t", &id, Status::Completed).await;
    assert_eq!(
        done.result.as_deref(),
        Some(format!(r#"{{"ran":"{id}"}}"#).as_str())
    );
    assert_eq!(done.attempts, 1);
    assert!(done.started_at.is_some() && done.finished_at.is_some());
    let ran = runner.ran(&id);
    assert_eq!(ran.ended.unwrap() - ran.started, Duration::from_secs(3));
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_tenant_at_its_running_cap_waits_while_another_tenant_runs() {
    let db = TempDb::new("fair");
    let runner = FakeRunner::taking(Duration::from_secs(10));
    let engine = engine(db.flaky(), runner.clone(), settings(3, 1));
    let a1 = submit(&engine, "a", "1").await;
    let a2 = submit(&engine, "a", "2").await;
    let b1 = submit(&engine, "b", "1").await;
    let stop = start_workers(&engine, 3);
    until(&engine, "a", &a2, Status::Completed).await;
    until(&engine, "b", &b1, Status::Completed).await;
    let (a1, a2, b1) = (runner.ran(&a1), runner.ran(&a2), runner.ran(&b1));
    assert_eq!(runner.peak("a"), 1, "a never ran two at once");
    assert!(
        b1.started < a1.ended.unwrap(),
        "b's job ran beside a's, not after it"
    );
    assert!(
        a2.started >= a1.ended.unwrap(),
        "a's second waited for its first"
    );
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_job_without_room_goes_back_to_the_queue_uncounted_and_runs_later() {
    let db = TempDb::new("busy");
    let runner = FakeRunner::taking(Duration::from_secs(1));
    runner.busy.store(2, Ordering::SeqCst);
    let engine = engine(db.flaky(), runner.clone(), settings(1, 0));
    let id = submit(&engine, "t", "a").await;
    let stop = start_workers(&engine, 1);
    let done = until(&engine, "t", &id, Status::Completed).await;
    assert_eq!(done.attempts, 1, "the give-backs are not attempts");
    assert_eq!(runner.runs().len(), 1);
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_running_job_stops_it_and_it_stays_cancelled() {
    let db = TempDb::new("cancel");
    let runner = FakeRunner::taking(Duration::from_secs(60));
    let engine = engine(db.flaky(), runner.clone(), settings(1, 0));
    let id = submit(&engine, "t", "a").await;
    let queued = submit(&engine, "t", "b").await;
    let cancelled = engine.cancel(&caller("t"), &queued).await.unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    let stop = start_workers(&engine, 1);
    until(&engine, "t", &id, Status::Running).await;
    let job = engine.cancel(&caller("t"), &id).await.unwrap();
    assert_eq!(
        (job.status, job.error.as_deref()),
        (Status::Cancelled, Some("cancelled by the caller"))
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        runner.stopped.load(Ordering::SeqCst),
        1,
        "the run was stopped"
    );
    let job = engine.get(&caller("t"), &id).await.unwrap();
    assert_eq!((job.status, job.result), (Status::Cancelled, None));
    assert_eq!(runner.runs().len(), 1, "the cancelled queued job never ran");
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_result_the_store_refuses_ends_the_job_failed_as_not_stored() {
    let db = TempDb::new("unstored");
    let store = db.flaky();
    store.fail_results.store(true, Ordering::SeqCst);
    let runner = FakeRunner::taking(Duration::from_secs(1));
    let engine = engine(store, runner.clone(), settings(1, 0));
    let id = submit(&engine, "t", "a").await;
    let stop = start_workers(&engine, 1);
    let job = until(&engine, "t", &id, Status::Failed).await;
    assert!(
        job.error
            .as_deref()
            .unwrap()
            .starts_with("result_not_stored"),
        "{:?}",
        job.error
    );
    // Four writes of the result, 250, 500 and 1000 ms apart, before the failure.
    let ended = runner.ran(&id).ended.unwrap();
    assert!(Instant::now() - ended >= Duration::from_millis(1750));
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_job_lost_to_another_replica_is_stopped_here() {
    let db = TempDb::new("lost");
    let store = db.flaky();
    let runner = FakeRunner::taking(Duration::from_secs(60));
    let engine = engine(store.clone(), runner.clone(), settings(1, 0));
    let id = submit(&engine, "t", "a").await;
    let stop = start_workers(&engine, 1);
    tokio::spawn(engine.clone().renewer(Duration::from_secs(1), stop.clone()));
    until(&engine, "t", &id, Status::Running).await;
    store.lost.lock().unwrap().push(id.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(runner.stopped.load(Ordering::SeqCst), 1);
    let job = engine.get(&caller("t"), &id).await.unwrap();
    assert_eq!(
        (job.status, job.result),
        (Status::Running, None),
        "its end is the other replica's to record"
    );
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn the_purger_drops_finished_jobs_past_their_retention_and_keeps_queued_ones() {
    let db = TempDb::new("purge");
    let runner = FakeRunner::taking(Duration::from_secs(1));
    let mut s = settings(1, 0);
    s.retention_secs = std::time::Duration::from_secs(0);
    let engine = engine(db.flaky(), runner, s);
    let done = submit(&engine, "t", "a").await;
    let stop = start_workers(&engine, 1);
    until(&engine, "t", &done, Status::Completed).await;
    stop.cancel();
    let waiting = submit(&engine, "t", "b").await;
    // The store's times are the wall clock's: let a millisecond pass.
    std::thread::sleep(Duration::from_millis(5));
    let purging = CancellationToken::new();
    tokio::spawn(engine.clone().purger(purging.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(matches!(
        engine.get(&caller("t"), &done).await,
        Err(ExecutionsError::NotFound)
    ));
    assert_eq!(
        engine.get(&caller("t"), &waiting).await.unwrap().status,
        Status::Queued
    );
    purging.cancel();
}

#[tokio::test]
async fn submission_bounds_the_queues_and_answers_a_repeated_key_with_the_first_execution() {
    let db = TempDb::new("submit");
    let mut s = settings(1, 0);
    s.max_queued_per_tenant = 2;
    s.max_queued = 3;
    let engine = engine(db.flaky(), FakeRunner::taking(Duration::ZERO), s);
    let key = Some("k1".to_string());
    let (first, created) = engine
        .submit(&caller("a"), body("1"), key.clone())
        .await
        .unwrap();
    assert!(created);
    assert!(matches!(first.request, Some(Ok(JobRequest::Execute(_)))));
    let (again, created) = engine
        .submit(&caller("a"), body("1"), key.clone())
        .await
        .unwrap();
    assert_eq!((again.id.as_str(), created), (first.id.as_str(), false));
    assert!(matches!(
        engine.submit(&caller("a"), body("2"), key).await,
        Err(ExecutionsError::IdempotencyMismatch)
    ));
    submit(&engine, "a", "3").await;
    assert!(matches!(
        engine.submit(&caller("a"), body("4"), None).await,
        Err(ExecutionsError::TenantQueueFull(2))
    ));
    submit(&engine, "b", "1").await;
    assert!(matches!(
        engine.submit(&caller("c"), body("1"), None).await,
        Err(ExecutionsError::QueueFull(3))
    ));
    assert!(matches!(
        engine
            .submit(&caller("c"), json!({"language": "python"}), None)
            .await,
        Err(ExecutionsError::Request(RequestError::Invalid(m))) if m.starts_with("invalid request:")
    ));
    let (depth, oldest) = engine.queue_depth().await;
    assert_eq!(depth, 3);
    assert!(oldest.is_some());
}
