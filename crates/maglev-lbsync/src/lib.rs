//! From health to VPP: the only component that writes to VPP.
//!
//! - [`desired`]: config + backend states → the VIPs, ASes, weights and
//!   flushes VPP should hold (pure);
//! - [`actual`]: what VPP holds, from its dumps and CLI;
//! - [`plan`]: (desired, actual) → ordered calls (pure), printable for dry
//!   runs;
//! - `apply` (private): runs a plan through the VPP port;
//! - `port` (private): the reconciler's seam to VPP, `maglev-vpp`'s client
//!   behind a trait, so the reconciler's tests run against an in-memory
//!   VPP (`model`, test builds only) on paused time. Both private: outside
//!   this crate the only way to write to VPP is the reconciler's handle;
//! - [`warmup`]: when writes are allowed after a restart (pure);
//! - [`reconciler`]: the loop that ties them to health events, timers,
//!   reloads, VPP (re)connects and explicit requests;
//! - [`predict`]: VPP's Maglev table for a desired VIP, and which backend
//!   a new flow hits.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod actual;
mod apply;
pub mod desired;
#[cfg(test)]
mod model;
pub mod plan;
mod port;
pub mod predict;
pub mod reconciler;
pub mod warmup;

pub use desired::{DesiredState, DesiredVip, FrontendState, Overrides};
pub use plan::{plan, Capabilities, FlushLedger, Op, Plan, Scope, SyncStats};
