//! From health to VPP: the only component that writes to VPP.
//!
//! - [`desired`]: config + backend states → the VIPs, ASes, weights and
//!   flushes VPP should hold (pure);
//! - [`actual`]: what VPP holds, from its dumps and CLI;
//! - [`plan`]: (desired, actual) → ordered calls (pure), printable for dry
//!   runs;
//! - [`apply`]: runs a plan through `maglev-vpp`;
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
pub mod plan;
pub mod predict;
pub mod reconciler;
pub mod warmup;

pub use desired::{DesiredState, DesiredVip, FrontendState, Overrides};
pub use plan::{plan, Capabilities, FlushLedger, Op, Plan, Scope, SyncStats};
