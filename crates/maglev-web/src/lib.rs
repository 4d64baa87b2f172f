//! maglevd-frontend, the web dashboard over one or more maglevds.
//!
//! - [`model`]: the JSON shapes of one maglevd (frontends, pools,
//!   backends, VPP), built from gRPC messages, and the "why" line.
//! - [`watcher`]: one task per maglevd keeping the [`hub`] current (event
//!   stream, refreshes, liveness, debounced LB-state reads).
//! - [`hub`]: the shared state and the events that announce each change.
//! - [`broker`]: the event ring behind `/view/api/events` (replay by
//!   `Last-Event-ID`, `resync` otherwise).
//! - [`consistency`]: whether peers serving one VIP build the same table.
//! - [`auth`]: `/admin/` credentials, sessions and CSRF tokens.
//! - [`http`]: the page, the JSON API, the event stream, admin actions.
//! - [`args`]: the flags.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod args;
pub mod auth;
pub mod broker;
pub mod consistency;
pub mod http;
pub mod hub;
pub mod model;
pub mod watcher;
