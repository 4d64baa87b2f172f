//! Reader of VPP's stats segment (`vpp-api/NOTES.md` §5).
//!
//! VPP hands the segment over its stats socket as a memfd; we read it with
//! `pread` (not a mapping: a segment truncated while mapped would kill the
//! process with SIGBUS, a short `pread` is just an error) under VPP's
//! optimistic protocol: note `epoch`, wait while `in_progress` is set, copy
//! out what we need, and keep the copy only if `in_progress` is clear and
//! `epoch` unchanged. Every pointer in the segment is a VPP virtual
//! address, translated against the `base` VPP wrote and bounds-checked, and
//! every count is capped, so a corrupt or hostile segment yields an error
//! within a bounded time and memory, never a signal, a hang or a blow-up.

// Taking ownership of the descriptor VPP passes (SCM_RIGHTS) needs unsafe
// code; it is the one block below.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    connect, recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr,
};

/// The names lb registers its per-VIP counters under (no leading `/`).
pub const LB_VIP_COUNTERS: [&str; 4] = [
    "packet from existing sessions",
    "first session packet",
    "untracked packet",
    "no server configured",
];

const VERSION: u64 = 2;
const ENTRY_SIZE: usize = 144;
const TYPE_SCALAR_INDEX: u32 = 1;
const TYPE_COUNTER_VECTOR_SIMPLE: u32 = 2;
const TYPE_COUNTER_VECTOR_COMBINED: u32 = 3;
const TYPE_SYMLINK: u32 = 6;
const TYPE_GAUGE: u32 = 9;
/// Retries of an optimistic read before giving up.
const MAX_TRIES: usize = 1000;
/// The longest one read may take, retries included.
const MAX_READ_TIME: Duration = Duration::from_secs(1);
/// Caps on what a segment may make the reader walk or hold: far above any
/// real VPP (a few thousand directory entries, one vector per thread, one
/// counter per VIP or interface).
const MAX_DIR_ENTRIES: usize = 1 << 20;
const MAX_THREADS: usize = 1024;
const MAX_COUNTERS: usize = 1 << 20;
/// Bytes one read (one try of it) may copy out of the segment.
const MAX_READ_BYTES: usize = 64 << 20;

/// Why the stats segment could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// Connecting or receiving the memfd failed.
    #[error("stats socket {path}: {source}")]
    Connect {
        /// Socket path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// VPP sent no file descriptor.
    #[error("stats socket sent no segment")]
    NoSegment,
    /// The segment is not version 2 or is malformed.
    #[error("stats segment: {0}")]
    Malformed(String),
    /// No directory entry of that name.
    #[error("no stats entry {0:?}")]
    NotFound(String),
    /// The writer kept changing the segment.
    #[error("stats segment kept changing (or stayed in progress); gave up after {MAX_TRIES} tries or {MAX_READ_TIME:?}")]
    Busy,
}

/// The segment, read with `pread`.
#[derive(Debug)]
struct Mapping {
    file: std::fs::File,
    /// Bytes the current try may still read ([`MAX_READ_BYTES`]).
    budget: std::cell::Cell<usize>,
}

impl Mapping {
    fn new(fd: OwnedFd) -> Mapping {
        Mapping {
            file: std::fs::File::from(fd),
            budget: std::cell::Cell::new(MAX_READ_BYTES),
        }
    }

