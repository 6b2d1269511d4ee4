//! The async executions' store on Redis, for several replicas: the queue is a Redis
//! Stream read through one consumer group, so any replica with a free worker takes the
//! next execution, and an execution claimed by a replica that stops renewing its claim
//! (it died) is taken over by another after `shared.visibility_timeout_ms` (XAUTOCLAIM).
//!
//! Keys (under `shared.prefix`):
//! - `job:<id>`: a hash, the execution (its stream entry id in `sid` while queued/running);
//! - `jobs:<tenant>`: a sorted set of the tenant's execution ids by creation time;
//! - `idem:<len>.<tenant>:<key>`: the execution id of an idempotency key (SET NX; the
//!   tenant length-prefixed, so no two tenants' keys meet);
//! - `queue`: the stream, group `workers`, one consumer per replica (its instance label);
//! - `queued:<tenant>`, `queued`: counts of queued executions;
//! - `running:<tenant>`: the tenant's running execution ids (its cap on workers);
//! - `delivery:<id>`, `deliveries:due` (by next attempt), `deliveries:exec:<id>`,
//!   `deliveries:dead:<tenant>`: webhook callbacks, shared like the jobs.
//!
//! Finished executions and their keys expire after `executions.retention_secs`; the
//! purger drops the expired ones from `jobs:<tenant>` and `deliveries:dead:<tenant>`.
//!
//! Fairness: a claim passes over the job of a tenant that already has
//! `max_running_per_tenant` running, moving it to the end of the stream, so one tenant's
//! long work cannot hold every worker; below the cap, the stream's order is kept.
//! Delivery is at least once: an execution whose replica died mid-run runs again on
//! another, once; a second loss fails it (as a single node's restart does).
//!
//! `scripts.rs` holds the Lua (`store/lua/*.lua`) that makes each step atomic; `hash.rs`
//! turns hashes and stream replies into typed records.

mod hash;
mod scripts;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::{RedisResult, Script, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::shared::{Shared, SharedError};
use hash::{
    delivery_fields, entries, glob_escape, idem_tenant, text, to_delivery, to_job, JOB_FIELDS,
    LIST_FIELDS, LOOKUP_FIELDS,
};
use scripts::{
    CLAIM, CLAIM_SCAN, DELIVERY_LEASE_MS, DUE, FINISH, INSERT, POSTPONE, RELEASE, RENEW, REQUEUE,
    SETTLE, SWEEP,
};

use super::record::{caller_to_stored, from_millis, to_millis};
use super::{
    with_result, Delivery, JobEnd, JobRecord, JobStore, QueueDepth, Recovered, Status, StoreError,
};

const GROUP: &str = "workers";

/// The [`JobStore`] on Redis: see the module comment. Every call is a few commands or one
/// script on its own async connection (multiplexed, reconnected by the manager); nothing
/// is locked across a call.
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    consumer: String,
    visibility: Duration,
    retention: Duration,
    /// Whether the consumer group is known to exist: made at the first call, and checked
    /// again after the connection was lost (a Redis that restarted empty has none).
    group_ready: AtomicBool,
    /// Stream entries of the executions this replica is running, renewed by [`renew`].
    ///
    /// [`renew`]: JobStore::renew
    claims: Mutex<HashMap<String, String>>,
    /// Where the next XAUTOCLAIM scan of the pending entries starts (each call looks at a
    /// few; the cursor makes successive calls cover all of them).
    reclaim_cursor: Mutex<String>,
}

impl RedisStore {
    /// The store on `shared`'s Redis, on a connection of its own: a large result written
    /// here must not hold up the request path's commands. Its consumer in the queue's
    /// group is this replica's instance label.
    pub async fn connect(shared: &Shared, retention: Duration) -> Result<RedisStore, SharedError> {
        let settings = &shared.settings;
        Ok(RedisStore {
            conn: shared.connection().await?,
            prefix: settings.prefix.clone(),
            consumer: shared.instance.clone(),
            visibility: settings.visibility_timeout_ms,
            retention,
            group_ready: AtomicBool::new(false),
            claims: Mutex::new(HashMap::new()),
            reclaim_cursor: Mutex::new("0-0".into()),
        })
    }

