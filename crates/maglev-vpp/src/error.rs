//! Errors of the VPP client, and VPP's own `retval` codes.

use std::fmt;
use std::time::Duration;

use crate::wire::{DecodeError, EncodeError};

/// A non-zero `retval` from VPP (`src/vnet/error.h`), typed where the lb
/// plugin uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VppError {
    /// −2 `INVALID_SW_IF_INDEX`
    InvalidSwIfIndex,
    /// −6 `NO_SUCH_ENTRY`: VIP or AS not found.
    NoSuchEntry,
    /// −7 `INVALID_VALUE`
    InvalidValue,
    /// −70 `INVALID_MEMORY_SIZE`: a size is not a power of two.
    InvalidMemorySize,
    /// −73 `INVALID_ARGUMENT`: per-port VIPs of one prefix differ in type.
    InvalidArgument,
    /// −81 `VALUE_EXIST`: VIP or active AS already there, or port overlap.
    ValueExist,
    /// −97 `INVALID_ADDRESS_FAMILY`: family does not fit the encap.
    InvalidAddressFamily,
    /// Any other code.
    Other(i32),
}

impl VppError {
    /// Maps a non-zero retval.
    pub fn from_retval(code: i32) -> VppError {
        match code {
            -2 => VppError::InvalidSwIfIndex,
            -6 => VppError::NoSuchEntry,
            -7 => VppError::InvalidValue,
            -70 => VppError::InvalidMemorySize,
            -73 => VppError::InvalidArgument,
            -81 => VppError::ValueExist,
            -97 => VppError::InvalidAddressFamily,
            other => VppError::Other(other),
        }
    }

    /// The numeric retval.
    pub fn code(&self) -> i32 {
        match self {
            VppError::InvalidSwIfIndex => -2,
            VppError::NoSuchEntry => -6,
            VppError::InvalidValue => -7,
            VppError::InvalidMemorySize => -70,
            VppError::InvalidArgument => -73,
            VppError::ValueExist => -81,
            VppError::InvalidAddressFamily => -97,
            VppError::Other(c) => *c,
        }
    }
}

impl fmt::Display for VppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            VppError::InvalidSwIfIndex => "invalid interface index",
            VppError::NoSuchEntry => "no such entry",
            VppError::InvalidValue => "invalid value",
            VppError::InvalidMemorySize => "invalid memory size (not a power of two)",
            VppError::InvalidArgument => "invalid argument",
            VppError::ValueExist => "value already exists",
            VppError::InvalidAddressFamily => "invalid address family",
            VppError::Other(_) => "error",
        };
        write!(f, "{what} ({})", self.code())
    }
}

/// Anything that can go wrong talking to VPP.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be opened.
    #[error("cannot connect to {path}: {source}")]
    Connect {
        /// Socket path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("VPP socket: {0}")]
    Io(#[from] std::io::Error),
    /// The `sockclnt_create` handshake failed.
    #[error("handshake with VPP failed: {0}")]
    Handshake(String),
    /// VPP's message table lacks the message (plugin not loaded, or a
    /// different API version with another CRC).
    #[error("VPP does not know message {name_crc} (plugin not loaded, or another API version)")]
    UnknownMessage {
        /// `<name>_<crc>` looked up.
        name_crc: &'static str,
    },
    /// No answer within the call's timeout.
    #[error("{msg}: no reply from VPP within {after:?}")]
    Timeout {
        /// Request name.
        msg: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The connection is gone.
    #[error("VPP connection closed")]
    Disconnected,
    /// VPP answered with a non-zero retval.
    #[error("{msg}: VPP returned {error}")]
    Vpp {
        /// Request name.
        msg: &'static str,
        /// The retval.
        error: VppError,
    },
    /// A request could not be encoded.
    #[error("{msg}: {source}")]
    Encode {
        /// Request name.
        msg: &'static str,
        /// Cause.
        source: EncodeError,
    },
    /// A reply could not be decoded.
    #[error("{msg}: malformed message from VPP: {source}")]
    Decode {
        /// Message name.
        msg: &'static str,
        /// Cause.
        source: DecodeError,
    },
    /// VPP answered with a message of another type.
    #[error("{msg}: unexpected reply (message id {got})")]
    UnexpectedReply {
        /// Request name.
        msg: &'static str,
        /// Id received.
        got: u16,
    },
    /// The operation needs messages this VPP does not have.
    #[error("not supported by this VPP: {0}")]
    Unsupported(&'static str),
}

impl Error {
    /// The VPP retval error, if that is what this is.
    pub fn vpp_error(&self) -> Option<VppError> {
        match self {
            Error::Vpp { error, .. } => Some(*error),
            _ => None,
        }
    }

    /// Whether the connection is unusable after this error (reconnect).
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::Io(_)
                | Error::Handshake(_)
                | Error::Disconnected
                | Error::Timeout { .. }
        )
    }
}
