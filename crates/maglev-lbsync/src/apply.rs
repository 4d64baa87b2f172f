//! Applying a plan through the VPP client.
//!
//! Calls for one VIP address run in plan order; different addresses
//! proceed concurrently on the one connection (VPP serves a connection's
//! messages in order, so pipelining changes nothing but the wall time). A
//! failed call stops the rest of its address's calls, is reported, and the
//! reconciler retries what is left.

use std::collections::BTreeMap;
use std::sync::Arc;

use maglev_vpp::{Error, LbApi};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::plan::{Op, Plan, SyncStats};

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

/// Sends one call.
pub async fn call(lb: &LbApi, op: &Op) -> Result<(), Error> {
    match op {
        Op::VipAdd(spec) => lb.vip_add(spec).await,
        Op::VipDel(key) => lb.vip_del(key).await,
        Op::AsAdd {
            vip,
            address,
            weight,
        } => lb.as_add(vip, *address, *weight).await,
        Op::AsDel {
            vip,
            address,
            flush,
        } => lb.as_del(vip, *address, *flush).await,
        Op::AsSetWeight {
            vip,
            address,
            weight,
            flush,
        } => lb.as_set_weight(vip, *address, *weight, *flush).await,
    }
}

/// Applies `plan`.
pub async fn apply(lb: &LbApi, plan: &Plan) -> Applied {
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
                match call(&lb, &op).await {
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
