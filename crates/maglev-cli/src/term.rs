//! The terminal while a command runs: Ctrl-C (and, for `watch events`, any
//! key) stops the command, not the program, and the terminal is restored
//! on every way out.

use std::future::Future;
use std::io::IsTerminal;
use std::os::fd::AsFd;

use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices, Termios};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Cbreak mode on stdin while alive: keys arrive one at a time without
/// echo, but newline output processing and Ctrl-C stay as they are (raw
/// mode would turn `\n` into a bare line feed mid-stream).
#[derive(Debug)]
pub struct Cbreak {
    saved: Option<Termios>,
}

impl Cbreak {
    /// Enters cbreak mode when stdin is a terminal; does nothing otherwise.
    pub fn enter() -> Cbreak {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Cbreak { saved: None };
        }
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return Cbreak { saved: None };
        };
        let mut t = saved.clone();
        t.local_flags.remove(LocalFlags::ICANON | LocalFlags::ECHO);
        t.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        if termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &t).is_err() {
            return Cbreak { saved: None };
        }
        Cbreak { saved: Some(saved) }
    }

    /// Whether keys can be watched (stdin is a terminal in cbreak mode).
    pub fn active(&self) -> bool {
        self.saved.is_some()
    }
}

impl Drop for Cbreak {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // Throw away keys typed during the command so they do not
            // land on the next prompt.
            let stdin = std::io::stdin();
            let _ = termios::tcflush(stdin.as_fd(), termios::FlushArg::TCIFLUSH);
            let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

/// Resolves when a key is waiting on stdin. A poll with a short timeout
/// on a blocking thread, so the thread notices within 100 ms that nobody
/// waits any more; the key itself is left for [`Cbreak`] to discard.
async fn any_key() {
    let stop = Arc::new(AtomicBool::new(false));
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _guard = StopOnDrop(stop.clone());
    let polled = tokio::task::spawn_blocking(move || {
        let stdin = std::io::stdin();
        while !stop.load(Ordering::Relaxed) {
            let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(100u8)) {
                Ok(0) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => return true,
                Err(_) => return false,
            }
        }
        false
    })
    .await;
    if !matches!(polled, Ok(true)) {
        std::future::pending::<()>().await;
    }
}

/// Runs `fut` until it ends, Ctrl-C arrives, or — with `keys` — any key
/// is pressed. `None` when interrupted. The terminal mode
/// is restored on every exit, also when `fut` panics.
pub async fn until_interrupted<F: Future>(fut: F, keys: bool) -> Option<F::Output> {
    let mode = keys.then(Cbreak::enter);
    let watch_keys = mode.as_ref().is_some_and(Cbreak::active);
    let key = async {
        if watch_keys {
            any_key().await
        } else {
            std::future::pending().await
        }
    };
    let out = tokio::select! {
        v = fut => Some(v),
        _ = tokio::signal::ctrl_c() => None,
        _ = key => None,
    };
    drop(mode);
    out
}
