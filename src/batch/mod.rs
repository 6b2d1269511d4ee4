//! Batch execution: one program (or several, in a mixed batch) against many inputs.
//!
//! A batch is validated whole before anything runs (every item's language, code, size and
//! limits), then admitted whole: it takes `concurrency` places of the gateway's admission
//! limit and of the caller's `max_concurrent` at once, or is refused (503 / 429) without
//! running anything. Items then run `concurrency` at a time, each on a clean container
//! from the pool, like `/v1/execute`; a failing item never fails the batch. Results come
//! back in request order (a JSON body), or one line per item as each finishes (NDJSON):
//! the stream holds no result after sending it, so memory stays bounded, and a client
//! that goes away stops the items not yet started.
//!
//! Rate limiting: a batch counts as one request against the caller's rate limit; its size
//! is bounded by `limits.max_batch_items` and its parallelism by `max_concurrent`.
//!
//! # How it works: one batch, step by step
//!
//! 1. `POST /v1/execute/batch` (`routes/batch.rs`) passes the same layers as
//!    `/v1/execute` (its own larger body limit, `authenticate`, the `execute` scope).
//! 2. [`admit`] validates every item through `requests::invocation` (so an item is judged
//!    exactly as a `/v1/execute` body would be) and checks its packages ([`plan`]), then
//!    takes the batch's concurrency in admission places and concurrency permits at once:
//!    all or nothing. A JSON answer (not NDJSON) also gets a result budget
//!    (`limits.max_batch_result_bytes`): the item that would pass it, and every later one,
//!    is not run (`result_budget_exceeded`).
//! 3. [`run`] starts `concurrency` workers on the pools' task tracker (`Pools::spawn`:
//!    shutdown waits for them). Each takes the next item in request order and runs it on a
//!    container it holds across items (`Pools::lease` → `Lease`, `pool/src/lease.rs`): one
//!    pool checkout per worker, not per item. The first item of a program on a container
//!    sends `{"prepare":{…}}` (the source written once, compiled once); every item after it
//!    is one `{"item":{…}}` line (input and limits) and one `ran` line back. The agent
//!    still runs each item in a fresh process and cleans the container before it reads the
//!    next line. For Go and C# only the first worker starts at once; the others start when
//!    its first item is done and find the binary in the shared compile cache, so a batch
//!    compiles once. A container that breaks, reaches `max_uses` or is OOM-killed is
//!    released and the worker leases another; an item whose container was gone before the
//!    item reached it (`PoolError::NotStarted`) runs again on another, at most three times.
//!    With `"isolation": "program"` a worker holds a resident instance instead and keeps
//!    up to `instances.pipeline_depth` items in flight on it (`call` lines, answered in
//!    order). A failed item with `stopOnFirstError` sets a flag that items not yet started
//!    check. Results go through a channel of `2 × concurrency`: a slow reader slows the
//!    workers; a reader that went away stops them after their current item.
//! 4. The route either collects the stream into one slot per index and answers one JSON
//!    body in request order, or turns each result into an NDJSON line as it comes (nothing
//!    kept; dropping the body stream on disconnect drops the items not yet started, while
//!    running ones finish in the pools' own tasks and their containers come back clean).

mod resident;

use codebeaker_pool::{Invocation, Lease};
use codebeaker_proto::RawJson;
use futures_util::stream::Stream;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::Instrument;

use crate::domain::Principal;
use crate::invoke::{ExecuteError, Invoker};
use crate::limits::{Admission, Concurrency, OwnedAdmissionSlot, Permit};
use crate::requests::{self, ExecuteRequest, RequestError, RunMode};
use codebeaker_pool::Isolation;

