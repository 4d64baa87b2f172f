//! maglevc's command language (the command tree with prefix matching,
//! completion and `?` help), the calls each command makes, and how their
//! answers print as text or JSON.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod events;
pub mod render;
pub mod run;
pub mod tree;

pub use tree::{complete, help, resolve, Command, Names, NoNames, ResolveError, Slot};
