//! `POST /v1/execute/batch`: one program against many inputs (see `batch.rs`).

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde_json::json;
use std::time::Instant;

use crate::batch::{self, BatchRequest, BatchSummary, ItemResult};
use crate::domain::Scope;
use crate::error::ApiError;
use crate::routes::auth::Caller;
use crate::state::AppState;

const NDJSON: &str = "application/x-ndjson";

#[utoipa::path(
    post, path = "/v1/execute/batch", request_body = BatchRequest,
    responses(
        (status = 200, description = "Every item's result in request order, and the summary (`results`, `batchId`, counts); with `Accept: application/x-ndjson`, one line per item as it finishes, then a summary line"),
        (status = 403, description = "maxConcurrency, timeoutMs or memoryLimitMb above the allowed maximum, or a language not allowed", body = crate::error::ErrorBody),
        (status = 413, description = "Too many items, or a body, code or input too large", body = crate::error::ErrorBody),
        (status = 422, description = "Empty batch, or an item without language or code", body = crate::error::ErrorBody),
        (status = 429, description = "The credential's concurrency is in use", body = crate::error::ErrorBody),
        (status = 503, description = "The gateway is full", body = crate::error::ErrorBody),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn batch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Result<Json<BatchRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Execute)?;
    let Json(req) = body?;
    let admitted = batch::admit(&state.invoker, &caller, req).await?;
    let started = Instant::now();
    let mut summary = BatchSummary {
        batch_id: admitted.plan().id().to_string(),
        total_items: admitted.plan().len(),
        concurrency: admitted.plan().concurrency(),
        started_at: chrono::Utc::now(),
        ..BatchSummary::default()
    };
    tracing::info!(batch_id = %summary.batch_id, subject = %caller.subject, items = summary.total_items, concurrency = summary.concurrency, "batch admitted");
    let items = batch::run(state.invoker.clone(), admitted);
    let streaming = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(NDJSON));
    if streaming {
        // One line per item as it finishes, then the summary. Nothing is kept after a
        // line is sent; if the client goes away, the stream is dropped and the items not
        // yet started never run.
        let lines = items
            .map(Some)
            .chain(futures_util::stream::once(async { None }))
            .map(move |item| {
                let line = match item {
                    Some(r) => {
                        summary.add(&r);
                        json!({"type": "item", "item": r})
                    }
                    None => {
                        finish(&mut summary, started);
                        json!({"type": "summary", "summary": &summary})
                    }
                };
                let mut text = line.to_string();
                text.push('\n');
                Ok::<_, std::convert::Infallible>(text)
            });
        return Ok(([(header::CONTENT_TYPE, NDJSON)], Body::from_stream(lines)).into_response());
    }
    let mut results: Vec<ItemResult> = items.collect().await;
    results.sort_by_key(|r| r.index);
    for r in &results {
        summary.add(r);
    }
    finish(&mut summary, started);
    let mut body = serde_json::to_value(&summary).unwrap_or_default();
    body["results"] = serde_json::to_value(&results).unwrap_or_default();
    Ok(Json(body).into_response())
}

fn finish(summary: &mut BatchSummary, started: Instant) {
    summary.completed_at = chrono::Utc::now();
    summary.total_duration_ms = started.elapsed().as_millis() as u64;
    summary.avg_latency_ms = (summary.avg_latency_ms * 10.0).round() / 10.0;
}
