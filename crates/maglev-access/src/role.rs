//! Roles, and the rules that give each connection one.
//!
//! | transport | admin when | otherwise |
//! |---|---|---|
//! | unix socket | the peer (SO_PEERCRED) is root, the daemon's own user, or in the socket's group (primary or supplementary) | read |
//! | TLS | the client certificate's CN or a SAN matches an `--admin-client` pattern | read |
//! | plain TCP | `--insecure-admin-tcp` is set | read |

use std::fmt;

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// What a connection may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Every read: lists, details, VPP state, counters, event streams.
    Read,
    /// Reads and every change: backend actions, weights, syncs, reloads,
    /// config checks.
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Read => "read",
            Role::Admin => "admin",
        })
    }
}

/// How a connection arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP.
    Tcp,
    /// TCP with TLS.
    Tls,
    /// A unix socket.
    Unix,
}

/// The connection's identity and role, attached to every request on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its role.
    pub role: Role,
    /// Its transport.
    pub transport: Transport,
    /// Who it is, for logs and refusals: `tcp 127.0.0.1:41234`,
    /// `unix uid=1000 pid=4242`, `tls CN=ops-1 10.0.0.5:5123`.
    pub who: String,
}

impl PeerInfo {
    /// A peer of unknown origin gets the read role (fail closed).
    pub fn unknown() -> PeerInfo {
        PeerInfo {
            role: Role::Read,
            transport: Transport::Tcp,
            who: "unknown peer".to_string(),
        }
    }
}

/// A `--admin-client` pattern: `*` stands for any run of characters
/// (`*.ops.example.com`, `ops-*`); matched against the certificate's
/// subject CN and each of its DNS, email, URI and IP SANs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// A pattern; empty ones are refused.
    pub fn new(p: &str) -> Result<Pattern, String> {
        if p.trim().is_empty() {
            return Err("an --admin-client pattern may not be empty".to_string());
        }
        Ok(Pattern(p.trim().to_string()))
    }

    /// Whether `name` matches (ASCII case-insensitive, as DNS names are).
    pub fn matches(&self, name: &str) -> bool {
        glob(
            self.0.to_ascii_lowercase().as_bytes(),
            name.to_ascii_lowercase().as_bytes(),
        )
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `*`-only glob, iterative (no recursion, linear backtracking).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// The rules of the table above, as configured.
#[derive(Debug, Clone, Default)]
pub struct AdminRules {
    /// Plain TCP clients are admin (`--insecure-admin-tcp`).
    pub insecure_admin_tcp: bool,
    /// Client certificates whose names match one of these are admin.
    pub admin_clients: Vec<Pattern>,
    /// Members of this group are admin on a unix socket (with root and the
    /// daemon's own user).
    pub unix_admin_gid: Option<u32>,
}

/// The names a certificate goes by: its subject CNs, then its SANs.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.to_string()),
                GeneralName::RFC822Name(e) => names.push(e.to_string()),
                GeneralName::URI(u) => names.push(u.to_string()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => names.push(
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).expect("4")).to_string(),
                    ),
                    16 => names.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).expect("16"))
                            .to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    names
}

impl AdminRules {
    /// The role of a plain TCP peer.
    pub fn tcp(&self) -> Role {
        if self.insecure_admin_tcp {
            Role::Admin
        } else {
            Role::Read
        }
    }

    /// The role of a TLS peer with this (verified) leaf certificate, and
    /// the name that decided it (the first CN otherwise).
    pub fn tls(&self, leaf: Option<&[u8]>) -> (Role, Option<String>) {
        let names = leaf.map(certificate_names).unwrap_or_default();
        for n in &names {
            if self.admin_clients.iter().any(|p| p.matches(n)) {
                return (Role::Admin, Some(n.clone()));
            }
        }
        (Role::Read, names.into_iter().next())
    }

    /// The role of a unix-socket peer: its uid, primary gid and
    /// supplementary groups; `own_uid` is the daemon's effective uid.
    pub fn unix(&self, uid: u32, gid: u32, groups: &[u32], own_uid: u32) -> Role {
        let in_group = self
            .unix_admin_gid
            .is_some_and(|g| g == gid || groups.contains(&g));
        if uid == 0 || uid == own_uid || in_group {
            Role::Admin
        } else {
            Role::Read
        }
    }
}

/// A process's supplementary groups, from `/proc/PID/status` (empty when
/// unknown: the primary group still counts).
pub fn process_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = |s: &str| Pattern::new(s).unwrap();
        assert!(p("*.ops.example.com").matches("lb1.ops.example.com"));
        assert!(p("*.ops.example.com").matches("LB1.OPS.example.com"));
        assert!(!p("*.ops.example.com").matches("ops.example.com"));
        assert!(p("ops-*").matches("ops-1"));
        assert!(p("ops-admin").matches("ops-admin"));
        assert!(!p("ops-admin").matches("ops-admin2"));
        assert!(p("a*b*c").matches("aXXbYYc"));
        assert!(!p("a*b*c").matches("aXXbYY"));
        assert!(p("*").matches(""));
        assert!(Pattern::new(" ").is_err());
    }

    #[test]
    fn rules() {
        let r = AdminRules {
            insecure_admin_tcp: false,
            admin_clients: vec![Pattern::new("admin-*").unwrap()],
            unix_admin_gid: Some(990),
        };
        assert_eq!(r.tcp(), Role::Read);
        assert_eq!(r.unix(1000, 1000, &[], 0), Role::Read);
        assert_eq!(r.unix(1000, 990, &[], 0), Role::Admin);
        assert_eq!(r.unix(1000, 1000, &[4, 990], 0), Role::Admin);
        assert_eq!(r.unix(0, 0, &[], 995), Role::Admin);
        assert_eq!(r.unix(995, 995, &[], 995), Role::Admin);
        let cert = rcgen::generate_simple_self_signed(vec![
            "admin-7.example.com".to_string(),
            "10.0.0.9".to_string(),
        ])
        .unwrap();
        let der = cert.cert.der().to_vec();
        let names = certificate_names(&der);
        assert!(
            names.contains(&"admin-7.example.com".to_string()),
            "{names:?}"
        );
        assert!(names.contains(&"10.0.0.9".to_string()), "{names:?}");
        assert_eq!(
            r.tls(Some(&der)),
            (Role::Admin, Some("admin-7.example.com".to_string()))
        );
        assert_eq!(r.tls(None), (Role::Read, None));
        let plain = AdminRules {
            insecure_admin_tcp: true,
            ..AdminRules::default()
        };
        assert_eq!(plain.tcp(), Role::Admin);
    }
}
