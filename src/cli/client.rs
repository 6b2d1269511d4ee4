//! HTTP to the gateway for the client commands: the address and key (flags or
//! `CODEBEAKER_URL` / `CODEBEAKER_API_KEY`), and every failure turned into a [`CliError`]
//! (gateway down, key refused, request refused) once, here.

use reqwest::{RequestBuilder, Response};
use serde_json::Value;
use std::error::Error as _;
use std::time::Duration;

use super::CliError;

/// Where the gateway is and which key to send: every client command takes these.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The gateway's base URL.
    #[arg(long, env = "CODEBEAKER_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The API key (`cb_<id>_<secret>`), sent as `X-API-Key`.
    #[arg(long, env = "CODEBEAKER_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    pub fn new(conn: &Connection) -> Result<Client, CliError> {
        let http = reqwest::Client::builder()
            // A gateway that is down answers at once; one that is unreachable should not
            // hang the command. No overall timeout: a program may run as long as it may.
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| CliError::Failed(format!("cannot start an HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: conn.url.trim_end_matches('/').to_string(),
            key: conn.key.clone().filter(|k| !k.is_empty()),
        })
    }

    /// `method base+path`, with the key if there is one.
    pub fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(k) => req.header("x-api-key", k),
            None => req,
        }
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(reqwest::Method::POST, path)
    }

    /// Sends `req`: a 2xx answer, or the failure as a [`CliError`].
    pub async fn send(&self, req: RequestBuilder) -> Result<Response, CliError> {
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        // The native shape `{"error": {"kind", "message"}}`.
        let error = &body["error"];
        let kind = error["kind"].as_str().unwrap_or("unknown").to_string();
        let message = error["message"]
            .as_str()
            .map_or_else(|| body.to_string(), str::to_string);
        Err(match status {
            401 if self.key.is_none() => CliError::NoKey { message },
            401 => CliError::WrongKey { message },
            _ => CliError::Refused {
                status,
                kind,
                message,
            },
        })
    }

    /// Sends `req` and reads its JSON answer.
    pub async fn json(&self, req: RequestBuilder) -> Result<Value, CliError> {
        let resp = self.send(req).await?;
        resp.json()
            .await
            .map_err(|e| CliError::Failed(format!("the gateway's answer is not JSON: {e}")))
    }

    /// A request that got no HTTP answer: the gateway is down (or not where the URL says).
    pub fn transport_error(&self, e: reqwest::Error) -> CliError {
        // The innermost cause says it best ("Connection refused (os error 111)").
        let mut reason = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        if e.is_connect() && reason.contains("Connection refused") {
            reason = "connection refused".into();
        }
        CliError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }
}
