//! Waiting for a condition: poll a check until it holds or a timeout passes.
//!
//! Every "wait until X" in the tests goes through [`eventually`], so each wait has one
//! timeout, one poll interval, and a failure message that names what was awaited and what
//! was last seen. A test that means "time passes" (an idle timeout, a lifetime) sleeps
//! instead, and says so.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] checks.
pub const POLL: Duration = Duration::from_millis(50);

/// What a check returns: done (with a value) or not yet (with what it saw).
pub trait Check {
    type Output;
    fn done(self) -> Result<Self::Output, String>;
}

impl Check for bool {
    type Output = ();
    fn done(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("not yet".into())
        }
    }
}

impl<T> Check for Option<T> {
    type Output = T;
    fn done(self) -> Result<T, String> {
        self.ok_or_else(|| "not yet".into())
    }
}

/// `Err` carries the last state seen, for the failure message.
impl<T> Check for Result<T, String> {
    type Output = T;
    fn done(self) -> Result<T, String> {
        self
    }
}

/// Runs `check` every [`POLL`] until it is done, and returns its value; panics naming
/// `what` (and the last state seen) once `timeout` has passed.
pub async fn eventually<C, F>(
    timeout: Duration,
    what: impl Display,
    check: impl FnMut() -> F,
) -> C::Output
where
    C: Check,
    F: Future<Output = C>,
{
    eventually_every(timeout, POLL, what, check).await
}

/// [`eventually`], checking every `every` (for checks that cost more, such as a Docker
/// listing).
pub async fn eventually_every<C, F>(
    timeout: Duration,
    every: Duration,
    what: impl Display,
    mut check: impl FnMut() -> F,
) -> C::Output
where
    C: Check,
    F: Future<Output = C>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await.done() {
            Ok(v) => return v,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}
