//! maglevc's command language (the command tree with prefix matching,
//! completion and `?` help), the calls each command makes, how their
//! answers print as text or JSON, and the interactive shell.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod args;
pub mod dist;
pub mod events;
pub mod names;
pub mod render;
pub mod run;
pub mod shell;
pub mod term;
pub mod tree;

pub use tree::{complete, help, resolve, Command, Names, NoNames, ResolveError, Slot};
