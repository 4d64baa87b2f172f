//! The interactive shell driven through a pseudo-terminal: Tab completion
//! of live names, `?` leaving the line alone, errors, `watch events`
//! stopped by a key, history kept across runs, `quit` and Ctrl-D.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::rig;
use maglev_testkit::Pty;

/// The shell on a terminal, with what it showed so far in plain text.
struct Shell {
    pty: Pty,
    /// Everything printed so far, escape sequences removed.
    screen: String,
    /// How far `expect` has matched.
    mark: usize,
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

impl Shell {
    fn spawn(server: &str, history: &std::path::Path) -> Shell {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_maglevc"));
        cmd.args(["--server", server, "--color", "false"])
            .env("MAGLEVC_HISTORY", history)
            .env("TERM", "xterm");
        Shell {
            pty: Pty::spawn(cmd, 120, 40),
            screen: String::new(),
            mark: 0,
        }
    }

    fn send(&mut self, keys: &str) {
        self.pty.send(keys.as_bytes());
    }

    /// Waits until `needle` shows after what was matched before.
    fn expect(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(i) = self.screen[self.mark..].find(needle) {
                self.mark += i + needle.len();
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {needle:?}; the terminal shows after the last match:\n{}",
                &self.screen[self.mark..]
            );
            let chunk = self.pty.recv(Duration::from_millis(100));
            self.screen.push_str(&plain(&chunk));
        }
    }

    fn exit_code(&mut self) -> Option<i32> {
        self.pty.wait_exit(Duration::from_secs(10), |_| {})
    }
}

#[test]
fn interactive_shell_through_a_pty() {
    let r = rig();
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");

    let mut sh = Shell::spawn(&r.server, &history);
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
    let mut sh = Shell::spawn(&r.server, &history);
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
    let mut sh = Shell::spawn(&format!("127.0.0.1:{port}"), &dir.path().join("h"));
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
