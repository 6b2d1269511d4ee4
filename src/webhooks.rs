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
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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

/// How long a callback host's DNS lookup may take: a resolver that hangs must not hold a
/// sending slot (nor a submission) for longer than this.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(2);

/// Deliveries in flight at once, over all destinations.
const MAX_IN_FLIGHT: usize = 32;

/// Deliveries in flight at once to one destination (`host:port`): a receiver that never
/// answers holds at most this many slots, and the others keep flowing.
const PER_DESTINATION: usize = 4;

/// Whether `ip` is an address a callback must not reach by default.
///
/// IPv4: everything but public unicast. IPv6: only global unicast (`2000::/3`) is public,
/// minus the ranges inside it that are not, or that embed an IPv4 address an attacker
/// chooses (6to4 `2002::/16`, Teredo `2001::/32`); an IPv4-mapped address is judged by its
/// IPv4 address. So NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`), site-local `fec0::/10`,
/// IPv4-compatible `::a.b.c.d` and anything reserved later is internal without a rule each.
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
                // IETF protocol assignments, 192.0.0.0/24 (and its NAT64 / DS-Lite hosts).
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                // The 6to4 relay anycast, 192.88.99.0/24.
                || (o[0] == 192 && o[1] == 88 && o[2] == 99)
                // Benchmarking, 198.18.0.0/15.
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                // Reserved, 240.0.0.0/4.
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let global_unicast = (s[0] & 0xe000) == 0x2000;
            !global_unicast
                // 6to4: the next 32 bits are an IPv4 address of the sender's choice.
                || s[0] == 0x2002
                // Teredo 2001::/32 (embeds IPv4 too), benchmarking 2001:2::/48, ORCHID
                // 2001:10::/28 and 2001:20::/28, documentation 2001:db8::/32 and 3fff::/20.
                || (s[0] == 0x2001 && s[1] == 0)
                || (s[0] == 0x2001 && s[1] == 2 && s[2] == 0)
                || (s[0] == 0x2001 && (s[1] & 0xffe0) == 0x0020)
                || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010)
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] & 0xfff0) == 0x3ff0
        }
    }
}

/// Resolves `host` once, within [`DNS_TIMEOUT`].
async fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
    match tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(Refusal::DnsTimeout),
        Ok(Err(_)) => Err(Refusal::NoAddress),
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(Refusal::NoAddress)
            } else {
                Ok(addrs)
            }
        }
    }
}

/// Why a callback host's addresses were not used. Its text is what the caller sees, so it
/// names no address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("its host does not resolve")]
    NoAddress,
    #[error("its host did not resolve within {} s", DNS_TIMEOUT.as_secs())]
    DnsTimeout,
    #[error("it resolves to an internal address; callbacks go to public addresses only (webhooks.allow_private)")]
    Internal,
}

/// The addresses a callback may go to: all of them, or (without `allow_private`) none if
/// any is internal. A name with one internal address is refused whole, so that the
/// connector's choice among them cannot matter.
fn filter(addrs: Vec<SocketAddr>, allow_private: bool) -> Result<Vec<SocketAddr>, Refusal> {
    if !allow_private && addrs.iter().any(|a| is_internal(a.ip())) {
        return Err(Refusal::Internal);
    }
    Ok(addrs)
}

/// reqwest's resolver for callbacks: one lookup, bounded, filtered. reqwest connects only
/// to the addresses it returns, so the address checked is the address connected to (a
/// name that rebinds between a check and the connection cannot slip through).
/// IP-literal hosts never reach a resolver; [`deliver`] checks them itself.
struct CheckedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs = filter(lookup(&host, 0).await?, allow_private)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Checks a callback URL: `http` or `https`, a host, and (unless `allow_private`) only
/// public addresses behind it.
pub async fn check_url(url: &str, allow_private: bool) -> Result<(), RequestError> {
    let bad = |why: String| RequestError::Invalid(format!("callbackUrl {url:?}: {why}"));
    let (host, port) = parse(url).map_err(bad)?;
    if allow_private {
        return Ok(());
    }
    match host.parse::<IpAddr>() {
        Ok(ip) if is_internal(ip) => Err(bad(Refusal::Internal.to_string())),
        Ok(_) => Ok(()),
        Err(_) => {
            filter(
                lookup(&host, port).await.map_err(|r| bad(r.to_string()))?,
                false,
            )
            .map_err(|r| bad(r.to_string()))?;
            Ok(())
        }
    }
}

