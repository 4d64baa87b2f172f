//! `maglevd --check` as a process: exit codes 0/1/2, every error printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn maglevd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_maglevd"));
    cmd.env_remove("MAGLEV_CONFIG");
    cmd
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/maglev.yaml")
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("maglevd runs");
    (
        status.code().expect("exit code"),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("maglev.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn valid_config_exits_0() {
    let (code, out, err) = run(maglevd().arg("--check").arg("--config").arg(example()));
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("OK (3 frontends, 7 backends, 4 health checks, 0 warnings)"),
        "{out}"
    );
}

#[test]
fn parse_error_exits_1_with_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "maglev:\n  backends:\n    a: { adress: 192.0.2.1 }\n");
    let (code, out, err) = run(maglevd().arg("--check").arg("--config").arg(&path));
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    let want = format!(
        "{}:3:10: error: backends.a: unknown field `adress`",
        path.display()
    );
    assert!(err.contains(&want), "{err}");
    assert!(out.contains("parse error"), "{out}");
}

#[test]
fn semantic_errors_exit_2_and_all_are_printed() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "maglev:\n  vpp:\n    lb:\n      ipv4-src-address: 198.51.100.1\n\
         \x20 backends:\n    a: { address: 192.0.2.1 }\n\
         \x20 frontends:\n    www:\n      address: 203.0.113.1\n      port: 80\n\
         \x20     pools:\n        - name: p\n          backends: { a: {}, web9: {} }\n",
    );
    let (code, out, err) = run(maglevd().arg("--check").arg("--config").arg(&path));
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    assert!(
        err.contains("error: vpp.lb.ipv6-src-address: required"),
        "{err}"
    );
    assert!(
        err.contains(":13:30: error: frontends.www.pools[0].backends.web9: no such backend"),
        "{err}"
    );
    assert!(out.contains("2 semantic errors"), "{out}");
}

#[test]
fn missing_file_is_a_parse_error() {
    let (code, _, err) = run(maglevd().args(["--check", "--config", "/nonexistent/maglev.yaml"]));
    assert_eq!(code, 1);
    assert!(err.contains("cannot read file"), "{err}");
}

#[test]
fn config_from_environment() {
    let (code, out, _) = run(maglevd().arg("--check").env("MAGLEV_CONFIG", example()));
    assert_eq!(code, 0, "{out}");
    // The flag wins over the environment.
    let (code, _, _) = run(maglevd()
        .args(["--check", "--config"])
        .arg(example())
        .env("MAGLEV_CONFIG", "/nonexistent"));
    assert_eq!(code, 0);
}

#[test]
fn go_style_single_dash_flags() {
    let (code, out, err) = run(maglevd()
        .arg("-check")
        .arg(format!("-config={}", example().display())));
    assert_eq!(code, 0, "{out}{err}");
    // Every long flag takes one dash, not just a listed few.
    let (code, out, err) = run(maglevd()
        .args([
            "-check",
            "-metrics-addr=",
            "-reflection=false",
            "-log-format",
            "json",
        ])
        .arg(format!("-config={}", example().display())));
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn version_prints_commit_and_date() {
    let (code, out, _) = run(maglevd().arg("--version"));
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("maglevd {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    assert!(out.contains(", built 20"), "{out}");
}

#[test]
fn bad_flag_is_a_usage_error_not_a_config_verdict() {
    let (code, _, err) = run(maglevd().arg("--chek"));
    assert_eq!(code, 64, "{err}");
}

#[test]
fn a_bad_config_at_start_is_refused_with_its_class() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "maglev:\n  backends: { a: { address: 192.0.2.1 } }\n");
    let (code, _, err) = run(maglevd().arg("--config").arg(&path).args([
        "--vpp-api-addr",
        "",
        "--grpc-addr",
        "127.0.0.1:0",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("semantic errors; not starting"), "{err}");
}

#[test]
fn log_level_words_are_checked() {
    // `warning` used to be read as a tracing target and silence everything.
    let (code, _, err) = run(maglevd()
        .args(["--log-level", "warning", "--check", "--config"])
        .arg(example()));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(maglevd()
        .args(["--log-level", "bogus", "--config"])
        .arg(example()));
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("error, warn (warning), info, debug, trace"),
        "{err}"
    );
}

#[test]
fn new_keys_are_checked_with_their_place() {
    // A grpc check without a port, `insecure` without TLS, a panic
    // threshold that is no percentage, a flap window shorter than the
    // interval and an agent without a port: each named with its line.
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "maglev:
  vpp: { lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' } }
  healthchecks:
    g:
      type: grpc
      grpc: { service: shop.Cart, insecure: true }
    h:
      type: tcp
      port: 80
      interval: 5s
      flap: { max-transitions: 3, window: 2s, hold-down: 1m }
      agent: { interval: 5s }
  backends:
    b: { address: 192.0.2.10, healthcheck: g }
  frontends:
    www:
      address: 203.0.113.80
      port: 80
      panic-threshold: 150%
      pools: [ { name: p, backends: { b: {} } } ]
",
    );
    let (code, out, err) = run(maglevd().arg("--check").arg("--config").arg(&path));
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    let p = path.display();
    for want in [
        format!("{p}:4:5: error: healthchecks.g.port: required for a grpc health check"),
        format!("{p}:6:35: error: healthchecks.g.grpc.insecure: needs `tls: true`"),
        format!("{p}:19:7: error: frontends.www.panic-threshold: \"150%\" is not a percentage"),
        format!("{p}:11:35: error: healthchecks.h.flap.window: 2s is shorter than the probe interval 5s"),
        format!("{p}:12:7: error: healthchecks.h.agent.port: required"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
}
