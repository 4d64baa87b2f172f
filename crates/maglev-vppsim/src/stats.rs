//! A stats segment in VPP's layout (`vpp-api/NOTES.md` §5), served over a
//! SOCK_SEQPACKET socket as a memfd, like VPP's `statseg` socket.
//!
//! The segment is written with `pwrite` on the memfd, never mapped here, so
//! this side needs no unsafe code; readers map it and see every write.
//! Each publish rewrites the whole layout under the `in_progress` flag and
//! bumps `epoch`, which is what VPP does when vectors are reallocated.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{
    accept, bind, listen, sendmsg, socket, AddressFamily, Backlog, ControlMessage, MsgFlags,
    SockFlag, SockType, UnixAddr,
};

use crate::cli::VIP_COUNTER_NAMES;
use crate::lb::LbState;

/// Size of the memfd. VPP's default is 32 MiB; this is plenty for tests.
const SEGMENT_SIZE: u64 = 4 << 20;
/// Where VPP "mapped" the segment: every pointer inside is relative to it.
const BASE: u64 = 0x7f3a_0000_0000;
/// Data starts after the shared header page.
const HEAP_START: u64 = 4096;
/// `STAT_SEGMENT_VERSION`.
const VERSION: u64 = 2;
/// Threads the counters are spread over (main + one worker), so readers
/// must sum.
const THREADS: usize = 2;

const TYPE_SCALAR_INDEX: u32 = 1;
const TYPE_COUNTER_VECTOR_SIMPLE: u32 = 2;
const TYPE_COUNTER_VECTOR_COMBINED: u32 = 3;
const TYPE_GAUGE: u32 = 9;
const ENTRY_SIZE: usize = 144;

/// The served segment.
#[derive(Debug)]
pub struct StatsSegment {
    file: File,
    epoch: AtomicU64,
    heartbeat: AtomicU64,
    stop: Arc<AtomicBool>,
    inode: Option<u64>,
}

enum Entry {
    Scalar(u64),
    Gauge(u64),
    Simple(Vec<Vec<u64>>),
    Combined(Vec<Vec<(u64, u64)>>),
}

/// A bump allocator over the segment image, handing out VPP-style vectors.
struct Heap {
    image: Vec<u8>,
}

impl Heap {
    fn ptr(&self) -> u64 {
        BASE + HEAP_START + self.image.len() as u64
    }

    /// Writes a vector (8-byte header with the u32 length, then the data,
    /// 8-byte aligned) and returns the pointer to its data.
    fn vec(&mut self, len: usize, data: &[u8]) -> u64 {
        while self.image.len() % 8 != 0 {
            self.image.push(0);
        }
        self.image.extend_from_slice(&(len as u32).to_ne_bytes());
        self.image.extend_from_slice(&[0u8; 4]);
        let p = self.ptr();
        self.image.extend_from_slice(data);
        p
    }
}

impl StatsSegment {
    /// Creates the memfd and serves it on `path`.
    pub fn serve(path: &Path) -> std::io::Result<StatsSegment> {
        let fd = nix::sys::memfd::memfd_create(
            "maglev-vppsim-stats",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )
        .map_err(std::io::Error::from)?;
        let file = File::from(fd);
        file.set_len(SEGMENT_SIZE)?;
        crate::clear_stale_socket(path)?;
        let sock = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(std::io::Error::from)?;
        bind(
            sock.as_raw_fd(),
            &UnixAddr::new(path).map_err(std::io::Error::from)?,
        )
        .map_err(std::io::Error::from)?;
        listen(&sock, Backlog::new(16).map_err(std::io::Error::from)?)
            .map_err(std::io::Error::from)?;
        let stop = Arc::new(AtomicBool::new(false));
        let memfd = file.try_clone()?;
        let stop_flag = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("vppsim-stats".to_string())
            .spawn(move || accept_loop(sock, memfd, stop_flag))?;
        Ok(StatsSegment {
            file,
            epoch: AtomicU64::new(0),
            heartbeat: AtomicU64::new(0),
            stop,
            inode: crate::inode_of(path),
        })
    }

    /// The inode of the socket it bound.
    pub fn inode(&self) -> Option<u64> {
        self.inode
    }

