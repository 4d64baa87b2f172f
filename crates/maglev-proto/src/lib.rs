//! The maglevd gRPC API: `maglev.proto` and its tonic/prost code, generated
//! at build time with a vendored protoc.

#![forbid(unsafe_code)]
#![allow(missing_docs, clippy::all)]

tonic::include_proto!("maglev");

/// The encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("maglev_descriptor");

/// The largest message a client of this API takes: a `ListBackends` of
/// 64,000 backends is 8.8 MB and `GetVPPLBState` of as many application
/// servers larger, past tonic's default of 4 MiB (which refused them).
pub const MAX_MESSAGE: usize = 256 << 20;
