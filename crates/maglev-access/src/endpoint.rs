//! Listen and dial addresses.

use std::fmt;
use std::path::PathBuf;

/// One address: TCP `host:port` (`:port` = every address when listening)
/// or a unix socket `unix:/path`. A TCP address may say `http://` (plain
/// TCP whatever else is set) or `https://` (TLS); a bare one is TLS when
/// TLS is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `[scheme://]host:port`.
    Tcp(String, Scheme),
    /// `unix:PATH`.
    Unix(PathBuf),
}

/// What a TCP address says about TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Bare `host:port`: TLS when TLS is configured.
    Auto,
    /// `http://`: plain TCP.
    Plain,
    /// `https://`: TLS.
    Tls,
}

impl Scheme {
    /// Whether this address uses TLS, given whether TLS is configured.
    pub fn tls(self, configured: bool) -> bool {
        match self {
            Scheme::Auto => configured,
            Scheme::Plain => false,
            Scheme::Tls => true,
        }
    }
}

impl Endpoint {
    /// Parses one address.
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("unix:") {
            // `unix:///run/x.sock` is how gRPC tools write it.
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(format!(
                    "{s:?}: a unix address needs a path (unix:/run/x.sock)"
                ));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let (scheme, hostport) = if let Some(rest) = s.strip_prefix("http://") {
            (Scheme::Plain, rest)
        } else if let Some(rest) = s.strip_prefix("https://") {
            (Scheme::Tls, rest)
        } else {
            (Scheme::Auto, s)
        };
        let hostport = hostport.trim_end_matches('/');
        match hostport.rsplit_once(':') {
            Some((_, port)) if port.parse::<u16>().is_ok() => {
                Ok(Endpoint::Tcp(hostport.to_string(), scheme))
            }
            _ => Err(format!("{s:?}: expected host:port, :port or unix:/path")),
        }
    }

    /// Parses a comma-separated list (at least one).
    pub fn parse_list(s: &str) -> Result<Vec<Endpoint>, String> {
        let list: Vec<Endpoint> = s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Endpoint::parse)
            .collect::<Result<_, _>>()?;
        if list.is_empty() {
            return Err("no address given".to_string());
        }
        Ok(list)
    }

    /// The host part of a TCP address (for TLS server names), brackets
    /// removed; `None` for unix sockets.
    pub fn host(&self) -> Option<&str> {
        match self {
            Endpoint::Tcp(a, _) => {
                let host = a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h);
                Some(host.trim_start_matches('[').trim_end_matches(']'))
            }
            Endpoint::Unix(_) => None,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(a, Scheme::Auto) => f.write_str(a),
            Endpoint::Tcp(a, Scheme::Plain) => write!(f, "http://{a}"),
            Endpoint::Tcp(a, Scheme::Tls) => write!(f, "https://{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            Endpoint::parse("localhost:9090"),
            Ok(Endpoint::Tcp("localhost:9090".into(), Scheme::Auto))
        );
        assert_eq!(
            Endpoint::parse(":9090"),
            Ok(Endpoint::Tcp(":9090".into(), Scheme::Auto))
        );
        assert_eq!(Endpoint::parse("[::1]:9090").unwrap().host(), Some("::1"));
        assert_eq!(
            Endpoint::parse("unix:/run/vpp-maglev/maglevd.sock"),
            Ok(Endpoint::Unix("/run/vpp-maglev/maglevd.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("unix:///run/m.sock"),
            Ok(Endpoint::Unix("/run/m.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("http://lb1:9090/"),
            Ok(Endpoint::Tcp("lb1:9090".into(), Scheme::Plain))
        );
        assert_eq!(
            Endpoint::parse("https://lb1:9443").unwrap().to_string(),
            "https://lb1:9443"
        );
        assert!(Endpoint::parse("unix:").is_err());
        assert!(Endpoint::parse("lb1").is_err());
        assert!(Endpoint::parse("lb1:http").is_err());
        assert_eq!(
            Endpoint::parse_list("unix:/a.sock, localhost:1")
                .unwrap()
                .len(),
            2
        );
        assert!(Endpoint::parse_list(" , ").is_err());
    }
}
