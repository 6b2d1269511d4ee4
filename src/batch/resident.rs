//! A batch's workers in `"isolation": "program"`: each holds a resident instance of the
//! program and pipelines its items on it.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use codebeaker_pool::Invocation;

use super::{judge, over_budget, sandbox_failure, skipped, BatchRunState, Gate, ItemResult};
use crate::invoke::Invoker;

/// An item sent to a resident instance and not answered yet.
struct Sent {
    index: usize,
    id: String,
    inv: Invocation,
    started: Instant,
}

/// A batch worker in `"isolation": "program"`: it holds a resident instance of the
/// program and keeps up to `instances.pipeline_depth` items in flight on it (sent ahead,
/// answered in order), refilling half a window at a time so that many items cost one
/// write. The agent runs them one at a time, each under its own limits from when it
/// starts, and replaces a runner that died before the next item. If the container itself
/// fails, only the oldest item in flight (the one that was running) gets the error; the
/// others never started and run again on a fresh instance. `stopOnFirstError` skips the
/// items not yet sent.
pub(super) async fn resident_worker<G>(
    invoker: Arc<Invoker>,
    shared: Arc<BatchRunState>,
    tx: tokio::sync::mpsc::Sender<ItemResult>,
    mut gate: Gate,
    _guards: Arc<G>,
) {
    gate.pass().await;
    let depth = invoker.pools.pipeline_depth().max(1);
    let mut inst: Option<codebeaker_pool::Instance> = None;
    let mut in_flight: VecDeque<Sent> = VecDeque::new();
    // Items to run again on a fresh instance, or held until the window drains (the next
    // item is another program: a mixed batch).
    let mut again: VecDeque<(usize, (String, Invocation))> = VecDeque::new();
    loop {
        if in_flight.len() <= depth / 2 {
            while in_flight.len() < depth && !tx.is_closed() {
                let next = again.pop_front().or_else(|| {
                    shared
                        .queue
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .next()
                });
                let Some((index, (id, inv))) = next else {
                    break;
                };
                if let Some(b) = shared.budget.as_ref().filter(|b| b.is_spent()) {
                    if tx.send(over_budget(index, id, b.limit)).await.is_err() {
                        return release(&invoker, inst, in_flight);
                    }
                    continue;
                }
                if shared.stop.load(Ordering::Relaxed) {
                    if tx.send(skipped(index, id)).await.is_err() {
                        return release(&invoker, inst, in_flight);
                    }
                    continue;
                }
                if inst
                    .as_ref()
                    .is_some_and(|i| !i.serves(&inv) || !i.is_usable())
                {
                    if !in_flight.is_empty() {
                        // Another program: it waits until this one's items are answered.
                        again.push_front((index, (id, inv)));
                        break;
                    }
                    if let Some(i) = inst.take() {
                        invoker.pools.release_instance(i);
                    }
                }
                if inst.is_none() {
                    match invoker.pools.instance(&inv).await {
                        Ok(i) => inst = Some(i),
                        Err(e) => {
                            let started = Instant::now();
                            let r = judge(&shared, index, id, inv.language, Err(e), started);
                            crate::metrics::batch_item("failure");
                            gate.open();
                            if tx.send(r).await.is_err() {
                                return;
                            }
                            continue;
                        }
                    }
                }
                let Some(i) = inst.as_mut() else { break };
                if let Err(e) = i.send(&inv) {
                    tracing::warn!(error = %e, "a resident batch item could not be sent");
                    again.push_front((index, (id, inv)));
                    inst = None;
                    break;
                }
                in_flight.push_back(Sent {
                    index,
                    id,
                    inv,
                    started: Instant::now(),
                });
            }
        }
        let Some(sent) = in_flight.pop_front() else {
            if again.is_empty() {
                break;
            }
            continue;
        };
        let Some(i) = inst.as_mut() else {
            // Cannot happen (an item in flight has its instance); fail it rather than hang.
            let r = sandbox_failure(sent.index, sent.id, sent.started);
            if tx.send(r).await.is_err() {
                return;
            }
            continue;
        };
        let ran = match i.flush().await {
            Ok(()) => i.recv(&sent.inv).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &ran {
            // The container failed: the item that was running gets the error, the ones
            // behind it never started and run again on a fresh instance.
            tracing::warn!(error = %e, in_flight = in_flight.len(), "a resident instance failed mid-batch");
            for s in in_flight.drain(..).rev() {
                again.push_front((s.index, (s.id, s.inv)));
            }
            inst = None;
        }
        let r = judge(
            &shared,
            sent.index,
            sent.id,
            sent.inv.language,
            ran,
            sent.started,
        );
        crate::metrics::batch_item(if r.success { "success" } else { "failure" });
        gate.open();
        if tx.send(r).await.is_err() {
            return release(&invoker, inst, in_flight);
        }
    }
    release(&invoker, inst, in_flight);
}

/// Gives a worker's instance back; one with items still in flight (the reader went away)
/// is dropped instead, which retires its container.
fn release(invoker: &Invoker, inst: Option<codebeaker_pool::Instance>, in_flight: VecDeque<Sent>) {
    if let Some(i) = inst {
        if in_flight.is_empty() {
            invoker.pools.release_instance(i);
        }
    }
}