/// `POST /v1/execute/batch`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequest {
    /// The language of every item that does not name its own.
    pub language: Option<String>,
    /// The code of every item that does not carry its own.
    pub code: Option<String>,
    pub items: Vec<BatchItem>,
    /// Items run at once (default and maximum: the caller's `max_concurrent`, further
    /// capped by the language's pool size).
    #[serde(default, deserialize_with = "crate::json_int::option")]
    pub max_concurrency: Option<usize>,
    /// After the first failing item, items not yet started are skipped.
    #[serde(default)]
    pub stop_on_first_error: bool,
    /// Run-time limit per item, in milliseconds.
    #[serde(default, deserialize_with = "crate::json_int::option")]
    pub timeout_ms: Option<u64>,
    /// Memory limit per item, in MB.
    #[serde(default, deserialize_with = "crate::json_int::option")]
    pub memory_limit_mb: Option<u64>,
    /// `edge` (default) or `plain`, for every item.
    #[serde(default)]
    pub mode: RunMode,
    /// Packages every item's program imports (see `POST /v1/execute`).
    #[serde(default)]
    pub packages: Vec<String>,
    /// `call` (default) or `program` (see `POST /v1/execute`): with `program`, each worker
    /// runs its items on a resident instance, several in flight at once.
    #[serde(default)]
    #[schema(value_type = String)]
    pub isolation: codebeaker_pool::Isolation,
    /// The stdin of every item that does not bring its own.
    #[serde(default)]
    pub stdin: String,
    /// Every item's arguments (see `POST /v1/execute`).
    #[serde(default)]
    pub args: Vec<String>,
    /// Files written beside every item's program (see `POST /v1/execute`).
    #[serde(default)]
    pub files: Vec<requests::FileSpec>,
}

/// One input of a batch.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchItem {
    /// The caller's correlation id, echoed back.
    pub id: String,
    #[serde(default = "requests::empty_object")]
    #[schema(value_type = Object)]
    pub input: RawJson,
    /// This item's own language (a mixed batch).
    pub language: Option<String>,
    /// This item's own code (a mixed batch).
    pub code: Option<String>,
    /// This item's own stdin (instead of the batch's).
    pub stdin: Option<String>,
}

/// One item's outcome.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    pub id: String,
    /// Position in the request.
    pub index: usize,
    pub success: bool,
    /// True when the item did not run (`stopOnFirstError` after a failure, or the
    /// sandbox failed for it).
    pub skipped: bool,
    #[schema(value_type = Object)]
    pub output: RawJson,
    pub error: Option<ItemError>,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    pub latency_ms: u64,
    pub cache_hit: Option<bool>,
}

impl ItemResult {
    /// The bytes this result keeps: what a result budget counts.
    pub fn result_bytes(&self) -> usize {
        self.output.get().len() + self.stdout.len() + self.stderr.len() + self.id.len()
    }
}

/// Why an item did not succeed: a program error kind, `skipped`, `result_budget_exceeded`
/// or `sandbox_failure`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemError {
    pub kind: &'static str,
    pub message: String,
}

/// The whole batch, after its items.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchSummary {
    pub batch_id: String,
    pub total_items: usize,
    pub success_count: usize,
    pub failure_count: usize,
    pub skipped_count: usize,
    pub total_duration_ms: u64,
    pub avg_latency_ms: f64,
    pub concurrency: usize,
    #[schema(value_type = String)]
    pub started_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = String)]
    pub completed_at: chrono::DateTime<chrono::Utc>,
}

impl BatchSummary {
    /// Counts one item in.
    pub fn add(&mut self, r: &ItemResult) {
        if r.skipped {
            self.skipped_count += 1;
        } else if r.success {
            self.success_count += 1;
        } else {
            self.failure_count += 1;
        }
        if !r.skipped {
            let ran = (self.success_count + self.failure_count) as f64;
            self.avg_latency_ms += (r.latency_ms as f64 - self.avg_latency_ms) / ran;
        }
    }
}

/// A validated batch, ready to run.
pub struct Plan {
    id: String,
    items: Vec<(String, Invocation)>,
    concurrency: usize,
    stop_on_first_error: bool,
    /// Bytes of results the batch may hand back (see [`Plan::with_result_budget`]).
    result_budget: Option<usize>,
}

/// A validated batch, admitted (its admission places and concurrency permits held).
pub struct AdmittedBatch {
    plan: Plan,
    admission: Vec<OwnedAdmissionSlot>,
    permits: Vec<Permit>,
}

impl Plan {
    /// The batch's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How many items run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// How many items the batch has.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch has no items (never true: an empty batch is refused).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bounds the bytes of results (output, stdout and stderr of every item) the batch
    /// hands back, for a caller that keeps them all (a JSON answer, an async execution's
    /// stored result). The item that would pass the budget, and every item after it, is
    /// not kept (and not run): it gets `result_budget_exceeded`.
    pub fn with_result_budget(mut self, bytes: usize) -> Plan {
        self.result_budget = Some(bytes);
        self
    }
}

