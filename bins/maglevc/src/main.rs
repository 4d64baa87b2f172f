//! maglevc: the runbook CLI for maglevd.
//!
//! Thin: flags, one command, exit code. The command language and the
//! rendering live in maglev-cli.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{ArgAction, Parser};
use maglev_cli::events::watch;
use maglev_cli::render::Style;
use maglev_cli::run::{connect, run, CliError};
use maglev_cli::{resolve, Command};
use maglev_proto as pb;

const EXIT_OK: u8 = 0;
const EXIT_SERVER: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// The runbook CLI for maglevd: one command per invocation.
#[derive(Debug, Parser)]
#[command(
    name = "maglevc",
    version,
    after_help = "Commands (unique prefixes work: `sh ba` = `show backends`):\n  \
        show version | frontends | frontend N [buckets] | backends | backend N |\n  \
        \x20    healthchecks | healthcheck N | vpp info | vpp lb state | vpp lb counters\n  \
        sync vpp lb state [N] [--dry-run]\n  \
        set backend N pause|resume|enable|disable\n  \
        set frontend N pool P backend B weight W\n  \
        config check | config reload\n  \
        watch events [num N] [log [level L]] [backend] [frontend]\n  \
        lookup frontend N SRC[:PORT] [DST-PORT]\n\
        Exit codes: 0 ok, 1 error from maglevd, 2 usage error."
)]
struct Flags {
    /// maglevd's gRPC address.
    #[arg(
        long,
        env = "MAGLEV_SERVER",
        value_name = "ADDR",
        default_value = "localhost:9090"
    )]
    server: String,
    /// Colour labels and errors (default: when stdout is a terminal).
    #[arg(long, value_name = "BOOL", action = ArgAction::Set)]
    color: Option<bool>,
    /// Output: text or json (a stable shape for scripts).
    #[arg(short = 'o', long = "output", value_name = "FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    output: String,
    /// The command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    words: Vec<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let flags = match Flags::try_parse() {
        Ok(f) => f,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let style = Style {
        color: flags
            .color
            .unwrap_or_else(|| std::io::stdout().is_terminal()),
    };
    if flags.words.is_empty() {
        eprintln!(
            "maglevc: give a command (see --help); the interactive shell is not in this build"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let words: Vec<&str> = flags.words.iter().map(String::as_str).collect();
    let cmd = match resolve(&words) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", style.error(&format!("maglevc: {e}")));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if cmd == Command::Quit {
        return ExitCode::from(EXIT_OK);
    }
    let mut client = match connect(&flags.server).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", style.error(&e.to_string()));
            return ExitCode::from(EXIT_SERVER);
        }
    };
    let result = match &cmd {
        Command::WatchEvents {
            num,
            log,
            level,
            backend,
            frontend,
        } => {
            let req = pb::WatchEventsRequest {
                log: *log,
                log_level: level.clone().unwrap_or_default(),
                backend: *backend,
                frontend: *frontend,
            };
            watch(&mut client, req, *num, |v| println!("{v}")).await
        }
        _ => run(&mut client, &cmd, style).await.map(|out| {
            if flags.output == "json" {
                println!("{}", out.json);
            } else {
                print!("{}", out.text);
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("{}", style.error(&e.to_string()));
            ExitCode::from(match e {
                CliError::Usage(_) => EXIT_USAGE,
                _ => EXIT_SERVER,
            })
        }
    }
}
