//! Prometheus metrics (`codebeaker_*`), through the `metrics` facade.
//!
//! Labels stay low-cardinality: route templates, languages, outcomes, reasons. Never a key,
//! a code hash or an execution id.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .expect("non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by an embedding test); ours
            // then simply records nothing, which is not worth failing startup over.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Drains the histograms' raw samples into their buckets every `every` until `shutdown`.
/// The recorder keeps every sample until a scrape or an upkeep: without this, a gateway
/// nobody scrapes grows by ~34 bytes per request for ever (issue 25).
pub async fn upkeep(
    handle: PrometheusHandle,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => handle.run_upkeep(),
        }
    }
}

/// Middleware: request count and duration by route template, method and status.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    counter!("codebeaker_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    histogram!("codebeaker_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}

/// A refused request: `auth`, `rate_limit`, `concurrency`, `shed`, `forbidden`.
pub fn rejection(reason: &'static str) {
    counter!("codebeaker_rejections_total", "reason" => reason).increment(1);
}

/// A connection closed by the server for holding its slot without a request for the
/// header read timeout (silent sockets, half HTTP/2 prefaces, idle keep-alives).
pub fn idle_connection_closed() {
    counter!("codebeaker_idle_connections_closed_total").increment(1);
}

/// One finished invocation.
pub fn invocation(
    language: String,
    outcome: &'static str,
    queue_wait: Duration,
    run: Duration,
    total: Duration,
    cache_hit: Option<bool>,
) {
    counter!("codebeaker_invocations_total", "language" => language.clone(), "outcome" => outcome)
        .increment(1);
    histogram!("codebeaker_queue_wait_seconds", "language" => language.clone())
        .record(queue_wait.as_secs_f64());
    histogram!("codebeaker_container_run_seconds", "language" => language.clone())
        .record(run.as_secs_f64());
    histogram!("codebeaker_invocation_duration_seconds", "language" => language.clone())
        .record(total.as_secs_f64());
    if let Some(hit) = cache_hit {
        let result = if hit { "hit" } else { "miss" };
        counter!("codebeaker_compile_cache_total", "language" => language, "result" => result)
            .increment(1);
    }
}

/// One invocation of `tenant`'s that ran, by outcome: each tenant (the compatibility APIs'
/// anonymous caller included) shows as its own series. Tenants are the operator's (keys
/// and token issuers), so the label's values stay few.
pub fn tenant_invocation(tenant: &str, outcome: &'static str) {
    counter!("codebeaker_tenant_invocations_total", "tenant" => tenant.to_string(), "outcome" => outcome)
        .increment(1);
}

/// What `/readyz` says, at scrape time, for alerts: the engine answers (`engine_up`),
/// the gateway takes traffic (`ready`), and the sessions open on this replica.
pub fn readiness(engine_up: bool, ready: bool, sessions_open: usize) {
    gauge!("codebeaker_engine_up").set(if engine_up { 1.0 } else { 0.0 });
    gauge!("codebeaker_ready").set(if ready { 1.0 } else { 0.0 });
    gauge!("codebeaker_sessions_open").set(sessions_open as f64);
}

