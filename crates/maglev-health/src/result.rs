//! What one probe found.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// A HAProxy-style result code. `L3*` codes are ours, for ICMP (layer 3);
/// `SOCKERR` is a local failure (no socket, no namespace), not the
/// backend's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// ICMP echo reply received.
    L3Ok,
    /// No echo reply within the timeout.
    L3Tout,
    /// ICMP error (unreachable…) or send failure.
    L3Con,
    /// TCP connection established.
    L4Ok,
    /// TCP connect timed out.
    L4Tout,
    /// TCP connection refused or unreachable.
    L4Con,
    /// TLS handshake done (used in details; a full HTTPS pass is `L7OK`).
    L6Ok,
    /// TLS handshake timed out.
    L6Tout,
    /// TLS handshake failed (certificate, protocol).
    L6Rsp,
    /// HTTP response with an accepted status (and body, when checked).
    L7Ok,
    /// HTTP status not in the accepted set.
    L7Sts,
    /// Invalid HTTP response, or the body did not match.
    L7Rsp,
    /// No HTTP response within the timeout.
    L7Tout,
    /// A local error kept the probe from running.
    SockErr,
    /// Synthetic pass of a static backend (no health check).
    Static,
}

impl Code {
    /// The code as text (`L7STS`…).
    pub fn as_str(&self) -> &'static str {
        match self {
            Code::L3Ok => "L3OK",
            Code::L3Tout => "L3TOUT",
            Code::L3Con => "L3CON",
            Code::L4Ok => "L4OK",
            Code::L4Tout => "L4TOUT",
            Code::L4Con => "L4CON",
            Code::L6Ok => "L6OK",
            Code::L6Tout => "L6TOUT",
            Code::L6Rsp => "L6RSP",
            Code::L7Ok => "L7OK",
            Code::L7Sts => "L7STS",
            Code::L7Rsp => "L7RSP",
            Code::L7Tout => "L7TOUT",
            Code::SockErr => "SOCKERR",
            Code::Static => "STATIC",
        }
    }

    /// Whether the code is a pass.
    pub fn is_pass(&self) -> bool {
        matches!(
            self,
            Code::L3Ok | Code::L4Ok | Code::L6Ok | Code::L7Ok | Code::Static
        )
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// Pass or fail.
    pub pass: bool,
    /// HAProxy-style code.
    pub code: Code,
    /// Short human detail (`HTTP 503`, `connection refused`…): static
    /// text for the common outcomes, so a probe that passes allocates
    /// none.
    pub detail: Cow<'static, str>,
    /// How long the probe took.
    pub duration: Duration,
}

impl ProbeResult {
    /// A result with `pass` derived from `code`.
    pub fn new(
        code: Code,
        detail: impl Into<Cow<'static, str>>,
        duration: Duration,
    ) -> ProbeResult {
        ProbeResult {
            pass: code.is_pass(),
            code,
            detail: detail.into(),
            duration,
        }
    }
}
