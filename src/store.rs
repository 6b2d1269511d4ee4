//! The durable store of async executions: queued work, running state and results.
//!
//! Behind a small trait ([`JobStore`]) so that another engine (Redis, for several
//! gateways: `shared/store.rs`) can take its place; the default is an embedded SQLite database in WAL mode
//! with `synchronous = FULL`, so an execution the gateway answered 202 for is on disk
//! before the answer leaves.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Mutex;

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

/// One async execution as stored.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub tenant: String,
    /// The submitting caller, serialized (`executions.rs` owns the shape).
    pub caller: String,
    /// `execute` or `batch`.
    pub kind: String,
    /// The request body, serialized.
    pub request: String,
    pub status: Status,
    /// Unix milliseconds.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
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

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("executions database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("executions database {path} is corrupt: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("executions database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// Another execution already has this tenant's idempotency key.
    #[error("an execution with this idempotency key already exists")]
    Duplicate,
    #[error("executions database task failed: {0}")]
    Task(String),
    /// The shared store (Redis) did not answer: an outage, not a fault of the request.
    #[error("shared executions store (Redis): {0}")]
    Shared(String),
}

/// What the async engine needs from a store.
pub trait JobStore: Send + Sync {
    /// Stores a new queued job (durably, before returning).
    fn insert(&self, job: &Job) -> Result<(), StoreError>;
    /// The tenant's job with this idempotency key, if any.
    fn by_idempotency_key(&self, tenant: &str, key: &str) -> Result<Option<Job>, StoreError>;
    /// The job, if it belongs to `tenant`.
    fn get(&self, tenant: &str, id: &str) -> Result<Option<Job>, StoreError>;
    /// The tenant's jobs, newest first, optionally of one status; without their `result`
    /// and `request` (a list shows neither, and each can be tens of MB).
    fn list(
        &self,
        tenant: &str,
        status: Option<Status>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError>;
    /// Takes a queued job and marks it running: tenants with queued work take turns, and a
    /// tenant with `max_running` jobs running already is passed over, so that one tenant's
    /// long work cannot hold every worker. A tenant's own jobs run in submission order.
    fn claim_next(&self, now: i64, max_running: usize) -> Result<Option<Job>, StoreError>;
    /// Gives back a job this worker claimed but could not start (the gateway or the caller
    /// was at its limit): queued again, its attempt not counted.
    fn release(&self, id: &str) -> Result<(), StoreError>;
    /// This worker gives up on a job it claimed without recording an end (the store kept
    /// failing): a shared store stops renewing its claim, so that another replica runs it
    /// again after the visibility timeout; a single node re-runs it after a restart.
    fn abandon(&self, _id: &str) {}
    /// Records a final status (only for a job that is not final yet), and in the same
    /// transaction its callback, if any. Returns whether it did.
    fn finish(
        &self,
        id: &str,
        status: Status,
        result: Option<&str>,
        error: Option<&str>,
        now: i64,
        callback: Option<&Delivery>,
    ) -> Result<bool, StoreError>;
    /// Pending callbacks due at `now`, oldest first.
    fn due_deliveries(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, StoreError>;
    /// A callback was accepted.
    fn delivered(&self, id: &str, now: i64) -> Result<(), StoreError>;
    /// A callback failed: try again at `next`, or, with `next` None, it is a dead letter.
    fn delivery_failed(&self, id: &str, next: Option<i64>, error: &str) -> Result<(), StoreError>;
    /// Pending callbacks the sender took but could not start (their destination had its
    /// share in flight): due again at `at`, no attempt counted.
    fn postpone_deliveries(&self, ids: &[String], at: i64) -> Result<(), StoreError>;
    /// The tenant's callbacks: of one execution, or (with `None`) its dead letters.
    fn deliveries(
        &self,
        tenant: &str,
        execution_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Queued jobs: (of this tenant, in total, oldest created_at).
    fn queued(&self, tenant: &str) -> Result<(usize, usize, Option<i64>), StoreError>;
    /// After a restart: running jobs go back to the queue once; a job that was already
    /// restarted once is failed. Returns (re-queued, failed).
    fn recover(&self, now: i64) -> Result<(usize, usize), StoreError>;
    /// Removes final jobs that finished before `before`, and callbacks settled (delivered
    /// or dead) that were created before it.
    fn purge(&self, before: i64) -> Result<usize, StoreError>;
    /// Renews this replica's claims on the jobs it is running, so that no other replica
    /// takes them over (a shared store's visibility timeout); nothing for a single node.
    /// Returns the jobs this replica was running that are no longer its own to run (taken
    /// over by another, cancelled, finished elsewhere): the caller stops them.
    fn renew(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
}

/// A callback's payload is stored without the execution's result, which would be a
/// second copy of up to `limits.max_batch_result_bytes` (the payload is the execution as
/// `GET /v1/executions/{id}` shows it, serialized by `executions.rs` with `"result":null`,
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

/// SQLite in WAL mode, one connection behind a mutex (every statement is short).
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The tenant whose job was claimed last: the next claim starts after it (round robin).
    last_tenant: Mutex<String>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    caller TEXT NOT NULL,
    kind TEXT NOT NULL,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT,
    request_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_queue ON executions (status, created_at);
CREATE INDEX IF NOT EXISTS executions_tenant ON executions (tenant, created_at);
CREATE INDEX IF NOT EXISTS executions_tenant_queue ON executions (status, tenant, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS executions_idempotency
    ON executions (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    subject TEXT NOT NULL,
    url TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_created ON deliveries (status, created_at);
";

const COLUMNS: &str = "id, tenant, caller, kind, request, status, created_at, started_at, finished_at, result, error, attempts, idempotency_key, request_hash, callback_url";

/// [`COLUMNS`] without the request and the result (a list shows neither).
const LIST_COLUMNS: &str = "id, tenant, caller, kind, '', status, created_at, started_at, finished_at, NULL, error, attempts, idempotency_key, request_hash, callback_url";

const DELIVERY_COLUMNS: &str = "id, execution_id, tenant, subject, url, payload, status, attempts, next_attempt_at, last_error, created_at, delivered_at";

fn row_to_delivery(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        execution_id: r.get(1)?,
        tenant: r.get(2)?,
        subject: r.get(3)?,
        url: r.get(4)?,
        payload: r.get(5)?,
        status: r.get(6)?,
        attempts: r.get(7)?,
        next_attempt_at: r.get(8)?,
        last_error: r.get(9)?,
        created_at: r.get(10)?,
        delivered_at: r.get(11)?,
    })
}

fn row_to_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    let status: String = r.get(5)?;
    Ok(Job {
        id: r.get(0)?,
        tenant: r.get(1)?,
        caller: r.get(2)?,
        kind: r.get(3)?,
        request: r.get(4)?,
        status: Status::parse(&status).unwrap_or(Status::Failed),
        created_at: r.get(6)?,
        started_at: r.get(7)?,
        finished_at: r.get(8)?,
        result: r.get(9)?,
        error: r.get(10)?,
        attempts: r.get(11)?,
        idempotency_key: r.get(12)?,
        request_hash: r.get(13)?,
        callback_url: r.get(14)?,
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and checks it is usable: a
    /// corrupt or unwritable file fails here, at startup, never at the first request.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let shown = path.display().to_string();
        let open = |source| StoreError::Open {
            path: shown.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(open)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open)?;
        // FULL: a commit is on disk before it returns (the 202 promise).
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open)?;
        conn.execute_batch(SCHEMA).map_err(open)?;
        // Databases from before callbacks existed get the column.
        let has_callback: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('executions') WHERE name = 'callback_url'")
            .and_then(|mut st| st.exists([]))
            .map_err(open)?;
        if !has_callback {
            conn.execute_batch("ALTER TABLE executions ADD COLUMN callback_url TEXT")
                .map_err(open)?;
        }
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(open)?;
        if check != "ok" {
            return Err(StoreError::Corrupt {
                path: shown,
                detail: check,
            });
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            last_tenant: Mutex::new(String::new()),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl JobStore for SqliteStore {
    fn insert(&self, j: &Job) -> Result<(), StoreError> {
        let r = self.conn().execute(
            &format!("INSERT INTO executions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
            params![
                j.id, j.tenant, j.caller, j.kind, j.request, j.status.as_str(), j.created_at,
                j.started_at, j.finished_at, j.result, j.error, j.attempts, j.idempotency_key,
                j.request_hash,
                j.callback_url
            ],
        );
        match r {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Duplicate)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn by_idempotency_key(&self, tenant: &str, key: &str) -> Result<Option<Job>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM executions WHERE tenant = ?1 AND idempotency_key = ?2"
                ),
                params![tenant, key],
                row_to_job,
            )
            .optional()?)
    }

    fn get(&self, tenant: &str, id: &str) -> Result<Option<Job>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM executions WHERE id = ?1 AND tenant = ?2"),
                params![id, tenant],
                row_to_job,
            )
            .optional()?)
    }

    fn list(
        &self,
        tenant: &str,
        status: Option<Status>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {LIST_COLUMNS} FROM executions WHERE tenant = ?1 AND (?2 IS NULL OR status = ?2) ORDER BY created_at DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(
            params![tenant, status.map(Status::as_str), limit as i64],
            row_to_job,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn claim_next(&self, now: i64, max_running: usize) -> Result<Option<Job>, StoreError> {
        let mut conn = self.conn();
        let mut last = self.last_tenant.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction()?;
        // The next tenant after the last one served (in name order, wrapping) that has
        // queued work and fewer than `max_running` running.
        let tenant: Option<String> = tx
            .query_row(
                "SELECT q.tenant FROM (SELECT DISTINCT tenant FROM executions WHERE status = 'queued') q
                 WHERE (SELECT COUNT(*) FROM executions r WHERE r.status = 'running' AND r.tenant = q.tenant) < ?1
                 ORDER BY q.tenant <= ?2, q.tenant LIMIT 1",
                params![max_running as i64, *last],
                |r| r.get(0),
            )
            .optional()?;
        let Some(tenant) = tenant else {
            return Ok(None);
        };
        let job = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM executions WHERE status = 'queued' AND tenant = ?1 ORDER BY created_at, rowid LIMIT 1"),
                params![tenant],
                row_to_job,
            )
            .optional()?;
        let Some(mut job) = job else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE executions SET status = 'running', started_at = ?2, attempts = attempts + 1 WHERE id = ?1",
            params![job.id, now],
        )?;
        tx.commit()?;
        *last = tenant;
        job.status = Status::Running;
        job.started_at = Some(now);
        job.attempts += 1;
        Ok(Some(job))
    }

    fn finish(
        &self,
        id: &str,
        status: Status,
        result: Option<&str>,
        error: Option<&str>,
        now: i64,
        callback: Option<&Delivery>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE executions SET status = ?2, result = ?3, error = ?4, finished_at = ?5
             WHERE id = ?1 AND status IN ('queued', 'running')",
            params![id, status.as_str(), result, error, now],
        )?;
        if let (1, Some(d)) = (n, callback) {
            tx.execute(
                &format!("INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
                params![
                    d.id, d.execution_id, d.tenant, d.subject, d.url, d.payload, d.status,
                    d.attempts, d.next_attempt_at, d.last_error, d.created_at, d.delivered_at
                ],
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    fn release(&self, id: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE executions SET status = 'queued', started_at = NULL, attempts = MAX(attempts - 1, 0)
             WHERE id = ?1 AND status = 'running'",
            params![id],
        )?;
        Ok(())
    }

    fn due_deliveries(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.conn();
        let columns: Vec<String> = DELIVERY_COLUMNS
            .split(", ")
            .map(|c| format!("d.{c}"))
            .collect();
        let mut stmt = conn.prepare(&format!(
            "SELECT {}, e.result FROM deliveries d LEFT JOIN executions e ON e.id = d.execution_id
             WHERE d.status = 'pending' AND d.next_attempt_at <= ?1 ORDER BY d.next_attempt_at LIMIT ?2",
            columns.join(", ")
        ))?;
        let rows = stmt.query_map(params![now, limit as i64], |r| {
            let mut d = row_to_delivery(r)?;
            let result: Option<String> = r.get(12)?;
            d.payload = with_result(std::mem::take(&mut d.payload), result);
            Ok(d)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn delivered(&self, id: &str, now: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = ?2, last_error = NULL WHERE id = ?1",
            params![id, now],
        )?;
        Ok(())
    }

    fn delivery_failed(&self, id: &str, next: Option<i64>, error: &str) -> Result<(), StoreError> {
        match next {
            Some(at) => self.conn().execute(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 WHERE id = ?1",
                params![id, at, error],
            )?,
            None => self.conn().execute(
                "UPDATE deliveries SET status = 'dead', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, error],
            )?,
        };
        Ok(())
    }

    fn postpone_deliveries(&self, ids: &[String], at: i64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for id in ids {
            tx.execute(
                "UPDATE deliveries SET next_attempt_at = ?2 WHERE id = ?1 AND status = 'pending'",
                params![id, at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn deliveries(
        &self,
        tenant: &str,
        execution_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant = ?1
               AND ((?2 IS NULL AND status = 'dead') OR execution_id = ?2)
             ORDER BY created_at DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![tenant, execution_id, limit as i64], row_to_delivery)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn queued(&self, tenant: &str) -> Result<(usize, usize, Option<i64>), StoreError> {
        let conn = self.conn();
        let (total, oldest): (i64, Option<i64>) = conn.query_row(
            "SELECT COUNT(*), MIN(created_at) FROM executions WHERE status = 'queued'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mine: i64 = conn.query_row(
            "SELECT COUNT(*) FROM executions WHERE status = 'queued' AND tenant = ?1",
            params![tenant],
            |r| r.get(0),
        )?;
        Ok((mine as usize, total as usize, oldest))
    }

    fn recover(&self, now: i64) -> Result<(usize, usize), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let failed = tx.execute(
            "UPDATE executions SET status = 'failed', finished_at = ?1,
                 error = 'the gateway stopped twice while this execution was running; it was not run again'
             WHERE status = 'running' AND attempts >= 2",
            params![now],
        )?;
        let requeued = tx.execute(
            "UPDATE executions SET status = 'queued', started_at = NULL WHERE status = 'running'",
            [],
        )?;
        tx.commit()?;
        Ok((requeued, failed))
    }

    fn purge(&self, before: i64) -> Result<usize, StoreError> {
        let conn = self.conn();
        let deliveries = conn.execute(
            "DELETE FROM deliveries WHERE status IN ('delivered', 'dead') AND created_at < ?1",
            params![before],
        )?;
        let executions = conn.execute(
            "DELETE FROM executions WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at < ?1
               AND id NOT IN (SELECT execution_id FROM deliveries WHERE status = 'pending')",
            params![before],
        )?;
        Ok(deliveries + executions)
    }
}

impl crate::failure::Failure for StoreError {
    fn kind(&self) -> &'static str {
        match self {
            StoreError::Shared(_) => "shared_state_unavailable",
            _ => "store_failure",
        }
    }
    fn class(&self) -> crate::failure::Class {
        crate::failure::Class::Internal {
            transient: matches!(self, StoreError::Shared(_)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, tenant: &str, created: i64) -> Job {
        Job {
            id: id.into(),
            tenant: tenant.into(),
            caller: "{}".into(),
            kind: "execute".into(),
            request: "{}".into(),
            status: Status::Queued,
            created_at: created,
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

    #[test]
    fn queue_order_claims_finishing_and_recovery_survive_a_reopen() {
        let dir = std::env::temp_dir().join(format!("cb-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("e.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.insert(&job("b", "t", 2)).unwrap();
            s.insert(&job("a", "t", 1)).unwrap();
            s.insert(&job("c", "u", 3)).unwrap();
            assert_eq!(s.queued("t").unwrap(), (2, 3, Some(1)));
            let first = s.claim_next(10, 10).unwrap().unwrap();
            assert_eq!(
                (first.id.as_str(), first.status, first.attempts),
                ("a", Status::Running, 1)
            );
            assert!(
                s.get("u", "a").unwrap().is_none(),
                "another tenant's job is not found"
            );
            assert!(s
                .finish("a", Status::Completed, Some("{\"x\":1}"), None, 11, None)
                .unwrap());
            assert!(
                !s.finish("a", Status::Cancelled, None, None, 12, None)
                    .unwrap(),
                "final stays final"
            );
            // Tenants take turns: u's job before t's second.
            let c = s.claim_next(13, 10).unwrap().unwrap();
            assert_eq!(c.id, "c");
            assert!(s
                .finish("c", Status::Completed, Some("{}"), None, 30, None)
                .unwrap());
            let b = s.claim_next(14, 10).unwrap().unwrap(); // running when the process dies
            assert_eq!(b.id, "b");
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(
            s.recover(20).unwrap(),
            (1, 0),
            "b goes back to the queue once"
        );
        let b = s.claim_next(21, 10).unwrap().unwrap();
        assert_eq!((b.id.as_str(), b.attempts), ("b", 2));
        assert_eq!(
            s.recover(22).unwrap(),
            (0, 1),
            "a second interruption fails it"
        );
        assert_eq!(s.get("t", "b").unwrap().unwrap().status, Status::Failed);
        assert_eq!(
            s.get("t", "a").unwrap().unwrap().result.as_deref(),
            Some("{\"x\":1}")
        );
        assert_eq!(s.purge(21).unwrap(), 1, "a finished at 11");
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

    #[test]
    fn tenants_take_turns_and_none_holds_more_than_its_running_cap() {
        let (s, dir) = store("fair");
        for (id, tenant, at) in [
            ("a1", "a", 1),
            ("a2", "a", 2),
            ("a3", "a", 3),
            ("b1", "b", 4),
        ] {
            s.insert(&job(id, tenant, at)).unwrap();
        }
        let claim = |now| s.claim_next(now, 2).unwrap().map(|j| j.id);
        assert_eq!(claim(10).as_deref(), Some("a1"));
        assert_eq!(
            claim(11).as_deref(),
            Some("b1"),
            "b's turn, though a's are older"
        );
        assert_eq!(claim(12).as_deref(), Some("a2"));
        assert_eq!(claim(13), None, "a has 2 running: its third waits");
        assert!(s
            .finish("a1", Status::Completed, Some("1"), None, 14, None)
            .unwrap());
        assert_eq!(claim(15).as_deref(), Some("a3"));
        // Given back: queued again, first of its tenant, its attempt not counted.
        s.release("a3").unwrap();
        let a3 = s.get("a", "a3").unwrap().unwrap();
        assert_eq!(
            (a3.status, a3.attempts, a3.started_at),
            (Status::Queued, 0, None)
        );
        assert_eq!(claim(16).as_deref(), Some("a3"), "still its tenant's next");
        assert_eq!(s.get("a", "a3").unwrap().unwrap().attempts, 1);
        // A list carries neither the request nor the result.
        let listed = s.list("a", Some(Status::Completed), 10).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].result.as_deref(), listed[0].request.as_str()),
            (None, "")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_callback_carries_the_stored_result_and_settled_ones_are_purged() {
        let (s, dir) = store("deliveries");
        s.insert(&job("x", "t", 1)).unwrap();
        s.claim_next(2, 10).unwrap().unwrap();
        let d = Delivery {
            id: "d1".into(),
            execution_id: "x".into(),
            tenant: "t".into(),
            subject: "k".into(),
            url: "http://127.0.0.1:9/".into(),
            payload: r#"{"executionId":"x","result":null,"error":null}"#.into(),
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: 3,
            last_error: None,
            created_at: 3,
            delivered_at: None,
        };
        let result = r#"{"output":{"result":null}}"#;
        assert!(s
            .finish("x", Status::Completed, Some(result), None, 3, Some(&d))
            .unwrap());
        let due = s.due_deliveries(5, 10).unwrap();
        assert_eq!(
            due[0].payload,
            format!(r#"{{"executionId":"x","result":{result},"error":null}}"#)
        );
        assert_eq!(s.purge(100).unwrap(), 0, "a pending callback keeps both");
        s.delivery_failed("d1", None, "gone").unwrap();
        assert_eq!(s.deliveries("t", None, 10).unwrap().len(), 1);
        assert_eq!(
            s.purge(100).unwrap(),
            2,
            "the dead letter and its execution"
        );
        assert!(s.deliveries("t", None, 10).unwrap().is_empty());
        assert_eq!(
            with_result(r#"{"result":null}"#.into(), None),
            r#"{"result":null}"#
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
