//! The batch gate without Docker: a batch's admission (places of the gateway's limit and
//! of the caller's `max_concurrent`, all or none), its result budget, and the gate that
//! holds the other workers until the first item is done. Time is paused: a first item
//! that takes an hour takes no time here.

use super::*;
use crate::domain::{Quota, Via};
use std::time::Duration;
use tokio::time::Instant;

fn caller(subject: &str, max_concurrent: u32) -> Principal {
    Principal {
        subject: subject.into(),
        tenant: "t".into(),
        scopes: Vec::new(),
        quota: Quota {
            max_concurrent,
            ..Quota::default()
        },
        via: Via::ApiKey,
    }
}

#[tokio::test]
async fn a_batch_takes_all_its_admission_places_or_none() {
    tokio::time::pause();
    let admission = Arc::new(Admission::new(3));
    let concurrency = Concurrency::default();
    let alice = caller("key:alice", 10);
    let first = hold(&admission, &concurrency, &alice, 2).await.unwrap();
    assert_eq!(admission.in_flight(), 2);
    // One place is left: a batch of two is shed, and gives back the one it took.
    let second = hold(&admission, &concurrency, &alice, 2).await;
    assert!(
        matches!(second, Err(ExecuteError::Shed)),
        "{:?}",
        second.err()
    );
    assert_eq!(admission.in_flight(), 2);
    let third = hold(&admission, &concurrency, &alice, 1).await.unwrap();
    assert_eq!(admission.in_flight(), 3);
    // The places live as long as the batch.
    drop((first, third));
    assert_eq!(admission.in_flight(), 0);
    assert_eq!(concurrency.subjects_in_flight(), 0);
}

#[tokio::test]
async fn a_batch_past_the_callers_max_concurrent_is_refused_and_holds_nothing() {
    tokio::time::pause();
    let admission = Arc::new(Admission::new(100));
    let concurrency = Concurrency::default();
    let bob = caller("key:bob", 2);
    // One call of bob's is in flight: a batch of two does not fit his two places.
    let call = concurrency.try_acquire(&bob.subject, 2).unwrap();
    let r = hold(&admission, &concurrency, &bob, 2).await;
    assert!(
        matches!(r, Err(ExecuteError::ConcurrencyLimited(2))),
        "{:?}",
        r.err()
    );
    assert_eq!(admission.in_flight(), 0, "its admission places are back");
    // The permit it did take is back too: exactly one more place is free.
    let other = concurrency.try_acquire(&bob.subject, 2);
    assert!(other.is_some());
    assert!(concurrency.try_acquire(&bob.subject, 2).is_none());
    // Another caller is not held by bob's places.
    let carol = caller("key:carol", 2);
    let (places, permits) = hold(&admission, &concurrency, &carol, 2).await.unwrap();
    assert_eq!((places.len(), permits.len()), (2, 2));
    drop((call, other));
    let (places, permits) = hold(&admission, &concurrency, &bob, 2).await.unwrap();
    assert_eq!((places.len(), permits.len()), (2, 2));
}

#[test]
fn the_result_budget_is_spent_for_good_by_the_first_result_that_does_not_fit() {
    let b = Budget::new(10);
    assert!(b.take(4));
    assert!(b.take(6), "an exact fit is kept");
    assert!(!b.is_spent());
    assert!(!b.take(1));
    assert!(b.is_spent());
    assert!(!b.take(0), "once spent, nothing more is kept");
    let b = Budget::new(10);
    assert!(!b.take(11));
    assert!(!b.take(1), "a smaller result after it is not kept either");
}

#[tokio::test]
async fn the_other_workers_wait_for_the_first_item_however_long_it_takes() {
    tokio::time::pause();
    let mut gates = Gate::all(3, false).into_iter();
    let mut first = gates.next().unwrap();
    let waiting: Vec<_> = gates
        .map(|mut g| {
            tokio::spawn(async move {
                g.pass().await;
                Instant::now()
            })
        })
        .collect();
    let started = Instant::now();
    first.pass().await;
    assert_eq!(Instant::now(), started, "the first worker never waits");
    // Its first item (a compile) takes an hour.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(waiting.iter().all(|w| !w.is_finished()));
    first.open();
    let opened = Instant::now();
    for w in waiting {
        assert_eq!(w.await.unwrap(), opened, "they go as soon as it is open");
    }
    assert!(opened >= started + Duration::from_secs(3600));
}

#[tokio::test]
async fn only_the_first_worker_opens_the_gate() {
    tokio::time::pause();
    let mut gates = Gate::all(3, false);
    gates[2].open();
    let held = tokio::time::timeout(Duration::from_secs(60), gates[1].pass()).await;
    assert!(held.is_err(), "another worker's open is a no-op");
    // Once the first is gone without an item (its reader went away), the rest go.
    let mut third = gates.pop().unwrap();
    drop(gates);
    tokio::time::timeout(Duration::from_secs(1), third.pass())
        .await
        .expect("a gate whose first worker is gone holds no one");
}

#[tokio::test]
async fn a_batch_with_nothing_to_compile_holds_no_worker() {
    tokio::time::pause();
    let started = Instant::now();
    for mut g in Gate::all(4, true) {
        g.pass().await;
    }
    assert_eq!(Instant::now(), started);
}
