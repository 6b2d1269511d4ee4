//! JSON-RPC 2.0 over WebSocket at `/ws/jsonrpc`, wire-compatible with the CodeBeaker
//! protocol the Loopai client speaks: `session.create`, `session.execute`, `session.list`,
//! `session.close` and `execution.run`, with batches, notifications, and several requests
//! in flight on one socket (responses are matched by id). `execute_shell` with
//! `stream: true` also sends `session.output` notifications before its response.

use crate::failure::{Class, Failure};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Credential;
use crate::domain::{Principal, Scope};
use crate::error::ApiError;
use crate::limits::RateError;
use crate::requests::{CreateSession, ExecuteRequest};
use crate::routes::auth::Caller;
use crate::routes::forward::{self, Route};
use crate::sessions::commands::{self, codes, Command};
use crate::state::AppState;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

/// An error response's `error` member, and the rejection it counts as (if any).
#[derive(Debug)]
pub struct RpcError {
    code: i64,
    message: String,
    rejection: Option<&'static str>,
}

fn rpc_err(code: i64, message: impl Into<String>) -> RpcError {
    RpcError {
        code,
        message: message.into(),
        rejection: None,
    }
}

impl RpcError {
    fn rejected(mut self, reason: &'static str) -> Self {
        self.rejection = Some(reason);
        self
    }

    /// Our fault: the details go to the log, the caller gets a retry hint.
    fn sandbox(e: &dyn std::error::Error) -> Self {
        tracing::error!(error = %e, source = ?e.source(), "a JSON-RPC request failed in the sandbox");
        rpc_err(codes::SERVER_ERROR, "the sandbox failed; retry")
    }
}

// This transport's one mapping from class plus kind (HTTP's is in error.rs).

/// The JSON-RPC code of a refusal: by kind where JSON-RPC has its own code, else by class.
fn code_of(kind: &str, class: Class) -> i64 {
    match kind {
        "session_not_found" => codes::SESSION_NOT_FOUND,
        "session_busy" => codes::SESSION_BUSY,
        "session_limit_reached" => codes::SESSION_LIMIT_REACHED,
        "session_lost" => codes::SESSION_LOST,
        "session_unavailable" => codes::SESSION_UNAVAILABLE,
        "unauthenticated" | "forbidden" | "limit_exceeded" => codes::UNAUTHORIZED,
        "malformed_json" => PARSE_ERROR,
        _ => match class {
            Class::Caller => INVALID_PARAMS,
            Class::Overload { .. } => codes::OVERLOADED,
            Class::Internal { .. } | Class::Unavailable => codes::SERVER_ERROR,
        },
    }
}

impl<E: Failure> From<E> for RpcError {
    fn from(e: E) -> Self {
        let kind = e.kind();
        let class = e.class();
        if let Class::Internal { .. } = class {
            // Our fault: the details go to the log, the caller gets a retry hint.
            return RpcError::sandbox(&e);
        }
        RpcError {
            code: code_of(kind, class),
            message: e.to_string(),
            rejection: crate::failure::rejection_reason(kind),
        }
    }
}

/// `GET /ws/jsonrpc` (upgrade). Authentication happened on the upgrade request.
///
/// The same credential is checked again for every message, so a revoked key or an expired
/// token stops working on an open socket too; every request counts against the rate limit.
pub async fn upgrade(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    uri: Uri,
    ws: WebSocketUpgrade,
) -> Response {
    let max = state.settings.limits.max_body_bytes;
    // The same credential the auth layer accepted: a header, or the URL's `api_key` /
    // `access_token` (the Loopai client can only put it there).
    let credential = crate::routes::auth::credential(&headers, uri.query(), true)
        .ok()
        .flatten();
    // Tracked: the upgraded socket outlives the HTTP request, and shutdown must wait for it.
    let tasks = state.tasks.clone();
    ws.max_message_size(max.get())
        .on_upgrade(move |socket| tasks.track_future(serve(socket, state, caller, credential)))
}

/// Requests one socket may have in flight. Past it the socket is not read until one
/// finishes: a client that keeps sending is slowed down, never buffered.
const MAX_IN_FLIGHT: usize = 4;

/// Bytes of replies and notifications waiting for one socket's writer. A reply larger
/// than this waits for the queue to empty, then goes alone.
const OUTBOX_BYTES: usize = 16 * 1024 * 1024;

