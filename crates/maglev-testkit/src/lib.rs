//! Test support for the workspace's process tests (dev-dependency only):
//! a child-process guard, free loopback ports, polling until a condition
//! holds, a pseudo-terminal that runs a program as an interactive user
//! would, and large configs.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fs::File;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use nix::pty::{openpty, Winsize};

pub mod browser;
pub mod certs;
pub mod pcap;
pub mod stats_peer;
pub mod vpp;

/// Kills and reaps the child when dropped, so a failing test leaves no
/// process behind.
#[derive(Debug)]
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Polls `cond` every 10 ms until it holds and returns how long that took;
/// fails the test, naming `what`, after `within`.
pub async fn eventually(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < within,
            "timed out ({within:?}) waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

/// A program on a pseudo-terminal of `cols`×`rows`: stdin, stdout and
/// stderr are the terminal; what it prints arrives through [`Pty::recv`].
#[derive(Debug)]
pub struct Pty {
    master: File,
    rx: Receiver<Vec<u8>>,
    /// The program.
    pub child: Kill,
}

impl Pty {
    /// Starts `cmd` on a new terminal.
    pub fn spawn(mut cmd: Command, cols: u16, rows: u16) -> Pty {
        let ws = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&ws), None).expect("openpty");
        let slave = File::from(pty.slave);
        let dup = |f: &File| Stdio::from(f.try_clone().expect("dup pty"));
        let child = cmd
            .stdin(dup(&slave))
            .stdout(dup(&slave))
            .stderr(Stdio::from(slave))
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let master = File::from(pty.master);
        let mut reader = master.try_clone().expect("dup pty");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            // Ends with EIO once the program and its terminal are gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Pty {
            master,
            rx,
            child: Kill(child),
        }
    }

    /// Types `keys`.
    pub fn send(&mut self, keys: &[u8]) {
        self.master.write_all(keys).expect("write to pty");
    }

    /// What the program printed: waits up to `wait` for something, then
    /// takes everything already there. Empty when nothing came.
    pub fn recv(&mut self, wait: Duration) -> Vec<u8> {
        let mut out = self.rx.recv_timeout(wait).unwrap_or_default();
        while let Ok(more) = self.rx.try_recv() {
            out.extend_from_slice(&more);
        }
        out
    }

    /// Waits up to `limit` for the program to exit, handing everything it
    /// prints meanwhile (and its last output) to `sink`; its exit code.
    pub fn wait_exit(&mut self, limit: Duration, mut sink: impl FnMut(&[u8])) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            sink(&self.recv(Duration::from_millis(20)));
            if let Some(st) = self.child.0.try_wait().expect("try_wait") {
                sink(&self.recv(Duration::from_millis(100)));
                return st.code();
            }
            assert!(Instant::now() < deadline, "the program did not exit");
        }
    }
}

/// A config of `frontends` frontends (`f0`…, on 198.18.x.y:80) with
/// `per_frontend` static backends each (`b{frontend}-{n}`, on 10.x.y.z),
/// the scale tests and benches use; `lb` is the `vpp.lb` mapping's
/// contents. Addresses are only configured, never contacted.
pub fn static_config(frontends: usize, per_frontend: usize, lb: &str) -> String {
    use std::fmt::Write as _;
    let mut y = format!(
        "maglev:\n  vpp:\n    lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1'{lb} }}\n  backends:\n"
    );
    for v in 0..frontends {
        for a in 0..per_frontend {
            let _ = writeln!(
                y,
                "    b{v}-{a}: {{ address: 10.{}.{}.{} }}",
                v / 250,
                v % 250,
                a + 1
            );
        }
    }
    y.push_str("  frontends:\n");
    for v in 0..frontends {
        let _ = write!(
            y,
            "    f{v}:\n      address: 198.18.{}.{}\n      port: 80\n      pools:\n        - name: p\n          backends:\n",
            v / 250,
            v % 250 + 1
        );
        for a in 0..per_frontend {
            let _ = writeln!(y, "            b{v}-{a}: {{}}");
        }
    }
    y
}
