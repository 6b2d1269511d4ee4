//! State shared by several gateway replicas through one Redis (`[shared]`, off by
//! default): the connection the async queue and its results use
//! ([`crate::store::RedisStore`]), per-key rate limits (GCRA in one Lua script), per-key
//! concurrency caps (leases that expire with a dead replica), and the replica registry
//! that session routing reads (heartbeats with a TTL).
//!
//! Everything here goes through the `redis` crate; nothing is home-made but the scripts.
//! A Redis that does not answer within `shared.command_timeout_ms` is an outage: the
//! request that needed it gets 503 `shared_state_unavailable`, the gateway stays up, and
//! the connection manager reconnects when Redis is back.
//!
//! # How it works
//!
//! Off by default: a single node keeps its queue in SQLite and its limits in memory. With
//! `shared.redis_url` set, replicas share one Redis through the `redis` crate: this
//! module's async `ConnectionManager` for the request path (rate limits, concurrency
//! leases, the replica registry), and one of the executions' store's own
//! (`Shared::connection`, `store/redis/`):
//!
//! | what | where | how |
//! |---|---|---|
//! | async executions, results, idempotency keys | `<prefix>:job:<id>` hashes, `jobs:<tenant>` index, `idem:<len>.<tenant>:<key>` | Lua scripts (`store/lua/`) make each step atomic (insert + enqueue; claim; finish + callback) |
//! | the queue | the stream `<prefix>:queue`, consumer group `workers`, one consumer per replica (`pool.instance`); `queued:<tenant>`, `running:<tenant>` | `XREADGROUP` for new work; a claim passes over a tenant at `max_running_per_tenant` (its entry moves to the end); `XAUTOCLAIM` (with a cursor over the pending entries) takes over entries idle past `visibility_timeout_ms`; a job runs only from the entry it points at (`sid`), so a stale entry is dropped; a live replica renews its claims every quarter of the timeout, in one script, only while the entry is still its own and the job still running, and stops locally what it lost (taken over, or cancelled through another replica); a restarted replica re-queues what it still owns |
//! | webhook deliveries | `delivery:<id>`, `deliveries:due` (by next attempt, leased 10 min when taken) | any replica's sender sends them, at least once; an outcome is recorded only while the delivery is still pending |
//! | rate limits | `rate:<subject>` | GCRA in one script on Redis's clock (`TIME`) |
//! | concurrency caps | `inflight:<subject>` sorted set of leases | renewed every third of its length while held (a batch holds its places for long); expires after the longest call plus 30 s if its replica died |
//! | replicas | `replica:<instance>` = `<process claim> <URL>`, TTL `replica_ttl_ms` | claimed at startup before the pools sweep the label's leftovers (a label another live process announces: exit 64), then heartbeats; `shared.peers` as a static fallback |
//! | the peer token | `peer-token` | forwarded requests carry it (`x-codebeaker-peer`), and are not charged twice |
//!
//! Per replica: its containers and pools, its sessions (their ids name it; a key's
//! `max_sessions` is counted per replica, and `GET /v1/sessions` lists the answering
//! replica's sessions, pinned by the API test
//! `replicas::max_sessions_and_the_session_list_count_per_replica`: a key may hold
//! `max_sessions` on each replica), its compile cache, admission (global shedding),
//! metrics and traces.
//!
//! Failure modes: Redis unreachable at startup → exit 64; Redis lost at run time →
//! requests that need it get 503 `shared_state_unavailable`, `/readyz` is 503 with
//! `"redis": false`, the gateway stays up and reconnects; a replica killed → its claimed
//! executions run again on another after the visibility timeout (once; a second loss fails
//! them), its concurrency leases expire, its sessions answer 503 `session_unavailable`
//! (JSON-RPC `-32012`) with `Retry-After` elsewhere until it restarts and re-adopts them;
//! a forwarded request is never forwarded again (two replicas that disagree about an owner
//! answer 503, not loop), and only an id of the exact form `<instance>.<32 hex digits>` is
//! forwarded at all (so no id can put a path of its own into the forwarded request); the
//! forwarding client follows no redirects.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::config::SharedSettings;

