//! Helpers for the end-to-end drills in `tests/drill.rs`: the workspace's
//! binaries as processes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;

pub use maglev_testkit::{free_port, Kill};

/// A binary of this workspace, built next to the test (`cargo test
/// --workspace` builds them all).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(name))
        .expect("target directory");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace (cargo test --workspace)",
        bin.display()
    );
    bin
}
