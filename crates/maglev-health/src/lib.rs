//! Active health checking of load-balancer backends.
//!
//! - [`probe`]: the [`Probe`] trait and its `http`, `https`, `tcp` and `icmp`
//!   implementations, each bounded by its timeout and reporting a
//!   HAProxy-style [`Code`];
//! - [`state`]: the rise/fall state machine, pure;
//! - [`agent`]: the agent check (HAProxy's agent protocol);
//! - [`Checker`]: one probe loop per backend (and an agent loop where
//!   configured), operator actions, reloads, and a broadcast of every
//!   transition.
//!
//! ```no_run
//! # async fn demo(config: maglev_config::Config) -> Result<(), Box<dyn std::error::Error>> {
//! use maglev_health::{Checker, CheckerOptions};
//! let checker = Checker::start(&config, CheckerOptions::default())?;
//! let mut events = checker.subscribe();
//! while let Ok(ev) = events.recv().await {
//!     println!("{}: {} -> {}", ev.backend, ev.transition.from, ev.transition.to);
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admission;
pub mod agent;
mod checker;
pub mod probe;
mod result;
mod slots;
pub mod state;

pub use agent::{AgentAdmin, AgentOper, AgentState};
pub use checker::{
    ApplyReport, BackendEvent, BackendObserver, BackendStatus, BackendSummary, Checker,
    CheckerError, CheckerOptions, ProbeFactory, ProbeLoad, ProbeObserver, WeakChecker,
    STATIC_INTERVAL,
};
pub use probe::{Probe, Prober, SetupError};
pub use result::{Code, ProbeResult};
pub use state::{ActionError, Health, State, Transition};
