//! `cargo xtask vpp build [NAME…]`: real FD.io VPP builds for the test
//! suite, kept in a cache outside the clone so only the first run on a
//! machine pays for them (10–25 minutes each on two cores).
//!
//! Layout of the cache (`$MAGLEV_VPP_CACHE`, else
//! `$XDG_CACHE_HOME/maglev/vpp`, else `~/.cache/maglev/vpp`), one folder per
//! source archive:
//!
//! ```text
//! <cache>/<stem>/source.sha256   the archive it was unpacked from
//! <cache>/<stem>/<stem>/src      the unpacked sources
//! <cache>/<stem>/build           cmake + ninja build directory
//! <cache>/<stem>/ready           name=…, vpp=…, vppctl=…, plugins=… once built
//! ```
//!
//! An archive whose checksum matches `source.sha256` and whose `ready` file
//! exists is not built again; remove its folder to force a rebuild. An
//! unpacked tree (`--src DIR` with `src/CMakeLists.txt`) is always handed to
//! ninja.
//!
//! The real-VPP tests (`maglev_testkit::vpp`) read the `ready` files; an
//! installed VPP named by `MAGLEV_VPP_BIN` is used instead of the cache.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const USAGE: &str = "usage: cargo xtask vpp build [NAME…] [--src DIR|TARBALL]
       cargo xtask vpp list

NAME is 26.06, master or an archive's stem (default: every archive found).
Sources: --src, else $MAGLEV_VPP_SRC, else ../shared/vpp-src. The cache is
$MAGLEV_VPP_CACHE, else ~/.cache/maglev/vpp. With $MAGLEV_VPP_BIN set (an
installed VPP) nothing is built: the tests use that one.";

/// The cache folder.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MAGLEV_VPP_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("maglev/vpp")
}

/// One VPP source: an archive, or an unpacked tree.
#[derive(Debug, Clone)]
struct Source {
    /// `vpp-26.06`, `vpp-26.10-rc0-374-gb575ec2`.
    stem: String,
    archive: Option<PathBuf>,
    tree: Option<PathBuf>,
}

impl Source {
    /// The version of a release archive (`26.06`, `24.10.1`); `master` for
    /// a development snapshot (`-rc`, or a `git describe` suffix).
    fn name(&self) -> String {
        let version = self.stem.trim_start_matches("vpp-");
        let is_release = !version.is_empty()
            && version.split('.').count() >= 2
            && version
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        if is_release {
            version.to_string()
        } else {
            "master".to_string()
        }
    }
}

fn sources(src: Option<&Path>) -> Result<Vec<Source>, String> {
    let src = match src {
        Some(s) => s.to_path_buf(),
        None => match std::env::var_os("MAGLEV_VPP_SRC").filter(|s| !s.is_empty()) {
            Some(s) => PathBuf::from(s),
            None => super::workspace_root().join("../shared/vpp-src"),
        },
    };
    if src.is_file() {
        return Ok(vec![archive_source(&src)?]);
    }
    if !src.is_dir() {
        return Err(format!(
            "no VPP sources at {} (pass --src DIR|TARBALL or set MAGLEV_VPP_SRC)",
            src.display()
        ));
    }
    if src.join("src/CMakeLists.txt").is_file() {
        let stem = src
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "vpp".to_string());
        return Ok(vec![Source {
            stem,
            archive: None,
            tree: Some(src),
        }]);
    }
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&src).map_err(|e| format!("{}: {e}", src.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.to_string_lossy().ends_with(".tar.xz") {
            out.push(archive_source(&path)?);
        }
    }
    out.sort_by(|a, b| a.stem.cmp(&b.stem));
    if out.is_empty() {
        return Err(format!("no vpp-*.tar.xz in {}", src.display()));
    }
    Ok(out)
}

fn archive_source(path: &Path) -> Result<Source, String> {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = file
        .strip_suffix(".tar.xz")
        .ok_or_else(|| format!("{}: not a .tar.xz archive", path.display()))?
        .to_string();
    Ok(Source {
        stem,
        archive: Some(path.to_path_buf()),
        tree: None,
    })
}

/// Runs `cmd`, failing with its description.
fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("==> {cmd:?}");
    let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({status})"))
    }
}

