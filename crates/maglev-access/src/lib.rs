//! Who may reach maglevd's API, and how.
//!
//! - [`endpoint`]: listen and dial addresses, `host:port` or `unix:/path`.
//! - [`role`]: the two roles (read, admin) and the rules that give a
//!   connection one, from its transport, unix credentials or client
//!   certificate.
//! - [`tls`]: server TLS from PEM files, reloadable without dropping the
//!   listener, optionally requiring client certificates (mTLS); the
//!   client's TLS settings.
//! - [`listen`]: binds endpoints and yields connections, each tagged with
//!   its [`role::PeerInfo`] (tonic hands that to every request).
//! - [`dial`]: the client side, for maglevc and other tools.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dial;
pub mod endpoint;
pub mod listen;
pub mod role;
pub mod tls;

pub use endpoint::{Endpoint, Scheme};
pub use role::{AdminRules, PeerInfo, Role, Transport};