/// One GCRA decision.
#[derive(Debug, Clone, Copy)]
pub struct Gcra {
    pub allowed: bool,
    /// When a refused request may be retried.
    pub retry_after: Duration,
    /// Requests left in the burst after an allowed one.
    pub remaining: u32,
}

/// Redis could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("shared state (Redis) is unavailable: {0}")]
    Redis(#[from] redis::RedisError),
    /// Connecting took longer than three command timeouts.
    #[error("shared state (Redis) is unavailable: no answer from {url} within {timeout:?}")]
    NoAnswer { url: String, timeout: Duration },
    /// Another live process announces this replica's instance label.
    #[error("shared state (Redis) is unavailable: another live replica announces pool.instance = {0:?}; every replica needs its own")]
    InstanceTaken(String),
    /// The client that forwards session requests to their owner could not be built.
    #[error("shared state (Redis) is unavailable: {0}")]
    Http(#[source] reqwest::Error),
}

impl crate::failure::Failure for SharedError {
    fn kind(&self) -> &'static str {
        "shared_state_unavailable"
    }
    fn class(&self) -> crate::failure::Class {
        crate::failure::Class::Internal { transient: true }
    }
}

/// The connection to the shared Redis and what this replica is called there.
pub struct Shared {
    pub settings: SharedSettings,
    /// This replica's instance label (`pool.instance`): it names its sessions and its
    /// consumer in the queue's consumer group.
    pub instance: String,
    client: redis::Client,
    conn: ConnectionManager,
    /// Where the other replicas reach this one (set once the port is bound).
    advertise: RwLock<String>,
    http: reqwest::Client,
    /// A random token every replica reads from Redis: a request forwarded by a replica
    /// carries it, and was already counted against the caller's rate limit there.
    peer_token: String,
    /// This process's claim on its instance label (`replica:<instance>` holds
    /// `<claim> <url>`): two live processes must never share a label.
    claim: String,
}

/// Announces the replica: only if the key is free or already this process's.
static ANNOUNCE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/announce.lua")));

/// The header a forwarded request carries the peer token in.
pub const PEER_HEADER: &str = "x-codebeaker-peer";

/// GCRA: the theoretical arrival time per key, in Redis's own clock (so that replicas'
/// clocks do not matter). Returns {allowed, retry_after_ms, remaining}.
static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/gcra.lua")));

/// Extends a held concurrency lease (only if it is still there).
static RENEW_LEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/renew_lease.lua")));

/// Removes the replica's announcement, only if it is still this process's.
static WITHDRAW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/withdraw.lua")));

/// A concurrency lease: expired leases (of a replica that died) are dropped first.
/// Returns 1 when a lease was taken.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/acquire.lua")));

impl Shared {
    /// Connects and checks that Redis answers (a gateway configured for Redis that cannot
    /// reach it does not start).
    pub async fn connect(
        settings: &SharedSettings,
        instance: &str,
    ) -> Result<Arc<Shared>, SharedError> {
        let client =
            redis::Client::open(secrecy::ExposeSecret::expose_secret(&settings.redis_url))?;
        let timeout = settings.command_timeout_ms;
        let mut conn = manager(&client, settings).await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        let token_key = key(&settings.prefix, &["peer-token"]);
        let _: Option<String> = redis::cmd("SET")
            .arg(&token_key)
            .arg(uuid::Uuid::new_v4().simple().to_string())
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        let peer_token: String = redis::cmd("GET")
            .arg(&token_key)
            .query_async(&mut conn)
            .await?;
        Ok(Arc::new(Shared {
            peer_token,
            claim: uuid::Uuid::new_v4().simple().to_string(),
            settings: settings.clone(),
            instance: instance.to_string(),
            client,
            conn,
            advertise: RwLock::new(String::new()),
            // No redirects: a forwarded request carries the caller's credential and the
            // peer token, and goes to the owner replica or nowhere.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(timeout * 2)
                .timeout(Duration::from_secs(600))
                .build()
                .map_err(SharedError::Http)?,
        }))
    }

    /// A key under the configured prefix.
    pub fn key(&self, parts: &[&str]) -> String {
        key(&self.settings.prefix, parts)
    }