    /// Copies `out.len()` bytes at `offset`; a read past the segment's
    /// current end (it may have shrunk) or past the budget is an error.
    fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), StatsError> {
        let left = self.budget.get().checked_sub(out.len()).ok_or_else(|| {
            StatsError::Malformed(format!("a read of more than {MAX_READ_BYTES} bytes"))
        })?;
        self.budget.set(left);
        self.file.read_exact_at(out, offset as u64).map_err(|e| {
            StatsError::Malformed(format!("read of {} bytes at {offset:#x}: {e}", out.len()))
        })
    }

    /// Fails, before anything is allocated, when `len` bytes at `offset`
    /// lie past the segment's end or the budget.
    fn fits(&self, offset: usize, len: usize) -> Result<(), StatsError> {
        let size = self.file.metadata().map_or(0, |m| m.len());
        let end = offset.checked_add(len).map(|e| e as u64);
        if end.is_none_or(|e| e > size) || len > self.budget.get() {
            return Err(StatsError::Malformed(format!(
                "{len} bytes at {offset:#x} lie outside the {size}-byte segment or the read budget"
            )));
        }
        Ok(())
    }

    fn u64_at(&self, offset: usize) -> Result<u64, StatsError> {
        let mut b = [0u8; 8];
        self.read(offset, &mut b)?;
        Ok(u64::from_ne_bytes(b))
    }

    fn u32_at(&self, offset: usize) -> Result<u32, StatsError> {
        let mut b = [0u8; 4];
        self.read(offset, &mut b)?;
        Ok(u32::from_ne_bytes(b))
    }

    /// `n` u64s at `offset`, in one read.
    fn u64s_at(&self, offset: usize, n: usize) -> Result<Vec<u64>, StatsError> {
        self.fits(offset, n * 8)?;
        let mut raw = vec![0u8; n * 8];
        self.read(offset, &mut raw)?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }
}

/// One directory entry.
#[derive(Debug, Clone)]
struct Entry {
    kind: u32,
    value: u64,
}

/// A connection to VPP's stats segment.
#[derive(Debug)]
pub struct StatsClient {
    map: Mapping,
    base: u64,
    dir_epoch: Option<u64>,
    dir: HashMap<String, usize>,
}

/// The lb plugin's four counters of one VIP, summed over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VipCounters {
    /// Packets that matched a sticky entry.
    pub existing_session: u64,
    /// First packets of new flows.
    pub first_packet: u64,
    /// Packets sent without a sticky entry (table full).
    pub untracked: u64,
    /// New flows that found no AS (dropped).
    pub no_server: u64,
}

