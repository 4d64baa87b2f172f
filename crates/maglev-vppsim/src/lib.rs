//! A stand-in for VPP, for tests: its binary-API socket with the lb plugin's
//! semantics, and its stats segment.
//!
//! This is a **test double**. It speaks the real wire protocol (VPP's own
//! Python client, vpp_papi, drives it in the test suite) and reproduces the
//! lb plugin as documented in `vpp-api/NOTES.md`: VIP keying, error codes,
//! lazy AS deletion and garbage collection, the Maglev table and its
//! `num_buckets`, the dump quirks. It can also misbehave on purpose: drop
//! its connections, stop answering, restart with a new pid, and run as a
//! VPP release without the v2 lb messages. Every call is recorded.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = maglev_vppsim::Simulator::start(maglev_vppsim::SimOptions {
//!     api_socket: "/tmp/api.sock".into(),
//!     ..Default::default()
//! })
//! .await?;
//! // ... point a client at /tmp/api.sock ...
//! assert!(sim.calls().iter().all(|c| c.retval >= 0));
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
mod dataplane;
pub mod lb;
mod server;
pub mod stats;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use maglev_vpp::binapi::MESSAGES;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tracing::{info, warn};

pub use lb::LbState;

/// The lb messages VPP releases up to v26.06 lack.
pub const V2_ONLY_MESSAGES: &[&str] = &[
    "lb_conf_get",
    "lb_conf_get_reply",
    "lb_add_del_as_v2",
    "lb_add_del_as_v2_reply",
    "lb_as_set_weight",
    "lb_as_set_weight_reply",
    "lb_as_v2_dump",
    "lb_as_v2_details",
];

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Path of the API socket (an existing file there is replaced).
    pub api_socket: PathBuf,
    /// Path of the stats socket; `None` serves no stats segment.
    pub stats_socket: Option<PathBuf>,
    /// Offer the v2 lb messages (VPP master); false acts as VPP 26.06 (lb
    /// API 1.1.0): no v2 messages, no weights in the table, and 26.06's
    /// handler bugs (prefix length, encap byte order, dump truncation).
    pub v2: bool,
    /// What `show_version` reports.
    pub version: String,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            // No default under /run/vpp: a test double must never take
            // the place of a real VPP's socket by accident.
            api_socket: PathBuf::new(),
            stats_socket: None,
            v2: true,
            version: "26.10-rc0~374-gb575ec2c56d".to_string(),
        }
    }
}

/// One request the simulator received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// Message name, e.g. `lb_as_set_weight`.
    pub msg: &'static str,
    /// The decoded request (`Debug` form), for assertions and logs.
    pub detail: String,
    /// The retval sent back (0 for dumps).
    pub retval: i32,
    /// The client's registration handle.
    pub client: u32,
    /// When the request was handled.
    pub at: Instant,
    /// The same, on the wall clock (to compare with other processes' times).
    pub wall: SystemTime,
}

