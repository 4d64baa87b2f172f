//! The agent check (HAProxy's agent protocol): a small TCP exchange with an
//! agent running on the backend, whose one-line reply sets an
//! administrative state and a weight percentage. Beside the health probe,
//! not instead of it: the probe says whether the backend works, the agent
//! what its owner wants it to take.
//!
//! The reply is words separated by spaces, tabs or commas, optionally
//! followed by `#` and a comment: `ready`, `drain`, `maint` (the
//! administrative state), `up`, `down`, `fail`, `failed`, `stopped` (the
//! operational state), `N%` (0–100, of the configured weight);
//! `maxconn:N` is accepted and ignored. A word maglev does not know makes
//! the whole reply invalid: it then changes nothing, like an agent that
//! cannot be reached.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::probe::Sockets;

/// The administrative state an agent asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentAdmin {
    /// In service.
    #[default]
    Ready,
    /// No new flows (weight 0), existing ones stay (no flush).
    Drain,
    /// Out of service, like an operator disable (weight 0, flush).
    Maint,
}

/// The operational state an agent reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentOper {
    /// Working (the health probe still has its say).
    #[default]
    Up,
    /// Not working: the backend is treated as down.
    Down,
}

/// What the agent has asked for so far (each reply changes what it names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentState {
    /// Administrative state.
    pub admin: AgentAdmin,
    /// Operational state.
    pub oper: AgentOper,
    /// Percent of the configured weight, 0–100.
    pub percent: u8,
}

impl Default for AgentState {
    fn default() -> Self {
        AgentState {
            admin: AgentAdmin::Ready,
            oper: AgentOper::Up,
            percent: 100,
        }
    }
}

impl AgentState {
    /// Whether it changes nothing (ready, up, 100 %).
    pub fn is_neutral(&self) -> bool {
        *self == AgentState::default()
    }

    /// This state with a reply applied.
    pub fn apply(mut self, reply: &AgentReply) -> AgentState {
        if let Some(a) = reply.admin {
            self.admin = a;
        }
        if let Some(o) = reply.oper {
            self.oper = o;
        }
        if let Some(p) = reply.percent {
            self.percent = p;
        }
        self
    }

    /// As the API and logs show it: `ready up 100%`, `drain up 50%`.
    pub fn describe(&self) -> String {
        let admin = match self.admin {
            AgentAdmin::Ready => "ready",
            AgentAdmin::Drain => "drain",
            AgentAdmin::Maint => "maint",
        };
        let oper = match self.oper {
            AgentOper::Up => "up",
            AgentOper::Down => "down",
        };
        format!("{admin} {oper} {}%", self.percent)
    }
}

/// What one reply names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgentReply {
    /// `ready`, `drain`, `maint`.
    pub admin: Option<AgentAdmin>,
    /// `up`, `down` (and its synonyms).
    pub oper: Option<AgentOper>,
    /// `N%`.
    pub percent: Option<u8>,
}

/// Parses one reply line. Pure, so it can be fuzzed.
pub fn parse_reply(line: &str) -> Result<AgentReply, String> {
    let text = line.split('#').next().unwrap_or_default();
    let mut reply = AgentReply::default();
    let mut words = 0;
    for word in text
        .split([' ', '\t', ',', '\r', '\n'])
        .filter(|w| !w.is_empty())
    {
        words += 1;
        let w = word.to_ascii_lowercase();
        match w.as_str() {
            "ready" => reply.admin = Some(AgentAdmin::Ready),
            "drain" => reply.admin = Some(AgentAdmin::Drain),
            "maint" => reply.admin = Some(AgentAdmin::Maint),
            "up" => reply.oper = Some(AgentOper::Up),
            "down" | "fail" | "failed" | "stopped" => reply.oper = Some(AgentOper::Down),
            _ if w.starts_with("maxconn:") => {}
            _ => match w.strip_suffix('%').map(str::parse::<u16>) {
                Some(Ok(p)) if p <= 100 => reply.percent = Some(p as u8),
                Some(Ok(p)) => return Err(format!("{p}% is above 100%")),
                _ => return Err(format!("unknown word {word:?}")),
            },
        }
    }
    if words == 0 {
        return Err("empty reply".to_string());
    }
    Ok(reply)
}

/// The most of a reply that is read.
const MAX_REPLY: usize = 512;

/// Asks the agent at `addr` once: connect, send `send`, read one line (or
/// until the agent closes), all within `timeout`.
pub async fn ask(
    sockets: &Sockets,
    addr: SocketAddr,
    send: &str,
    timeout: Duration,
) -> Result<String, String> {
    let work = async {
        let mut s = sockets
            .connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        if !send.is_empty() {
            s.write_all(send.as_bytes())
                .await
                .map_err(|e| format!("send: {e}"))?;
        }
        let mut buf = Vec::with_capacity(64);
        let mut chunk = [0u8; 128];
        while buf.len() < MAX_REPLY && !buf.contains(&b'\n') {
            let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
        Ok(String::from_utf8_lossy(line).trim().to_string())
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err("timeout".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let r = |s: &str| parse_reply(s);
        assert_eq!(
            r("up 50%").unwrap(),
            AgentReply {
                oper: Some(AgentOper::Up),
                percent: Some(50),
                admin: None
            }
        );
        assert_eq!(r("drain").unwrap().admin, Some(AgentAdmin::Drain));
        assert_eq!(
            r("MAINT # going away").unwrap().admin,
            Some(AgentAdmin::Maint)
        );
        assert_eq!(r("ready,up,100%").unwrap().percent, Some(100));
        assert_eq!(r("stopped").unwrap().oper, Some(AgentOper::Down));
        assert_eq!(r("maxconn:30 75%\r\n").unwrap().percent, Some(75));
        assert!(r("").is_err());
        assert!(r("# only a comment").is_err());
        assert!(r("sideways").unwrap_err().contains("unknown word"));
        assert!(r("150%").unwrap_err().contains("above 100%"));
        // State accumulates: each reply changes what it names.
        let s = AgentState::default()
            .apply(&r("drain 50%").unwrap())
            .apply(&r("up").unwrap());
        assert_eq!(
            (s.admin, s.oper, s.percent),
            (AgentAdmin::Drain, AgentOper::Up, 50)
        );
        assert_eq!(s.describe(), "drain up 50%");
        let s = s.apply(&r("ready 100%").unwrap());
        assert!(s.is_neutral());
    }
}
