//! Talk to VPP: binary-API bindings generated from VPP's `.api.json`, an
//! async client for the API socket, the lb plugin's API in domain terms,
//! and a reader of the stats segment.
//!
//! ```no_run
//! # async fn demo() -> Result<(), maglev_vpp::Error> {
//! use maglev_vpp::{Client, ClientOptions, LbApi};
//! let client = Client::connect("/run/vpp/api.sock", ClientOptions::default()).await?;
//! let lb = LbApi::new(client);
//! for vip in lb.vip_dump().await? {
//!     println!("{}", vip.key);
//! }
//! # Ok(()) }
//! ```

// Unsafe code is denied (workspace lint) and allowed only in `stats`.
#![warn(missing_docs)]

mod addr;
pub mod binapi;
mod client;
mod error;
pub mod frame;
mod lb;
pub mod lbcli;
/// VPP's Maglev table and flow hash (the `maglev-table` crate).
pub use maglev_table as maglev;
pub mod stats;
pub mod wire;

pub use client::{
    ApiObserver, Client, ClientOptions, Direction, MessageTable, MAX_DUMP_BYTES, MAX_DUMP_ENTRIES,
    MAX_QUEUED_FRAMES,
};
pub use error::{Error, VppError};
pub use lb::{AsInfo, Dialect, Encap, LbApi, LbConfig, VersionInfo, VipInfo, VipKey, VipSpec};