/// A callback URL's host (without IPv6 brackets) and port.
fn parse(url: &str) -> Result<(String, u16), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("only http and https callbacks are sent".into());
    }
    let host = parsed
        .host_str()
        .ok_or("it has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    Ok((host, parsed.port_or_known_default().unwrap_or(80)))
}

/// Where a delivery goes, for the per-destination cap: `host:port` (a URL that does not
/// parse is its own destination; its delivery fails at once).
fn destination(url: &str) -> String {
    match parse(url) {
        Ok((host, port)) => format!("{host}:{port}"),
        Err(_) => url.to_string(),
    }
}

/// What the sender has in flight: delivery id → (destination, when it started). SQLite
/// hands out a pending delivery again until its outcome is recorded, so ids in flight are
/// skipped. At most [`MAX_IN_FLIGHT`] entries: scanning them is cheap.
#[derive(Default)]
struct InFlight(HashMap<String, (String, Instant)>);

impl InFlight {
    fn busy(&self, dest: &str) -> usize {
        self.0.values().filter(|(d, _)| d == dest).count()
    }

    /// How long to put off a delivery whose destination is full: about as long as that
    /// destination's oldest delivery in flight has taken so far (a receiver that answers
    /// at once gets the next soon; one that never answers is not asked about every 100 ms).
    fn put_off(&self, dest: &str, timeout: Duration) -> Duration {
        let waited = self
            .0
            .values()
            .filter(|(d, _)| d == dest)
            .map(|(_, t)| t.elapsed())
            .max()
            .unwrap_or(Duration::ZERO);
        let least = Duration::from_millis(200);
        waited.clamp(least, timeout.max(least))
    }
}

/// The HTTP client for callbacks: the checking resolver, no redirects (the check was for
/// this URL), no proxy (a proxy would resolve the name itself, unchecked).
fn client(settings: &WebhookSettings) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(settings.timeout_ms)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(CheckedResolver {
            allow_private: settings.allow_private,
        }))
        .build()
        .unwrap_or_default()
}

