//! The maglevd gRPC API: `maglev.proto` and its tonic/prost code, generated
//! at build time with a vendored protoc.

#![forbid(unsafe_code)]
#![allow(missing_docs, clippy::all)]

tonic::include_proto!("maglev");

/// The encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("maglev_descriptor");
