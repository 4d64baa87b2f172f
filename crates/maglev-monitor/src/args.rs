//! maglevt's flags, here so `cargo xtask dist` renders the man page from
//! the definitions the binary parses.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, Parser};
use http::header::HeaderName;
use regex::Regex;

use crate::probe::ProbeOptions;
use crate::targets::{Kind, KindChoice};

const AFTER: &str = "\
How a VIP is probed (unless --kind says): port 443 is HTTPS, port 80 is
HTTP; on other ports a VIP whose backends are all checked with type https
(or all http) is probed the same way; anything else gets a TCP connect.
UDP and all-ports VIPs are skipped (and listed on start).

Screen: OK% and latency p50/p95/p99/max over each VIP's last 100 probes;
N and FAIL since start (or the last reset); LAST is the last HTTP status,
ok (TCP), timeout or net-err. The tally shows which backends answered
(the --header values); a value seen in the last 5 s is bright, older ones
grey. Errors: timeout (no answer within --timeout), http-err (status 400
or more), net-err (refused, reset, unreachable, TLS), spike (an answer
slower than 4x the VIP's median and than the median + 20 ms, once 20
answers are in the window).

Keys: q (or Ctrl-C) quit, p pause/resume probing, r reset counters,
Up/Down scroll VIPs, PgUp/PgDn scroll errors, Home/End back to the top.
NO_COLOR turns colour off. Go-style single-dash flags (-config FILE) work
too.";

/// Version, git commit and build date, as `--version` prints them.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MAGLEV_GIT_COMMIT"),
    ", built ",
    env!("MAGLEV_BUILD_DATE"),
    ")"
);

/// Out-of-band VIP monitor for failover drills: probes every VIP of
/// maglev.yaml from outside the load balancer, no maglevd needed.
#[derive(Debug, Clone, Parser)]
#[command(name = "maglevt", version = VERSION, after_help = AFTER)]
pub struct Flags {
    /// maglev.yaml to read; repeat it or give a comma-separated list
    /// (VIPs are de-duplicated by address, protocol and port).
    #[arg(
        long,
        value_name = "FILE",
        value_delimiter = ',',
        action = ArgAction::Append,
        default_value = "/etc/vpp-maglev/maglev.yaml"
    )]
    pub config: Vec<PathBuf>,
    /// Probe interval per VIP (±10 % jitter).
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = duration)]
    pub interval: Duration,
    /// Deadline of one probe.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = duration)]
    pub timeout: Duration,
    /// Path of the HTTP(S) GET (`--path` is an alias; the last one wins).
    #[arg(
        long,
        visible_alias = "path",
        value_name = "URI",
        default_value = "/.well-known/ipng/healthz",
        overrides_with = "uri"
    )]
    pub uri: String,
    /// Host header and TLS server name [default: the VIP address].
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Response header whose values are tallied (which backend answered).
    #[arg(long, value_name = "NAME", default_value = "X-IPng-Frontend", value_parser = header_name)]
    pub header: String,
    /// Skip TLS certificate verification.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_value = "false",
          default_missing_value = "true", action = ArgAction::Set)]
    pub insecure: bool,
    /// Reuse connections (default: a new connection per probe, so the load
    /// balancer hashes each one afresh).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_value = "false",
          default_missing_value = "true", action = ArgAction::Set)]
    pub keepalive: bool,
    /// Only probe frontends whose name matches.
    #[arg(long, value_name = "REGEX")]
    pub filter: Option<Regex>,
    /// How to probe: auto, http, https or tcp.
    #[arg(long, value_name = "KIND", default_value = "auto",
          value_parser = ["auto", "http", "https", "tcp"])]
    pub kind: String,
}

fn duration(s: &str) -> Result<Duration, String> {
    let d = maglev_config::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be more than 0".to_string());
    }
    Ok(d)
}

/// Checked here, kept as typed (for the screen).
fn header_name(s: &str) -> Result<String, String> {
    HeaderName::from_bytes(s.as_bytes())
        .map(|_| s.to_string())
        .map_err(|_| format!("{s:?} is not a header name"))
}

