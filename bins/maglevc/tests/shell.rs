//! The interactive shell driven through a pseudo-terminal: Tab completion
//! of live names, `?` leaving the line alone, errors, `watch events`
//! stopped by a key, history kept across runs, `quit` and Ctrl-D.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::{rig, Kill};
use nix::pty::{openpty, Winsize};

struct Pty {
    master: File,
    rx: Receiver<Vec<u8>>,
    /// Everything printed so far, escape sequences removed.
    screen: String,
    /// How far `expect` has matched.
    mark: usize,
    child: Kill,
}

/// Drops ANSI escape sequences (CSI and two-byte ones) and carriage
/// returns: what is left is the text the terminal shows, in order.
fn plain(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\x1b' => {
                if it.next() == Some('[') {
                    for d in it.by_ref() {
                        if ('\x40'..='\x7e').contains(&d) {
                            break;
                        }
                    }
                }
            }
            '\r' | '\x07' => {}
            c => out.push(c),
        }
    }
    out
}

impl Pty {
    fn spawn(server: &str, history: &std::path::Path) -> Pty {
        let ws = Winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&ws), None).unwrap();
        let slave = File::from(pty.slave);
        let child = Command::new(env!("CARGO_BIN_EXE_maglevc"))
            .args(["--server", server, "--color", "false"])
            .env("MAGLEVC_HISTORY", history)
            .env("TERM", "xterm")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .unwrap();
        let master = File::from(pty.master);
        let mut reader = master.try_clone().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the child has gone and the slave is closed.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Pty {
            master,
            rx,
            screen: String::new(),
            mark: 0,
            child: Kill(child),
        }
    }

    fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }

    /// Waits until `needle` shows after what was matched before.
    fn expect(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(i) = self.screen[self.mark..].find(needle) {
                self.mark += i + needle.len();
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "waited for {needle:?}; the terminal shows after the last match:\n{}",
                &self.screen[self.mark..]
            );
            if let Ok(chunk) = self.rx.recv_timeout(left.min(Duration::from_millis(100))) {
                self.screen.push_str(&plain(&chunk));
            }
        }
    }

    fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.0.try_wait().unwrap() {
                return st.code();
            }
            assert!(Instant::now() < deadline, "the shell did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn interactive_shell_through_a_pty() {
    let r = rig();
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");

    let mut sh = Pty::spawn(&r.server, &history);
    sh.expect("maglev> ");

    // A prefix command.
    sh.send("sh fr\r");
    sh.expect("www   203.0.113.80  tcp       443   up     primary");
    sh.expect("maglev> ");

    // Tab completes a live frontend name (fetched from maglevd).
    sh.send("show frontend w\t");
    sh.expect("show frontend www ");

    // `?` echoes the line with the `?`, lists what may follow, and gives
    // the line back unchanged: Enter then runs `show frontend www`.
    sh.send("?");
    sh.expect("maglev> show frontend www ?");
    sh.expect("buckets  the predicted Maglev table");
    sh.expect("<enter>  run the command");
    sh.send("\r");
    sh.expect("table-length:   1024");
    sh.expect("s1              10.0.0.2   up     60      60         392");
    sh.expect("maglev> ");

    // Inside a word, `?` lists what the word may become.
    sh.send("show vpp lb c?");
    sh.expect("counters  per-VIP packet counters");
    sh.send("\x15"); // Ctrl-U: clear the line.

    // A bad word is named; the shell goes on.
    sh.send("show nonsense\r");
    sh.expect("unknown word \"nonsense\"");
    sh.expect("maglev> ");

    // Pools complete from the frontend named earlier on the line.
    sh.send("set frontend www pool \t");
    sh.expect("pool primary ");
    sh.send("\x15");

    // watch events: stops on any key, and the key does not leak into the
    // next line (`xsh ve` would be an unknown word).
    sh.send("watch events frontend\r");
    sh.expect("\"frontend\":\"www\"");
    sh.send("x");
    sh.expect("maglev> ");
    sh.send("sh ve\r");
    sh.expect(concat!("maglevc ", env!("CARGO_PKG_VERSION")));
    sh.expect("maglev> ");

    sh.send("quit\r");
    assert_eq!(sh.exit_code(), Some(0));

    let saved = std::fs::read_to_string(&history).unwrap();
    for line in [
        "sh fr",
        "show frontend www",
        "watch events frontend",
        "sh ve",
    ] {
        assert!(
            saved.lines().any(|l| l == line),
            "{line:?} not in history:\n{saved}"
        );
    }

    // A new shell has the history: Up Up is `sh ve` (Up is `quit`).
    let mut sh = Pty::spawn(&r.server, &history);
    sh.expect("maglev> ");
    sh.send("\x1b[A\x1b[A\r");
    sh.expect(concat!("maglevc ", env!("CARGO_PKG_VERSION")));
    sh.expect("maglev> ");
    // Ctrl-D on an empty line leaves.
    sh.send("\x04");
    assert_eq!(sh.exit_code(), Some(0));
}

#[test]
fn shell_starts_while_maglevd_is_down_and_says_so_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut sh = Pty::spawn(&format!("127.0.0.1:{port}"), &dir.path().join("h"));
    sh.expect("maglev> ");
    sh.send("show frontends\r");
    sh.expect(&format!("cannot reach maglevd at 127.0.0.1:{port}"));
    sh.expect("maglev> ");
    // Completion of live names offers nothing rather than hanging.
    sh.send("show backend \t\t");
    sh.send("\x15show version\r");
    sh.expect(concat!("maglevc ", env!("CARGO_PKG_VERSION")));
    sh.send("exit\r");
    assert_eq!(sh.exit_code(), Some(0));
}
