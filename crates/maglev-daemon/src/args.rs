//! maglevd's command line: the flags (with their environment variables),
//! Go-style single-dash spelling, and the `maglevd(8)` man page rendered
//! from the same definitions (`cargo xtask dist`).

use std::io;
use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser};

/// Version, git commit and build date, as `--version` prints them.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MAGLEV_GIT_COMMIT"),
    ", built ",
    env!("MAGLEV_BUILD_DATE"),
    ")"
);

/// Control plane for the VPP Maglev load balancer: probes backends and keeps
/// VPP's VIPs and application servers in step with their health.
#[derive(Debug, Parser)]
#[command(
    name = "maglevd",
    disable_version_flag = true,
    after_help = "Exit codes: 0 ok; --check and startup: 1 parse error, 2 semantic error; \
                  64 bad command line; 69 cannot start (listen address, network namespace).\n\
                  Signals: SIGHUP reloads the config (a bad file is refused, the old config \
                  stays); SIGTERM/SIGINT stop (VPP keeps what was programmed).\n\
                  Go-style single-dash flags (-config, -check) are accepted too."
)]
pub struct Flags {
    /// Path of maglev.yaml.
    #[arg(
        long,
        env = "MAGLEV_CONFIG",
        value_name = "FILE",
        default_value = "/etc/vpp-maglev/maglev.yaml"
    )]
    pub config: PathBuf,
    /// gRPC listen addresses, comma-separated: `host:port` (`:9090`
    /// listens on every address; TLS when --tls-cert is set),
    /// `http://host:port` (plain TCP even then), `https://host:port` (TLS)
    /// or `unix:/path`. Plain TCP is read-only unless --insecure-admin-tcp.
    #[arg(
        long,
        env = "MAGLEV_GRPC_ADDR",
        value_name = "ADDR[,ADDR…]",
        default_value = "localhost:9090"
    )]
    pub grpc_addr: String,
    /// Permission bits of a unix-socket listener (octal).
    #[arg(
        long,
        env = "MAGLEV_GRPC_SOCKET_MODE",
        value_name = "MODE",
        default_value = "0660",
        value_parser = parse_mode
    )]
    pub grpc_socket_mode: u32,
    /// Group of a unix-socket listener (name or number) [default: the
    /// daemon's group]. Its members, root and the daemon's user are admin
    /// on the socket; other users who may connect are read-only.
    #[arg(long, env = "MAGLEV_GRPC_SOCKET_GROUP", value_name = "GROUP")]
    pub grpc_socket_group: Option<String>,
    /// TLS certificate chain (PEM) for the TCP listeners; re-read on
    /// SIGHUP without dropping the listeners.
    #[arg(
        long,
        env = "MAGLEV_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(
        long,
        env = "MAGLEV_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) for client certificates: with it, TLS clients
    /// must present one it signed (mTLS).
    #[arg(
        long,
        env = "MAGLEV_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// A client certificate whose subject CN or a SAN matches PATTERN (`*`
    /// for any run of characters) is admin; other TLS clients are
    /// read-only. Repeatable, or comma-separated.
    #[arg(
        long,
        env = "MAGLEV_ADMIN_CLIENT",
        value_name = "PATTERN",
        action = ArgAction::Append,
        value_delimiter = ',',
        requires = "tls_client_ca"
    )]
    pub admin_client: Vec<String>,
    /// Plain TCP clients are admin too: anyone who can reach the port can
    /// change weights and disable backends. For demos and tests.
    #[arg(long, env = "MAGLEV_INSECURE_ADMIN_TCP")]
    pub insecure_admin_tcp: bool,
    /// Serve /metrics over TLS too, with --tls-cert and --tls-key (labels
    /// name every backend).
    #[arg(long, env = "MAGLEV_METRICS_TLS", requires = "tls_cert")]
    pub metrics_tls: bool,
    /// Prometheus `/metrics` listen address (`:9091` listens on every
    /// address); empty disables it. `/metrics?scope=global,frontend`
    /// leaves out the per-backend series (`scope=backend` is only them).
    #[arg(
        long,
        env = "MAGLEV_METRICS_ADDR",
        value_name = "ADDR",
        default_value = ":9091"
    )]
    pub metrics_addr: String,
    /// VPP API socket; empty runs health checking without VPP.
    #[arg(
        long,
        env = "MAGLEV_VPP_API_ADDR",
        value_name = "PATH",
        default_value = "/run/vpp/api.sock"
    )]
    pub vpp_api_addr: String,
    /// VPP stats socket (connected together with the API socket); empty: none.
    #[arg(
        long,
        env = "MAGLEV_VPP_STATS_ADDR",
        value_name = "PATH",
        default_value = "/run/vpp/stats.sock"
    )]
    pub vpp_stats_addr: String,
    /// Log level: error, warn, info, debug, trace (debug and trace: maglev's
    /// own events), or a tracing filter such as info,maglev_lbsync=trace.
    #[arg(
        long,
        env = "MAGLEV_LOG_LEVEL",
        value_name = "LEVEL",
        default_value = "info",
        value_parser = crate::logs::parse_level
    )]
    pub log_level: String,
    /// Log format: text or json (one event per line).
    #[arg(long, env = "MAGLEV_LOG_FORMAT", value_name = "FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    pub log_format: String,
    /// Threads that run health probes and agent checks, apart from the
    /// API and the VPP writer; backends are shared out among them evenly,
    /// and so are the probes allowed in flight at once (0: one per core).
    #[arg(
        long,
        env = "MAGLEV_PROBE_THREADS",
        value_name = "N",
        default_value_t = 0,
        value_parser = clap::value_parser!(u16).range(0..=1024)
    )]
    pub probe_threads: u16,
    /// Validate the config, print every problem and exit: 0 valid, 1 parse
    /// error (YAML, types, unknown keys), 2 semantic error (rules).
    #[arg(long)]
    pub check: bool,
    /// gRPC server reflection.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    pub reflection: bool,
    /// Print version, git commit and build date, then exit.
    #[arg(long, short = 'V')]
    pub version: bool,
}