    /// A connection of its own to this Redis (the executions' store has one).
    pub async fn connection(&self) -> Result<ConnectionManager, SharedError> {
        manager(&self.client, &self.settings).await
    }

    /// One rate-limit decision for `subject` at `rate`/s with `burst`.
    pub async fn rate(&self, subject: &str, rate: u32, burst: u32) -> Result<Gcra, SharedError> {
        let emission = 1000.0 / rate as f64;
        let mut conn = self.conn.clone();
        let (allowed, retry_ms, remaining): (i64, i64, i64) = GCRA
            .key(self.key(&["rate", subject]))
            .arg(emission)
            .arg(burst)
            .invoke_async(&mut conn)
            .await?;
        Ok(Gcra {
            allowed: allowed == 1,
            retry_after: Duration::from_millis(retry_ms.max(0) as u64),
            remaining: (remaining.max(0) as u32).min(burst),
        })
    }

    /// A place among `subject`'s `max` invocations in flight, across replicas, or `None`.
    /// The lease expires after `ttl` if this replica dies without releasing it.
    pub async fn acquire(
        self: &Arc<Self>,
        subject: &str,
        max: u32,
        ttl: Duration,
    ) -> Result<Option<SharedPermit>, SharedError> {
        let key = self.key(&["inflight", subject]);
        let lease = uuid::Uuid::new_v4().simple().to_string();
        let mut conn = self.conn.clone();
        let got: i64 = ACQUIRE
            .key(&key)
            .arg(max)
            .arg(ttl.as_millis() as u64)
            .arg(&lease)
            .invoke_async(&mut conn)
            .await?;
        if got != 1 {
            return Ok(None);
        }
        // Renewed while held: a batch may hold its places much longer than one call (the
        // lease only has to outlive a replica that died holding it).
        let held = CancellationToken::new();
        let (shared, k, l, stop) = (self.clone(), key.clone(), lease.clone(), held.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(ttl / 3) => {}
                }
                let mut conn = shared.conn.clone();
                let _: Result<(), _> = RENEW_LEASE
                    .key(&k)
                    .arg(ttl.as_millis() as u64)
                    .arg(&l)
                    .invoke_async(&mut conn)
                    .await;
            }
        });
        Ok(Some(SharedPermit {
            shared: self.clone(),
            key,
            lease,
            held,
        }))
    }

    /// Sets where the other replicas reach this one.
    pub fn set_advertise(&self, url: String) {
        *self.advertise.write().unwrap_or_else(|p| p.into_inner()) = url;
    }

    async fn announce(&self) -> Result<bool, SharedError> {
        let url = self
            .advertise
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut conn = self.conn.clone();
        let done: i64 = ANNOUNCE
            .key(self.key(&["replica", &self.instance]))
            .arg(&self.claim)
            .arg(url)
            .arg(self.settings.replica_ttl_ms.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    /// Claims this replica's instance label before it touches the shared queue: a label
    /// still announced by a process that died is free once its TTL runs out, so this waits
    /// up to twice the TTL; a label another live process keeps announcing is refused.
    pub async fn claim_instance(&self) -> Result<(), SharedError> {
        let deadline = tokio::time::Instant::now()
            + self.settings.replica_ttl_ms * 2
            + Duration::from_millis(500);
        loop {
            if self.announce().await? {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SharedError::InstanceTaken(self.instance.clone()));
            }
            tokio::time::sleep(self.settings.heartbeat_ms.min(Duration::from_millis(250))).await;
        }
    }

    /// Announces this replica every `heartbeat_ms` until shutdown, then withdraws.
    pub async fn heartbeat(self: Arc<Self>, shutdown: CancellationToken) {
        let every = self.settings.heartbeat_ms;
        loop {
            match self.announce().await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(instance = %self.instance, "another process announces this replica's instance label")
                }
                Err(e) => tracing::warn!(error = %e, "cannot announce this replica in Redis"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
        // Withdraw only our own announcement.
        let mut conn = self.conn.clone();
        let _: Result<i64, _> = WITHDRAW
            .key(self.key(&["replica", &self.instance]))
            .arg(&self.claim)
            .invoke_async(&mut conn)
            .await;
    }

    /// Where replica `instance` is reached: its heartbeat in Redis, else the static
    /// `shared.peers`; `None` when it is not known to be up.
    pub async fn replica_url(&self, instance: &str) -> Result<Option<String>, SharedError> {
        let mut conn = self.conn.clone();
        let announced: Option<String> = redis::cmd("GET")
            .arg(self.key(&["replica", instance]))
            .query_async(&mut conn)
            .await?;
        // `<claim> <url>`.
        let url = announced.and_then(|v| v.split_once(' ').map(|(_, url)| url.to_string()));
        Ok(url
            .filter(|u| !u.is_empty())
            .or_else(|| self.settings.peers.get(instance).cloned()))
    }

    /// Whether a request came from another replica (its [`PEER_HEADER`] is the token).
    pub fn is_peer(&self, header: Option<&[u8]>) -> bool {
        // Constant time: the comparison must not tell how much of a guess was right.
        header.is_some_and(|v| {
            let t = self.peer_token.as_bytes();
            v.len() == t.len() && v.iter().zip(t).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        })
    }

    pub fn peer_token(&self) -> &str {
        &self.peer_token
    }

    /// The HTTP client used to forward session requests to their owner.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether Redis answers now (`/readyz`).
    pub async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    }
}