impl CallRecord {
    pub(crate) fn new(msg: &'static str, detail: String, retval: i32, client: u32) -> Self {
        CallRecord {
            msg,
            detail,
            retval,
            client,
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// Message ids as this simulated VPP assigns them: memclnt from 1 in its
/// static order, then every other module's messages in blocks.
#[derive(Debug)]
pub(crate) struct MessageIds {
    by_name_crc: HashMap<String, u16>,
    entries: Vec<(u16, String, &'static str)>,
}

impl MessageIds {
    fn new(v2: bool) -> MessageIds {
        let mut by_name_crc = HashMap::new();
        let mut entries = Vec::new();
        let mut next = 1u16;
        for (_, name, crc) in MESSAGES {
            if !v2 && V2_ONLY_MESSAGES.contains(name) {
                continue;
            }
            let key = format!("{name}_{crc:08x}");
            by_name_crc.insert(key.clone(), next);
            entries.push((next, key, *name));
            next += 1;
        }
        MessageIds {
            by_name_crc,
            entries,
        }
    }

    pub(crate) fn id(&self, name_crc: &str) -> Option<u16> {
        self.by_name_crc.get(name_crc).copied()
    }

    pub(crate) fn name(&self, id: u16) -> Option<&'static str> {
        self.entries
            .get(usize::from(id).checked_sub(1)?)
            .map(|(_, _, n)| *n)
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (u16, &str)> {
        self.entries.iter().map(|(id, key, _)| (*id, key.as_str()))
    }
}

/// Mutable state behind the API.
#[derive(Debug)]
pub(crate) struct SimState {
    pub(crate) lb: LbState,
    pub(crate) pid: u32,
    started: Instant,
    boottime: u64,
    crashed: Option<&'static str>,
}

impl SimState {
    fn fresh(pid: u32, legacy: bool) -> SimState {
        SimState {
            lb: {
                let mut lb = LbState::new();
                lb.legacy = legacy;
                lb
            },
            pid,
            started: Instant::now(),
            boottime: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            crashed: None,
        }
    }

    /// VPP's uptime in whole seconds (lb's clock).
    pub(crate) fn uptime(&self) -> u32 {
        self.started.elapsed().as_secs() as u32
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) options: SimOptions,
    pub(crate) ids: MessageIds,
    pub(crate) state: Mutex<SimState>,
    calls: Mutex<Vec<CallRecord>>,
    stalled: AtomicBool,
    next_client: AtomicU32,
    /// Bumped to make every connection close.
    pub(crate) generation: watch::Sender<u64>,
    stats: Option<stats::StatsSegment>,
    /// The inode of the API socket this simulator bound (removed on
    /// shutdown only if still the same).
    api_inode: Option<u64>,
}

impl Inner {
    pub(crate) fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::SeqCst)
    }

    pub(crate) fn next_client(&self) -> u32 {
        self.next_client.fetch_add(1, Ordering::SeqCst)
    }

    pub(crate) fn record(&self, call: CallRecord) {
        self.calls.lock().expect("call log").push(call);
    }

    pub(crate) fn crash(&self, why: &'static str) {
        warn!(reason = why, "simulated VPP crash");
        self.state.lock().expect("sim state").crashed = Some(why);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Changes the lb state, then publishes the stats segment.
    pub(crate) fn with_lb_mut<R>(&self, f: impl FnOnce(&mut LbState, u32) -> R) -> R {
        let out = {
            let mut st = self.state.lock().expect("sim state");
            let now = st.uptime();
            f(&mut st.lb, now)
        };
        self.publish_stats();
        out
    }

    pub(crate) fn count_packets(&self, vip_index: u32, counter: usize, packets: u64) {
        self.with_lb_mut(|lb, _| {
            if let Some(Some(v)) = lb.vips.get_mut(vip_index as usize) {
                v.counters[counter] += packets;
            }
        });
    }

    pub(crate) fn publish_stats(&self) {
        if let Some(seg) = &self.stats {
            let st = self.state.lock().expect("sim state");
            if let Err(e) = seg.publish(&st.lb, st.boottime) {
                warn!(error = %e, "cannot update the stats segment");
            }
        }
    }
}

/// A running simulator. Dropping it stops nothing; call [`Simulator::shutdown`].
#[derive(Debug, Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Simulator {
    /// Binds the sockets and starts serving.
    pub async fn start(options: SimOptions) -> std::io::Result<Simulator> {
        if options.api_socket.as_os_str().is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no API socket path given",
            ));
        }
        clear_stale_socket(&options.api_socket)?;
        let listener = UnixListener::bind(&options.api_socket)?;
        let stats = match &options.stats_socket {
            Some(path) => Some(stats::StatsSegment::serve(path)?),
            None => None,
        };
        let (generation, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            ids: MessageIds::new(options.v2),
            state: Mutex::new(SimState::fresh(std::process::id(), !options.v2)),
            calls: Mutex::new(Vec::new()),
            stalled: AtomicBool::new(false),
            next_client: AtomicU32::new(1),
            generation,
            stats,
            api_inode: inode_of(&options.api_socket),
            options,
        });
        inner.publish_stats();
        let accept = tokio::spawn(accept_loop(Arc::clone(&inner), listener));
        let gc = tokio::spawn(gc_loop(Arc::clone(&inner)));
        info!(
            socket = %inner.options.api_socket.display(),
            v2 = inner.options.v2,
            "simulator listening"
        );
        Ok(Simulator {
            inner,
            tasks: Arc::new(Mutex::new(vec![accept, gc])),
        })
    }

    /// Starts a simulator on a thread and runtime of its own, so it does not
    /// compete with the caller's tasks (benchmarks). It runs until the
    /// process ends.
    pub fn start_on_thread(options: SimOptions) -> std::io::Result<Simulator> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("maglev-vppsim".to_string())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async {
                    let started = Simulator::start(options).await;
                    let ok = started.is_ok();
                    let _ = tx.send(started);
                    if ok {
                        std::future::pending::<()>().await;
                    }
                });
            })?;
        rx.recv()
            .map_err(|_| std::io::Error::other("simulator thread died"))?
    }

    /// The options it runs with.
    pub fn options(&self) -> &SimOptions {
        &self.inner.options
    }

    /// Every request so far, in arrival order.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.inner.calls.lock().expect("call log").clone()
    }

    /// How many calls were recorded so far.
    pub fn call_count(&self) -> usize {
        self.inner.calls.lock().expect("call log").len()
    }

    /// The calls recorded after the first `n`.
    pub fn calls_since(&self, n: usize) -> Vec<CallRecord> {
        let calls = self.inner.calls.lock().expect("call log");
        calls
            .get(n..)
            .map(<[CallRecord]>::to_vec)
            .unwrap_or_default()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.inner.calls.lock().expect("call log").clear();
    }

    /// Reads the lb state.
    pub fn lb(&self) -> LbGuard<'_> {
        LbGuard(self.inner.state.lock().expect("sim state"))
    }

    /// Changes the lb state behind the API's back (e.g. delete an AS to
    /// test drift repair), with VPP's uptime in seconds.
    pub fn with_lb_mut<R>(&self, f: impl FnOnce(&mut LbState, u32) -> R) -> R {
        self.inner.with_lb_mut(f)
    }

    /// The pid `control_ping` reports.
    pub fn pid(&self) -> u32 {
        self.inner.state.lock().expect("sim state").pid
    }

    /// Why the simulated VPP died, if it did.
    pub fn crashed(&self) -> Option<&'static str> {
        self.inner.state.lock().expect("sim state").crashed
    }

    /// Closes every client connection (they may reconnect).
    pub fn drop_connections(&self) {
        self.inner.generation.send_modify(|g| *g += 1);
    }

    /// Stops (true) or resumes (false) answering; connections stay open.
    pub fn set_stalled(&self, stalled: bool) {
        self.inner.stalled.store(stalled, Ordering::SeqCst);
    }

    /// Restarts VPP: empty lb state, a new pid and boot time, every
    /// connection closed.
    pub fn restart(&self) {
        {
            let mut st = self.inner.state.lock().expect("sim state");
            let pid = st.pid.wrapping_add(1000);
            let old_boot = st.boottime;
            *st = SimState::fresh(pid, !self.inner.options.v2);
            // Boot times are whole seconds; make sure a fast restart differs.
            if st.boottime <= old_boot {
                st.boottime = old_boot + 1;
            }
        }
        self.inner.stalled.store(false, Ordering::SeqCst);
        self.drop_connections();
        self.inner.publish_stats();
        info!(pid = self.pid(), "simulated VPP restart");
    }

    /// Runs lb garbage collection now, ignoring its timers.
    pub fn collect_garbage(&self) {
        self.with_lb_mut(|lb, now| lb.collect_garbage(now, true));
    }

    /// Starts the data-plane stand-in: loopback TCP VIPs are served by a
    /// proxy that picks the AS with VPP's Maglev table and flow hash (see
    /// the `dataplane` module). Stopped by [`Simulator::shutdown`].
    pub fn serve_dataplane(&self) {
        let task = tokio::spawn(dataplane::run(Arc::clone(&self.inner)));
        self.tasks.lock().expect("tasks").push(task);
    }

    /// Adds to a VIP's counters (by pool index), as traffic would.
    pub fn count_packets(&self, vip_index: u32, counter: usize, packets: u64) {
        self.inner.count_packets(vip_index, counter, packets);
    }

    /// Stops serving and removes the sockets.
    pub async fn shutdown(self) {
        for t in self.tasks.lock().expect("tasks").drain(..) {
            t.abort();
        }
        self.drop_connections();
        remove_own_socket(&self.inner.options.api_socket, self.inner.api_inode);
        if let Some(p) = &self.inner.options.stats_socket {
            remove_own_socket(p, self.inner.stats.as_ref().and_then(|s| s.inode()));
        }
        if let Some(s) = &self.inner.stats {
            s.stop();
        }
    }
}

