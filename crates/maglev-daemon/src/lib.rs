//! maglevd's composition root: its flags, the running daemon (health
//! checker and reconciler, started from one config), the one reload path
//! that SIGHUP and `ReloadConfig` share, the API's listeners and admission
//! rules, the signal loop, systemd's notify protocol, and the log records
//! `WatchEvents` streams.
//!
//! The gRPC service over it is `maglev-service`; the binary wires the two
//! together and installs the process-wide logging.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod args;
pub mod daemon;
pub mod logs;
pub mod notify;
pub mod runtimes;
pub mod signals;

pub use daemon::{ConfigOutcome, Daemon};
