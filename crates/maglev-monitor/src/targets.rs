//! Which VIPs to probe, and how, from one or more `maglev.yaml` files.
//!
//! VIPs are de-duplicated by (address, protocol, port): the same VIP in
//! two files (two maglevds of one site) is probed once, under both names.
//! Only TCP VIPs with a port are probed; UDP and all-ports VIPs are listed
//! as skipped.
//!
//! How a VIP is probed, unless `--kind` says otherwise: port 443 is HTTPS
//! and port 80 is HTTP; on any other port, a VIP whose backends are all
//! checked with `type: https` (or all `http`) is probed the same way, and
//! anything else gets a TCP connect.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use maglev_config::{Config, Frontend, Protocol};
use regex::Regex;

/// How a VIP is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A GET over plain HTTP/1.1.
    Http,
    /// A GET over TLS.
    Https,
    /// A TCP connect, nothing sent.
    Tcp,
}

impl Kind {
    /// `http`, `https`, `tcp`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Https => "https",
            Kind::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One VIP to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The frontend name; names joined by `,` when files share the VIP.
    pub name: String,
    /// VIP address.
    pub address: IpAddr,
    /// VIP port (never 0).
    pub port: u16,
    /// How it is probed.
    pub kind: Kind,
}

impl Target {
    /// The socket address probed.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }

    /// `203.0.113.80:443`, `[2001:db8::80]:443`.
    pub fn label(&self) -> String {
        self.addr().to_string()
    }
}

/// A frontend that is not probed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Frontend name.
    pub name: String,
    /// Why.
    pub why: String,
}

/// What `--kind` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KindChoice {
    /// By port, then by the backends' health checks.
    #[default]
    Auto,
    /// Every VIP as this kind.
    Force(Kind),
}

/// The kind of `fe` by the rules in the module docs.
pub fn classify(fe: &Frontend, cfg: &Config) -> Kind {
    match fe.port {
        443 => return Kind::Https,
        80 => return Kind::Http,
        _ => {}
    }
    let types: Vec<&str> = fe
        .backend_names()
        .filter_map(|b| cfg.backends.get(b))
        .filter_map(|b| b.healthcheck.as_ref())
        .map(|hc| hc.type_name())
        .collect();
    match types.first() {
        Some(&"https") if types.iter().all(|t| *t == "https") => Kind::Https,
        Some(&"http") if types.iter().all(|t| *t == "http") => Kind::Http,
        _ => Kind::Tcp,
    }
}