/// One socket's outgoing frames: a queue bounded in bytes. A handler waits for room; a
/// streamed-output notification that finds none is dropped (the command's reply carries
/// the whole output). Once the writer has gone, every send fails at once.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<(String, OwnedSemaphorePermit)>,
    room: Arc<Semaphore>,
}

impl Outbox {
    fn new() -> (
        Outbox,
        mpsc::UnboundedReceiver<(String, OwnedSemaphorePermit)>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(OUTBOX_BYTES));
        (Outbox { tx, room }, rx)
    }

    fn cost(text: &str) -> u32 {
        text.len().clamp(1, OUTBOX_BYTES) as u32
    }

    /// Queues a reply, waiting for room.
    pub async fn send(&self, text: String) -> bool {
        let Ok(permit) = self
            .room
            .clone()
            .acquire_many_owned(Self::cost(&text))
            .await
        else {
            return false;
        };
        self.tx.send((text, permit)).is_ok()
    }

    /// Queues a notification if there is room now.
    pub fn try_send(&self, text: String) -> bool {
        let Ok(permit) = self.room.clone().try_acquire_many_owned(Self::cost(&text)) else {
            return false;
        };
        self.tx.send((text, permit)).is_ok()
    }
}

/// Why a socket's read loop ended.
enum Ended {
    ByClient,
    /// The client sent a Close frame: the handshake wants ours back, or the client waits
    /// for it (the npm `ws` package for 30 s) and its close ends as abnormal (1006).
    ClosedByClient,
    Shutdown,
    CredentialRevoked,
    /// Nothing (no message, no pong) for `server.websocket_idle_timeout_ms`.
    Idle,
    /// The client stopped reading: a frame could not be written for the idle timeout.
    NotReading,
}

async fn serve(
    socket: WebSocket,
    state: AppState,
    caller: Arc<Principal>,
    credential: Option<Credential>,
) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = Outbox::new();
    let (close_tx, close_rx) = tokio::sync::oneshot::channel::<CloseFrame>();
    let ping_every = state.settings.server.websocket_ping_interval_ms;
    let idle_limit = state.settings.server.websocket_idle_timeout_ms;
    let stalled = CancellationToken::new();
    let writer = {
        let (stalled, room) = (stalled.clone(), tx.room.clone());
        tokio::spawn(async move {
            // Pings keep a quiet but live client connected (its pongs count as activity)
            // and find the dead ones.
            let mut ping =
                tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
            loop {
                let (out, _room) = tokio::select! {
                    next = rx.recv() => match next {
                        Some((text, permit)) => (Message::Text(text.into()), Some(permit)),
                        None => break,
                    },
                    _ = ping.tick() => (Message::Ping(Default::default()), None),
                };
                // A client that does not read is not waited for beyond the idle timeout.
                match tokio::time::timeout(idle_limit, sink.send(out)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {
                        stalled.cancel();
                        break;
                    }
                }
            }
            // Handlers still waiting for room give up at once.
            room.close();
            if stalled.is_cancelled() {
                return;
            }
            // Every reply is out; say why the socket closes, if the server closes it.
            if let Ok(frame) = close_rx.await {
                let _ = sink.send(Message::Close(Some(frame))).await;
            }
            // Flushes a close reply the protocol queued (a client's Close is answered).
            let _ = sink.close().await;
        })
    };
    // This socket's requests in flight: at shutdown they finish (within the gateway's
    // grace) and their replies are sent before the socket is closed.
    let inflight = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut last_heard = tokio::time::Instant::now();
    let ended = loop {
        // Backpressure: no more is read from a client with MAX_IN_FLIGHT requests running.
        let slot = tokio::select! {
            _ = state.shutdown.cancelled() => break Ended::Shutdown,
            _ = stalled.cancelled() => break Ended::NotReading,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break Ended::ByClient,
            },
        };
        let msg = tokio::select! {
            _ = state.shutdown.cancelled() => break Ended::Shutdown,
            _ = stalled.cancelled() => break Ended::NotReading,
            _ = tokio::time::sleep_until(last_heard + idle_limit) => break Ended::Idle,
            msg = stream.next() => msg,
        };
        last_heard = tokio::time::Instant::now();
        let text = match msg {
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
            Some(Ok(Message::Close(_))) => break Ended::ClosedByClient,
            Some(Err(_)) | None => break Ended::ByClient,
            Some(Ok(_)) => continue,
        };
        let still_valid = credential
            .as_ref()
            .is_some_and(|c| state.auth.verify(c).is_ok());
        if !still_valid {
            let e = rpc_err(
                codes::UNAUTHORIZED,
                "the credential is no longer valid; reconnect with a valid one",
            )
            .rejected("auth");
            let _ = tx.try_send(error_response(Value::Null, e).to_string());
            break Ended::CredentialRevoked;
        }
        // Each message is handled on its own task: several requests may be in flight.
        let (state, caller, tx) = (state.clone(), caller.clone(), tx.clone());
        let credential = credential.clone();
        inflight.spawn(async move {
            if let Some(resp) = handle_text(&state, &caller, credential.as_ref(), &text, &tx).await
            {
                tx.send(resp.to_string()).await;
            }
            drop(slot);
        });
    };
    if matches!(ended, Ended::NotReading) {
        tracing::info!(subject = %caller.subject, "closing a WebSocket whose client stopped reading");
        crate::metrics::rejection("websocket_not_reading");
    }
    inflight.close();
    inflight.wait().await;
    match ended {
        Ended::Shutdown => {
            let _ = close_tx.send(CloseFrame {
                code: axum::extract::ws::close_code::AWAY,
                reason: "the server is shutting down; reconnect shortly".into(),
            });
        }
        Ended::Idle => {
            let _ = close_tx.send(CloseFrame {
                code: axum::extract::ws::close_code::POLICY,
                reason: "idle timeout: no message or pong".into(),
            });
        }
        Ended::ClosedByClient => {
            let _ = close_tx.send(CloseFrame {
                code: axum::extract::ws::close_code::NORMAL,
                reason: "".into(),
            });
        }
        Ended::ByClient | Ended::CredentialRevoked | Ended::NotReading => {}
    }
    // A disconnect does not close the caller's sessions: they live until idle timeout.
    drop(tx);
    let _ = writer.await;
}

