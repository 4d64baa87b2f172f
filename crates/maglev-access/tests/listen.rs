//! Unix-socket listeners: mode and group applied, a stale socket replaced,
//! a live one or a file that is no socket refused, the file removed when
//! the listener goes (unless another process replaced it).

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use maglev_access::listen::{Listener, UnixOptions};
use maglev_access::Endpoint;

fn unix(path: &std::path::Path) -> Endpoint {
    Endpoint::Unix(path.to_path_buf())
}

#[tokio::test]
async fn unix_socket_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sock");
    let gid = nix::unistd::getegid().as_raw();
    let opts = UnixOptions {
        mode: 0o640,
        gid: Some(gid),
    };
    let l = Listener::bind(&unix(&path), opts, false).await.unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(meta.gid(), gid);
    assert_eq!(l.local_addr(), format!("unix:{}", path.display()));
    // A second maglevd on the same path is refused while the first lives.
    let e = Listener::bind(&unix(&path), opts, false).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
    drop(l);
    assert!(!path.exists(), "the socket file goes with its listener");

    // A socket file left by a dead process is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let l = Listener::bind(&unix(&path), opts, false).await.unwrap();
    // If another process replaced the file meanwhile, it is left alone.
    std::fs::remove_file(&path).unwrap();
    let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(l);
    assert!(path.exists(), "someone else's socket was removed");
    drop(other);
    std::fs::remove_file(&path).unwrap();

    // A file that is not a socket is never removed or replaced.
    std::fs::write(&path, "data").unwrap();
    let e = Listener::bind(&unix(&path), opts, false).await.unwrap_err();
    assert!(e.to_string().contains("is not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
}

#[tokio::test]
async fn https_needs_a_certificate() {
    let e = Listener::bind(
        &Endpoint::parse("https://127.0.0.1:0").unwrap(),
        UnixOptions::default(),
        false,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("--tls-cert"), "{e}");
    // A bare address without TLS configured is plain TCP.
    let l = Listener::bind(
        &Endpoint::parse("127.0.0.1:0").unwrap(),
        UnixOptions::default(),
        false,
    )
    .await
    .unwrap();
    assert!(!l.local_addr().starts_with("https://"));
    assert!(l.port().is_some_and(|p| p > 0));
}