/// The VIPs of `configs`, de-duplicated, in the order of the files and,
/// within a file, by frontend name; `filter` keeps the frontends whose
/// name matches.
pub fn targets(
    configs: &[Config],
    filter: Option<&Regex>,
    kind: KindChoice,
) -> (Vec<Target>, Vec<Skipped>) {
    let mut out: Vec<Target> = Vec::new();
    let mut skipped = Vec::new();
    for cfg in configs {
        for fe in cfg.frontends.values() {
            if filter.is_some_and(|re| !re.is_match(&fe.name)) {
                continue;
            }
            if fe.protocol != Protocol::Tcp || fe.port == 0 {
                skipped.push(Skipped {
                    name: fe.name.clone(),
                    why: if fe.port == 0 {
                        "all-ports VIP: no port to probe".to_string()
                    } else {
                        format!("{} VIP: only TCP is probed", fe.protocol)
                    },
                });
                continue;
            }
            if let Some(t) = out
                .iter_mut()
                .find(|t| t.address == fe.address && t.port == fe.port)
            {
                if !t.name.split(',').any(|n| n == fe.name) {
                    t.name = format!("{},{}", t.name, fe.name);
                }
                continue;
            }
            out.push(Target {
                name: fe.name.clone(),
                address: fe.address,
                port: fe.port,
                kind: match kind {
                    KindChoice::Auto => classify(fe, cfg),
                    KindChoice::Force(k) => k,
                },
            });
        }
    }
    (out, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(frontends: &str) -> Config {
        let text = format!(
            "maglev:
  vpp:
    lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' }}
  healthchecks:
    web: {{ type: http, port: 8080 }}
    tls: {{ type: https, port: 8443 }}
    conn: {{ type: tcp, port: 25 }}
  backends:
    h1: {{ address: 10.0.0.1, healthcheck: web }}
    h2: {{ address: 10.0.0.2, healthcheck: web }}
    t1: {{ address: 10.0.0.3, healthcheck: tls }}
    c1: {{ address: 10.0.0.4, healthcheck: conn }}
    s1: {{ address: 10.0.0.5 }}
  frontends:
{frontends}"
        );
        maglev_config::load_str(&text, "t.yaml")
            .unwrap_or_else(|e| panic!("{e}"))
            .config
    }

    fn fe(name: &str, addr: &str, port: u16, proto: &str, backends: &str) -> String {
        format!(
            "    {name}:\n      address: {addr}\n      protocol: {proto}\n      port: {port}\n      pools: [{{ name: p, backends: {{ {backends} }} }}]\n"
        )
    }

    #[test]
    fn kinds_by_port_then_by_health_check() {
        let c = cfg(&[
            fe("a-https", "192.0.2.1", 443, "tcp", "h1: {}"),
            fe("b-http", "192.0.2.1", 80, "tcp", "t1: {}"),
            fe("c-alt-http", "192.0.2.1", 8080, "tcp", "h1: {}, h2: {}"),
            fe("d-alt-https", "192.0.2.1", 8443, "tcp", "t1: {}"),
            fe("e-mixed", "192.0.2.1", 9000, "tcp", "h1: {}, t1: {}"),
            fe("f-smtp", "192.0.2.1", 25, "tcp", "c1: {}"),
            fe("g-static", "192.0.2.1", 9001, "tcp", "s1: {}"),
        ]
        .concat());
        let (t, skipped) = targets(&[c], None, KindChoice::Auto);
        assert!(skipped.is_empty());
        let kinds: Vec<(&str, Kind)> = t.iter().map(|t| (t.name.as_str(), t.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("a-https", Kind::Https),
                ("b-http", Kind::Http),
                ("c-alt-http", Kind::Http),
                ("d-alt-https", Kind::Https),
                ("e-mixed", Kind::Tcp),
                ("f-smtp", Kind::Tcp),
                ("g-static", Kind::Tcp),
            ]
        );
        let (t, _) = targets(
            &[cfg(&fe("a", "192.0.2.1", 443, "tcp", "h1: {}"))],
            None,
            KindChoice::Force(Kind::Tcp),
        );
        assert_eq!(t[0].kind, Kind::Tcp);
    }

    #[test]
    fn duplicates_merge_udp_and_all_ports_are_skipped_filter_applies() {
        let one = cfg(&[
            fe("www", "192.0.2.1", 443, "tcp", "h1: {}"),
            fe("dns", "192.0.2.53", 53, "udp", "c1: {}"),
            fe("api", "2001:db8::1", 443, "tcp", "h1: {}"),
        ]
        .concat());
        let two = cfg(&[
            fe("www-b", "192.0.2.1", 443, "tcp", "h1: {}"),
            fe("www-plain", "192.0.2.1", 80, "tcp", "h1: {}"),
        ]
        .concat());
        // The same name at the same VIP in a third file is not repeated.
        let all = "    any:\n      address: 192.0.2.9\n      pools: [{ name: p, backends: { h1: {} } }]\n";
        let three = cfg(&[
            all.to_string(),
            fe("www", "192.0.2.1", 443, "tcp", "h1: {}"),
        ]
        .concat());
        let (t, skipped) = targets(&[one.clone(), two.clone(), three], None, KindChoice::Auto);
        let labels: Vec<(String, String)> = t.iter().map(|t| (t.name.clone(), t.label())).collect();
        assert_eq!(
            labels,
            [
                ("api".to_string(), "[2001:db8::1]:443".to_string()),
                ("www,www-b".to_string(), "192.0.2.1:443".to_string()),
                ("www-plain".to_string(), "192.0.2.1:80".to_string()),
            ]
        );
        assert_eq!(
            skipped,
            [
                Skipped {
                    name: "dns".into(),
                    why: "udp VIP: only TCP is probed".into()
                },
                Skipped {
                    name: "any".into(),
                    why: "all-ports VIP: no port to probe".into()
                },
            ]
        );
        let re = Regex::new("^www").unwrap();
        let (t, _) = targets(&[one, two], Some(&re), KindChoice::Auto);
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["www,www-b", "www-plain"]);
    }
}