    fn key(&self, parts: &[&str]) -> String {
        crate::shared::key(&self.prefix, parts)
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.claims.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection, with the queue's consumer group made first if it may be missing
    /// (BUSYGROUP: it exists).
    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let mut c = self.conn.clone();
        if !self.group_ready.load(Ordering::Acquire) {
            let created: RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(self.key(&["queue"]))
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut c)
                .await;
            match created {
                Err(e) if e.code() != Some("BUSYGROUP") => return Err(self.failed(e)),
                _ => self.group_ready.store(true, Ordering::Release),
            }
        }
        Ok(c)
    }

    /// A call's outcome; after a lost connection (or a Redis that lost the group) the
    /// group is made again before the next call.
    fn check<T>(&self, r: RedisResult<T>) -> Result<T, StoreError> {
        r.map_err(|e| self.failed(e))
    }

    fn failed(&self, e: redis::RedisError) -> StoreError {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.code() == Some("NOGROUP")
        {
            self.group_ready.store(false, Ordering::Release);
        }
        StoreError::Shared(e)
    }

    async fn settle(
        &self,
        id: &str,
        outcome: &str,
        at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let r = SETTLE
            .key(self.key(&["delivery", id]))
            .key(self.key(&["deliveries", "due"]))
            .arg(outcome)
            .arg(at)
            .arg(error)
            .arg(&self.prefix)
            .arg(id)
            .invoke_async::<i64>(&mut c)
            .await;
        self.check(r).map(|_| ())
    }

    /// The job's `fields` (see [`JOB_FIELDS`]).
    async fn job(
        &self,
        c: &mut ConnectionManager,
        id: &str,
        fields: &[&str],
    ) -> RedisResult<Option<JobRecord>> {
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.key(&["job", id]))
            .arg(fields)
            .query_async(c)
            .await?;
        Ok(to_job(fields, values))
    }

    async fn delivery(&self, c: &mut ConnectionManager, id: &str) -> RedisResult<Option<Delivery>> {
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.key(&["delivery", id]))
            .query_async(c)
            .await?;
        Ok(to_delivery(h))
    }

    /// The next stream entry for this consumer: first one another replica claimed and
    /// stopped renewing, then a new one.
    async fn next_entry(
        &self,
        c: &mut ConnectionManager,
    ) -> RedisResult<Option<(String, Option<String>)>> {
        let queue = self.key(&["queue"]);
        let cursor = self
            .reclaim_cursor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let reclaimed: Value = redis::cmd("XAUTOCLAIM")
            .arg(&queue)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(self.visibility.as_millis() as u64)
            .arg(&cursor)
            .arg("COUNT")
            .arg(1)
            .query_async(c)
            .await?;
        if let Value::Array(parts) = &reclaimed {
            if let Some(next) = parts.first().and_then(text) {
                *self
                    .reclaim_cursor
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = next;
            }
            if let Some(e) = parts.get(1).map(entries).and_then(|v| v.into_iter().next()) {
                return Ok(Some(e));
            }
        }
        Ok(self.read_group(c, 1, ">").await?.into_iter().next())
    }

    /// This consumer's entries from XREADGROUP: new ones (`from` = `>`) or the ones it
    /// already holds (`0`).
    async fn read_group(
        &self,
        c: &mut ConnectionManager,
        count: usize,
        from: &str,
    ) -> RedisResult<Vec<(String, Option<String>)>> {
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(self.key(&["queue"]))
            .arg(from)
            .query_async(c)
            .await?;
        // [[queue, [[sid, fields]…]]] (RESP2) or a map (RESP3).
        let streams = match reply {
            Value::Array(s) => s,
            Value::Map(m) => m
                .into_iter()
                .map(|(k, v)| Value::Array(vec![k, v]))
                .collect(),
            _ => Vec::new(),
        };
        Ok(streams
            .iter()
            .flat_map(|s| match s {
                Value::Array(pair) if pair.len() == 2 => entries(&pair[1]),
                _ => Vec::new(),
            })
            .collect())
    }

    /// Acknowledges an entry whose execution is gone (deleted while pending).
    async fn ack(&self, c: &mut ConnectionManager, sid: &str) -> RedisResult<()> {
        redis::cmd("XACK")
            .arg(self.key(&["queue"]))
            .arg(GROUP)
            .arg(sid)
            .query_async(c)
            .await
    }

    /// Runs a script that settles one stream entry of one execution (CLAIM, REQUEUE):
    /// KEYS = job, queue; ARGV = prefix, entry, now, group, retention, consumer, the
    /// tenant's cap on running jobs.
    async fn settle_entry(
        &self,
        c: &mut ConnectionManager,
        script: &Script,
        entry: (&str, &str),
        now: i64,
        max_running: usize,
    ) -> RedisResult<String> {
        let (id, sid) = entry;
        script
            .key(self.key(&["job", id]))
            .key(self.key(&["queue"]))
            .arg(&self.prefix)
            .arg(sid)
            .arg(now)
            .arg(GROUP)
            .arg(self.retention.as_millis() as u64)
            .arg(&self.consumer)
            .arg(max_running)
            .invoke_async(c)
            .await
    }

    /// Drops expired members from the indexes matching `pattern` (see [`SWEEP`]).
    async fn sweep(
        &self,
        c: &mut ConnectionManager,
        pattern: &str,
        member_prefix: &str,
        before: i64,
    ) -> RedisResult<usize> {
        let mut removed = 0;
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(200)
                .query_async(c)
                .await?;
            for key in keys {
                let mut offset = 0;
                loop {
                    let (n, seen): (usize, usize) = SWEEP
                        .key(&key)
                        .arg(before)
                        .arg(member_prefix)
                        .arg(offset)
                        .invoke_async(c)
                        .await?;
                    removed += n;
                    offset += seen - n;
                    if seen < 500 {
                        break;
                    }
                }
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// The tenant's newest jobs (of `status`, if given) among the `scan` newest; expired
    /// ones are dropped from the index on the way. In pages of `limit` hashes, one round
    /// trip each: the answer of a hash-by-hash walk, with bounded work.
    async fn list_from(
        &self,
        c: &mut ConnectionManager,
        tenant: &str,
        status: Option<Status>,
        limit: usize,
    ) -> RedisResult<Vec<JobRecord>> {
        let index = self.key(&["jobs", tenant]);
        let scan = if status.is_some() { limit * 10 } else { limit };
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(&index)
            .arg(0)
            .arg(scan.max(1) as i64 - 1)
            .query_async(c)
            .await?;
        let mut out = Vec::new();
        for page in ids.chunks(limit.max(1)) {
            let mut pipe = redis::pipe();
            for id in page {
                pipe.cmd("HMGET")
                    .arg(self.key(&["job", id]))
                    .arg(LIST_FIELDS);
            }
            let rows: Vec<Vec<Option<String>>> = pipe.query_async(c).await?;
            let mut expired = Vec::new();
            for (id, values) in page.iter().zip(rows) {
                match to_job(LIST_FIELDS, values) {
                    None => expired.push(id),
                    Some(j) if status.is_none_or(|s| j.status == s) => out.push(j),
                    Some(_) => {}
                }
                if out.len() >= limit {
                    break;
                }
            }
            if !expired.is_empty() {
                redis::cmd("ZREM")
                    .arg(&index)
                    .arg(expired)
                    .query_async::<()>(c)
                    .await?;
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Claims stream entries until one is a job to run (see [`CLAIM`]).
    async fn claim_from(
        &self,
        c: &mut ConnectionManager,
        now: i64,
        max_running: usize,
    ) -> RedisResult<Option<JobRecord>> {
        let mut passed_over = 0;
        loop {
            let Some((sid, id)) = self.next_entry(c).await? else {
                return Ok(None);
            };
            let Some(id) = id else {
                // Deleted while pending: nothing to run.
                self.ack(c, &sid).await?;
                continue;
            };
            match self
                .settle_entry(c, &CLAIM, (&id, &sid), now, max_running)
                .await?
                .as_str()
            {
                "run" => {}
                "later" => {
                    passed_over += 1;
                    if passed_over >= CLAIM_SCAN {
                        return Ok(None);
                    }
                    continue;
                }
                _ => continue,
            }
            if let Some(job) = self.job(c, &id, &JOB_FIELDS).await? {
                self.claims().insert(id, sid);
                return Ok(Some(job));
            }
        }
    }
}

#[async_trait]
impl JobStore for RedisStore {
    async fn insert(&self, j: &JobRecord, request: String) -> Result<(), StoreError> {
        let idem = j
            .idempotency_key
            .as_deref()
            .map(|k| self.key(&["idem", &idem_tenant(&j.tenant), k]))
            .unwrap_or_default();
        let fields: [(&str, String); 10] = [
            ("id", j.id.clone()),
            ("tenant", j.tenant.clone()),
            (
                "caller",
                j.caller.as_ref().map(caller_to_stored).unwrap_or_default(),
            ),
            ("kind", j.kind.as_str().to_string()),
            ("status", j.status.as_str().to_string()),
            ("created_at", to_millis(j.created_at).to_string()),
            ("attempts", j.attempts.to_string()),
            (
                "idempotency_key",
                j.idempotency_key.clone().unwrap_or_default(),
            ),
            ("request_hash", j.request_hash.clone()),
            ("callback_url", j.callback_url.clone().unwrap_or_default()),
        ];
        let mut inv = INSERT.prepare_invoke();
        inv.key(self.key(&["job", &j.id]))
            .key(self.key(&["jobs", &j.tenant]))
            .key(self.key(&["queue"]))
            .key(self.key(&["queued", &j.tenant]))
            .key(self.key(&["queued"]))
            .key(&idem)
            .arg(&j.id)
            .arg(to_millis(j.created_at));
        // The hash's fields in the order earlier versions wrote them.
        let (before, after) = fields.split_at(4);
        for (k, v) in before {
            inv.arg(*k).arg(v);
        }
        inv.arg("request").arg(request);
        for (k, v) in after {
            inv.arg(*k).arg(v);
        }
        let mut c = self.conn().await?;
        let done: i64 = self.check(inv.invoke_async(&mut c).await)?;
        if done == 0 {
            return Err(StoreError::Duplicate);
        }
        Ok(())
    }

    async fn by_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        let mut c = self.conn().await?;
        let r = async {
            let id: Option<String> = redis::cmd("GET")
                .arg(self.key(&["idem", &idem_tenant(tenant), key]))
                .query_async(&mut c)
                .await?;
            match id {
                Some(id) => Ok(self
                    .job(&mut c, &id, LOOKUP_FIELDS)
                    .await?
                    .filter(|j| j.tenant == tenant)),
                None => Ok(None),
            }
        }
        .await;
        self.check(r)
    }

    async fn get(&self, tenant: &str, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let mut c = self.conn().await?;
        let r = self.job(&mut c, id, LOOKUP_FIELDS).await;
        Ok(self.check(r)?.filter(|j| j.tenant == tenant))
    }

    async fn get_with_request(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        let mut c = self.conn().await?;
        let r = self.job(&mut c, id, &JOB_FIELDS).await;
        Ok(self.check(r)?.filter(|j| j.tenant == tenant))
    }

    async fn list(
        &self,
        tenant: &str,
        status: Option<Status>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let mut c = self.conn().await?;
        let r = self.list_from(&mut c, tenant, status, limit).await;
        self.check(r)
    }

    async fn claim_next(
        &self,
        now: DateTime<Utc>,
        max_running: usize,
    ) -> Result<Option<JobRecord>, StoreError> {
        let mut c = self.conn().await?;
        let r = self.claim_from(&mut c, to_millis(now), max_running).await;
        self.check(r)
    }

    async fn finish(&self, id: &str, end: &JobEnd) -> Result<bool, StoreError> {
        let mut inv = FINISH.prepare_invoke();
        inv.key(self.key(&["job", id]))
            .key(self.key(&["queue"]))
            .arg(&self.prefix)
            .arg(GROUP)
            .arg(end.status.as_str())
            .arg(to_millis(end.at))
            .arg(self.retention.as_millis() as u64)
            .arg(if end.result.is_some() { "1" } else { "0" })
            .arg(end.result.as_deref().map(String::as_str).unwrap_or(""))
            .arg(if end.error.is_some() { "1" } else { "0" })
            .arg(end.error.as_deref().unwrap_or(""));
        match &end.callback {
            Some(d) => {
                inv.arg("1")
                    .arg(&d.id)
                    .arg(d.created_at)
                    .arg(d.next_attempt_at);
                for (k, v) in delivery_fields(d) {
                    inv.arg(k).arg(v);
                }
            }
            None => {
                inv.arg("0");
            }
        }
        let mut c = self.conn().await?;
        let done: i64 = self.check(inv.invoke_async(&mut c).await)?;
        self.claims().remove(id);
        Ok(done == 1)
    }

    async fn due_deliveries(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let mut c = self.conn().await?;
        let r = async {
            let ids: Vec<String> = DUE
                .key(self.key(&["deliveries", "due"]))
                .arg(now)
                .arg(limit)
                .arg(DELIVERY_LEASE_MS)
                .invoke_async(&mut c)
                .await?;
            let mut out = Vec::new();
            for id in ids {
                if let Some(mut d) = self.delivery(&mut c, &id).await? {
                    let result: Option<String> = redis::cmd("HGET")
                        .arg(self.key(&["job", &d.execution_id]))
                        .arg("result")
                        .query_async(&mut c)
                        .await?;
                    d.payload = with_result(std::mem::take(&mut d.payload), result);
                    out.push(d);
                }
            }
            Ok(out)
        }
        .await;
        self.check(r)
    }

    async fn release(&self, id: &str) -> Result<(), StoreError> {
        let Some(sid) = self.claims().remove(id) else {
            return Ok(());
        };
        let mut c = self.conn().await?;
        let r = RELEASE
            .key(self.key(&["job", id]))
            .key(self.key(&["queue"]))
            .arg(&self.prefix)
            .arg(&sid)
            .arg(GROUP)
            .invoke_async::<i64>(&mut c)
            .await;
        self.check(r).map(|_| ())
    }

    fn abandon(&self, id: &str) {
        self.claims().remove(id);
    }

    async fn delivered(&self, id: &str, now: i64) -> Result<(), StoreError> {
        self.settle(id, "delivered", now, "").await
    }

    async fn delivery_failed(
        &self,
        id: &str,
        next: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError> {
        match next {
            Some(at) => self.settle(id, "retry", at, error).await,
            None => self.settle(id, "dead", 0, error).await,
        }
    }

    async fn postpone_deliveries(&self, ids: &[String], at: i64) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut call = POSTPONE.prepare_invoke();
        for id in ids {
            call.key(self.key(&["delivery", id]));
        }
        call.arg(self.key(&["deliveries", "due"])).arg(at);
        for id in ids {
            call.arg(id);
        }
        let mut c = self.conn().await?;
        let r = call.invoke_async::<i64>(&mut c).await;
        self.check(r).map(|_| ())
    }

    async fn deliveries(
        &self,
        tenant: &str,
        execution_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let index = match execution_id {
            Some(e) => self.key(&["deliveries", "exec", e]),
            None => self.key(&["deliveries", "dead", tenant]),
        };
        let mut c = self.conn().await?;
        let r = async {
            let ids: Vec<String> = redis::cmd("ZREVRANGE")
                .arg(&index)
                .arg(0)
                .arg(limit.max(1) as i64 - 1)
                .query_async(&mut c)
                .await?;
            let mut out = Vec::new();
            for id in ids {
                if let Some(d) = self.delivery(&mut c, &id).await? {
                    if d.tenant == tenant {
                        out.push(d);
                    }
                }
            }
            Ok(out)
        }
        .await;
        self.check(r)
    }

    async fn queued(&self, tenant: &str) -> Result<QueueDepth, StoreError> {
        let mut c = self.conn().await?;
        let r = async {
            let (mine, total): (Option<i64>, Option<i64>) = redis::cmd("MGET")
                .arg(self.key(&["queued", tenant]))
                .arg(self.key(&["queued"]))
                .query_async(&mut c)
                .await?;
            // The oldest entry still in the stream (queued or running): entry ids start
            // with their creation time in milliseconds.
            let first: Value = redis::cmd("XRANGE")
                .arg(self.key(&["queue"]))
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut c)
                .await?;
            let oldest = entries(&first)
                .first()
                .and_then(|(sid, _)| sid.split('-').next()?.parse().ok());
            Ok(QueueDepth {
                tenant: mine.unwrap_or(0).max(0) as usize,
                total: total.unwrap_or(0).max(0) as usize,
                oldest: oldest.map(from_millis),
            })
        }
        .await;
        self.check(r)
    }

    async fn recover(&self, now: DateTime<Utc>) -> Result<Recovered, StoreError> {
        let now = to_millis(now);
        let mut c = self.conn().await?;
        let r = async {
            // What this consumer had claimed before it stopped (same instance label).
            let mine = self.read_group(&mut c, 10_000, "0").await?;
            let mut done = Recovered::default();
            for (sid, id) in mine {
                let Some(id) = id else {
                    self.ack(&mut c, &sid).await?;
                    continue;
                };
                match self
                    .settle_entry(&mut c, &REQUEUE, (&id, &sid), now, 0)
                    .await?
                    .as_str()
                {
                    "requeued" => done.requeued += 1,
                    "failed" => done.failed += 1,
                    _ => {}
                }
            }
            Ok(done)
        }
        .await;
        self.check(r)
    }

    /// Finished executions and callbacks expire with their retention; what is left is to
    /// drop them from the tenants' indexes, which would otherwise grow for ever.
    async fn purge(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let before = to_millis(before);
        let p = glob_escape(&self.prefix);
        let mut c = self.conn().await?;
        let r = async {
            let jobs = self
                .sweep(
                    &mut c,
                    &format!("{p}:jobs:*"),
                    &self.key(&["job", ""]),
                    before,
                )
                .await?;
            let dead = self
                .sweep(
                    &mut c,
                    &format!("{p}:deliveries:dead:*"),
                    &self.key(&["delivery", ""]),
                    before,
                )
                .await?;
            Ok(jobs + dead)
        }
        .await;
        self.check(r)
    }

    async fn renew(&self) -> Result<Vec<String>, StoreError> {
        let claims: Vec<(String, String)> = self
            .claims()
            .iter()
            .map(|(id, sid)| (id.clone(), sid.clone()))
            .collect();
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = RENEW.prepare_invoke();
        inv.arg(&self.prefix)
            .arg(self.key(&["queue"]))
            .arg(GROUP)
            .arg(&self.consumer);
        for (id, sid) in &claims {
            inv.arg(id).arg(sid);
        }
        let mut c = self.conn().await?;
        let lost: Vec<String> = self.check(inv.invoke_async(&mut c).await)?;
        let mut mine = self.claims();
        for id in &lost {
            mine.remove(id);
        }
        Ok(lost)
    }
}
