//! Stats-socket peers for process tests: one that hands every reader a
//! file of the test's choosing (a malformed or shrinking segment), and one
//! that listens but never accepts.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{
    accept, bind, listen, sendmsg, socket, AddressFamily, Backlog, ControlMessage, MsgFlags,
    SockFlag, SockType, UnixAddr,
};

/// A `SOCK_SEQPACKET` listener on `path`, as VPP's `statseg` socket is.
fn listener(path: &Path) -> std::io::Result<OwnedFd> {
    let sock = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    bind(sock.as_raw_fd(), &UnixAddr::new(path)?)?;
    listen(&sock, Backlog::new(16)?)?;
    Ok(sock)
}

/// Serves a file as the stats segment until dropped.
#[derive(Debug)]
pub struct SegmentPeer {
    stop: Arc<AtomicBool>,
}

impl SegmentPeer {
    /// Hands `segment` to every reader that connects to `path`, in a
    /// zero-length message with the descriptor attached (what VPP does).
    pub fn serve(path: &Path, segment: File) -> std::io::Result<SegmentPeer> {
        SegmentPeer::serve_copies(path, segment, 1)
    }

    /// As [`SegmentPeer::serve`], with `copies` descriptors of the file in
    /// the one message (VPP sends one; a reader must not keep the rest).
    pub fn serve_copies(path: &Path, segment: File, copies: usize) -> std::io::Result<SegmentPeer> {
        let sock = listener(path)?;
        let segments = (0..copies)
            .map(|_| segment.try_clone())
            .collect::<std::io::Result<Vec<File>>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("stats-peer".to_string())
            .spawn(move || {
                let fds: Vec<_> = segments.iter().map(AsRawFd::as_raw_fd).collect();
                while !flag.load(Ordering::SeqCst) {
                    match accept(sock.as_raw_fd()) {
                        Ok(conn) => {
                            let cmsg = [ControlMessage::ScmRights(&fds)];
                            let iov: [std::io::IoSlice<'_>; 0] = [];
                            let _ = sendmsg::<UnixAddr>(conn, &iov, &cmsg, MsgFlags::empty(), None);
                            let _ = nix::unistd::close(conn);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })?;
        Ok(SegmentPeer { stop })
    }
}

impl Drop for SegmentPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A stats socket that takes connections into its backlog and never
/// accepts them: a connect succeeds, the descriptor never comes.
#[derive(Debug)]
pub struct NeverAccepts {
    _sock: OwnedFd,
}

impl NeverAccepts {
    /// Listens on `path`.
    pub fn bind(path: &Path) -> std::io::Result<NeverAccepts> {
        Ok(NeverAccepts {
            _sock: listener(path)?,
        })
    }
}