/// Read access to the simulator's lb state.
#[derive(Debug)]
pub struct LbGuard<'a>(MutexGuard<'a, SimState>);

impl std::ops::Deref for LbGuard<'_> {
    type Target = LbState;
    fn deref(&self) -> &LbState {
        &self.0.lb
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: UnixListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if inner.state.lock().expect("sim state").crashed.is_some() {
            // A dead VPP accepts nothing; dropping the stream closes it.
            continue;
        }
        tokio::spawn(server::serve_connection(Arc::clone(&inner), stream));
    }
}

/// lb's own `lb-gc-process` runs periodically.
async fn gc_loop(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        {
            let mut st = inner.state.lock().expect("sim state");
            let now = st.uptime();
            st.lb.collect_garbage(now, false);
        }
        // Like VPP's stats collector: refresh the segment periodically.
        inner.publish_stats();
    }
}

/// Makes room for a socket at `path`: nothing there is fine; a socket no
/// one listens on (left by a process that died) is removed; anything else —
/// a live socket (perhaps a real VPP's), a file — is refused, untouched.
pub(crate) fn clear_stale_socket(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let refuse = |why: &str| {
        Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!(
                "{}: {why}; the simulator will not replace it",
                path.display()
            ),
        ))
    };
    if !meta.file_type().is_socket() {
        return refuse("exists and is not a socket");
    }
    let live = std::os::unix::net::UnixStream::connect(path).is_ok()
        || nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .ok()
        .and_then(|s| {
            let addr = nix::sys::socket::UnixAddr::new(path).ok()?;
            nix::sys::socket::connect(std::os::fd::AsRawFd::as_raw_fd(&s), &addr).ok()
        })
        .is_some();
    if live {
        return refuse("a live socket is there (a real VPP?)");
    }
    std::fs::remove_file(path)
}

/// The inode of the socket just bound at `path`.
pub(crate) fn inode_of(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

/// Removes `path` only if it is still the socket this simulator created.
fn remove_own_socket(path: &std::path::Path, inode: Option<u64>) {
    if inode.is_some() && inode_of(path) == inode {
        let _ = std::fs::remove_file(path);
    }
}
