//! maglevd: health checks backends and programs VPP's Maglev load balancer.
//!
//! This binary only wires crates together: flags, config, exit codes.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use maglev_config::{ErrorClass, LoadError};

/// Exit codes of `--check`, shared with scripts and the gRPC API's split.
const EXIT_OK: u8 = 0;
const EXIT_PARSE: u8 = 1;
const EXIT_SEMANTIC: u8 = 2;
/// sysexits EX_USAGE: a bad flag must not look like a config verdict.
const EXIT_USAGE: u8 = 64;
/// sysexits EX_UNAVAILABLE.
const EXIT_UNAVAILABLE: u8 = 69;

const LONG_FLAGS: &[&str] = &["config", "check", "version", "help"];

/// Control plane for the VPP Maglev load balancer: probes backends and keeps
/// VPP's VIPs and application servers in step with their health.
#[derive(Debug, Parser)]
#[command(
    name = "maglevd",
    disable_version_flag = true,
    after_help = "Exit codes of --check: 0 valid, 1 parse error, 2 semantic error; \
                  64 for a bad command line.\n\
                  Go-style single-dash flags (-config, -check) are accepted too."
)]
struct Flags {
    /// Path of maglev.yaml.
    #[arg(
        long,
        env = "MAGLEV_CONFIG",
        value_name = "FILE",
        default_value = "/etc/vpp-maglev/maglev.yaml"
    )]
    config: PathBuf,

    /// Validate the config, print every problem and exit: 0 valid, 1 parse
    /// error (YAML, types, unknown keys), 2 semantic error (rules).
    #[arg(long)]
    check: bool,

    /// Print version, git commit and build date, then exit.
    #[arg(long, short = 'V')]
    version: bool,
}

fn main() -> ExitCode {
    let flags = match Flags::try_parse_from(go_style_args(std::env::args())) {
        Ok(flags) => flags,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    if flags.version {
        println!(
            "maglevd {} (commit {}, built {})",
            env!("CARGO_PKG_VERSION"),
            env!("MAGLEV_GIT_COMMIT"),
            env!("MAGLEV_BUILD_DATE")
        );
        return ExitCode::from(EXIT_OK);
    }
    if flags.check {
        return ExitCode::from(check(&flags.config));
    }
    eprintln!(
        "maglevd: running the daemon is not available in this build yet; \
         only --check and --version work"
    );
    ExitCode::from(EXIT_UNAVAILABLE)
}

/// `--check`: every problem on stderr, a one-line verdict on stdout.
fn check(path: &std::path::Path) -> u8 {
    let source = path.display().to_string();
    match maglev_config::load_file(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{}", prefixed(w, &source, "warning"));
            }
            let c = &loaded.config;
            println!(
                "{source}: OK ({} frontends, {} backends, {} health checks, {} warnings)",
                c.frontends.len(),
                c.backends.len(),
                c.healthchecks.len(),
                loaded.warnings.len()
            );
            EXIT_OK
        }
        Err(e) => {
            for d in e.diagnostics() {
                eprintln!("{}", prefixed(d, &source, "error"));
            }
            if let LoadError::Semantic(s) = &e {
                for w in &s.warnings {
                    eprintln!("{}", prefixed(w, &source, "warning"));
                }
            }
            let n = e.diagnostics().len();
            match e.class() {
                ErrorClass::Parse => {
                    println!("{source}: parse error");
                    EXIT_PARSE
                }
                ErrorClass::Semantic => {
                    let s = if n == 1 { "" } else { "s" };
                    println!("{source}: {n} semantic error{s}");
                    EXIT_SEMANTIC
                }
            }
        }
    }
}

/// `file:line:col: error: path: message`, the shape editors jump to.
fn prefixed(d: &maglev_config::Diagnostic, source: &str, level: &str) -> String {
    match d.location {
        Some(l) => format!("{source}:{}:{}: {level}: {d}", l.line, l.column),
        None => format!("{source}: {level}: {d}"),
    }
}

/// The Go daemon took `-config FILE`; rewrite such words to `--config` so
/// existing unit files keep working.
fn go_style_args(args: impl Iterator<Item = String>) -> Vec<String> {
    args.map(|arg| {
        let name = arg
            .strip_prefix('-')
            .filter(|rest| !rest.starts_with('-'))
            .map(|rest| rest.split('=').next().unwrap_or(rest));
        match name {
            Some(n) if LONG_FLAGS.contains(&n) => format!("-{arg}"),
            _ => arg,
        }
    })
    .collect()
}
