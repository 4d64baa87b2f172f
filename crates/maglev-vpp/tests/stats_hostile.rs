//! Malformed and hostile stats segments: the reader gives an error within
//! a bounded time and memory, never a signal or a hang. (Before: a segment
//! shrunk after it was mapped killed maglevd with SIGBUS; a 160 KB segment
//! pinned its thread at 100 %; a 512 MiB sparse one took 4.6 GB.)

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use maglev_vpp::stats::{StatsClient, StatsError};

const BASE: u64 = 0x7f00_0000_0000;
const ENTRY: usize = 144;

/// A segment file: header, a directory vector at 4096, and room after it.
struct Seg {
    file: std::fs::File,
    _dir: tempfile::TempDir,
}

impl Seg {
    fn new(size: u64) -> Seg {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("segment"))
            .unwrap();
        file.set_len(size).unwrap();
        let seg = Seg { file, _dir: dir };
        seg.u64(0, 2); // version
        seg.u64(8, BASE);
        seg.u64(16, 1); // epoch
        seg.u64(24, 0); // in_progress
        seg
    }

    fn u64(&self, at: u64, v: u64) {
        self.file.write_all_at(&v.to_ne_bytes(), at).unwrap();
    }

    fn u32(&self, at: u64, v: u32) {
        self.file.write_all_at(&v.to_ne_bytes(), at).unwrap();
    }

    /// A vector of `len` elements whose data starts at offset `at`.
    fn vector(&self, at: u64, len: u32) -> u64 {
        self.u32(at - 8, len);
        BASE + at
    }

    /// The directory at 4096 with `entries` (name, kind, value).
    fn directory(&self, entries: &[(&str, u32, u64)]) {
        let ptr = self.vector(4096, entries.len() as u32);
        self.u64(32, ptr);
        for (i, (name, kind, value)) in entries.iter().enumerate() {
            let at = 4096 + (i * ENTRY) as u64;
            self.u32(at, *kind);
            self.u64(at + 8, *value);
            self.file.write_all_at(name.as_bytes(), at + 16).unwrap();
        }
    }

    fn client(&self) -> StatsClient {
        StatsClient::from_file(self.file.try_clone().unwrap()).unwrap()
    }
}

#[test]
fn a_good_segment_reads() {
    let seg = Seg::new(64 << 10);
    seg.directory(&[("/sys/boottime", 1, 1_700_000_000)]);
    assert_eq!(seg.client().boottime().unwrap(), 1_700_000_000);
}

#[test]
fn a_segment_shrunk_while_in_use_is_an_error_not_sigbus() {
    let seg = Seg::new(64 << 10);
    seg.directory(&[("/sys/boottime", 1, 1_700_000_000)]);
    let mut c = seg.client();
    assert!(c.boottime().is_ok());
    seg.file.set_len(16).unwrap();
    seg.u64(16, 2); // a new epoch makes it re-read the directory
    let e = c.boottime().unwrap_err();
    assert!(matches!(e, StatsError::Malformed(_)), "{e}");
}

#[test]
fn a_segment_forever_in_progress_gives_up_within_a_bound() {
    let seg = Seg::new(64 << 10);
    seg.directory(&[("/sys/boottime", 1, 1)]);
    let mut c = seg.client();
    seg.u64(24, 1);
    let t = Instant::now();
    assert!(matches!(c.boottime(), Err(StatsError::Busy)));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn absurd_lengths_are_refused_at_once() {
    let seg = Seg::new(160 << 10);
    seg.directory(&[("/sys/boottime", 1, 1)]);
    seg.u32(4096 - 8, u32::MAX); // a directory of 4 G entries
    let t = Instant::now();
    assert!(matches!(
        seg.client().boottime(),
        Err(StatsError::Malformed(_))
    ));
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_sparse_counter_bomb_stays_bounded() {
    // 512 MiB, mostly holes: 1,024 threads each "holding" 1 M counters,
    // all the same vector. Summing would read 8 GB; the reader stops at
    // its budget, quickly and without holding much.
    let seg = Seg::new(512 << 20);
    let data = seg.vector(1 << 20, 1 << 20);
    let threads = seg.vector(64 << 10, 1024);
    for t in 0..1024u64 {
        seg.u64((64 << 10) + t * 8, data);
    }
    seg.directory(&[
        ("packet from existing sessions", 2, threads),
        ("first session packet", 2, threads),
        ("untracked packet", 2, threads),
        ("no server configured", 2, threads),
    ]);
    let t = Instant::now();
    let r = seg.client().lb_vip_counters();
    assert!(matches!(r, Err(StatsError::Malformed(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}