impl Flags {
    /// The clap command, for the man page.
    pub fn command() -> clap::Command {
        <Flags as CommandFactory>::command()
    }

    /// Parses the process's arguments; Go-style single-dash long flags
    /// (`-config FILE`, `-interval 50ms`) are accepted as the Go maglevt
    /// did.
    pub fn parse_args() -> Result<Flags, clap::Error> {
        Flags::try_parse_from(go_style(std::env::args()))
    }

    /// `--kind`.
    pub fn kind_choice(&self) -> KindChoice {
        match self.kind.as_str() {
            "http" => KindChoice::Force(Kind::Http),
            "https" => KindChoice::Force(Kind::Https),
            "tcp" => KindChoice::Force(Kind::Tcp),
            _ => KindChoice::Auto,
        }
    }

    /// The probe options.
    pub fn probe_options(&self) -> ProbeOptions {
        ProbeOptions {
            timeout: self.timeout,
            uri: self.uri.clone(),
            host: self.host.clone(),
            header: HeaderName::from_bytes(self.header.as_bytes())
                .unwrap_or(HeaderName::from_static("x-ipng-frontend")),
            insecure: self.insecure,
            keepalive: self.keepalive,
        }
    }
}

/// The process arguments with single-dash long flags made double.
fn go_style(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut cmd = Flags::command();
    cmd.build();
    let long: Vec<&str> = cmd
        .get_arguments()
        .flat_map(|a| {
            a.get_long()
                .into_iter()
                .chain(a.get_all_aliases().unwrap_or_default())
        })
        .collect();
    maglev_config::go_style_args(args, &long)
}

/// maglevt's man page, `maglevt.1`.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Flags::command()).render(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Flags {
        Flags::try_parse_from(["maglevt"].iter().chain(args)).unwrap()
    }

    #[test]
    fn flags() {
        Flags::command().debug_assert();
        let f = parse(&[]);
        assert_eq!(f.interval, Duration::from_millis(100));
        assert_eq!(f.timeout, Duration::from_secs(2));
        assert_eq!(f.uri, "/.well-known/ipng/healthz");
        assert_eq!(f.header, "X-IPng-Frontend");
        assert_eq!(f.probe_options().header.as_str(), "x-ipng-frontend");
        assert!(!f.insecure && !f.keepalive);
        let f = parse(&[
            "--config",
            "a.yaml,b.yaml",
            "--config",
            "c.yaml",
            "--path",
            "/x",
            "--uri",
            "/y",
            "--insecure",
            "--keepalive=true",
            "--interval",
            "250ms",
            "--kind",
            "tcp",
        ]);
        assert_eq!(
            f.config,
            [PathBuf::from("a.yaml"), "b.yaml".into(), "c.yaml".into()]
        );
        assert_eq!(f.uri, "/y");
        assert_eq!(parse(&["--uri", "/y", "--path", "/x"]).uri, "/x");
        assert!(f.insecure && f.keepalive);
        assert_eq!(f.interval, Duration::from_millis(250));
        assert_eq!(f.kind_choice(), KindChoice::Force(Kind::Tcp));
        for bad in [
            &["--interval", "0s"][..],
            &["--timeout", "soon"],
            &["--filter", "("],
            &["--header", "bad header"],
            &["--kind", "udp"],
        ] {
            assert!(
                Flags::try_parse_from(["maglevt"].iter().chain(bad)).is_err(),
                "{bad:?}"
            );
        }
        let go = Flags::try_parse_from(go_style(
            ["maglevt", "-config", "x.yaml", "-path=/h", "-insecure"].map(String::from),
        ))
        .unwrap();
        assert_eq!(
            (go.config[0].to_str(), go.uri.as_str(), go.insecure),
            (Some("x.yaml"), "/h", true)
        );
        let man = String::from_utf8(man_page().unwrap()).unwrap();
        assert!(man.contains("\\-\\-keepalive") && man.contains("spike"));
    }
}
