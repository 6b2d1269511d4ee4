//! The Lua scripts that make each step of the Redis store atomic (`store/lua/*.lua`), and
//! the constants they are used with.

use redis::Script;
use std::sync::LazyLock;

/// Inserts a job; 0 when its idempotency key is taken.
pub(super) static INSERT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/insert.lua")));

/// Lua shared by the scripts that end a job (KEYS[1] its hash, KEYS[2] the queue):
/// `final` acks and drops its stream entry and lets the job and its idempotency key
/// expire with the retention; `fail_twice` ends a job lost by two replicas.
const ENDING: &str = include_str!("../lua/ending.lua");

/// A script with the [`ENDING`] functions in front.
fn ending(body: &str) -> Script {
    Script::new(&format!("{ENDING}{body}"))
}

/// Marks a job whose stream entry this replica just read as running: 'run', or 'gone'
/// (finished or cancelled meanwhile: the entry is dropped) or 'failed' (a reclaimed job
/// that had already been started twice).
pub(super) static CLAIM: LazyLock<Script> =
    LazyLock::new(|| ending(include_str!("../lua/claim.lua")));

/// Records a final status if the job is not final yet, acks its stream entry, and files
/// its callback. Returns 1 if it did.
pub(super) static FINISH: LazyLock<Script> =
    LazyLock::new(|| ending(include_str!("../lua/finish.lua")));

/// Puts a job this replica had claimed before it restarted back in the queue (or fails
/// it if it had already been started twice). Returns 'requeued', 'failed' or 'gone'.
pub(super) static REQUEUE: LazyLock<Script> =
    LazyLock::new(|| ending(include_str!("../lua/requeue.lua")));

/// Gives back a job this consumer claimed but did not start: queued again under a new
/// stream entry, its attempt not counted. ARGV = prefix, entry, group.
pub(super) static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/release.lua")));

/// Drops from an index (a sorted set by creation time) the members created before
/// ARGV[1] whose key (ARGV[2] .. member) has expired; looks at 500 from offset ARGV[3].
/// Returns {removed, looked at}.
pub(super) static SWEEP: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/sweep.lua")));

/// How many passed-over entries one claim moves to the end of the stream before it
/// reports nothing to run (every queued job belongs to a tenant at its cap).
pub(super) const CLAIM_SCAN: usize = 16;

/// Renews this consumer's claims: for each (job id, entry id), only if the job still points
/// at that entry, is still running and the entry is still this consumer's (another replica
/// may have taken it over). Returns the job ids that are no longer ours to run (taken
/// over, cancelled, finished elsewhere), so that the replica stops them.
pub(super) static RENEW: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/renew.lua")));

/// Pending callbacks due now, each leased for a while so that two replicas do not send
/// the same one at once.
pub(super) static DUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/due.lua")));

/// How long a replica holds the callbacks it took: longer than a sender takes to try a
/// whole round of them one after another, so that no other replica sends them meanwhile;
/// a replica that died with some leased has them retried after this.
pub(super) const DELIVERY_LEASE_MS: u64 = 600_000;

/// Records a callback's outcome only while it is still pending (another replica may have
/// settled it): ARGV = outcome ('delivered' | 'retry' | 'dead'), now/next, error, prefix.
pub(super) static SETTLE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/settle.lua")));

/// Puts off callbacks the sender took but could not start, only while still pending:
/// KEYS = their hashes, ARGV = due set, at, ids (in KEYS' order).
pub(super) static POSTPONE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/postpone.lua")));