/// Pool gauges and lifecycle counters, set from a snapshot at scrape time.
pub fn pools(
    status: &[codebeaker_pool::PoolStatus],
    admitted: usize,
    compile_cache_bytes: Option<u64>,
    health: &codebeaker_pool::HealthSnapshot,
) {
    // Every state of every language is set, so a state that emptied reads 0, not its
    // last value.
    for language in status.iter().map(|s| s.language.name().to_string()) {
        for state in [
            "created",
            "running",
            "paused",
            "restarting",
            "removing",
            "exited",
            "dead",
        ] {
            let n = health
                .docker_states
                .iter()
                .find(|(l, s, _)| *l == language && s == state)
                .map_or(0, |(_, _, n)| *n);
            gauge!("codebeaker_docker_containers", "language" => language.clone(), "state" => state)
                .set(n as f64);
        }
    }
    counter!("codebeaker_engine_event_reconnects_total").absolute(health.event_reconnects);
    counter!("codebeaker_reconcile_removals_total").absolute(health.reconcile_removals);
    counter!("codebeaker_retried_calls_total").absolute(health.retried_calls);
    if let Some(bytes) = compile_cache_bytes {
        gauge!("codebeaker_compile_cache_bytes").set(bytes as f64);
    }
    for s in status {
        // `pool` tells a language's own pool (`python`) from its variants' (`python-data`).
        let (l, p) = (s.language.name().to_string(), s.name.clone());
        for (state, v) in [
            ("idle", s.idle),
            ("busy", s.busy),
            ("warming", s.warming),
            ("total", s.total),
        ] {
            gauge!("codebeaker_pool_containers", "language" => l.clone(), "pool" => p.clone(), "state" => state)
                .set(v as f64);
        }
        gauge!("codebeaker_pool_tenants", "language" => l.clone(), "pool" => p.clone())
            .set(s.tenants as f64);
        let lc = &s.lifecycle;
        counter!("codebeaker_containers_created_total", "language" => l.clone(), "pool" => p.clone())
            .absolute(lc.created);
        counter!("codebeaker_containers_recycled_total", "language" => l.clone(), "pool" => p.clone())
            .absolute(lc.recycled);
        for (reason, v) in [
            ("max_uses", lc.retired_max_uses),
            ("max_age", lc.retired_max_age),
            ("idle", lc.retired_idle),
            ("reclaimed", lc.retired_reclaimed),
            ("failure", lc.retired_failure),
        ] {
            counter!("codebeaker_containers_retired_total", "language" => l.clone(), "pool" => p.clone(), "reason" => reason)
                .absolute(v);
        }
    }
    gauge!("codebeaker_admitted_invocations").set(admitted as f64);
}

/// Resident program instances (`"isolation": "program"`), set at scrape time: kept idle
/// now, and started in all (a runner replaced inside its container is not a new one).
pub fn instances(idle: usize, started: u64) {
    gauge!("codebeaker_resident_instances_idle").set(idle as f64);
    counter!("codebeaker_resident_instances_started_total").absolute(started);
}

/// One batch item: `success`, `failure` or `skipped`.
pub fn batch_item(outcome: &'static str) {
    counter!("codebeaker_batch_items_total", "outcome" => outcome).increment(1);
}

/// An async execution reached a final status.
pub fn execution_finished(status: &'static str) {
    counter!("codebeaker_executions_total", "status" => status).increment(1);
}

/// The async queue's depth and the age of its oldest execution, at scrape time.
pub fn execution_queue(depth: usize, oldest: Option<Duration>) {
    gauge!("codebeaker_execution_queue_depth").set(depth as f64);
    gauge!("codebeaker_execution_queue_oldest_seconds")
        .set(oldest.map_or(0.0, |d| d.as_secs_f64()));
}

/// A webhook delivery attempt: `delivered`, `retried` or `dead`.
pub fn webhook_delivery(outcome: &'static str) {
    counter!("codebeaker_webhook_deliveries_total", "outcome" => outcome).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    }

    /// The guard of issue 25: histogram samples do not pile up between scrapes. Four
    /// million samples kept raw would be ~34 MB; with the upkeep task they are buckets.
    #[tokio::test]
    async fn histogram_samples_are_drained_without_a_scrape() {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[0.001, 0.01, 0.1, 1.0])
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(upkeep(
            handle.clone(),
            std::time::Duration::from_millis(10),
            stop.clone(),
        ));
        let before = rss();
        for _ in 0..400 {
            metrics::with_local_recorder(&recorder, || {
                for i in 0..10_000 {
                    metrics::histogram!("t_seconds").record(i as f64 * 1e-4);
                }
            });
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let grown = rss().saturating_sub(before);
        stop.cancel();
        let _ = task.await;
        assert!(
            grown < 12 * 1024 * 1024,
            "4 million samples left {} MB behind",
            grown / (1024 * 1024)
        );
        assert!(handle.render().contains("t_seconds_count 4000000"));
    }
}
