//! Talk to VPP: binary-API bindings, an async socket client, and a reader
//! of the stats segment.

#![warn(missing_docs)]

mod addr;
pub mod binapi;
pub mod wire;
