//! systemd's notify protocol (`Type=notify`): `READY=1` once the config is
//! loaded and the API listens, `WATCHDOG=1` at half the watchdog interval
//! from the daemon's own runtime (so a wedged runtime stops the pings and
//! systemd restarts it), `STOPPING=1` on the way out. A datagram to
//! `$NOTIFY_SOCKET`; without it (not under systemd) nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

fn send(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket.
        use std::os::linux::net::SocketAddrExt as _;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), std::path::Path::new(&path))
    };
    if let Err(e) = sent {
        tracing::debug!(event = "sd-notify", state, error = %e);
    }
}

/// Tells systemd the daemon is ready, and starts the watchdog pings when
/// `WATCHDOG_USEC` asks for them.
pub fn ready() {
    send("READY=1");
    let interval = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|us| *us > 0)
        .map(|us| Duration::from_micros(us / 2));
    if let Some(every) = interval {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                send("WATCHDOG=1");
            }
        });
    }
}

/// Tells systemd the daemon is stopping.
pub fn stopping() {
    send("STOPPING=1");
}

#[cfg(test)]
mod tests {
    // Multi-threaded: the test blocks on recv while the watchdog task runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ready_and_watchdog_reach_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        listener
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // No other test of this crate reads these variables.
        std::env::set_var("NOTIFY_SOCKET", &path);
        std::env::set_var("WATCHDOG_USEC", "100000");
        super::ready();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
        super::stopping();
        let mut got = Vec::new();
        while let Ok(n) = listener.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            if got.last().is_some_and(|s| s == "STOPPING=1") {
                break;
            }
        }
        assert_eq!(got.last().map(String::as_str), Some("STOPPING=1"));
    }
}