impl AdmittedBatch {
    /// The validated batch.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// See [`Plan::with_result_budget`].
    pub fn with_result_budget(mut self, bytes: usize) -> AdmittedBatch {
        self.plan.result_budget = Some(bytes);
        self
    }
}

/// Validates every item and admits the batch (all or nothing).
pub async fn admit(
    invoker: &Invoker,
    caller: &Principal,
    req: BatchRequest,
) -> Result<AdmittedBatch, ExecuteError> {
    if !req.packages.is_empty() && !invoker.pools.unbuilt_variants().is_empty() {
        // A variant built since the start is served without a restart.
        invoker.pools.refresh_variants().await;
    }
    let plan = plan(invoker, caller, req)?;
    let (admission, permits) = hold(
        &invoker.admission,
        &invoker.concurrency,
        caller,
        plan.concurrency,
    )
    .await?;
    Ok(AdmittedBatch {
        plan,
        admission,
        permits,
    })
}

/// Takes `n` places of the gateway's admission limit, then `n` of the caller's
/// `max_concurrent`: all of them, or none (a refusal drops the places already taken).
async fn hold(
    admission: &Arc<Admission>,
    concurrency: &Concurrency,
    caller: &Principal,
    n: usize,
) -> Result<(Vec<OwnedAdmissionSlot>, Vec<Permit>), ExecuteError> {
    let mut admitted = Vec::with_capacity(n);
    for _ in 0..n {
        admitted.push(
            admission
                .clone()
                .try_admit_owned()
                .ok_or(ExecuteError::Shed)?,
        );
    }
    let mut permits = Vec::with_capacity(n);
    for _ in 0..n {
        permits.push(
            concurrency
                .acquire(&caller.subject, caller.quota.max_concurrent)
                .await?
                .ok_or(ExecuteError::ConcurrencyLimited(
                    caller.quota.max_concurrent,
                ))?,
        );
    }
    Ok((admitted, permits))
}

/// Validates every item (the queue of async executions admits batches by itself).
pub fn plan(
    invoker: &Invoker,
    caller: &Principal,
    mut req: BatchRequest,
) -> Result<Plan, RequestError> {
    let settings = &invoker.settings;
    let max_items = settings.limits.max_batch_items.get();
    if req.items.is_empty() {
        return Err(RequestError::Invalid("items must not be empty".into()));
    }
    if req.items.len() > max_items {
        return Err(RequestError::TooLarge {
            what: "items",
            size: req.items.len(),
            limit: max_items,
        });
    }
    let max_concurrent = caller.quota.max_concurrent as usize;
    let asked = req.max_concurrency.unwrap_or(max_concurrent);
    if asked == 0 {
        return Err(RequestError::Invalid(
            "maxConcurrency must be positive".into(),
        ));
    }
    if asked > max_concurrent {
        return Err(RequestError::LimitExceeded(format!(
            "maxConcurrency {asked} is above this credential's max_concurrent of {max_concurrent}"
        )));
    }
    // The batch's stdin, args and files, checked once and shared by every item (a 10,000
    // item batch does not copy its files 10,000 times). The paths are checked against each
    // item's own program file below.
    let extras = requests::extras(
        std::mem::take(&mut req.stdin),
        std::mem::take(&mut req.args),
        std::mem::take(&mut req.files),
        settings,
        "",
    )?;
    let batch_stdin = extras.stdin;
    let args: std::sync::Arc<[String]> = extras.args.into();
    let files: std::sync::Arc<[codebeaker_proto::ProgramFile]> = extras.files.into();
    let mut items = Vec::with_capacity(req.items.len());
    for (i, item) in req.items.into_iter().enumerate() {
        let language = item.language.or_else(|| req.language.clone());
        let code = item.code.or_else(|| req.code.clone());
        let (Some(language), Some(code)) = (language, code) else {
            return Err(RequestError::Invalid(format!(
                "items[{i}] ({:?}) has no language or code, and the batch gives none",
                item.id
            )));
        };
        let one = ExecuteRequest {
            language,
            code,
            input: item.input,
            timeout_ms: req.timeout_ms,
            memory_limit_mb: req.memory_limit_mb,
            mode: req.mode,
            packages: req.packages.clone(),
            isolation: req.isolation,
            stdin: String::new(),
            args: Vec::new(),
            files: Vec::new(),
        };
        let stdin = item.stdin.unwrap_or_else(|| batch_stdin.clone());
        let inv = requests::invocation(one, settings, invoker.pools.recipes(), caller)
            .and_then(|mut inv| {
                requests::packages_available(&invoker.pools, &inv)?;
                let recipe = &invoker
                    .pools
                    .recipes()
                    .get(&inv.language)
                    .map(|d| d.recipe.file.clone());
                requests::extras_for_item(
                    &stdin,
                    &files,
                    recipe.as_deref().unwrap_or(""),
                    settings,
                )?;
                if inv.isolation == Isolation::Program
                    && !(stdin.is_empty() && args.is_empty() && files.is_empty())
                {
                    return Err(RequestError::Invalid(
                        "stdin, args and files need a fresh process (\"isolation\": \"call\")"
                            .into(),
                    ));
                }
                inv.stdin = stdin;
                inv.args = args.clone();
                inv.files = files.clone();
                Ok(inv)
            })
            .map_err(|e| match e {
                RequestError::Invalid(m) => RequestError::Invalid(format!("items[{i}]: {m}")),
                other => other,
            })?;
        items.push((item.id, inv));
    }
    // Never more at once than the caller's tenant may hold of the largest pool the batch
    // uses (its share, with tenant affinity): more workers would only queue.
    let pool_cap = items
        .iter()
        .filter_map(|(_, inv)| invoker.pools.tenant_share(&inv.language, &inv.packages))
        .max()
        .unwrap_or(1);
    let concurrency = asked.min(pool_cap).min(items.len()).max(1);
    Ok(Plan {
        id: uuid::Uuid::new_v4().to_string(),
        items,
        concurrency,
        stop_on_first_error: req.stop_on_first_error,
        result_budget: None,
    })
}

