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

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::{RedisResult, Script, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use crate::shared::{Shared, SharedError};

use super::record::{caller_from_stored, caller_to_stored, from_millis, to_millis};
use super::{
    with_result, Delivery, JobEnd, JobKind, JobRecord, JobRequest, JobStore, QueueDepth, Recovered,
    Status, StoreError,
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

/// Inserts a job; 0 when its idempotency key is taken.
static INSERT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/insert.lua")));

/// Lua shared by the scripts that end a job (KEYS[1] its hash, KEYS[2] the queue):
/// `final` acks and drops its stream entry and lets the job and its idempotency key
/// expire with the retention; `fail_twice` ends a job lost by two replicas.
const ENDING: &str = include_str!("lua/ending.lua");

/// A script with the [`ENDING`] functions in front.
fn ending(body: &str) -> Script {
    Script::new(&format!("{ENDING}{body}"))
}

/// Marks a job whose stream entry this replica just read as running: 'run', or 'gone'
/// (finished or cancelled meanwhile: the entry is dropped) or 'failed' (a reclaimed job
/// that had already been started twice).
static CLAIM: LazyLock<Script> = LazyLock::new(|| ending(include_str!("lua/claim.lua")));

/// Records a final status if the job is not final yet, acks its stream entry, and files
/// its callback. Returns 1 if it did.
static FINISH: LazyLock<Script> = LazyLock::new(|| ending(include_str!("lua/finish.lua")));

/// Puts a job this replica had claimed before it restarted back in the queue (or fails
/// it if it had already been started twice). Returns 'requeued', 'failed' or 'gone'.
static REQUEUE: LazyLock<Script> = LazyLock::new(|| ending(include_str!("lua/requeue.lua")));

/// Gives back a job this consumer claimed but did not start: queued again under a new
/// stream entry, its attempt not counted. ARGV = prefix, entry, group.
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/release.lua")));

/// Drops from an index (a sorted set by creation time) the members created before
/// ARGV[1] whose key (ARGV[2] .. member) has expired; looks at 500 from offset ARGV[3].
/// Returns {removed, looked at}.
static SWEEP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/sweep.lua")));

/// How many passed-over entries one claim moves to the end of the stream before it
/// reports nothing to run (every queued job belongs to a tenant at its cap).
const CLAIM_SCAN: usize = 16;

/// Escapes a glob's special characters (a prefix or tenant in a SCAN pattern).
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Renews this consumer's claims: for each (job id, entry id), only if the job still points
/// at that entry, is still running and the entry is still this consumer's (another replica
/// may have taken it over). Returns the job ids that are no longer ours to run (taken
/// over, cancelled, finished elsewhere), so that the replica stops them.
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/renew.lua")));

/// Pending callbacks due now, each leased for a while so that two replicas do not send
/// the same one at once.
static DUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/due.lua")));

/// How long a replica holds the callbacks it took: longer than a sender takes to try a
/// whole round of them one after another, so that no other replica sends them meanwhile;
/// a replica that died with some leased has them retried after this.
const DELIVERY_LEASE_MS: u64 = 600_000;

/// Records a callback's outcome only while it is still pending (another replica may have
/// settled it): ARGV = outcome ('delivered' | 'retry' | 'dead'), now/next, error, prefix.
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/settle.lua")));

/// Puts off callbacks the sender took but could not start, only while still pending:
/// KEYS = their hashes, ARGV = due set, at, ids (in KEYS' order).
static POSTPONE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/postpone.lua")));

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// (entry id, execution id) of each entry in a stream reply (`[[sid, [field, value…]]…]`;
/// an entry deleted meanwhile has no fields).
fn entries(v: &Value) -> Vec<(String, Option<String>)> {
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

fn get_i64(h: &HashMap<String, String>, k: &str) -> Option<i64> {
    h.get(k).and_then(|v| v.parse().ok())
}

/// Every field of a job's hash but `sid`, the request first (a claim loads it).
const JOB_FIELDS: [&str; 15] = [
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
const LOOKUP_FIELDS: &[&str] = JOB_FIELDS.split_at(1).1;
/// What a list loads: neither the request nor the result.
const LIST_FIELDS: &[&str] = JOB_FIELDS.split_at(4).1;

/// The hash's fields (`fields`, with the values HMGET gave) as a record; `None` for a job
/// that is gone (expired with its retention).
fn to_job(fields: &[&str], values: Vec<Option<String>>) -> Option<JobRecord> {
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

fn to_delivery(h: HashMap<String, String>) -> Option<Delivery> {
    Some(Delivery {
        id: h.get("id")?.clone(),
        execution_id: h.get("execution_id")?.clone(),
        tenant: h.get("tenant")?.clone(),
        subject: h.get("subject").cloned().unwrap_or_default(),
        url: h.get("url").cloned().unwrap_or_default(),
        payload: h.get("payload").cloned().unwrap_or_default(),
        status: h.get("status").cloned().unwrap_or_default(),
        attempts: get_i64(&h, "attempts").unwrap_or(0),
        next_attempt_at: get_i64(&h, "next_attempt_at").unwrap_or(0),
        last_error: h.get("last_error").filter(|s| !s.is_empty()).cloned(),
        created_at: get_i64(&h, "created_at").unwrap_or(0),
        delivered_at: get_i64(&h, "delivered_at"),
    })
}

fn delivery_fields(d: &Delivery) -> Vec<(&'static str, String)> {
    vec![
        ("id", d.id.clone()),
        ("execution_id", d.execution_id.clone()),
        ("tenant", d.tenant.clone()),
        ("subject", d.subject.clone()),
        ("url", d.url.clone()),
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
fn idem_tenant(tenant: &str) -> String {
    format!("{}.{tenant}", tenant.len())
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
            visibility: Duration::from_millis(settings.visibility_timeout_ms),
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
