//! The web console at `/console`: a static page (HTML, JS, CSS from `console/`, compiled
//! into the binary) that calls the documented `/v1` routes with the key the user pastes.
//!
//! It is served without the auth layer because it holds nothing: no key, no data, no route
//! of its own. Every answer carries a strict Content-Security-Policy (scripts, styles and
//! connections from this origin only; no inline code, no framing, no form posts), so what
//! the gateway returns (program output) can never run as script in the page.

use axum::http::header::{HeaderName, CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/app.js");
const STYLE: &str = include_str!("../../console/app.css");

/// The page's policy. `connect-src 'self'`: the console only fetches this origin's `/v1`
/// routes (it uses no WebSocket).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The console's routes, to merge into the open (unauthenticated) part of the router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(|| asset(INDEX, "text/html; charset=utf-8")))
        .route(
            "/console/",
            get(|| asset(INDEX, "text/html; charset=utf-8")),
        )
        .route(
            "/console/app.js",
            get(|| asset(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .route(
            "/console/app.css",
            get(|| asset(STYLE, "text/css; charset=utf-8")),
        )
}

async fn asset(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (
                HeaderName::from_static("content-security-policy"),
                CONTENT_SECURITY_POLICY,
            ),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
            (HeaderName::from_static("referrer-policy"), "no-referrer"),
            (HeaderName::from_static("x-frame-options"), "DENY"),
            // Revalidated on each load: a new gateway version's console is picked up.
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
