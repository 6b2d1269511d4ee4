//! Logs and traces.
//!
//! Logs: pretty for development, JSON for production; level from `RUST_LOG`. Every line
//! inside a request carries its `request_id` (the request span's field).
//!
//! Traces: exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, off
//! otherwise. Incoming W3C `traceparent` headers become the parent of the request span.

use axum::http::Request;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::OnceLock;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs logging (and OTLP tracing when `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
pub fn init(format: LogFormat) {
    init_with(format, "info,bollard=warn");
}

/// Like [`init`], with the filter used when `RUST_LOG` is not set. Only the first call in a
/// process takes effect.
pub fn init_with(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let fmt = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_test_writer()
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_test_writer().boxed(),
    };
    let otel = otlp_provider().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("codebeaker"))
            .with_filter(EnvFilter::new("info"))
    });
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init();
}

fn otlp_provider() -> Option<&'static SdkTracerProvider> {
    std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT")?;
    if let Some(p) = PROVIDER.get() {
        return Some(p);
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("codebeaker: OTLP exporter disabled: {e}");
            return None;
        }
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("codebeaker")
                .build(),
        )
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
    Some(PROVIDER.get_or_init(|| provider))
}

/// Exports buffered spans now (used at shutdown and by tests).
pub fn flush() {
    if let Some(p) = PROVIDER.get() {
        let _ = p.force_flush();
    }
}

/// The span of one HTTP request: method, route, request id, and the caller's trace as
/// parent when a `traceparent` header came in.
pub fn request_span<B>(req: &Request<B>) -> tracing::Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{} {}", req.method(), req.uri().path()),
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&opentelemetry_http::HeaderExtractor(req.headers()))
    });
    let _ = span.set_parent(parent);
    span
}
