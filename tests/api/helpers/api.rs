//! HTTP to one gateway with one API key: every request it builds carries the key.
//!
//! `TestApp` hands one out for its own key (`app.api()`) or another (`app.api_as(&key)`);
//! a gateway process gets one with `Api::new`. Tests that deliberately send a wrong key,
//! another credential form or none build their request with `app.client` instead.

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use std::time::Duration;

use super::eventually::eventually;

/// The statuses after which an execution never changes.
const FINAL: [&str; 3] = ["completed", "failed", "cancelled"];

#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl Api {
    pub fn new(client: &reqwest::Client, base: &str, key: &str) -> Api {
        Api {
            client: client.clone(),
            base: base.to_string(),
            key: key.to_string(),
        }
    }

    /// `method base+path` with the key.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("x-api-key", &self.key)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// `GET base+path`: status and JSON body (null if the body is not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        status_and_json(self.request(Method::GET, path).send().await.unwrap()).await
    }

    /// `method base+path` with an optional JSON body: status and JSON body (or null).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        status_and_json(req.send().await.unwrap()).await
    }

    /// `POST /v1/executions`, asserting 202; returns the execution id.
    pub async fn submit(&self, body: Value) -> String {
        let (status, v) = self.call(Method::POST, "/v1/executions", Some(body)).await;
        assert_eq!(status, 202, "{v}");
        v["executionId"].as_str().unwrap().to_string()
    }

    /// `GET /v1/executions/{id}`, asserting 200.
    pub async fn execution(&self, id: &str) -> Value {
        let (st, v) = self.get(&format!("/v1/executions/{id}")).await;
        assert_eq!(st, 200, "{v}");
        v
    }

    /// Polls until the execution is final (or 90 s pass).
    pub async fn wait_final(&self, id: &str) -> Value {
        eventually(
            Duration::from_secs(90),
            format!("execution {id} to be final"),
            || async {
                let v = self.execution(id).await;
                match FINAL.contains(&v["status"].as_str().unwrap_or("")) {
                    true => Ok(v),
                    false => Err(v.to_string()),
                }
            },
        )
        .await
    }

    /// Polls until the execution's status is `status` (or `timeout` passes).
    pub async fn wait_status(&self, id: &str, status: &str, timeout: Duration) {
        eventually(
            timeout,
            format!("execution {id} to be {status}"),
            || async {
                let (_, v) = self.get(&format!("/v1/executions/{id}")).await;
                match v["status"] == status {
                    true => Ok(()),
                    false => Err(v.to_string()),
                }
            },
        )
        .await
    }
}

/// A response's status and JSON body (null if the body is not JSON).
async fn status_and_json(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}