/// Sends due deliveries until shutdown: up to [`MAX_IN_FLIGHT`] at once, at most
/// [`PER_DESTINATION`] to one `host:port`. A delivery whose destination is full is put
/// off (not an attempt), so that a slow receiver's backlog does not stand in front of
/// everyone else's callbacks.
pub async fn sender(
    store: Arc<dyn JobStore>,
    auth: Arc<Authenticator>,
    settings: WebhookSettings,
    shutdown: CancellationToken,
) {
    let client = client(&settings);
    let in_flight = Arc::new(Mutex::new(InFlight::default()));
    let finished = Arc::new(tokio::sync::Notify::new());
    // Dropped on return: deliveries still in flight are abandoned and stay pending.
    let mut tasks = tokio::task::JoinSet::new();
    let timeout = settings.timeout_ms;
    loop {
        while tasks.try_join_next().is_some() {}
        let busy = lock(&in_flight).0.len();
        let mut full_window = false;
        if busy < MAX_IN_FLIGHT {
            let now = chrono::Utc::now().timestamp_millis();
            // Deliveries in flight may come back (SQLite), so the window is the full
            // capacity: it still holds every free slot's worth of others.
            let due = store
                .due_deliveries(now, MAX_IN_FLIGHT)
                .await
                .unwrap_or_default();
            full_window = due.len() >= MAX_IN_FLIGHT;
            let mut put_off: HashMap<i64, Vec<String>> = HashMap::new();
            for d in due {
                let dest = destination(&d.url);
                let mut f = lock(&in_flight);
                if f.0.contains_key(&d.id) {
                    continue;
                }
                if f.0.len() >= MAX_IN_FLIGHT || f.busy(&dest) >= PER_DESTINATION {
                    let wait = if f.0.len() >= MAX_IN_FLIGHT {
                        Duration::from_millis(200)
                    } else {
                        f.put_off(&dest, timeout)
                    };
                    // Whole 50 ms steps, so that one write puts off many.
                    let at = now + (wait.as_millis() as i64 / 50) * 50;
                    put_off.entry(at).or_default().push(d.id);
                    continue;
                }
                f.0.insert(d.id.clone(), (dest.clone(), Instant::now()));
                drop(f);
                let job = Sending {
                    store: store.clone(),
                    auth: auth.clone(),
                    client: client.clone(),
                    settings: settings.clone(),
                    in_flight: in_flight.clone(),
                    finished: finished.clone(),
                };
                tasks.spawn(job.run(d));
            }
            for (at, ids) in put_off {
                if let Err(e) = store.postpone_deliveries(&ids, at).await {
                    tracing::error!(error = %e, "cannot put off webhook deliveries");
                    break;
                }
            }
        }
        if full_window && lock(&in_flight).0.len() < MAX_IN_FLIGHT {
            // More may be due behind the window, and there are free slots.
            if shutdown.is_cancelled() {
                return;
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = finished.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

fn lock(m: &Mutex<InFlight>) -> std::sync::MutexGuard<'_, InFlight> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One delivery attempt and the recording of its outcome.
struct Sending {
    store: Arc<dyn JobStore>,
    auth: Arc<Authenticator>,
    client: reqwest::Client,
    settings: WebhookSettings,
    in_flight: Arc<Mutex<InFlight>>,
    finished: Arc<tokio::sync::Notify>,
}

impl Sending {
    async fn run(self, d: Delivery) {
        let outcome = deliver(&self.client, &self.auth, &self.settings, &d).await;
        let st = &self.store;
        let id = &d.id;
        let attempts = d.attempts + 1;
        let max = self.settings.max_attempts as i64;
        let backoff = self.settings.backoff_ms.as_millis() as u64;
        let recorded = match outcome {
            Ok(()) => {
                crate::metrics::webhook_delivery("delivered");
                st.delivered(id, chrono::Utc::now().timestamp_millis())
                    .await
            }
            Err(e) if attempts >= max => {
                crate::metrics::webhook_delivery("dead");
                st.delivery_failed(id, None, &e).await
            }
            Err(e) => {
                crate::metrics::webhook_delivery("retried");
                let next = chrono::Utc::now().timestamp_millis() + retry_delay(backoff, attempts);
                st.delivery_failed(id, Some(next), &e).await
            }
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, "cannot record a webhook delivery");
        }
        lock(&self.in_flight).0.remove(&d.id);
        self.finished.notify_one();
    }
}

/// `backoff_ms × 2^(attempt − 1)`, with ±50 % jitter (so retries of many failed callbacks
/// do not arrive together), at most an hour.
fn retry_delay(backoff_ms: u64, attempt: i64) -> i64 {
    let base = backoff_ms.saturating_mul(1 << (attempt - 1).clamp(0, 20)) as f64;
    let jitter = 0.5 + rand::random::<f64>();
    (base * jitter).min(3_600_000.0) as i64
}

/// One attempt. The error is what the caller sees as the delivery's `lastError`: a class
/// (no answer, answered 5xx, refused address), never the connection error's own text,
/// which would tell a caller which internal ports are open.
async fn deliver(
    client: &reqwest::Client,
    auth: &Authenticator,
    settings: &WebhookSettings,
    d: &Delivery,
) -> Result<(), String> {
    let (host, _) = parse(&d.url).map_err(|e| format!("not delivered: {e}"))?;
    // An IP-literal host is connected to as written, without the resolver: check it here.
    if let Ok(ip) = host.parse::<IpAddr>() {
        if !settings.allow_private && is_internal(ip) {
            return Err(format!("not delivered: {}", Refusal::Internal));
        }
    }
    let secret = auth
        .webhook_secret_for(&d.subject, &d.tenant)
        .ok_or("not delivered: the caller's webhook secret is gone (key revoked or removed)")?;
    let timestamp = chrono::Utc::now().timestamp();
    let method = match d.method.as_str() {
        "PUT" => reqwest::Method::PUT,
        _ => reqwest::Method::POST,
    };
    let resp = client
        .request(method, &d.url)
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
        .map_err(|e| {
            tracing::debug!(delivery = %d.id, error = %e, "webhook not delivered");
            format!(
                "not delivered: {}",
                failure_class(&e, settings.timeout_ms.as_millis() as u64)
            )
        })?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "the receiver answered {}xx{}",
            status.as_u16() / 100,
            if status.is_redirection() {
                " (redirects are not followed)"
            } else {
                ""
            }
        ))
    }
}