/// Handles one WebSocket message (a request, a notification or a batch).
pub async fn handle_text(
    state: &AppState,
    caller: &Principal,
    credential: Option<&Credential>,
    text: &str,
    tx: &Outbox,
) -> Option<Value> {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Some(error_response(
                Value::Null,
                rpc_err(PARSE_ERROR, format!("parse error: {e}")),
            ))
        }
    };
    match v {
        Value::Array(items) if items.is_empty() => Some(error_response(
            Value::Null,
            rpc_err(INVALID_REQUEST, "empty batch"),
        )),
        Value::Array(items) => {
            let replies = futures_util::future::join_all(
                items
                    .into_iter()
                    .map(|item| handle_one(state, caller, credential, item, tx)),
            )
            .await;
            let replies: Vec<Value> = replies.into_iter().flatten().collect();
            (!replies.is_empty()).then_some(Value::Array(replies))
        }
        other => handle_one(state, caller, credential, other, tx).await,
    }
}

/// Builds an error response; the one place this transport counts a rejection.
fn error_response(id: Value, e: RpcError) -> Value {
    if let Some(reason) = e.rejection {
        crate::metrics::rejection(reason);
    }
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.code, "message": e.message}})
}

async fn handle_one(
    state: &AppState,
    caller: &Principal,
    credential: Option<&Credential>,
    req: Value,
    tx: &Outbox,
) -> Option<Value> {
    let Value::Object(obj) = req else {
        return Some(error_response(
            Value::Null,
            rpc_err(INVALID_REQUEST, "a request must be an object"),
        ));
    };
    let id = obj.get("id").cloned();
    let valid_id = matches!(
        id,
        None | Some(Value::String(_) | Value::Number(_) | Value::Null)
    );
    let method = obj.get("method").and_then(Value::as_str);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") || method.is_none() || !valid_id {
        let id = if valid_id {
            id.unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        return Some(error_response(
            id,
            rpc_err(
                INVALID_REQUEST,
                "invalid request: need jsonrpc \"2.0\", a string method and a string/number id",
            ),
        ));
    }
    let method = method.unwrap_or_default();
    let params = obj.get("params").cloned().unwrap_or(json!({}));
    if !(params.is_object() || params.is_array()) {
        let e = rpc_err(INVALID_PARAMS, "params must be an object");
        return id.map(|id| error_response(id, e));
    }
    let result = match state.rate.check(&caller.subject, &caller.quota).await {
        Ok(_) => dispatch(state, caller, credential, method, params, tx).await,
        Err(RateError::Limited(limited)) => Err(limited.into()),
        Err(RateError::Unavailable(e)) => Err(rpc_err(codes::OVERLOADED, e.to_string())),
    };
    // A notification gets no response, whatever happened.
    let id = id?;
    Some(match result {
        Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Err(e) => error_response(id, e),
    })
}

