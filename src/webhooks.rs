//! Webhook callbacks: an async execution's final result POSTed to its `callbackUrl`.
//!
//! Every delivery is signed: `X-CodeBeaker-Timestamp: <unix seconds>` and
//! `X-CodeBeaker-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, with
//! the calling key's own secret (created with the key by `codebeaker keys create`). A
//! delivery that is not answered with 2xx is tried again with exponential backoff and
//! jitter, up to `webhooks.max_attempts`, then kept as a dead letter
//! (`GET /v1/webhooks/dead`). Deliveries live in the store, so they survive a restart.
//!
//! Callbacks leave from the gateway, never from a container. A URL whose host resolves to
//! a loopback, private, link-local or otherwise internal address is refused (checked when
//! submitted and again before every attempt, against DNS rebinding) unless
//! `webhooks.allow_private` is set: a callback must not become a way into the gateway's
//! own network (the lesson of Judge0's CVE-2024-29021).

use hmac::{KeyInit, Mac};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::config::WebhookSettings;
use crate::requests::RequestError;
use crate::store::{Delivery, JobStore};

/// The signature header's value for `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", hex::encode(digest))
}

/// Whether `ip` is an address a callback must not reach by default.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                // Carrier-grade NAT, 100.64.0.0/10.
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                // Benchmarking, 198.18.0.0/15.
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                // IPv4-mapped: judge the IPv4 address.
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// Checks a callback URL: `http` or `https`, a host, and (unless `allow_private`) only
/// public addresses behind it.
pub async fn check_url(url: &str, allow_private: bool) -> Result<(), RequestError> {
    let bad = |why: String| RequestError::Invalid(format!("callbackUrl {url:?}: {why}"));
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("only http and https callbacks are sent".into()));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| bad("it has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    if allow_private {
        return Ok(());
    }
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| bad(format!("its host does not resolve: {e}")))?
            .map(|a| a.ip())
            .collect(),
    };
    if let Some(ip) = addrs.iter().find(|ip| is_internal(**ip)) {
        return Err(bad(format!(
            "it resolves to {ip}, an internal address; callbacks go to public addresses only (webhooks.allow_private)"
        )));
    }
    Ok(())
}

/// Sends due deliveries until shutdown.
pub async fn sender(
    store: Arc<dyn JobStore>,
    auth: Arc<Authenticator>,
    settings: WebhookSettings,
    shutdown: CancellationToken,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.timeout_ms))
        // A callback URL must not bounce us elsewhere (the SSRF check was for this URL).
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    loop {
        let now = chrono::Utc::now().timestamp_millis();
        let st = store.clone();
        let due = tokio::task::spawn_blocking(move || st.due_deliveries(now, 32))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        for d in due {
            if shutdown.is_cancelled() {
                return;
            }
            let outcome = deliver(&client, &auth, &settings, &d).await;
            let st = store.clone();
            let id = d.id.clone();
            let attempts = d.attempts + 1;
            let max = settings.max_attempts as i64;
            let backoff = settings.backoff_ms;
            let recorded = tokio::task::spawn_blocking(move || match outcome {
                Ok(()) => {
                    crate::metrics::webhook_delivery("delivered");
                    st.delivered(&id, chrono::Utc::now().timestamp_millis())
                }
                Err(e) if attempts >= max => {
                    crate::metrics::webhook_delivery("dead");
                    st.delivery_failed(&id, None, &e)
                }
                Err(e) => {
                    crate::metrics::webhook_delivery("retried");
                    let next =
                        chrono::Utc::now().timestamp_millis() + retry_delay(backoff, attempts);
                    st.delivery_failed(&id, Some(next), &e)
                }
            })
            .await;
            if let Ok(Err(e)) = recorded {
                tracing::error!(error = %e, "cannot record a webhook delivery");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// `backoff_ms × 2^(attempt − 1)`, with ±50 % jitter (so retries of many failed callbacks
/// do not arrive together), at most an hour.
fn retry_delay(backoff_ms: u64, attempt: i64) -> i64 {
    let base = backoff_ms.saturating_mul(1 << (attempt - 1).clamp(0, 20)) as f64;
    let jitter = 0.5 + rand::random::<f64>();
    (base * jitter).min(3_600_000.0) as i64
}

async fn deliver(
    client: &reqwest::Client,
    auth: &Authenticator,
    settings: &WebhookSettings,
    d: &Delivery,
) -> Result<(), String> {
    check_url(&d.url, settings.allow_private)
        .await
        .map_err(|e| e.to_string())?;
    let secret = auth
        .webhook_secret(&d.subject)
        .ok_or("the caller's webhook secret is gone (key revoked or removed)")?;
    let timestamp = chrono::Utc::now().timestamp();
    let resp = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("x-codebeaker-timestamp", timestamp.to_string())
        .header(
            "x-codebeaker-signature",
            sign(&secret, timestamp, &d.payload),
        )
        .header("x-codebeaker-delivery", &d.id)
        .body(d.payload.clone())
        .send()
        .await
        .map_err(|e| format!("not delivered: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {}", resp.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        // Fixed vector: HMAC-SHA256("secret", "1700000000.{}"), computed independently.
        assert_eq!(
            sign("secret", 1_700_000_000, "{}"),
            "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
        assert_ne!(sign("secret", 1, "{}"), sign("secret", 2, "{}"));
        assert_ne!(sign("a", 1, "{}"), sign("b", 1, "{}"));
        assert!(retry_delay(1000, 1) >= 500 && retry_delay(1000, 1) <= 1500);
        assert!(retry_delay(1000, 3) >= 2000 && retry_delay(1000, 3) <= 6000);
    }
}