fn sha256(path: &Path) -> Result<String, String> {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    if !out.status.success() {
        return Err(format!("sha256sum {} failed", path.display()));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Debian packages the recipe needs (../shared/vpp-src/README.md).
const APT_DEPS: &[&str] = &[
    "cmake",
    "ninja-build",
    "clang",
    "lld",
    "python3-ply",
    "libssl-dev",
    "pkg-config",
];

fn have_build_deps() -> bool {
    let ok = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    ok("cmake", &["--version"])
        && ok("ninja", &["--version"])
        && ok("clang", &["--version"])
        && ok("pkg-config", &["--exists", "openssl"])
        && ok("/usr/bin/python3", &["-c", "import ply"])
}

fn install_build_deps() -> Result<(), String> {
    if have_build_deps() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        return Err(format!(
            "VPP's build tools are missing; install them with: sudo apt-get install {}",
            APT_DEPS.join(" ")
        ));
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(APT_DEPS)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Builds one source into the cache (each step skipped when done) and
/// returns its `ready` file.
fn build_one(source: &Source) -> Result<PathBuf, String> {
    let dir = cache_dir().join(&source.stem);
    let ready = dir.join("ready");
    let tree = match (&source.tree, &source.archive) {
        (Some(tree), _) => tree.clone(),
        (None, Some(archive)) => {
            let sum = sha256(archive)?;
            let stamp = dir.join("source.sha256");
            let unpacked = dir.join(&source.stem);
            let stamped = std::fs::read_to_string(&stamp).ok();
            if stamped.as_deref().map(str::trim) == Some(sum.as_str()) && ready.is_file() {
                // Built from this very archive. (ninja alone cannot say: the
                // API generators' depfiles never exist, so it always finds
                // ~90 steps to redo.)
                return Ok(ready);
            }
            if stamped.as_deref().map(str::trim) != Some(sum.as_str()) {
                if stamped.is_some() || !unpacked.join("src").is_dir() {
                    // Another archive under the same name: start over.
                    let _ = std::fs::remove_dir_all(&dir);
                    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                    run(Command::new("tar")
                        .arg("-xJf")
                        .arg(archive)
                        .arg("-C")
                        .arg(&dir))?;
                }
                std::fs::write(&stamp, format!("{sum}\n"))
                    .map_err(|e| format!("{}: {e}", stamp.display()))?;
            }
            unpacked
        }
        (None, None) => unreachable!("a source is an archive or a tree"),
    };
    let build = dir.join("build");
    let vpp = build.join("bin/vpp");
    let vppctl = build.join("bin/vppctl");
    let plugins = build.join("lib/x86_64-linux-gnu/vpp_plugins");
    install_build_deps()?;
    // vppapigen runs as `#!/usr/bin/env python3` and needs Debian's ply.
    let path = format!(
        "/usr/bin:{}",
        std::env::var("PATH").unwrap_or_else(|_| "/bin".to_string())
    );
    if !build.join("build.ninja").is_file() {
        run(Command::new("cmake")
            .args(["-G", "Ninja", "-S"])
            .arg(tree.join("src"))
            .arg("-B")
            .arg(&build)
            .args([
                "-DCMAKE_C_COMPILER=clang",
                "-DCMAKE_BUILD_TYPE=release",
                "-DVPP_USE_LTO=OFF",
                "-DVPP_PLUGINS=lb;af_packet",
                "-DVPP_TESTS=none",
                "-DVPP_BUILD_NATIVE_ONLY=ON",
            ])
            .env("PATH", &path))?;
    }
    eprintln!(
        "==> building VPP {} ({}) in {}: 5-25 minutes the first time",
        source.name(),
        source.stem,
        build.display()
    );
    run(Command::new("ninja")
        .arg("-C")
        .arg(&build)
        .args(["vpp", "vppctl", "lb_plugin", "af_packet_plugin"])
        .env("PATH", &path))?;
    for f in [&vpp, &vppctl, &plugins.join("lb_plugin.so")] {
        if !f.exists() {
            return Err(format!("the build left no {}", f.display()));
        }
    }
    let text = format!(
        "name={}\nstem={}\nvpp={}\nvppctl={}\nplugins={}\n",
        source.name(),
        source.stem,
        vpp.display(),
        vppctl.display(),
        plugins.display()
    );
    std::fs::write(&ready, text).map_err(|e| format!("{}: {e}", ready.display()))?;
    Ok(ready)
}

/// Builds the sources named in `names` (all when empty).
pub fn build(names: &[String], src: Option<&Path>) -> Result<Vec<PathBuf>, String> {
    if let Some(bin) = std::env::var_os("MAGLEV_VPP_BIN").filter(|b| !b.is_empty()) {
        eprintln!(
            "==> MAGLEV_VPP_BIN={}: using the installed VPP, building none",
            PathBuf::from(bin).display()
        );
        return Ok(Vec::new());
    }
    let all = sources(src)?;
    let chosen: Vec<&Source> = if names.is_empty() {
        all.iter().collect()
    } else {
        let mut chosen = Vec::new();
        for n in names {
            let found: Vec<&Source> = all
                .iter()
                .filter(|s| s.name() == *n || s.stem == *n)
                .collect();
            if found.is_empty() {
                let known: Vec<String> = all.iter().map(Source::name).collect();
                return Err(format!(
                    "no VPP source named {n:?} (have: {})",
                    known.join(", ")
                ));
            }
            chosen.extend(found);
        }
        chosen
    };
    chosen.into_iter().map(build_one).collect()
}

/// `cargo xtask vpp …`.
pub fn main(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("build") => {
            let mut names = Vec::new();
            let mut src = None;
            let mut rest = args[1..].iter();
            while let Some(a) = rest.next() {
                match a.as_str() {
                    "--src" => src = Some(PathBuf::from(rest.next().ok_or(USAGE)?)),
                    "--vpp-bin" => {
                        let bin = rest.next().ok_or(USAGE)?;
                        std::env::set_var("MAGLEV_VPP_BIN", bin);
                    }
                    s if s.starts_with('-') => return Err(format!("unknown flag {s}\n\n{USAGE}")),
                    n => names.push(n.to_string()),
                }
            }
            for ready in build(&names, src.as_deref())? {
                eprintln!("==> ready: {}", ready.display());
            }
            Ok(())
        }
        Some("list") => {
            let dir = cache_dir();
            let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for entry in entries.flatten() {
                if let Ok(text) = std::fs::read_to_string(entry.path().join("ready")) {
                    println!("{}", text.replace('\n', " ").trim());
                }
            }
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_archives() {
        let s = |stem: &str| Source {
            stem: stem.to_string(),
            archive: None,
            tree: None,
        };
        assert_eq!(s("vpp-26.06").name(), "26.06");
        assert_eq!(s("vpp-26.10-rc0-374-gb575ec2").name(), "master");
        assert_eq!(s("vpp-24.10.1").name(), "24.10.1");
        assert_eq!(s("vpp-26.06-rc1").name(), "master");
    }
}
