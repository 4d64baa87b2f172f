//! maglevc: the runbook CLI for maglevd.
//!
//! Thin: flags, then one command or the interactive shell, then an exit
//! code. The command language, the shell and the rendering live in
//! maglev-cli.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use maglev_cli::args::Flags;
use maglev_cli::events::watch_command;
use maglev_cli::names::{candidates, fetch};
use maglev_cli::render::Style;
use maglev_cli::run::{connect, local, run, CliError};
use maglev_cli::shell::{print_output, shell, ShellOptions};
use maglev_cli::{resolve, Command};

const EXIT_OK: u8 = 0;
const EXIT_SERVER: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let flags = match Flags::parse_args() {
        Ok(f) => f,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let style = Style {
        color: flags.color.unwrap_or_else(|| {
            // NO_COLOR counts when set and not empty (no-color.org).
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }),
    };
    // Current-thread, built by hand: the shell calls block_on from the
    // line editor's completion callback, which must not run inside it.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maglevc: cannot start: {e}");
            return ExitCode::from(EXIT_SERVER);
        }
    };
    if flags.complete {
        let names = rt.block_on(fetch(&flags.target(), Duration::from_secs(1)));
        for c in candidates(&flags.words, &names) {
            println!("{c}");
        }
        return ExitCode::from(EXIT_OK);
    }
    if flags.words.is_empty() {
        let opts = ShellOptions {
            server: flags.target(),
            style,
            json: flags.json(),
            history: flags.history_file(),
        };
        return match shell(&rt, &opts) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("{}", style.error(&e.to_string()));
                ExitCode::from(EXIT_SERVER)
            }
        };
    }
    let words: Vec<&str> = flags.words.iter().map(String::as_str).collect();
    let cmd = match resolve(&words) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", style.error(&format!("maglevc: {e}")));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match rt.block_on(one_shot(&flags, &cmd, style)) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(CliError::Failed { json, .. }) if flags.json() => {
            println!("{json}");
            ExitCode::from(EXIT_SERVER)
        }
        Err(e) => {
            eprintln!("{}", style.error(&e.to_string()));
            ExitCode::from(match e {
                CliError::Usage(_) => EXIT_USAGE,
                _ => EXIT_SERVER,
            })
        }
    }
}

async fn one_shot(flags: &Flags, cmd: &Command, style: Style) -> Result<(), CliError> {
    if *cmd == Command::Quit {
        return Ok(());
    }
    if let Some(out) = local(cmd) {
        print_output(&out, flags.json());
        return Ok(());
    }
    let mut client = connect(&flags.target()).await?;
    if let Command::WatchEvents { .. } = cmd {
        return watch_command(&mut client, cmd).await;
    }
    let out = run(&mut client, cmd, style).await?;
    print_output(&out, flags.json());
    Ok(())
}
