//! maglevd-frontend's flags, each with a `MAGLEV_FRONTEND_*` environment
//! equivalent so one `/etc/default/vpp-maglev` serves both daemons.

use std::path::PathBuf;

use clap::{CommandFactory, Parser};

use crate::auth::{Credentials, HashError};
use crate::hub::Target;

/// Version, git commit and build date, as `--version` prints them.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MAGLEV_GIT_COMMIT"),
    ", built ",
    env!("MAGLEV_BUILD_DATE"),
    ")"
);

const AFTER: &str = "\
The admin side (/admin/) needs credentials, from the environment only:
  MAGLEV_FRONTEND_USER            the user name
  MAGLEV_FRONTEND_PASSWORD        its password, or
  MAGLEV_FRONTEND_PASSWORD_HASH   a hash from `maglevd-frontend --hash-password`
Without them /admin/ answers 404 and the read-only view (/view/) stays up.

Go-style single-dash flags (-server ADDR, -listen=ADDR) work too. SIGHUP is
ignored; SIGTERM and SIGINT stop it.";

/// The web dashboard over one or more maglevds.
#[derive(Debug, Clone, Parser)]
#[command(name = "maglevd-frontend", version = VERSION, after_help = AFTER)]
pub struct Flags {
    /// maglevd gRPC addresses, comma-separated: `host:port`,
    /// `https://host:port` or `unix:/path`, each optionally `name=addr`
    /// for its tab [default: unix:/run/vpp-maglev/maglevd.sock when that
    /// socket exists, else localhost:9090].
    #[arg(
        long,
        env = "MAGLEV_FRONTEND_SERVER",
        value_name = "ADDR[,ADDR…]",
        value_delimiter = ','
    )]
    pub server: Vec<String>,
    /// The HTTP listen address.
    #[arg(
        long,
        env = "MAGLEV_FRONTEND_LISTEN",
        value_name = "ADDR",
        default_value = "localhost:8080"
    )]
    pub listen: String,
    /// Log level: debug, info, warn or error.
    #[arg(long, env = "MAGLEV_FRONTEND_LOG_LEVEL", value_name = "LEVEL", default_value = "info",
          value_parser = ["trace", "debug", "info", "warn", "error"])]
    pub log_level: String,
    /// CA certificates (PEM) to verify maglevd's TLS certificate. Any
    /// --tls-* flag turns TLS on for a bare `host:port`.
    #[arg(long, env = "MAGLEV_FRONTEND_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for maglevd's mTLS (admin actions need an
    /// admin certificate or the unix socket), with --tls-key.
    #[arg(
        long,
        env = "MAGLEV_FRONTEND_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "MAGLEV_FRONTEND_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// The name maglevd's certificate must carry [default: the host].
    #[arg(long, env = "MAGLEV_FRONTEND_TLS_SERVER_NAME", value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Read a password on stdin, print its hash for
    /// MAGLEV_FRONTEND_PASSWORD_HASH, and exit.
    #[arg(long)]
    pub hash_password: bool,
}

impl Flags {
    /// The clap command, for the man page.
    pub fn command() -> clap::Command {
        <Flags as CommandFactory>::command()
    }

    /// Parses the process's arguments (Go-style single-dash long flags
    /// too).
    pub fn parse_args() -> Result<Flags, clap::Error> {
        let mut cmd = Flags::command();
        cmd.build();
        let long: Vec<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
        Flags::try_parse_from(maglev_config::go_style_args(std::env::args(), &long))
    }

    /// The maglevds to watch.
    pub fn targets(&self) -> Result<Vec<Target>, String> {
        let items: Vec<String> = if self.server.is_empty() {
            vec![maglev_access::dial::default_server()]
        } else {
            self.server.clone()
        };
        let mut out: Vec<Target> = Vec::new();
        for item in items.iter().filter(|s| !s.trim().is_empty()) {
            let t = Target::parse(item)?;
            if out.iter().any(|o| o.name == t.name) {
                return Err(format!("--server: {:?} is named twice", t.name));
            }
            out.push(t);
        }
        if out.is_empty() {
            return Err("--server: no maglevd address".into());
        }
        Ok(out)
    }

    /// TLS settings for the gRPC client.
    pub fn tls(&self) -> maglev_access::tls::ClientTls {
        maglev_access::tls::ClientTls {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            server_name: self.tls_server_name.clone(),
        }
    }
}

/// maglevd-frontend(8), rendered from the flags.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Flags::command().name("maglevd-frontend"))
        .section("8")
        .render(&mut out)?;
    Ok(out)
}

/// The admin credentials from the environment (`None`: admin off).
pub fn credentials(env: impl Fn(&str) -> Option<String>) -> Result<Option<Credentials>, String> {
    let user = env("MAGLEV_FRONTEND_USER").filter(|s| !s.is_empty());
    let password = env("MAGLEV_FRONTEND_PASSWORD").filter(|s| !s.is_empty());
    let hash = env("MAGLEV_FRONTEND_PASSWORD_HASH").filter(|s| !s.is_empty());
    match (user, password, hash) {
        (None, None, None) => Ok(None),
        (Some(_), Some(_), Some(_)) => Err(
            "set MAGLEV_FRONTEND_PASSWORD or MAGLEV_FRONTEND_PASSWORD_HASH, not both".into(),
        ),
        (Some(u), Some(p), None) => Ok(Some(Credentials::with_password(&u, &p))),
        (Some(u), None, Some(h)) => Credentials::with_hash(&u, &h)
            .map(Some)
            .map_err(|e: HashError| e.to_string()),
        (Some(_), None, None) => Err(
            "MAGLEV_FRONTEND_USER is set without MAGLEV_FRONTEND_PASSWORD or MAGLEV_FRONTEND_PASSWORD_HASH".into(),
        ),
        (None, _, _) => Err("a password is set without MAGLEV_FRONTEND_USER".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_consistent() {
        Flags::command().debug_assert();
    }

    #[test]
    fn servers_and_names() {
        let f = Flags::try_parse_from(["x", "--server", "a=127.0.0.1:1,127.0.0.1:2"]).unwrap();
        let t = f.targets().unwrap();
        assert_eq!(
            t.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["a", "127.0.0.1:2"]
        );
        let f = Flags::try_parse_from(["x", "--server", "a=127.0.0.1:1,a=127.0.0.1:2"]).unwrap();
        assert!(f.targets().unwrap_err().contains("named twice"));
        assert_eq!(f.listen, "localhost:8080");
    }

    #[test]
    fn credentials_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(credentials(env(&[])).unwrap().is_none());
        let c = credentials(env(&[
            ("MAGLEV_FRONTEND_USER", "ops"),
            ("MAGLEV_FRONTEND_PASSWORD", "pw"),
        ]))
        .unwrap()
        .unwrap();
        assert!(c.verify("ops", "pw"));
        for bad in [
            &[("MAGLEV_FRONTEND_USER", "ops")][..],
            &[("MAGLEV_FRONTEND_PASSWORD", "pw")][..],
            &[
                ("MAGLEV_FRONTEND_USER", "ops"),
                ("MAGLEV_FRONTEND_PASSWORD_HASH", "x"),
            ][..],
        ] {
            let bad: &'static [(&str, &str)] = bad;
            assert!(credentials(env(bad)).is_err(), "{bad:?}");
        }
    }
}
