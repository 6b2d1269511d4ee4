//! The one WebSocket JSON-RPC 2.0 client of the tests.
//!
//! It matches responses to requests by id and keeps notifications aside. Tests that write
//! frames of their own (the Loopai replay, protocol errors, a client that stops reading)
//! use its transport: `send_text`, `recv_text`, and the socket itself in `ws`.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::TestApp;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a reply may take unless a test says otherwise.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Rpc {
    pub ws: Ws,
    next_id: u64,
    /// Messages received while waiting for a response: notifications, other ids.
    pub notes: Vec<Value>,
    reply_timeout: Duration,
}

impl Rpc {
    /// Connects to `app`'s `/ws/jsonrpc` with `key` in the `x-api-key` header.
    pub async fn connect(app: &TestApp, key: &str) -> Rpc {
        let url = app.addr.replace("http://", "ws://") + "/ws/jsonrpc";
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert("x-api-key", key.parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket connect");
        Rpc::over(ws)
    }

    /// Connects to `url` with no headers at all (the credential, if any, is in the URL).
    pub async fn connect_url(url: &str) -> Rpc {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connect with the key in the URL");
        Rpc::over(ws)
    }

    fn over(ws: Ws) -> Rpc {
        Rpc {
            ws,
            next_id: 1,
            notes: Vec::new(),
            reply_timeout: REPLY_TIMEOUT,
        }
    }

    /// Waits up to `timeout` for each message instead of 60 s.
    pub fn reply_timeout(mut self, timeout: Duration) -> Rpc {
        self.reply_timeout = timeout;
        self
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next text frame (other frames are skipped).
    pub async fn recv_text(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(self.reply_timeout, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no message within {:?}", self.reply_timeout))
                .expect("socket closed")
                .unwrap();
            if let Message::Text(t) = msg {
                return t.to_string();
            }
        }
    }

    /// The next text frame, parsed.
    pub async fn recv(&mut self) -> Value {
        serde_json::from_str(&self.recv_text().await).unwrap()
    }

    /// Sends a request and returns the whole response object.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send_text(
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        )
        .await;
        loop {
            let v = self.recv().await;
            if v.get("id") == Some(&json!(id)) {
                return v;
            }
            self.notes.push(v);
        }
    }

    /// Sends a request and returns its `result`, failing on an error response.
    pub async fn ok(&mut self, method: &str, params: Value) -> Value {
        let v = self.call(method, params).await;
        assert!(v.get("error").is_none(), "{method} failed: {v}");
        v["result"].clone()
    }

    /// Creates a session with `params` and returns its id.
    pub async fn create(&mut self, params: Value) -> String {
        self.ok("session.create", params).await["sessionId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `session.execute` of `command` in session `sid`; returns its `result`.
    pub async fn exec(&mut self, sid: &str, command: Value) -> Value {
        self.ok(
            "session.execute",
            json!({"sessionId": sid, "command": command}),
        )
        .await
    }

    /// Closes the socket (ignoring a peer that is already gone).
    pub async fn close(&mut self) {
        let _ = self.ws.close(None).await;
    }
}
