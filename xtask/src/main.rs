//! `cargo xtask <task>`: the project's own build tasks.
//!
//! - `test`: the one test command (fmt, clippy, every test) that CI runs.
//! - `binapi`: regenerate the VPP bindings from `.api.json` files.
//! - `dist`: man pages and shell completions.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::{Command, ExitCode};

mod binapi;
mod deb;
mod demo;
mod vpp;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  demo                    maglevd + three local HTTP backends + the VPP
                          simulator + the dashboard, on loopback, until Ctrl-C
  test                    cargo fmt --check, cargo clippy -D warnings, the
                          real VPP builds (cargo xtask vpp build), cargo test
                          --workspace (what CI runs; see README.md)
  vpp build [NAME…] [--src DIR|TARBALL]
                          build real VPP (26.06, master) into
                          ~/.cache/maglev/vpp for the real-VPP tests
  vpp list                the VPP builds the tests will use
  deb [--check]           Debian packages vpp-maglevd and vpp-maglev under
                          target/deb; --check (root) lints, installs, checks
                          and purges them
  fuzz [--seconds N] [--seed S] [TARGET…]
                          mutation fuzzing of the config loader, the API
                          frame/message decoders, the stats reader and the
                          CLI parser from fuzz/corpus (default 60 s each;
                          the test command runs 10 s each)
  binapi [--api-dir DIR]  regenerate crates/maglev-vpp/src/binapi from VPP's
                          .api.json files (default ../shared/vpp-api, else
                          /usr/share/vpp/api)
  dist [DIR]              man pages (maglevd.8, maglevd-frontend.8, maglevc.1,
                          maglevt.1) and maglevc's
                          shell completions (bash, zsh, fish) under DIR
                          (default target/dist)
  bench vpp [--real]      Rust VPP client vs vpp_papi against the simulator
                          (and real VPP 26.06/master with --real), and a
                          bulk load (see docs/benchmarks.md)
  bench health [--seconds S] [--backends N,N] [--threads T,T]
               [--without-haproxy] [--without-metrics]
                          maglev-health vs HAProxy probing N HTTP backends
                          at 1 s (default 1,000 and 5,000),
                          each with T threads (needs root and haproxy)
  bench lbsync [--real]   planning, full sync and per-VIP sync latency at
                          1,000 VIPs x 64 ASes (against real VPP too with
                          --real)
  bench daemon            failover latency (detection, controller overhead),
                          idle CPU/RSS of maglevd with 1,000 backends, and
                          read latency (GetFrontend, /metrics) at 1,000 x 64
                          while full syncs run
  bench maglevt           maglevt's probe rate and CPU share, 100 VIPs at
                          100 ms
  bench config            config loading at two sizes per shape (big pool,
                          conflicting frontends, deep nesting): linear?
  bench access            one-shot maglevc latency over plain TCP, TLS, mTLS
                          and the unix socket (release)
  bench web               maglevd-frontend: 200 event-stream clients while
                          1,000 probed backends flap (events/s, latency,
                          CPU, RSS; the page's render time in Chromium)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("binapi") => gen_binapi(&args[1..]),
        Some("vpp") => vpp::main(&args[1..]),
        Some("fuzz") => fuzz(&args[1..], true),
        Some("deb") => deb_task(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("demo") => demo::run(&workspace_root(), &cargo),
        Some("dist") => dist(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task {other:?}\n\n{USAGE}")),
        None => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Man pages and completions, rendered by each tool's crate from the flag
/// definitions its binary parses.
fn dist(args: &[String]) -> Result<(), String> {
    let dir = match args {
        [] => workspace_root().join("target/dist"),
        [dir] => PathBuf::from(dir),
        _ => return Err("usage: cargo xtask dist [DIR]".to_string()),
    };
    write_dist(&dir)
}

/// Man pages and completions of every binary under `dir`, each rendered
/// by its crate's `*-dist` example from the flags the binary parses.
pub(crate) fn write_dist(dir: &std::path::Path) -> Result<(), String> {
    let dir = dir.to_string_lossy().into_owned();
    for (krate, example) in [
        ("maglev-cli", "maglevc-dist"),
        ("maglev-monitor", "maglevt-dist"),
        ("maglev-daemon", "maglevd-dist"),
        ("maglev-web", "maglevd-frontend-dist"),
    ] {
        cargo(&[
            "run",
            "--quiet",
            "-p",
            krate,
            "--example",
            example,
            "--",
            &dir,
        ])?;
    }
    Ok(())
}

/// Runs a cargo subcommand at the workspace root, failing on a non-zero exit.
fn cargo(args: &[&str]) -> Result<(), String> {
    let root = workspace_root();
    eprintln!("==> cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn test() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    if let Some(python) = papi_venv()? {
        // With this set, the vpp_papi cross-checks must run, not skip.
        std::env::set_var("MAGLEV_PAPI_PYTHON", python);
    }
    real_vpp()?;
    promtool();
    browser();
    cargo(&["test", "--workspace"])?;
    fuzz(&["--seconds".to_string(), "10".to_string()], false)?;
    packages()?;
    eprintln!("==> all checks passed");
    Ok(())
}

/// The Debian packages, built and (as root) linted, installed, checked and
/// purged; lintian is installed when missing.
fn packages() -> Result<(), String> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        eprintln!("\n*** not root: the Debian packages are built but not installed or checked (SKIPPED) ***\n");
        return deb_task(&[]);
    }
    let has_lintian = Command::new("lintian").arg("--version").output().is_ok();
    if !has_lintian {
        apt_install("lintian", &["--no-install-recommends", "lintian"]);
    }
    deb_task(&["--check".to_string()])
}

fn deb_task(args: &[String]) -> Result<(), String> {
    let debs = deb::build(&workspace_root(), &cargo)?;
    for d in &debs {
        eprintln!("==> {}", d.display());
    }
    if args.iter().any(|a| a == "--check") {
        deb::check(&debs)?;
    }
    Ok(())
}

/// Runs the fuzz targets (`fuzz/`): release-built on demand, the debug
/// build `cargo test` already made for the test command.
fn fuzz(args: &[String], release: bool) -> Result<(), String> {
    let mut run = vec!["run", "--quiet", "-p", "maglev-fuzz"];
    if release {
        run.push("--release");
    }
    run.push("--");
    let mut extra: Vec<&str> = args.iter().map(String::as_str).collect();
    if release && !args.iter().any(|a| a == "--seconds") {
        extra.extend(["--seconds", "60"]);
    }
    run.extend(extra);
    cargo(&run)
}

/// Finds promtool (Debian's `prometheus` package), installing it when
/// missing and run as root, for the metrics test's `promtool check
/// metrics` and the test that runs Prometheus; without it they are
/// skipped, loudly.
fn promtool() {
    let works = || {
        Command::new("promtool")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !works() {
        apt_install(
            "promtool (Debian package prometheus)",
            &["--no-install-recommends", "prometheus"],
        );
    }
    if works() {
        // The same package has Prometheus itself, which scrapes maglevd
        // in a test.
        std::env::set_var("MAGLEV_PROMTOOL", "promtool");
        std::env::set_var("MAGLEV_PROMETHEUS", "prometheus");
        std::env::set_var("MAGLEV_REQUIRE_PROMTOOL", "1");
    } else {
        eprintln!("\n*** promtool not available: `promtool check metrics` will be SKIPPED ***\n");
    }
}

/// Installs Debian packages when run as root (else does nothing: the
/// caller says what is skipped without them).
fn apt_install(what: &str, args: &[&str]) {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        return;
    }
    eprintln!("==> installing {what}");
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
}

/// Debian's Chromium and chromedriver for the dashboard's browser tests,
/// installed when missing and run as root; found, they are required
/// (`MAGLEV_REQUIRE_BROWSER`), so those tests cannot skip quietly.
fn browser() {
    let works = || {
        std::path::Path::new("/usr/bin/chromium").exists()
            && Command::new("/usr/bin/chromedriver")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
    };
    if !works() {
        apt_install(
            "chromium and chromium-driver (the dashboard's browser tests)",
            &["chromium", "chromium-driver"],
        );
    }
    if works() {
        std::env::set_var("MAGLEV_REQUIRE_BROWSER", "1");
    } else {
        eprintln!("\n*** chromium/chromedriver not available: the dashboard's browser tests will be SKIPPED ***\n");
    }
}

/// Builds (or finds in the cache) every real VPP for the real-VPP tests.
/// Without one they skip, loudly; `MAGLEV_REQUIRE_REAL_VPP=1` (CI) makes
/// that a failure instead.
fn real_vpp() -> Result<(), String> {
    let required = std::env::var("MAGLEV_REQUIRE_REAL_VPP").is_ok_and(|v| v == "1");
    std::env::set_var("MAGLEV_VPP_CACHE", vpp::cache_dir());
    match vpp::build(&[], None) {
        Ok(_) => Ok(()),
        Err(e) if required => Err(format!(
            "real VPP required (MAGLEV_REQUIRE_REAL_VPP=1): {e}"
        )),
        Err(e) => {
            eprintln!("\n*** no real VPP ({e}): the real-VPP tests will be SKIPPED ***\n");
            Ok(())
        }
    }
}

fn gen_binapi(args: &[String]) -> Result<(), String> {
    let root = workspace_root();
    let api_dir = match args {
        [] => binapi::default_api_dir(&root).ok_or(
            "no API dir: pass --api-dir (none at ../shared/vpp-api or /usr/share/vpp/api)",
        )?,
        [flag, dir] if flag == "--api-dir" => PathBuf::from(dir),
        _ => {
            return Err(format!(
                "usage: cargo xtask binapi [--api-dir DIR]\n\n{USAGE}"
            ))
        }
    };
    let written = binapi::generate(&api_dir, &root.join(binapi::OUTPUT_DIR))?;
    for path in written {
        eprintln!(
            "wrote {}",
            path.strip_prefix(&root).unwrap_or(&path).display()
        );
    }
    Ok(())
}

/// vpp_papi version the cross-checks are written against (NOTES.md §7).
const VPP_PAPI: &str = "vpp-papi==2.4.2";

/// Creates `target/papi-venv` with vpp_papi for the cross-check tests and
/// returns its python. Without python3 the cross-checks are skipped, loudly.
fn papi_venv() -> Result<Option<PathBuf>, String> {
    let root = workspace_root();
    let venv = root.join("target/papi-venv");
    let python = venv.join("bin/python");
    let has_papi = |py: &std::path::Path| {
        Command::new(py)
            .args(["-c", "import vpp_papi"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if python.exists() && has_papi(&python) {
        return Ok(Some(python));
    }
    let Ok(out) = Command::new("python3").arg("--version").output() else {
        eprintln!("\n*** python3 not found: the vpp_papi cross-checks will be SKIPPED ***\n");
        return Ok(None);
    };
    if !out.status.success() {
        eprintln!("\n*** python3 does not run: the vpp_papi cross-checks will be SKIPPED ***\n");
        return Ok(None);
    }
    eprintln!("==> creating {} with {VPP_PAPI}", venv.display());
    let run = |cmd: &mut Command| -> Result<(), String> {
        let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{cmd:?} failed ({status})"))
        }
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        VPP_PAPI,
    ]))?;
    if !has_papi(&python) {
        return Err("vpp_papi installed but does not import".to_string());
    }
    Ok(Some(python))
}

fn bench(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("vpp") => {
            let root = workspace_root();
            cargo(&["build", "--release", "--quiet", "-p", "maglev-vppsim"])?;
            let sim = root.join("target/release/maglev-vppsim");
            let mut bench_args = vec![
                "bench".to_string(),
                "--quiet".to_string(),
                "-p".to_string(),
                "maglev-vppsim".to_string(),
                "--bench".to_string(),
                "vpp".to_string(),
                "--".to_string(),
                sim.display().to_string(),
            ];
            match (papi_venv()?, binapi::default_api_dir(&root)) {
                (Some(py), Some(api)) => {
                    bench_args.push(py.display().to_string());
                    bench_args.push(api.display().to_string());
                }
                _ => {
                    eprintln!("\n*** no vpp_papi or API dir: the vpp_papi column stays empty ***\n")
                }
            }
            if args.iter().any(|a| a == "--real") {
                std::env::set_var("MAGLEV_VPP_CACHE", vpp::cache_dir());
                vpp::build(&[], None)?;
                bench_args.push("--real".to_string());
            }
            let refs: Vec<&str> = bench_args.iter().map(String::as_str).collect();
            cargo(&refs)
        }
        Some("health") => {
            let mut bench_args = vec![
                "bench",
                "--quiet",
                "-p",
                "maglev-health",
                "--bench",
                "health",
                "--",
            ];
            let extra: Vec<&str> = args[1..].iter().map(String::as_str).collect();
            bench_args.extend(extra);
            cargo(&bench_args)
        }
        Some("lbsync") => {
            let mut bench_args = vec![
                "bench",
                "--quiet",
                "-p",
                "maglev-lbsync",
                "--bench",
                "lbsync",
            ];
            if args.iter().any(|a| a == "--real") {
                std::env::set_var("MAGLEV_VPP_CACHE", vpp::cache_dir());
                vpp::build(&[], None)?;
                bench_args.extend(["--", "--real"]);
            }
            cargo(&bench_args)
        }
        Some("probe") => cargo(&["bench", "--quiet", "-p", "maglev-health", "--bench", "probe_cpu"]),
        Some("daemon") => {
            cargo(&["bench", "--quiet", "-p", "maglevd", "--bench", "daemon"])?;
            cargo(&["bench", "--quiet", "-p", "maglevd", "--bench", "reads"])
        }
        Some("access") => {
            cargo(&[
                "build",
                "--release",
                "--quiet",
                "-p",
                "maglevd",
                "-p",
                "maglev-vppsim",
            ])?;
            cargo(&["bench", "--quiet", "-p", "maglevc", "--bench", "oneshot"])
        }
        Some("config") => cargo(&["bench", "--quiet", "-p", "maglev-config", "--bench", "load"]),
        Some("web") => {
            cargo(&[
                "build",
                "--release",
                "--quiet",
                "-p",
                "maglevd",
                "-p",
                "maglev-vppsim",
            ])?;
            cargo(&[
                "bench",
                "--quiet",
                "-p",
                "maglevd-frontend",
                "--bench",
                "web",
            ])
        }
        Some("maglevt") => cargo(&[
            "bench",
            "--quiet",
            "-p",
            "maglev-monitor",
            "--bench",
            "rate",
        ]),
        _ => Err(format!(
            "usage: cargo xtask bench vpp|health|probe|lbsync|daemon|maglevt|config|access|web\n\n{USAGE}"
        )),
    }
}