impl Flags {
    /// Parses the process's arguments; the Go daemon's `-config FILE`
    /// spelling is accepted too.
    pub fn parse_args() -> Result<Flags, clap::Error> {
        let mut cmd = Flags::command();
        cmd.build();
        let long: Vec<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
        Flags::try_parse_from(maglev_config::go_style_args(std::env::args(), &long))
    }
}

/// An octal permission mode such as `0660`.
fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{s:?} is not an octal mode such as 0660"))
}

/// Escapes text for roff.
fn esc(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// The man page, `maglevd.8`.
pub fn man_page() -> io::Result<String> {
    let cmd = Flags::command().after_help(None::<&str>);
    let man = clap_mangen::Man::new(cmd)
        .section("8")
        .date(env!("CARGO_PKG_VERSION"));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    out.extend_from_slice(
        format!(
            ".SH DESCRIPTION\n{}\n.PP\n{}\n",
            esc(
                "maglevd probes backends (HTTP, HTTPS, TCP, ICMP) with a rise/fall state \
                 machine, turns health and pool priority into application-server weights, \
                 and programs VPP's lb plugin over its binary API socket. It repairs drift, \
                 survives VPP's and its own restarts without black-holing traffic, and \
                 serves a gRPC API (maglevc, maglevt) and Prometheus metrics."
            ),
            esc(
                "At start nothing is written to VPP until startup-min-delay has passed and \
                 a frontend's backends have all been probed, so a restarted maglevd leaves \
                 a running VPP as it is."
            ),
        )
        .as_bytes(),
    );
    man.render_options_section(&mut out)?;
    let mut s = String::from_utf8_lossy(&out).into_owned();
    s.push_str(&format!(
        ".SH SIGNALS\n.TP\nSIGHUP\n{}\n.TP\nSIGTERM, SIGINT\n{}\n",
        esc(
            "Reload the config file. A bad file is refused with one log line and the \
             running config stays in force."
        ),
        esc(
            "Stop within 2 s: probing stops, WatchEvents streams end, VPP keeps what was \
             programmed. A second signal exits at once."
        ),
    ));
    s.push_str(".SH ENVIRONMENT\n");
    for arg in Flags::command().get_arguments() {
        if let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) {
            s.push_str(&format!(
                ".TP\n{}\n{}\n",
                esc(&env.to_string_lossy()),
                esc(&format!("The same as --{long}; the flag wins."))
            ));
        }
    }
    s.push_str(
        ".SH EXIT STATUS\n.TP\n0\nSuccess (and --check on a valid config).\n.TP\n1\n\
         The config does not parse (YAML, types, unknown keys).\n.TP\n2\nThe config \
         breaks a rule (every problem is printed).\n.TP\n64\nA bad command line.\n.TP\n\
         69\nCannot start (listen address, network namespace).\n",
    );
    s.push_str(&format!(
        ".SH FILES\n.TP\n/etc/vpp\\-maglev/maglev.yaml\n{}\n.TP\n/run/vpp/api.sock, /run/vpp/stats.sock\n{}\n",
        esc("The config: frontends (VIPs), pools, backends, health checks."),
        esc("VPP's binary API and stats sockets."),
    ));
    s.push_str(".SH SEE ALSO\nmaglevc(1), maglevt(1)\n");
    Ok(s)
}

/// Writes `man/maglevd.8` under `dir`; returns the file written.
pub fn write_man(dir: &std::path::Path) -> io::Result<PathBuf> {
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    let path = man.join("maglevd.8");
    std::fs::write(&path, man_page()?)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_page_sections() {
        let m = man_page().unwrap();
        assert!(m.contains(".TH maglevd 8"), "{m}");
        for sec in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "SIGNALS",
            "EXIT STATUS",
            "FILES",
            "SEE ALSO",
        ] {
            assert!(m.contains(&format!(".SH {sec}")), "no {sec} section");
        }
        assert!(
            m.contains("\\-\\-vpp\\-api\\-addr") && m.contains("MAGLEV_CONFIG"),
            "{m}"
        );
    }
}
