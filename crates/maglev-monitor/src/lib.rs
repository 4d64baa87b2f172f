//! maglevt's model and view: which VIPs to probe ([`targets`]), the probe
//! of one VIP ([`probe`]), rolling statistics ([`stats`], pure), the probe
//! loops and the shared model ([`monitor`]), and the screen ([`view`]),
//! drawn from plain data so it is testable without a terminal.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod args;
pub mod host;
pub mod monitor;
pub mod probe;
pub mod stats;
pub mod targets;
pub mod view;

pub use monitor::{Header, Model, Monitor};
pub use probe::ProbeOptions;
pub use targets::{Kind, KindChoice, Target};
pub use view::{render, Theme, Ui, View};