impl StatsClient {
    /// Connects to the stats socket and maps the segment (blocking; VPP
    /// answers at once, and a 1 s timeout bounds it).
    pub fn connect(path: impl AsRef<Path>) -> Result<StatsClient, StatsError> {
        let path = path.as_ref();
        let err = |source: std::io::Error| StatsError::Connect {
            path: path.display().to_string(),
            source,
        };
        // Non-blocking for the connect: a unix socket whose peer never
        // accepts (a full backlog) would block a blocking connect forever.
        let sock = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|e| err(e.into()))?;
        let timeout = nix::sys::time::TimeVal::from(libc_timeval(Duration::from_secs(1)));
        setsockopt(&sock, sockopt::ReceiveTimeout, &timeout).map_err(|e| err(e.into()))?;
        let addr = UnixAddr::new(path).map_err(|e| err(e.into()))?;
        connect(std::os::fd::AsRawFd::as_raw_fd(&sock), &addr).map_err(|e| {
            if e == nix::errno::Errno::EAGAIN {
                err(std::io::Error::other(
                    "the stats socket does not accept connections",
                ))
            } else {
                err(e.into())
            }
        })?;
        // Blocking again for the one message, bounded by the receive timeout.
        nix::fcntl::fcntl(
            &sock,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        )
        .map_err(|e| err(e.into()))?;
        let mut byte = [0u8; 1];
        let mut iov = [std::io::IoSliceMut::new(&mut byte)];
        // Room for the kernel's most per message (SCM_MAX_FD): with less,
        // a peer attaching several descriptors truncates the message, nix
        // refuses to parse it, and the descriptors the kernel did install
        // would leak (two per attempt, seen). With room for all, each is
        // owned below and every one but the first closed.
        let mut cmsg = nix::cmsg_space!([RawFd; 253]);
        let msg = recvmsg::<UnixAddr>(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| err(e.into()))?;
        let mut fd = None;
        for c in msg.cmsgs().map_err(|e| err(e.into()))? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for raw in fds {
                    // SAFETY: SCM_RIGHTS installed this descriptor in our
                    // table just now; nothing else owns it.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    fd.get_or_insert(owned);
                }
            }
        }
        let fd = fd.ok_or(StatsError::NoSegment)?;
        StatsClient::from_file(std::fs::File::from(fd))
    }

    /// Reads a segment from a file (what VPP's memfd is; also a copy on
    /// disk, or a fuzzer's bytes).
    pub fn from_file(file: std::fs::File) -> Result<StatsClient, StatsError> {
        let map = Mapping::new(OwnedFd::from(file));
        let version = map.u64_at(0)?;
        if version != VERSION {
            return Err(StatsError::Malformed(format!(
                "version {version}, expected {VERSION}"
            )));
        }
        let base = map.u64_at(8)?;
        Ok(StatsClient {
            map,
            base,
            dir_epoch: None,
            dir: HashMap::new(),
        })
    }

    /// Translates a VPP pointer into an offset of the segment (reads
    /// past its end fail on their own).
    fn offset(&self, ptr: u64) -> Result<usize, StatsError> {
        ptr.checked_sub(self.base)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|o| *o < 1 << 40)
            .ok_or_else(|| StatsError::Malformed(format!("pointer {ptr:#x} outside the segment")))
    }

    /// A VPP vector: (offset of its data, element count), at most `max`
    /// elements.
    fn vector(&self, ptr: u64, max: usize) -> Result<(usize, usize), StatsError> {
        let data = self.offset(ptr)?;
        let header = data
            .checked_sub(8)
            .ok_or_else(|| StatsError::Malformed("vector without a header".to_string()))?;
        let len = self.map.u32_at(header)? as usize;
        if len > max {
            return Err(StatsError::Malformed(format!(
                "vector of {len} elements (at most {max} expected)"
            )));
        }
        Ok((data, len))
    }

    /// Runs `f` under the optimistic-read protocol, within [`MAX_TRIES`]
    /// and [`MAX_READ_TIME`].
    fn consistent<T>(
        &mut self,
        mut f: impl FnMut(&mut Self) -> Result<T, StatsError>,
    ) -> Result<T, StatsError> {
        let start = Instant::now();
        for _ in 0..MAX_TRIES {
            if start.elapsed() > MAX_READ_TIME {
                break;
            }
            self.map.budget.set(MAX_READ_BYTES);
            let epoch = self.map.u64_at(16)?;
            if self.map.u64_at(24)? != 0 {
                std::thread::yield_now();
                continue;
            }
            let result = f(self);
            if self.map.u64_at(24)? == 0 && self.map.u64_at(16)? == epoch {
                return result;
            }
        }
        Err(StatsError::Busy)
    }

    /// Re-reads the directory when the epoch moved.
    fn refresh_dir(&mut self) -> Result<(), StatsError> {
        let epoch = self.map.u64_at(16)?;
        if self.dir_epoch == Some(epoch) {
            return Ok(());
        }
        let dir_ptr = self.map.u64_at(32)?;
        let (data, len) = self.vector(dir_ptr, MAX_DIR_ENTRIES)?;
        // The whole directory in one read.
        self.map.fits(data, len * ENTRY_SIZE)?;
        let mut raw = vec![0u8; len * ENTRY_SIZE];
        self.map.read(data, &mut raw)?;
        let mut dir = HashMap::with_capacity(len);
        for (i, entry) in raw.chunks_exact(ENTRY_SIZE).enumerate() {
            let name = &entry[16..];
            let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
            if end > 0 {
                dir.insert(String::from_utf8_lossy(&name[..end]).into_owned(), i);
            }
        }
        self.dir = dir;
        self.dir_epoch = Some(epoch);
        Ok(())
    }

    fn entry(&mut self, name: &str) -> Result<Entry, StatsError> {
        self.refresh_dir()?;
        let mut index = *self
            .dir
            .get(name)
            .ok_or_else(|| StatsError::NotFound(name.to_string()))?;
        // Follow at most one symlink to its target directory entry.
        for _ in 0..2 {
            let (data, len) = self.vector(self.map.u64_at(32)?, MAX_DIR_ENTRIES)?;
            if index >= len {
                return Err(StatsError::Malformed(format!(
                    "directory index {index} out of range"
                )));
            }
            let at = data + index * ENTRY_SIZE;
            let kind = self.map.u32_at(at)?;
            let value = self.map.u64_at(at + 8)?;
            if kind == TYPE_SYMLINK {
                index = (value & 0xffff_ffff) as usize;
                continue;
            }
            return Ok(Entry { kind, value });
        }
        Err(StatsError::Malformed(format!("symlink loop at {name:?}")))
    }

    /// A scalar or gauge, e.g. `/sys/boottime`.
    pub fn scalar(&mut self, name: &str) -> Result<u64, StatsError> {
        self.consistent(|s| {
            let e = s.entry(name)?;
            match e.kind {
                TYPE_SCALAR_INDEX | TYPE_GAUGE => Ok(e.value),
                k => Err(StatsError::Malformed(format!(
                    "{name} has type {k}, not a scalar"
                ))),
            }
        })
    }

    /// VPP's boot time, Unix seconds (`/sys/boottime`).
    pub fn boottime(&mut self) -> Result<u64, StatsError> {
        self.scalar("/sys/boottime")
    }

    /// A simple counter vector, summed over threads: index → value.
    pub fn simple_counter(&mut self, name: &str) -> Result<Vec<u64>, StatsError> {
        self.consistent(|s| {
            let e = s.entry(name)?;
            if e.kind != TYPE_COUNTER_VECTOR_SIMPLE {
                return Err(StatsError::Malformed(format!(
                    "{name} is not a simple counter"
                )));
            }
            let mut sum: Vec<u64> = Vec::new();
            let (threads, n) = s.vector(e.value, MAX_THREADS)?;
            for ptr in s.map.u64s_at(threads, n)? {
                let (data, len) = s.vector(ptr, MAX_COUNTERS)?;
                if sum.len() < len {
                    sum.resize(len, 0);
                }
                for (slot, v) in sum.iter_mut().zip(s.map.u64s_at(data, len)?) {
                    *slot = slot.wrapping_add(v);
                }
            }
            Ok(sum)
        })
    }

    /// A combined counter vector, summed over threads: index → (packets, bytes).
    pub fn combined_counter(&mut self, name: &str) -> Result<Vec<(u64, u64)>, StatsError> {
        self.consistent(|s| {
            let e = s.entry(name)?;
            if e.kind != TYPE_COUNTER_VECTOR_COMBINED {
                return Err(StatsError::Malformed(format!(
                    "{name} is not a combined counter"
                )));
            }
            let mut sum: Vec<(u64, u64)> = Vec::new();
            let (threads, n) = s.vector(e.value, MAX_THREADS)?;
            for ptr in s.map.u64s_at(threads, n)? {
                let (data, len) = s.vector(ptr, MAX_COUNTERS)?;
                if sum.len() < len {
                    sum.resize(len, (0, 0));
                }
                let raw = s.map.u64s_at(data, len * 2)?;
                for (slot, pair) in sum.iter_mut().zip(raw.chunks_exact(2)) {
                    slot.0 = slot.0.wrapping_add(pair[0]);
                    slot.1 = slot.1.wrapping_add(pair[1]);
                }
            }
            Ok(sum)
        })
    }

    /// The lb counters of every VIP, by VIP pool index. Empty before the
    /// first VIP exists (lb registers its counters then).
    pub fn lb_vip_counters(&mut self) -> Result<Vec<VipCounters>, StatsError> {
        let mut columns = Vec::with_capacity(4);
        for name in LB_VIP_COUNTERS {
            match self.simple_counter(name) {
                Ok(v) => columns.push(v),
                Err(StatsError::NotFound(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        let n = columns.iter().map(Vec::len).max().unwrap_or(0);
        let at = |c: &Vec<u64>, i: usize| c.get(i).copied().unwrap_or(0);
        Ok((0..n)
            .map(|i| VipCounters {
                existing_session: at(&columns[0], i),
                first_packet: at(&columns[1], i),
                untracked: at(&columns[2], i),
                no_server: at(&columns[3], i),
            })
            .collect())
    }
}

fn libc_timeval(d: Duration) -> nix::libc::timeval {
    nix::libc::timeval {
        tv_sec: d.as_secs() as nix::libc::time_t,
        tv_usec: d.subsec_micros() as nix::libc::suseconds_t,
    }
}