/// A concurrency place held in Redis; dropping it gives the place back.
pub struct SharedPermit {
    shared: Arc<Shared>,
    key: String,
    lease: String,
    /// Stops the lease's renewal.
    held: CancellationToken,
}

impl Drop for SharedPermit {
    fn drop(&mut self) {
        self.held.cancel();
        let (shared, key, lease) = (
            self.shared.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.lease),
        );
        // If Redis is away the lease simply expires.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut conn = shared.conn.clone();
                let _: Result<(), _> = redis::cmd("ZREM")
                    .arg(&key)
                    .arg(&lease)
                    .query_async(&mut conn)
                    .await;
            });
        }
    }
}

/// A connection to `client` that reconnects by itself, each command bounded by
/// `shared.command_timeout_ms` (connecting by three of them).
async fn manager(
    client: &redis::Client,
    settings: &SharedSettings,
) -> Result<ConnectionManager, SharedError> {
    let timeout = settings.command_timeout_ms;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    tokio::time::timeout(
        timeout * 3,
        ConnectionManager::new_with_config(client.clone(), config),
    )
    .await
    .map_err(|_| SharedError::NoAnswer {
        url: redacted(secrecy::ExposeSecret::expose_secret(&settings.redis_url)),
        timeout,
    })?
    .map_err(SharedError::from)
}

/// `<prefix>:<part>:<part>…`: every key this module and the store use.
pub(crate) fn key(prefix: &str, parts: &[&str]) -> String {
    let mut k = prefix.to_string();
    for p in parts {
        k.push(':');
        k.push_str(p);
    }
    k
}

/// The URL without its password, for messages.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// The replica that owns a session id of the form `<instance>.<32 hex digits>` (replicas
/// name their sessions so), or `None` for anything else (a single node's plain ids, or an
/// id that could smuggle a path into a forwarded request).
pub fn session_owner(id: &str) -> Option<&str> {
    let (owner, rest) = id.split_once('.')?;
    let owner_ok = !owner.is_empty()
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let rest_ok = rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit());
    (owner_ok && rest_ok).then_some(owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_session_ids_name_an_owner() {
        let uuid = "0123456789abcdef0123456789abcdef";
        assert_eq!(session_owner(&format!("gw-a.{uuid}")), Some("gw-a"));
        assert_eq!(session_owner(uuid), None);
        assert_eq!(session_owner("gw-a.x/../../v1/execute?"), None);
        assert_eq!(session_owner(&format!("gw/a.{uuid}")), None);
        assert_eq!(session_owner(&format!(".{uuid}")), None);
    }

    #[test]
    fn the_password_is_not_shown() {
        assert_eq!(
            redacted("redis://:secret@host:6379/0"),
            "redis://…@host:6379/0"
        );
        assert_eq!(redacted("redis://host:6379"), "redis://host:6379");
    }
}
