//! maglevc's command language: the command tree with prefix matching,
//! completion and `?` help, independent of any terminal or network.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod tree;

pub use tree::{complete, help, resolve, Command, Names, NoNames, ResolveError, Slot};
