//! maglevc's flags. They live here, not in the binary, so that
//! `cargo xtask dist` can render the man page and shell completions from
//! the same definition.

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser};

/// The command summary shown by `--help` and in the man page.
pub const COMMANDS: &str = "\
Commands (unique prefixes work: `sh ba` = `show backends`):
  show version | frontends | frontend N [buckets] | backends | backend N |
       healthchecks | healthcheck N | vpp info | vpp lb state | vpp lb counters
  sync vpp lb state [N] [--dry-run]
  set backend N pause|resume|enable|disable
  set frontend N pool P backend B weight W
  config check | config reload
  watch events [num N] [log [level L]] [backend] [frontend]
  lookup frontend N SRC[:PORT] [DST-PORT]
  quit | exit (in the shell)

Without a command, maglevc is an interactive shell: Tab completes keywords
and live names, `?` lists what may follow without changing the line, Up and
Down walk the history (kept in --history / $MAGLEVC_HISTORY, default
~/.maglevc_history), Ctrl-D or `quit` leaves.

Exit codes: 0 ok, 1 error from maglevd (or maglevd unreachable), 2 usage
error. Go-style single-dash flags (-color=false, -server ADDR) work too.";

/// Version, git commit and build date, as `--version` prints them.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MAGLEV_GIT_COMMIT"),
    ", built ",
    env!("MAGLEV_BUILD_DATE"),
    ")"
);

/// The runbook CLI for maglevd: one command per invocation, or an
/// interactive shell.
#[derive(Debug, Clone, Parser)]
#[command(name = "maglevc", version = VERSION, after_help = COMMANDS)]
pub struct Flags {
    /// maglevd's gRPC address: `host:port`, `https://host:port` or
    /// `unix:/path` [default: unix:/run/vpp-maglev/maglevd.sock when that
    /// socket exists, else localhost:9090].
    #[arg(long, env = "MAGLEV_SERVER", value_name = "ADDR")]
    pub server: Option<String>,
    /// CA certificates (PEM) to verify maglevd's TLS certificate [default:
    /// the system's]. Any --tls-* flag turns TLS on for a TCP address.
    #[arg(long, env = "MAGLEV_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for maglevd's mTLS, with --tls-key.
    #[arg(
        long,
        env = "MAGLEV_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "MAGLEV_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// The name maglevd's certificate must carry [default: the address's
    /// host].
    #[arg(long, env = "MAGLEV_TLS_SERVER_NAME", value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Colour labels and errors (default: when stdout is a terminal and
    /// NO_COLOR is unset).
    #[arg(long, value_name = "BOOL", action = ArgAction::Set)]
    pub color: Option<bool>,
    /// Output: text or json (a stable shape for scripts).
    #[arg(short = 'o', long = "output", value_name = "FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    pub output: String,
    /// The shell's history file [default: ~/.maglevc_history]; `none`
    /// keeps no history.
    #[arg(long, env = "MAGLEVC_HISTORY", value_name = "FILE")]
    pub history: Option<String>,
    /// Print the completions of the last word (used by the bash
    /// completion script) and exit.
    #[arg(long, hide = true)]
    pub complete: bool,
    /// The command; none starts the interactive shell.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub words: Vec<String>,
}

impl Flags {
    /// The clap command, for the man page and completions.
    pub fn command() -> clap::Command {
        <Flags as CommandFactory>::command()
    }

    /// Parses the process's arguments; Go-style single-dash long flags
    /// (`-color=false`, `-server ADDR`) are accepted as the Go maglevc did.
    pub fn parse_args() -> Result<Flags, clap::Error> {
        Flags::try_parse_from(go_style(std::env::args()))
    }

    /// The server to talk to, with its TLS settings.
    pub fn target(&self) -> crate::run::Server {
        crate::run::Server {
            addr: self
                .server
                .clone()
                .unwrap_or_else(maglev_access::dial::default_server),
            tls: maglev_access::tls::ClientTls {
                ca: self.tls_ca.clone(),
                cert: self.tls_cert.clone(),
                key: self.tls_key.clone(),
                server_name: self.tls_server_name.clone(),
            },
        }
    }

    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        self.output == "json"
    }

    /// The history file: `--history`, else `~/.maglevc_history`; `None`
    /// for `none` or when there is no home directory.
    pub fn history_file(&self) -> Option<PathBuf> {
        match self.history.as_deref() {
            Some("none" | "") => None,
            Some(p) => Some(PathBuf::from(p)),
            None => std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".maglevc_history")),
        }
    }
}

/// The process arguments with single-dash long flags made double.
fn go_style(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut cmd = Flags::command();
    cmd.build();
    let long: Vec<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
    maglev_config::go_style_args(args, &long)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_consistent() {
        Flags::command().debug_assert();
    }

    #[test]
    fn go_style_flags() {
        let f = Flags::try_parse_from(go_style(
            [
                "maglevc",
                "-color=false",
                "-server",
                "lb1:9090",
                "show",
                "backends",
            ]
            .map(String::from),
        ))
        .unwrap();
        assert_eq!(
            (f.color, f.server.as_deref()),
            (Some(false), Some("lb1:9090"))
        );
        assert_eq!(f.words, ["show", "backends"]);
    }

    #[test]
    fn history_file_choice() {
        let f = |h: &[&str]| {
            Flags::try_parse_from(["maglevc"].iter().chain(h))
                .unwrap()
                .history_file()
        };
        assert_eq!(f(&["--history", "/x/h"]), Some(PathBuf::from("/x/h")));
        assert_eq!(f(&["--history", "none"]), None);
    }
}
