//! Applying a plan through the VPP port.
//!
//! Calls for one VIP address run in plan order; different addresses
//! proceed concurrently on the one connection (VPP serves a connection's
//! messages in order, so pipelining changes nothing but the wall time). A
//! failed call stops the rest of its address's calls, is reported, and the
//! reconciler retries what is left.

use std::collections::BTreeMap;
use std::sync::Arc;

use maglev_vpp::Error;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::plan::{Op, Plan, SyncStats};
use crate::port::VppPort;

/// VIPs whose calls are in flight at once.
const PARALLEL_VIPS: usize = 256;

/// What applying a plan did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Calls that succeeded (per VIP in plan order).
    pub done: Vec<Op>,
    /// Calls that failed, with the error.
    pub failures: Vec<(Op, Error)>,
}

impl Applied {
    /// Successful calls by kind.
    pub fn stats(&self) -> SyncStats {
        let mut s = SyncStats::default();
        for op in &self.done {
            s.count(op);
        }
        s
    }

    /// Whether a failure means the connection is gone.
    pub fn lost_connection(&self) -> bool {
        self.failures.iter().any(|(_, e)| e.is_connection_error())
    }
}

/// Applies `plan`.
pub async fn apply<P: VppPort>(lb: &P, plan: &Plan) -> Applied {
    // One task per address, not per VIP: the VIPs of one address must see
    // the plan's order (stale deletes before creates).
    let mut per_vip: BTreeMap<std::net::IpAddr, Vec<Op>> = BTreeMap::new();
    for op in &plan.ops {
        per_vip.entry(op.vip().address).or_default().push(*op);
    }
    let slots = Arc::new(Semaphore::new(PARALLEL_VIPS));
    let mut tasks = JoinSet::new();
    for (_, ops) in per_vip {
        let lb = lb.clone();
        let slots = Arc::clone(&slots);
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let mut done = Vec::new();
            for op in ops {
                match lb.call(&op).await {
                    Ok(()) => {
                        tracing::info!(event = "vpp-lbsync-call", op = %op);
                        done.push(op);
                    }
                    Err(e) => {
                        tracing::warn!(event = "vpp-lbsync-error", op = %op, error = %e);
                        return (done, Some((op, e)));
                    }
                }
            }
            (done, None)
        });
    }
    let mut applied = Applied::default();
    while let Some(joined) = tasks.join_next().await {
        let Ok((done, failure)) = joined else {
            continue;
        };
        applied.done.extend(done);
        applied.failures.extend(failure);
    }
    applied
}