fn field<'a>(params: &'a Value, name: &str) -> Result<&'a Value, RpcError> {
    params
        .get(name)
        .ok_or_else(|| rpc_err(INVALID_PARAMS, format!("params.{name} is required")))
}

fn session_id(params: &Value) -> Result<&str, RpcError> {
    field(params, "sessionId")?
        .as_str()
        .ok_or_else(|| rpc_err(INVALID_PARAMS, "params.sessionId must be a string"))
}

/// A session call for a session that lives on another replica, forwarded to it as its
/// REST equivalent (streamed output arrives with the final result); `None` when the
/// session is here.
async fn forwarded(
    state: &AppState,
    credential: Option<&Credential>,
    id: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Option<Value>, RpcError> {
    let unavailable = |e: ApiError| rpc_err(codes::SESSION_UNAVAILABLE, e.to_string());
    let base = match forward::route(state, id, &HeaderMap::new()).await {
        Ok(Route::Here) => return Ok(None),
        Ok(Route::Owner(base)) => base,
        Err(e) => return Err(unavailable(e)),
    };
    let headers = credential
        .map(forward::credential_headers)
        .unwrap_or_default();
    let (status, reply) = forward::send(state, &base, id, method, path, &headers, body)
        .await
        .map_err(unavailable)?;
    if status.is_success() {
        return Ok(Some(reply));
    }
    let message = reply["error"]["message"]
        .as_str()
        .unwrap_or("the session's replica refused the call")
        .to_string();
    let code = match reply["error"]["kind"].as_str().unwrap_or_default() {
        "session_not_found" => codes::SESSION_NOT_FOUND,
        "session_busy" => codes::SESSION_BUSY,
        "session_lost" => codes::SESSION_LOST,
        "session_unavailable" => codes::SESSION_UNAVAILABLE,
        _ if status.as_u16() == 422 || status.as_u16() == 400 => INVALID_PARAMS,
        _ if status.as_u16() == 503 || status.as_u16() == 429 => codes::OVERLOADED,
        _ => codes::SERVER_ERROR,
    };
    Err(rpc_err(code, message))
}

async fn dispatch(
    state: &AppState,
    caller: &Principal,
    credential: Option<&Credential>,
    method: &str,
    params: Value,
    tx: &Outbox,
) -> Result<Value, RpcError> {
    let sessions = &state.sessions;
    match method {
        "session.create" => {
            caller.require(Scope::Sessions)?;
            let p: CreateSession = serde_json::from_value(params)
                .map_err(|e| rpc_err(INVALID_PARAMS, format!("invalid params: {e}")))?;
            let s = sessions.create(caller, p).await?;
            Ok(s.created_view())
        }
        "session.execute" => {
            caller.require(Scope::Sessions)?;
            let id = session_id(&params)?.to_string();
            let raw = field(&params, "command")?.clone();
            let path = format!("/v1/sessions/{id}/commands");
            if let Some(r) =
                forwarded(state, credential, &id, Method::POST, &path, Some(&raw)).await?
            {
                return Ok(r);
            }
            let cmd = Command::parse(raw).map_err(|e| rpc_err(INVALID_PARAMS, e))?;
            let session = sessions.get(caller, &id)?;
            let _admitted = state.admission.try_admit().ok_or_else(|| {
                rpc_err(
                    codes::OVERLOADED,
                    "the gateway is at capacity; retry shortly",
                )
                .rejected("shed")
            })?;
            let tx = tx.clone();
            let sid = id.clone();
            let mut on_output = move |stream: &str, data: String| {
                let note = json!({
                    "jsonrpc": "2.0",
                    "method": "session.output",
                    "params": {"sessionId": sid, "stream": stream, "data": data},
                });
                tx.try_send(note.to_string());
            };
            Ok(commands::execute(
                sessions,
                &state.settings,
                caller,
                &session,
                cmd,
                &mut on_output,
            )
            .await?)
        }
        "session.list" => {
            caller.require(Scope::Sessions)?;
            let list: Vec<Value> = sessions
                .list(caller)
                .iter()
                .map(|s| s.list_view())
                .collect();
            Ok(json!({"count": list.len(), "sessions": list}))
        }
        "session.close" => {
            caller.require(Scope::Sessions)?;
            let id = session_id(&params)?.to_string();
            let path = format!("/v1/sessions/{id}");
            if let Some(r) = forwarded(state, credential, &id, Method::DELETE, &path, None).await? {
                return Ok(r);
            }
            sessions.close(caller, &id)?;
            Ok(json!({"sessionId": id, "closed": true}))
        }
        "execution.run" => {
            caller.require(Scope::Execute)?;
            let req: ExecuteRequest = serde_json::from_value(params)
                .map_err(|e| rpc_err(INVALID_PARAMS, format!("invalid params: {e}")))?;
            let resp = state.invoker.execute(caller, req, None).await?;
            // Never a silent null: a result that cannot become a tree (it cannot, within
            // MAX_JSON_DEPTH) is an error the caller sees.
            serde_json::to_value(resp)
                .map_err(|e| rpc_err(-32603, format!("the result could not be encoded: {e}")))
        }
        other => Err(rpc_err(
            METHOD_NOT_FOUND,
            format!("method not found: {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthFailure;
    use crate::domain::Denied;
    use crate::invoke::ExecuteError;
    use crate::requests::RequestError;
    use crate::sessions::SessionError;
    use codebeaker_pool::PoolError;
    use codebeaker_proto::Language;

    fn code_and_reason(e: impl Into<RpcError>) -> (i64, Option<&'static str>) {
        let e = e.into();
        (e.code, e.rejection)
    }

    #[test]
    fn every_layer_error_has_one_code_and_rejection_reason() {
        assert_eq!(
            code_and_reason(SessionError::NotFound),
            (codes::SESSION_NOT_FOUND, None)
        );
        assert_eq!(
            code_and_reason(SessionError::Busy),
            (codes::SESSION_BUSY, None)
        );
        assert_eq!(
            code_and_reason(SessionError::LimitReached(1)),
            (codes::SESSION_LIMIT_REACHED, None)
        );
        assert_eq!(
            code_and_reason(SessionError::InvalidParams("x".into())),
            (INVALID_PARAMS, None)
        );
        assert_eq!(
            code_and_reason(SessionError::Request(RequestError::LimitExceeded(
                "x".into()
            ))),
            (codes::UNAUTHORIZED, Some("forbidden"))
        );
        assert_eq!(
            code_and_reason(SessionError::Pool(PoolError::ShuttingDown)),
            (codes::OVERLOADED, None)
        );
        assert_eq!(
            code_and_reason(SessionError::Pool(PoolError::CreateTimeout(
                std::time::Duration::ZERO
            ))),
            (codes::SERVER_ERROR, None)
        );
        assert_eq!(
            code_and_reason(Denied::Language(Language::Go)),
            (codes::UNAUTHORIZED, Some("forbidden"))
        );
        assert_eq!(
            code_and_reason(AuthFailure::Revoked),
            (codes::UNAUTHORIZED, Some("auth"))
        );
        assert_eq!(
            code_and_reason(ExecuteError::Shed),
            (codes::OVERLOADED, Some("shed"))
        );
        assert_eq!(
            code_and_reason(ExecuteError::ConcurrencyLimited(2)),
            (codes::OVERLOADED, Some("concurrency"))
        );
        assert_eq!(
            code_and_reason(ExecuteError::Request(RequestError::UnsupportedLanguage {
                name: "r".into(),
                served: Vec::new(),
            })),
            (INVALID_PARAMS, None)
        );
        assert_eq!(
            code_and_reason(ExecuteError::Pool(PoolError::Disabled(Language::Go))),
            (INVALID_PARAMS, None)
        );
    }
}