    /// Stops serving new readers.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Rewrites the segment from the lb state.
    pub fn publish(&self, lb: &LbState, boottime: u64) -> std::io::Result<()> {
        let heartbeat = self.heartbeat.fetch_add(1, Ordering::SeqCst) + 1;
        let mut entries: Vec<(&str, Entry)> = vec![
            ("/sys/heartbeat", Entry::Scalar(heartbeat)),
            ("/sys/last_stats_clear", Entry::Scalar(0)),
            ("/sys/boottime", Entry::Scalar(boottime)),
            ("/sys/vector_rate", Entry::Gauge(0)),
        ];
        // lb registers its counters when the first VIP is created.
        if lb.vips.len() > 1 {
            let n = lb.vips.len();
            for (c, name) in VIP_COUNTER_NAMES.iter().enumerate() {
                let mut per_thread = vec![vec![0u64; n]; THREADS];
                for v in lb.all_vips() {
                    let total = v.counters[c];
                    per_thread[0][v.index as usize] = total / 2;
                    per_thread[1][v.index as usize] = total - total / 2;
                }
                entries.push((name, Entry::Simple(per_thread)));
            }
            // The FIB's per-route counter; the simulator indexes it by VIP.
            let mut per_thread = vec![vec![(0u64, 0u64); n]; THREADS];
            for v in lb.all_vips() {
                let packets: u64 = v.counters.iter().sum();
                per_thread[0][v.index as usize] = (packets / 2, packets / 2 * 100);
                let rest = packets - packets / 2;
                per_thread[1][v.index as usize] = (rest, rest * 100);
            }
            entries.push(("/net/route/to", Entry::Combined(per_thread)));
        }

        let mut heap = Heap { image: Vec::new() };
        let mut dir = Vec::with_capacity(entries.len() * ENTRY_SIZE);
        for (name, entry) in &entries {
            let (kind, value) = match entry {
                Entry::Scalar(v) => (TYPE_SCALAR_INDEX, *v),
                Entry::Gauge(v) => (TYPE_GAUGE, *v),
                Entry::Simple(threads) => {
                    let ptrs: Vec<u8> = threads
                        .iter()
                        .map(|t| {
                            let data: Vec<u8> = t.iter().flat_map(|v| v.to_ne_bytes()).collect();
                            heap.vec(t.len(), &data)
                        })
                        .collect::<Vec<u64>>()
                        .iter()
                        .flat_map(|p| p.to_ne_bytes())
                        .collect();
                    (TYPE_COUNTER_VECTOR_SIMPLE, heap.vec(threads.len(), &ptrs))
                }
                Entry::Combined(threads) => {
                    let ptrs: Vec<u8> = threads
                        .iter()
                        .map(|t| {
                            let data: Vec<u8> = t
                                .iter()
                                .flat_map(|(p, b)| {
                                    p.to_ne_bytes().into_iter().chain(b.to_ne_bytes())
                                })
                                .collect();
                            heap.vec(t.len(), &data)
                        })
                        .collect::<Vec<u64>>()
                        .iter()
                        .flat_map(|p| p.to_ne_bytes())
                        .collect();
                    (TYPE_COUNTER_VECTOR_COMBINED, heap.vec(threads.len(), &ptrs))
                }
            };
            let mut e = [0u8; ENTRY_SIZE];
            e[..4].copy_from_slice(&kind.to_ne_bytes());
            e[8..16].copy_from_slice(&value.to_ne_bytes());
            let n = name.len().min(127);
            e[16..16 + n].copy_from_slice(&name.as_bytes()[..n]);
            dir.extend_from_slice(&e);
        }
        let dir_ptr = heap.vec(entries.len(), &dir);
        if HEAP_START + heap.image.len() as u64 > SEGMENT_SIZE {
            return Err(std::io::Error::other("stats segment full"));
        }

        // Writer protocol: in_progress = 1, write, epoch++, in_progress = 0.
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.file.write_at(&1u64.to_ne_bytes(), 24)?;
        self.file.write_at(&heap.image, HEAP_START)?;
        let mut header = Vec::with_capacity(40);
        header.extend_from_slice(&VERSION.to_ne_bytes());
        header.extend_from_slice(&BASE.to_ne_bytes());
        self.file.write_at(&header, 0)?;
        self.file.write_at(&dir_ptr.to_ne_bytes(), 32)?;
        self.file.write_at(&epoch.to_ne_bytes(), 16)?;
        self.file.write_at(&0u64.to_ne_bytes(), 24)?;
        Ok(())
    }
}

/// Hands the memfd to each reader in a zero-length message, then closes.
fn accept_loop(sock: OwnedFd, memfd: File, stop: Arc<AtomicBool>) {
    let fds = [memfd.as_raw_fd()];
    while !stop.load(Ordering::SeqCst) {
        match accept(sock.as_raw_fd()) {
            Ok(conn) => {
                let cmsg = [ControlMessage::ScmRights(&fds)];
                let iov: [std::io::IoSlice<'_>; 0] = [];
                let _ = sendmsg::<UnixAddr>(conn, &iov, &cmsg, MsgFlags::empty(), None);
                let _ = nix::unistd::close(conn);
            }
            Err(nix::errno::Errno::EAGAIN) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
