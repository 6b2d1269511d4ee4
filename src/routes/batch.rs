//! `POST /v1/execute/batch`: one program against many inputs (see `batch.rs`).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use std::time::Instant;

use crate::batch::{self, BatchRequest, BatchSummary};
use crate::domain::Scope;
use crate::error::ApiError;
use crate::routes::auth::Caller;
use crate::routes::strict::Strict;
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
    body: Result<Strict<BatchRequest>, ApiError>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Execute)?;
    let Strict(req) = body?;
    let streaming = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(NDJSON));
    let mut admitted = batch::admit(&state.invoker, &caller, req).await?;
    if !streaming {
        // The JSON answer keeps every result until the last item: bounded.
        admitted = admitted.with_result_budget(state.settings.limits.max_batch_result_bytes.get());
    }
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
    // Results are written as text straight from their raw JSON, never through a
    // `serde_json::Value` (whose depth limit a program's output must not meet here) and
    // never copied twice.
    if streaming {
        // One line per item as it finishes, then the summary. Nothing is kept after a
        // line is sent; if the client goes away, the stream is dropped and the items not
        // yet started never run.
        let lines = items
            .map(Some)
            .chain(futures_util::stream::once(async { None }))
            .map(move |item| {
                let mut text = match item {
                    Some(r) => {
                        summary.add(&r);
                        format!(r#"{{"type":"item","item":{}}}"#, to_text(&r))
                    }
                    None => {
                        finish(&mut summary, started);
                        format!(r#"{{"type":"summary","summary":{}}}"#, to_text(&summary))
                    }
                };
                text.push('\n');
                Ok::<_, std::convert::Infallible>(text)
            });
        return Ok(([(header::CONTENT_TYPE, NDJSON)], Body::from_stream(lines)).into_response());
    }
    // Each result is serialized once as it arrives and kept as text in its slot; the
    // answer is then streamed from the slots, so the whole answer is never built again.
    let mut slots: Vec<Option<String>> = vec![None; summary.total_items];
    let mut items = std::pin::pin!(items);
    while let Some(r) = items.next().await {
        summary.add(&r);
        let index = r.index;
        if let Some(slot) = slots.get_mut(index) {
            *slot = Some(to_text(&r));
        }
    }
    finish(&mut summary, started);
    let head = to_text(&summary);
    // `{…summary…,"results":[item,item,…]}`: the summary object, reopened.
    let head = format!("{},\"results\":[", head.strip_suffix('}').unwrap_or(&head));
    let parts = std::iter::once(head)
        .chain(slots.into_iter().flatten().enumerate().map(|(i, text)| {
            if i == 0 {
                text
            } else {
                format!(",{text}")
            }
        }))
        .chain(std::iter::once("]}".to_string()))
        .map(Ok::<_, std::convert::Infallible>);
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(futures_util::stream::iter(parts)),
    )
        .into_response())
}

/// One value as JSON text. The types here serialize raw JSON verbatim and cannot fail;
/// should one ever do, the answer says so instead of dropping a result silently.
fn to_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| {
        tracing::error!(error = %e, "a batch result could not be serialized");
        format!(
            r#"{{"error":{{"kind":"internal","message":"this result could not be serialized: {}"}}}}"#,
            e.to_string().replace(['"', '\\'], "'")
        )
    })
}

fn finish(summary: &mut BatchSummary, started: Instant) {
    summary.completed_at = chrono::Utc::now();
    summary.total_duration_ms = started.elapsed().as_millis() as u64;
    summary.avg_latency_ms = (summary.avg_latency_ms * 10.0).round() / 10.0;
}