/// Runs an admitted batch: item results as each finishes (any order; each has its
/// `index`). Dropping the stream stops the items not yet started; the running ones
/// finish on their containers.
pub fn run(invoker: Arc<Invoker>, batch: AdmittedBatch) -> impl Stream<Item = ItemResult> {
    // The admission and permits live as long as the stream.
    let guards = Arc::new((batch.admission, batch.permits));
    run_plan(invoker, batch.plan, guards)
}

/// Runs a validated batch; `guards` are held until the last item has finished.
///
/// `concurrency` workers each lease a container and feed it item after item
/// ([`codebeaker_pool::Lease`]): the program is prepared (written and compiled) once per
/// container, and each item costs one line to the agent and one back, with no pool round
/// trip. A worker takes the next item in request order, so `stopOnFirstError` skips
/// exactly the items not yet started. Results go out through a small channel: a slow
/// reader slows the workers instead of piling results up, and a reader that goes away
/// stops them after their current item.
pub fn run_plan<G: Send + Sync + 'static>(
    invoker: Arc<Invoker>,
    batch: Plan,
    guards: Arc<G>,
) -> impl Stream<Item = ItemResult> {
    let concurrency = batch.concurrency;
    let span =
        tracing::info_span!("batch", batch_id = %batch.id, items = batch.items.len(), concurrency);
    let (tx, rx) = tokio::sync::mpsc::channel(concurrency * 2);
    // A compiled program is compiled once per batch: the other workers start when the
    // first item is done, and find its binary in the shared compile cache.
    let compiled_first = batch.items.first().is_some_and(|(_, inv)| {
        invoker
            .pools
            .recipes()
            .get(&inv.language)
            .is_some_and(|d| d.recipe.is_compiled())
    });
    let resident = batch
        .items
        .first()
        .is_some_and(|(_, inv)| inv.isolation == Isolation::Program);
    let tenant: Arc<str> = batch
        .items
        .first()
        .map_or_else(|| Arc::from(""), |(_, inv)| inv.tenant.clone());
    let shared = Arc::new(BatchRunState {
        tenant,
        queue: Mutex::new(batch.items.into_iter().enumerate()),
        stop: AtomicBool::new(false),
        stop_on_first_error: batch.stop_on_first_error,
        budget: batch.result_budget.map(Budget::new),
    });
    for gate in Gate::all(concurrency, !compiled_first) {
        if resident {
            let work = resident::resident_worker(
                invoker.clone(),
                shared.clone(),
                tx.clone(),
                gate,
                guards.clone(),
            );
            invoker.pools.spawn(work.instrument(span.clone()));
        } else {
            let work = worker(
                invoker.clone(),
                shared.clone(),
                tx.clone(),
                gate,
                guards.clone(),
            );
            invoker.pools.spawn(work.instrument(span.clone()));
        }
    }
    let mut rx = rx;
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// What a batch's workers share: the items not yet taken, in request order.
struct BatchRunState {
    /// Whose batch it is (every item is the caller's).
    tenant: Arc<str>,
    queue: Mutex<std::iter::Enumerate<std::vec::IntoIter<(String, Invocation)>>>,
    stop: AtomicBool,
    stop_on_first_error: bool,
    budget: Option<Budget>,
}

/// What is left of a batch's result budget; once spent, it stays spent.
struct Budget {
    limit: usize,
    /// Bytes left; `None` once an item did not fit.
    left: Mutex<Option<usize>>,
}

impl Budget {
    fn new(limit: usize) -> Budget {
        Budget {
            limit,
            left: Mutex::new(Some(limit)),
        }
    }

    /// Takes `bytes` from the budget, or spends it for good when they do not fit.
    fn take(&self, bytes: usize) -> bool {
        let mut left = self.left.lock().unwrap_or_else(|p| p.into_inner());
        match *left {
            Some(n) if bytes <= n => {
                *left = Some(n - bytes);
                true
            }
            _ => {
                *left = None;
                false
            }
        }
    }

    fn is_spent(&self) -> bool {
        self.left
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }
}

/// The first worker opens the gate after its first item; the others wait for it.
struct Gate {
    done: Option<tokio::sync::watch::Sender<bool>>,
    wait: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Gate {
    /// One gate per worker, the first worker's first: open from the start when `open`.
    fn all(workers: usize, open: bool) -> Vec<Gate> {
        let (done, wait) = tokio::sync::watch::channel(open);
        let mut done = Some(done);
        (0..workers)
            .map(|n| Gate {
                done: if n == 0 { done.take() } else { None },
                wait: (n > 0).then(|| wait.clone()),
            })
            .collect()
    }

    /// Waits until the gate is open (at once for the first worker).
    async fn pass(&mut self) {
        if let Some(mut wait) = self.wait.take() {
            // An error means the first worker is gone: go ahead.
            let _ = wait.wait_for(|open| *open).await;
        }
    }

    /// Opens the gate (the first worker, after its first item; a no-op for the others).
    fn open(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(true);
        }
    }
}

async fn worker<G>(
    invoker: Arc<Invoker>,
    shared: Arc<BatchRunState>,
    tx: tokio::sync::mpsc::Sender<ItemResult>,
    mut gate: Gate,
    _guards: Arc<G>,
) {
    gate.pass().await;
    let mut lease: Option<Lease> = None;
    while !tx.is_closed() {
        let next = shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next();
        let Some((index, (id, inv))) = next else {
            break;
        };
        let spent = shared.budget.as_ref().filter(|b| b.is_spent());
        let r = if let Some(b) = spent {
            over_budget(index, id, b.limit)
        } else if shared.stop.load(Ordering::Relaxed) {
            skipped(index, id)
        } else {
            let started = Instant::now();
            let fallback_id = id.clone();
            let run = run_item(&invoker, &shared, &mut lease, index, id, inv);
            let r = match std::panic::AssertUnwindSafe(run).catch_unwind().await {
                Ok(r) => r,
                Err(_) => {
                    // A bug, not the program's doing: this item says so and the batch goes
                    // on; the container it was on is not trusted again.
                    tracing::error!(index, "a batch item's handling panicked");
                    lease = None;
                    sandbox_failure(index, fallback_id, started)
                }
            };
            crate::metrics::batch_item(if r.success { "success" } else { "failure" });
            r
        };
        gate.open();
        if tx.send(r).await.is_err() {
            break;
        }
    }
    if let Some(l) = lease {
        l.release().await;
    }
}

/// Runs one item on the worker's lease (taking a new one when needed) and judges it.
async fn run_item(
    invoker: &Invoker,
    shared: &BatchRunState,
    lease: &mut Option<Lease>,
    index: usize,
    id: String,
    inv: Invocation,
) -> ItemResult {
    let started = Instant::now();
    let language = inv.language.clone();
    if lease
        .as_ref()
        .is_some_and(|l| !l.serves(&inv) || !l.is_usable())
    {
        if let Some(l) = lease.take() {
            l.release().await;
        }
    }
    // A container found dead before the item reached it is replaced and the item
    // sent again (nothing ran); bounded, so a broken engine still ends the batch.
    let mut ran = Err(codebeaker_pool::PoolError::ShuttingDown);
    for _attempt in 0..3 {
        if lease.is_none() {
            match invoker
                .pools
                .lease(&language, &inv.packages, &inv.tenant)
                .await
            {
                Ok(l) => *lease = Some(l),
                Err(e) => {
                    ran = Err(e);
                    break;
                }
            }
        }
        let Some(l) = lease.as_mut() else { break };
        let queue_wait = l.queue_wait;
        l.queue_wait = std::time::Duration::ZERO;
        ran = l.run(&inv).await.map(|mut ex| {
            ex.queue_wait = queue_wait;
            ex
        });
        match &ran {
            Err(codebeaker_pool::PoolError::NotStarted { .. }) => {
                tracing::warn!("a batch item's container was gone before the item reached it; retrying on another");
                if let Some(l) = lease.take() {
                    l.release().await;
                }
            }
            _ => break,
        }
    }
    judge(shared, index, id, language, ran, started)
}

/// Turns what the pool gave back for an item into its result, charging the result budget
/// and raising `stopOnFirstError`'s flag.
fn judge(
    shared: &BatchRunState,
    index: usize,
    id: String,
    language: codebeaker_proto::Language,
    ran: Result<codebeaker_pool::RunOutput, codebeaker_pool::PoolError>,
    started: Instant,
) -> ItemResult {
    let r = match ran {
        Ok(ex) => {
            // Recorded as a call is, without what only a call's answer needs (its id).
            crate::invoke::record(&language, &shared.tenant, &ex, started);
            let o = ex.outcome;
            ItemResult {
                id,
                index,
                success: o.error.is_none(),
                skipped: false,
                output: o.output.unwrap_or_default(),
                error: o.error.map(|e| ItemError {
                    kind: e.kind.as_str(),
                    message: e.message,
                }),
                stdout: o.stdout,
                stderr: o.stderr,
                exit_code: o.exit_code,
                latency_ms: started.elapsed().as_millis() as u64,
                cache_hit: o.cache_hit,
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "a batch item could not run");
            sandbox_failure(index, id, started)
        }
    };
    let r = match &shared.budget {
        Some(b) if !b.take(r.result_bytes()) => over_budget(r.index, r.id, b.limit),
        _ => r,
    };
    if !r.success && shared.stop_on_first_error {
        shared.stop.store(true, Ordering::Relaxed);
    }
    r
}

fn sandbox_failure(index: usize, id: String, started: Instant) -> ItemResult {
    ItemResult {
        id,
        index,
        success: false,
        skipped: false,
        output: RawJson::null(),
        error: Some(ItemError {
            kind: "sandbox_failure",
            message: "the sandbox failed for this item; it was not your program's fault".into(),
        }),
        stdout: String::new(),
        stderr: String::new(),
        exit_code: None,
        latency_ms: started.elapsed().as_millis() as u64,
        cache_hit: None,
    }
}

/// An item that has no result of its own: not run (or not kept) for `kind`'s reason.
pub fn not_run(index: usize, id: String, kind: &'static str, message: String) -> ItemResult {
    crate::metrics::batch_item("skipped");
    ItemResult {
        id,
        index,
        success: false,
        skipped: true,
        output: RawJson::null(),
        error: Some(ItemError { kind, message }),
        stdout: String::new(),
        stderr: String::new(),
        exit_code: None,
        latency_ms: 0,
        cache_hit: None,
    }
}

/// An item whose result did not fit the batch's result budget (not run, or run and not
/// kept).
fn over_budget(index: usize, id: String, limit: usize) -> ItemResult {
    not_run(
        index,
        id,
        "result_budget_exceeded",
        format!(
            "the batch's results reached limits.max_batch_result_bytes ({limit} bytes); \
             this item's result was not kept: send the batch with \
             `Accept: application/x-ndjson` to stream results without a budget, or in smaller batches"
        ),
    )
}

fn skipped(index: usize, id: String) -> ItemResult {
    not_run(
        index,
        id,
        "skipped",
        "not run: an earlier item failed and stopOnFirstError is set".into(),
    )
}

#[cfg(test)]
mod tests;
