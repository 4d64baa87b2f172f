//! ARCHITECTURE.md's invariants that a reading of the source can hold,
//! checked so they stay true.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Production sources: `src/` of every library and binary crate.
fn production_sources() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for group in ["crates", "bins"] {
        let Ok(entries) = std::fs::read_dir(root().join(group)) else {
            continue;
        };
        for e in entries.flatten() {
            rust_files(&e.path().join("src"), &mut out);
        }
    }
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root())
        .unwrap_or(p)
        .to_string_lossy()
        .replace("/../", "/")
}

/// One writer to VPP: the lb API's mutating calls are made by the
/// reconciler's port to VPP (and `lb_conf` by its VPP link) only, and the
/// port and the apply step are private to maglev-lbsync.
#[test]
fn only_the_reconciler_writes_to_vpp() {
    let writes = [
        ".vip_add(",
        ".vip_del(",
        ".as_add(",
        ".as_del(",
        ".as_set_weight(",
        ".conf_set(",
    ];
    // Where they are defined, and the two places allowed to call them.
    let allowed = [
        "crates/maglev-vpp/src/lb.rs",
        "crates/maglev-lbsync/src/port.rs",
        "crates/maglev-lbsync/src/reconciler/link.rs",
    ];
    let lib = std::fs::read_to_string(root().join("crates/maglev-lbsync/src/lib.rs")).unwrap();
    for module in ["apply", "port"] {
        assert!(
            lib.lines().any(|l| l.trim() == format!("mod {module};")),
            "crates/maglev-lbsync/src/lib.rs: the {module} module must stay private (`mod {module};`)"
        );
    }
    let mut found = Vec::new();
    let files = production_sources();
    assert!(
        files.len() > 50,
        "sources not found under {}",
        root().display()
    );
    for f in files {
        let name = rel(&f);
        // The simulator is VPP's side of the socket, not a client.
        if allowed.iter().any(|a| name.ends_with(a)) || name.contains("maglev-vppsim/") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if writes.iter().any(|w| line.contains(w)) {
                found.push(format!("{name}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "VPP writes outside the reconciler (ARCHITECTURE.md: one writer to VPP):\n{}",
        found.join("\n")
    );
}

/// `#![forbid(unsafe_code)]` in every crate root but maglev-vpp's, whose
/// stats module takes ownership of descriptors VPP passes.
#[test]
fn unsafe_code_is_forbidden_outside_maglev_vpp() {
    let mut missing = Vec::new();
    for group in ["crates", "bins"] {
        for e in std::fs::read_dir(root().join(group)).unwrap().flatten() {
            let dir = e.path();
            if dir.ends_with("maglev-vpp") {
                continue;
            }
            for root_file in ["src/lib.rs", "src/main.rs"] {
                let f = dir.join(root_file);
                if let Ok(text) = std::fs::read_to_string(&f) {
                    if !text.contains("#![forbid(unsafe_code)]") {
                        missing.push(rel(&f));
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "crate roots without #![forbid(unsafe_code)]: {missing:?}"
    );
}
