//! `cargo xtask deb [--check]`: the Debian packages, for the host
//! architecture, split as the Go tool's are:
//!
//! - `vpp-maglevd`: maglevd in /usr/sbin, its systemd unit, the conffiles
//!   /etc/vpp-maglev/maglev.yaml (the annotated example) and
//!   /etc/default/vpp-maglev, maglevd(8); postinst makes the system user
//!   and group `maglevd` (and adds it to group `vpp` when that exists),
//!   postrm removes them on purge;
//! - `vpp-maglev`: maglevc and maglevt in /usr/bin, their man pages and
//!   bash/zsh/fish completions.
//!
//! `--check` then lints them (lintian), installs them (`dpkg -i`), checks
//! the result (the conffile passes `maglevd --check`, user, group and
//! permissions, the binaries run, `systemd-analyze verify` and `security`
//! on the unit) and purges them, whatever happened.

use std::path::{Path, PathBuf};
use std::process::Command;

const MAINTAINER: &str = "maglev developers <maglev@example.invalid>";

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<(), String> {
    let text = std::fs::read(from).map_err(|e| format!("{}: {e}", from.display()))?;
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(to, text).map_err(|e| format!("{}: {e}", to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", to.display()))
}

/// gzip -9n a file into `to` (man pages, changelogs).
fn gzip(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let out = run(Command::new("sh")
        .arg("-c")
        .arg("gzip -9n -c \"$1\" > \"$2\" && chmod 644 \"$2\"")
        .arg("_")
        .arg(from)
        .arg(to))?;
    let _ = out;
    Ok(())
}

fn doc(stage: &Path, package: &str, version: &str, date: &str) -> Result<(), String> {
    // serde_yaml's parser is unsafe-libyaml, a Rust translation of libyaml
    // linked in statically as every Rust crate is: not a copy of the C
    // library lintian looks for.
    let binaries: &[&str] = if package == "vpp-maglevd" {
        &["usr/sbin/maglevd"]
    } else {
        &["usr/bin/maglevt"]
    };
    let overrides: String = binaries
        .iter()
        .map(|b| format!("# unsafe-libyaml, a Rust port of libyaml, statically linked\nembedded-library libyaml [{b}]\n"))
        .collect();
    write(
        &stage.join("usr/share/lintian/overrides").join(package),
        &overrides,
        0o644,
    )?;
    let dir = stage.join("usr/share/doc").join(package);
    write(
        &dir.join("copyright"),
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: maglev\n\n\
         Files: *\n\
         Copyright: 2026 The maglev developers\n\
         License: Apache-2.0\n \
         On Debian systems, the full text of the Apache License 2.0 is in\n \
         /usr/share/common-licenses/Apache-2.0.\n",
        0o644,
    )?;
    let changelog = dir.join("changelog.Debian");
    write(
        &changelog,
        &format!(
            "{package} ({version}) unstable; urgency=medium\n\n  * Built by cargo xtask deb.\n\n -- {MAINTAINER}  {date}\n"
        ),
        0o644,
    )?;
    gzip(&changelog, &dir.join("changelog.Debian.gz"))?;
    std::fs::remove_file(&changelog).map_err(|e| e.to_string())
}

/// md5sums, control (with Installed-Size), and the package itself.
fn finish(stage: &Path, control: &str, out: &Path) -> Result<PathBuf, String> {
    let sums = run(Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && find . -path ./DEBIAN -prune -o -type f -printf '%P\\0' | sort -z | xargs -0 md5sum")
        .arg("_")
        .arg(stage))?;
    write(&stage.join("DEBIAN/md5sums"), &sums, 0o644)?;
    let kib = run(Command::new("du")
        .args(["-sk", "--exclude=DEBIAN"])
        .arg(stage))?;
    let kib = kib.split_whitespace().next().unwrap_or("0");
    write(
        &stage.join("DEBIAN/control"),
        &format!("{control}Installed-Size: {kib}\n"),
        0o644,
    )?;
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(stage)
        .arg(out))?;
    Ok(out.to_path_buf())
}

/// Builds both packages under `target/deb`; returns their paths.
pub fn build(
    root: &Path,
    cargo: &dyn Fn(&[&str]) -> Result<(), String>,
) -> Result<Vec<PathBuf>, String> {
    cargo(&[
        "build",
        "--release",
        "--quiet",
        "-p",
        "maglevd",
        "-p",
        "maglevd-frontend",
        "-p",
        "maglevc",
        "-p",
        "maglevt",
    ])?;
    let out = root.join("target/deb");
    let _ = std::fs::remove_dir_all(&out);
    let dist = out.join("dist");
    crate::write_dist(&dist)?;
    let arch = run(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_string();
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    let date = run(Command::new("date").arg("-R"))?.trim().to_string();
    let bin = root.join("target/release");
    let strip = |p: &Path| {
        let _ = Command::new("strip")
            .args([
                "--strip-unneeded",
                "--remove-section=.comment",
                "--remove-section=.note",
            ])
            .arg(p)
            .status();
    };
    let libc = "libc6 (>= 2.34), libgcc-s1 (>= 4.2)";
    let mut debs = Vec::new();

    // vpp-maglevd
    let s = out.join("vpp-maglevd");
    for daemon in ["maglevd", "maglevd-frontend"] {
        copy(&bin.join(daemon), &s.join("usr/sbin").join(daemon), 0o755)?;
        strip(&s.join("usr/sbin").join(daemon));
    }
    for unit in ["vpp-maglevd.service", "vpp-maglev-frontend.service"] {
        copy(
            &root.join("packaging").join(unit),
            &s.join("lib/systemd/system").join(unit),
            0o644,
        )?;
    }
    // 0644 in the package (policy); postinst makes it root:maglevd 0640.
    copy(
        &root.join("examples/maglev.yaml"),
        &s.join("etc/vpp-maglev/maglev.yaml"),
        0o644,
    )?;
    copy(
        &root.join("packaging/default"),
        &s.join("etc/default/vpp-maglev"),
        0o644,
    )?;
    for page in ["maglevd.8", "maglevd-frontend.8"] {
        gzip(
            &dist.join("man").join(page),
            &s.join("usr/share/man/man8").join(format!("{page}.gz")),
        )?;
    }
    doc(&s, "vpp-maglevd", &version, &date)?;
    for script in ["postinst", "prerm", "postrm"] {
        copy(
            &root.join("packaging").join(script),
            &s.join("DEBIAN").join(script),
            0o755,
        )?;
    }
    write(
        &s.join("DEBIAN/conffiles"),
        "/etc/default/vpp-maglev\n/etc/vpp-maglev/maglev.yaml\n",
        0o644,
    )?;
    debs.push(finish(
        &s,
        &format!(
            "Package: vpp-maglevd\nVersion: {version}\nArchitecture: {arch}\nMaintainer: {MAINTAINER}\n\
             Section: net\nPriority: optional\nDepends: {libc}, adduser\nRecommends: vpp-maglev\n\
             Description: control plane for the VPP Maglev load balancer\n \
             maglevd probes backends (HTTP, HTTPS, TCP, ICMP), turns health and pool\n \
             priority into application-server weights and programs the lb plugin of\n \
             FD.io VPP over its binary API socket, repairing drift and surviving\n \
             restarts of VPP and of itself without black-holing traffic.\n \
             maglevd-frontend is its web dashboard over one or more maglevds.\n"
        ),
        &out.join(format!("vpp-maglevd_{version}_{arch}.deb")),
    )?);

    // vpp-maglev
    let s = out.join("vpp-maglev");
    for b in ["maglevc", "maglevt"] {
        copy(&bin.join(b), &s.join("usr/bin").join(b), 0o755)?;
        strip(&s.join("usr/bin").join(b));
        gzip(
            &dist.join("man").join(format!("{b}.1")),
            &s.join(format!("usr/share/man/man1/{b}.1.gz")),
        )?;
    }
    copy(
        &dist.join("completions/maglevc.bash"),
        &s.join("usr/share/bash-completion/completions/maglevc"),
        0o644,
    )?;
    copy(
        &dist.join("completions/_maglevc"),
        &s.join("usr/share/zsh/vendor-completions/_maglevc"),
        0o644,
    )?;
    copy(
        &dist.join("completions/maglevc.fish"),
        &s.join("usr/share/fish/vendor_completions.d/maglevc.fish"),
        0o644,
    )?;
    doc(&s, "vpp-maglev", &version, &date)?;
    debs.push(finish(
        &s,
        &format!(
            "Package: vpp-maglev\nVersion: {version}\nArchitecture: {arch}\nMaintainer: {MAINTAINER}\n\
             Section: net\nPriority: optional\nDepends: {libc}\n\
             Description: clients of maglevd, the VPP Maglev control plane\n \
             maglevc is the runbook CLI for maglevd (one-shot commands with stable\n \
             output and exit codes, and an interactive shell); maglevt is a terminal\n \
             UI that probes every VIP from outside during failover drills.\n"
        ),
        &out.join(format!("vpp-maglev_{version}_{arch}.deb")),
    )?);
    Ok(debs)
}

/// The files each package must hold, exactly.
const EXPECTED: &[(&str, &[&str])] = &[
    (
        "vpp-maglevd_",
        &[
            "./etc/default/vpp-maglev",
            "./etc/vpp-maglev/maglev.yaml",
            "./lib/systemd/system/vpp-maglev-frontend.service",
            "./lib/systemd/system/vpp-maglevd.service",
            "./usr/sbin/maglevd",
            "./usr/sbin/maglevd-frontend",
            "./usr/share/doc/vpp-maglevd/changelog.Debian.gz",
            "./usr/share/doc/vpp-maglevd/copyright",
            "./usr/share/lintian/overrides/vpp-maglevd",
            "./usr/share/man/man8/maglevd-frontend.8.gz",
            "./usr/share/man/man8/maglevd.8.gz",
        ],
    ),
    (
        "vpp-maglev_",
        &[
            "./usr/bin/maglevc",
            "./usr/bin/maglevt",
            "./usr/share/bash-completion/completions/maglevc",
            "./usr/share/doc/vpp-maglev/changelog.Debian.gz",
            "./usr/share/doc/vpp-maglev/copyright",
            "./usr/share/fish/vendor_completions.d/maglevc.fish",
            "./usr/share/lintian/overrides/vpp-maglev",
            "./usr/share/man/man1/maglevc.1.gz",
            "./usr/share/man/man1/maglevt.1.gz",
            "./usr/share/zsh/vendor-completions/_maglevc",
        ],
    ),
];

/// Checks each package's file list against [`EXPECTED`].
fn file_lists(debs: &[PathBuf]) -> Result<(), String> {
    for deb in debs {
        let name = deb
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some((_, want)) = EXPECTED.iter().find(|(p, _)| name.starts_with(p)) else {
            return Err(format!("no expected file list for {name}"));
        };
        let listing = run(Command::new("dpkg-deb").arg("-c").arg(deb))?;
        let mut got: Vec<&str> = listing
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .filter(|p| !p.ends_with('/'))
            .collect();
        got.sort_unstable();
        if got != *want {
            return Err(format!("{name} holds {got:#?}, expected {want:#?}"));
        }
    }
    Ok(())
}

/// Lints, installs, checks and purges the packages (root only).
pub fn check(debs: &[PathBuf]) -> Result<(), String> {
    file_lists(debs)?;
    if let Ok(out) = Command::new("lintian")
        .args([
            "--fail-on",
            "error",
            "--suppress-tags",
            "no-manual-page,initial-upload-closes-no-bugs",
        ])
        .args(debs)
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("==> lintian\n{text}");
        if !out.status.success() {
            return Err(format!("lintian found errors:\n{text}"));
        }
    } else {
        eprintln!("\n*** lintian not available: the packages are not linted ***\n");
    }
    let install = run(Command::new("dpkg").arg("-i").args(debs));
    let checked = install.and_then(|_| installed_checks());
    // Purge whatever happened, leaving the machine as it was.
    let purge = run(Command::new("dpkg").args(["--purge", "vpp-maglevd", "vpp-maglev"]));
    checked?;
    purge?;
    if run(Command::new("getent").args(["passwd", "maglevd"])).is_ok() {
        return Err("purge left the maglevd user behind".to_string());
    }
    if Path::new("/etc/vpp-maglev").exists() {
        return Err("purge left /etc/vpp-maglev behind".to_string());
    }
    eprintln!("==> packages built, linted, installed, checked and purged");
    Ok(())
}

fn installed_checks() -> Result<(), String> {
    let out = run(Command::new("/usr/sbin/maglevd").args([
        "--check",
        "--config",
        "/etc/vpp-maglev/maglev.yaml",
    ]))?;
    eprintln!("==> {}", out.trim());
    run(Command::new("getent").args(["group", "maglevd"]))?;
    let user = run(Command::new("getent").args(["passwd", "maglevd"]))?;
    if !user.contains(":/nonexistent:") {
        return Err(format!("unexpected maglevd user: {user}"));
    }
    let perms = run(Command::new("stat").args(["-c", "%a %U %G", "/etc/vpp-maglev/maglev.yaml"]))?;
    if perms.trim() != "640 root maglevd" {
        return Err(format!("/etc/vpp-maglev/maglev.yaml is {}", perms.trim()));
    }
    for b in [
        "/usr/sbin/maglevd",
        "/usr/sbin/maglevd-frontend",
        "/usr/bin/maglevc",
        "/usr/bin/maglevt",
    ] {
        let v = run(Command::new(b).arg("--version"))?;
        if !v.contains("(commit ") {
            return Err(format!("{b} --version: {v}"));
        }
    }
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        run(Command::new("systemd-analyze").args([
            "verify",
            "/lib/systemd/system/vpp-maglevd.service",
            "/lib/systemd/system/vpp-maglev-frontend.service",
        ]))?;
        for unit in ["vpp-maglevd.service", "vpp-maglev-frontend.service"] {
            let sec = Command::new("systemd-analyze")
                .args(["security", "--offline=true"])
                .arg(format!("/lib/systemd/system/{unit}"))
                .output()
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&sec.stdout);
            if let Some(line) = text.lines().find(|l| l.contains("Overall exposure level")) {
                eprintln!("==> systemd-analyze security: {}", line.trim());
            }
        }
    }
    Ok(())
}