/// A failed request as a class the caller may see.
fn failure_class(e: &reqwest::Error, timeout_ms: u64) -> String {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refusal>() {
            return r.to_string();
        }
        source = s.source();
    }
    // Refused, unreachable and silent are one class: telling them apart would map which
    // ports answer behind a receiver's address.
    format!("no answer (the connection failed, or no response within {timeout_ms} ms)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "250.1.2.3",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "fd00::1",
            "fc00::1",
            "fec0::1",
            "feff::1",
            "ff02::1",
            // IPv4-mapped, IPv4-compatible and IPv4-translated forms of internal IPv4.
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::ffff:0:10.0.0.1",
            // NAT64 (well-known and local-use) and 6to4 embed an IPv4 address, even a
            // public-looking one: refused whole.
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::808:808",
            "64:ff9b:1::a00:1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2002:808:808::1",
            // Teredo, benchmarking, ORCHID, documentation, discard-only.
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "2001:20::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "::ffff:8.8.8.8",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::200e",
        ] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn a_name_with_one_internal_address_is_refused_whole() {
        let addrs = |list: &[&str]| -> Vec<SocketAddr> {
            list.iter()
                .map(|a| SocketAddr::new(a.parse().unwrap(), 443))
                .collect()
        };
        let public = addrs(&["8.8.8.8", "2606:4700::1111"]);
        assert_eq!(filter(public.clone(), false), Ok(public));
        for mixed in [
            addrs(&["8.8.8.8", "127.0.0.1"]),
            addrs(&["169.254.169.254", "1.1.1.1"]),
            addrs(&["2606:4700::1111", "64:ff9b::a9fe:a9fe"]),
        ] {
            assert_eq!(filter(mixed.clone(), false), Err(Refusal::Internal));
            assert_eq!(filter(mixed.clone(), true), Ok(mixed), "allow_private");
        }
        // What the caller sees names no address.
        assert!(!Refusal::Internal.to_string().contains("127."));
    }

    #[tokio::test]
    async fn urls_are_checked_without_connecting() {
        for bad in [
            "http://127.0.0.1:6379/",
            "http://[::1]:8080/",
            "http://[64:ff9b::a9fe:a9fe]/latest",
            "http://[2002:7f00:1::1]/",
            "http://240.0.0.1/",
            // The URL parser normalises numeric forms to the address they mean.
            "http://2130706433/",
            "http://0x7f.1/",
            "http://localhost:9/",
            "ftp://8.8.8.8/",
            "http:///nohost",
        ] {
            assert!(check_url(bad, false).await.is_err(), "{bad}");
        }
        assert!(check_url("http://8.8.8.8:9/hook", false).await.is_ok());
        assert!(check_url("http://127.0.0.1:9/hook", true).await.is_ok());
        assert_eq!(destination("http://Example.COM/x"), "example.com:80");
        assert_eq!(destination("https://[::1]:8443/x"), "::1:8443");
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_internal_addresses() {
        use reqwest::dns::Resolve;
        let strict = CheckedResolver {
            allow_private: false,
        };
        let e = strict
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost is internal");
        assert_eq!(e.downcast_ref::<Refusal>(), Some(&Refusal::Internal));
        let lenient = CheckedResolver {
            allow_private: true,
        };
        let Ok(addrs) = lenient.resolve("localhost".parse().unwrap()).await else {
            panic!("allow_private lets localhost through");
        };
        let addrs: Vec<SocketAddr> = addrs.collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
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
