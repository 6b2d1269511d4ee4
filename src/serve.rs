//! The accept loop: axum's router on hyper, with the connection limits `axum::serve` does
//! not offer.
//!
//! - **Header read timeout** (`server.header_read_timeout_ms`): a connection must deliver a
//!   request's complete headers within it, or it is closed (slowloris). hyper runs the
//!   same timer while a keep-alive connection waits for its next request, so an idle
//!   keep-alive connection is closed after it too.
//! - **Open connections** (`server.max_connections`): beyond it, a new connection is
//!   answered with one 503 JSON response and closed at once, so a flood of idle sockets
//!   cannot exhaust the process's descriptors.
//! - The body read timeout is a tower layer (`startup::router`), the WebSocket idle
//!   timeout lives in `jsonrpc.rs`.
//!
//! Shutdown is graceful: the loop stops accepting when `shutdown` fires, and the returned
//! future completes once every open connection has finished its in-flight request.

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// The refusal sent when `max_connections` are open: written straight to the socket, since
/// no hyper connection is started for it.
fn refusal() -> Vec<u8> {
    let body = r#"{"error":{"kind":"too_many_connections","message":"the gateway has too many open connections; retry"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `router` on `listener` until `shutdown`, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let full: Arc<[u8]> = refusal().into();
    let graceful = GracefulShutdown::new();
    loop {
        let (mut stream, _peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            crate::metrics::rejection("too_many_connections");
            let full = full.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&full)).await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(|req: Request<Incoming>| req.map(Body::new));
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
