//! maglevd against VPP peers that misbehave after a correct handshake, and
//! against broken stats sockets. Whatever the peer does, the daemon stays
//! up, keeps answering gRPC and `/metrics`, stays within a memory bound,
//! programs VPP again as soon as the peer behaves, and stops on SIGTERM
//! within 2 s. (Before: a keepalive flood took 1.4 GB in 45 s, a dump
//! without end 1.5 GB, and a stats socket that never accepted froze VPP
//! programming and SIGTERM for good.)
//!
//! The hostile peer is a proxy in front of the simulator: it passes the
//! handshake through, so message ids are the simulator's, then misbehaves
//! as told; told to behave, it passes everything through.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use maglev_proto as pb;
use maglev_proto::maglev_client::MaglevClient;
use maglev_testkit::stats_peer::{NeverAccepts, SegmentPeer};
use maglev_testkit::{eventually, free_port, Kill};
use maglev_vpp::binapi::{LbVipDetails, LbVipDump, MemclntKeepalive, SockclntCreateReply};
use maglev_vpp::frame::{frame, FrameReader};
use maglev_vpp::wire::{decode_message, encode_message, peek_msg_id, Message, MsgHeader};
use maglev_vppsim::{SimOptions, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Mutex};

/// Peak resident memory allowed over a whole hostile run. The client's own
/// limits (16,384 queued frames, 1 M dump entries / 256 MiB) are what keep
/// it there; the figures seen are printed by the test.
const RSS_BOUND_KIB: u64 = 192 * 1024;

/// What the peer does once the handshake is through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// Passes everything through.
    Good,
    /// Writes keepalives without end and never reads.
    KeepaliveFlood,
    /// Answers `lb_vip_dump` with details without end.
    DumpBomb,
    /// Announces a 4 GiB frame.
    OversizedFrame,
    /// Reads every request and answers none.
    Silent,
    /// Closes each connection as soon as it is accepted.
    HangUp,
    /// Leaves connections in the listen backlog.
    NeverAccepts,
}

struct Proxy {
    mode: watch::Sender<Peer>,
}

impl Proxy {
    fn start(front: &Path, back: PathBuf) -> Proxy {
        let listener = UnixListener::bind(front).unwrap();
        let (tx, mut rx) = watch::channel(Peer::Good);
        tokio::spawn(async move {
            loop {
                if rx.wait_for(|m| *m != Peer::NeverAccepts).await.is_err() {
                    return;
                }
                let conn = tokio::select! {
                    a = listener.accept() => a,
                    _ = rx.changed() => continue,
                };
                let Ok((conn, _)) = conn else { continue };
                let mode = *rx.borrow_and_update();
                // A change of mode closes the connections of the old one.
                let mut changed = rx.clone();
                let back = back.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = serve(conn, mode, &back) => {}
                        _ = changed.changed() => {}
                    }
                });
            }
        });
        Proxy { mode: tx }
    }

    fn set(&self, peer: Peer) {
        self.mode.send_replace(peer);
    }
}

async fn serve(conn: UnixStream, mode: Peer, back: &Path) -> Option<()> {
    if mode == Peer::HangUp {
        return None;
    }
    let mut sim = UnixStream::connect(back).await.ok()?;
    if mode == Peer::Good {
        let mut conn = conn;
        let _ = tokio::io::copy_bidirectional(&mut conn, &mut sim).await;
        return None;
    }
    let (crd, cwr) = conn.into_split();
    let (srd, mut swr) = sim.into_split();
    let mut crd = FrameReader::new(crd, Duration::ZERO);
    let mut srd = FrameReader::new(srd, Duration::ZERO);
    let hello = crd.next().await.ok()??;
    swr.write_all(&frame(&hello)).await.ok()?;
    let welcome = srd.next().await.ok()??;
    let (_, table) = decode_message::<SockclntCreateReply>(&welcome).ok()?;
    let id = |name_crc: &str| {
        table
            .message_table
            .iter()
            .find(|e| e.name == name_crc)
            .map(|e| e.index)
            .unwrap()
    };
    let cwr = Arc::new(Mutex::new(cwr));
    cwr.lock().await.write_all(&frame(&welcome)).await.ok()?;
    let burst = |payload: Vec<u8>, n: usize| -> Vec<u8> {
        let f = frame(&payload);
        f.iter().copied().cycle().take(f.len() * n).collect()
    };
    match mode {
        Peer::KeepaliveFlood => {
            let _hold = crd; // never read
            let header = MsgHeader {
                msg_id: id(MemclntKeepalive::NAME_CRC),
                ..Default::default()
            };
            let b = burst(encode_message(&MemclntKeepalive, header).unwrap(), 1000);
            let mut w = cwr.lock().await;
            while w.write_all(&b).await.is_ok() {}
        }
        Peer::OversizedFrame => {
            let mut f = vec![0u8; 8];
            f.extend_from_slice(&u32::MAX.to_be_bytes());
            f.extend_from_slice(&[0u8; 4 + 64]);
            cwr.lock().await.write_all(&f).await.ok()?;
            while let Ok(Some(_)) = crd.next().await {}
        }
        Peer::Silent => while let Ok(Some(_)) = crd.next().await {},
        Peer::DumpBomb => {
            let replies = {
                let cwr = Arc::clone(&cwr);
                tokio::spawn(async move {
                    while let Ok(Some(p)) = srd.next().await {
                        if cwr.lock().await.write_all(&frame(&p)).await.is_err() {
                            return;
                        }
                    }
                })
            };
            let dump = id(LbVipDump::NAME_CRC);
            while let Ok(Some(p)) = crd.next().await {
                if peek_msg_id(&p) != Some(dump) {
                    swr.write_all(&frame(&p)).await.ok()?;
                    continue;
                }
                let (h, _) = decode_message::<LbVipDump>(&p).ok()?;
                let header = MsgHeader {
                    msg_id: id(LbVipDetails::NAME_CRC),
                    client_index: 0,
                    context: h.context,
                };
                let b = burst(
                    encode_message(&LbVipDetails::default(), header).unwrap(),
                    10_000,
                );
                let mut w = cwr.lock().await;
                while w.write_all(&b).await.is_ok() {}
                break;
            }
            replies.abort();
        }
        Peer::Good | Peer::HangUp | Peer::NeverAccepts => unreachable!(),
    }
    None
}

fn config(dir: &Path, backend: &str, vip: &str) -> PathBuf {
    let cfg = dir.join("maglev.yaml");
    std::fs::write(
        &cfg,
        format!("maglev:
  vpp:
    lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1', sync-interval: 1s, startup-min-delay: 0, startup-max-delay: 0 }}
  backends:
    s1: {{ address: {backend} }}
  frontends:
    www: {{ address: {vip}, port: 80, pools: [ {{ name: p, backends: {{ s1: {{}} }} }} ] }}
"),
    )
    .unwrap();
    cfg
}

struct Daemon {
    child: Kill,
    grpc: String,
    metrics: String,
    log: PathBuf,
}

fn start(dir: &Path, cfg: &Path, api: &Path, stats: &str) -> Daemon {
    let grpc = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let log = dir.join("maglevd.log");
    let child = Kill(
        Command::new(env!("CARGO_BIN_EXE_maglevd"))
            .arg("--config")
            .arg(cfg)
            .args(["--grpc-addr", &grpc, "--metrics-addr", &metrics])
            .args(["--vpp-stats-addr", stats])
            .arg("--vpp-api-addr")
            .arg(api)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    Daemon {
        child,
        grpc,
        metrics,
        log,
    }
}

impl Daemon {
    async fn client(&self) -> MaglevClient<tonic::transport::Channel> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(c) = MaglevClient::connect(format!("http://{}", self.grpc)).await {
                return c;
            }
            assert!(Instant::now() < deadline, "gRPC never came up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Still running, answering a gRPC read and a scrape, each within 1 s.
    async fn responsive(&mut self, c: &mut MaglevClient<tonic::transport::Channel>, when: &str) {
        assert!(
            self.child.0.try_wait().unwrap().is_none(),
            "maglevd died {when}:\n{}",
            self.log_text()
        );
        let r = tokio::time::timeout(
            Duration::from_secs(1),
            c.list_frontends(pb::ListFrontendsRequest {}),
        )
        .await;
        assert!(
            matches!(r, Ok(Ok(_))),
            "gRPC did not answer within 1 s {when}: {r:?}"
        );
        let body = tokio::time::timeout(Duration::from_secs(1), scrape(&self.metrics))
            .await
            .unwrap_or_else(|_| panic!("/metrics did not answer within 1 s {when}"));
        assert!(body.contains("maglev_build_info"), "{when}: {body}");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn status_kib(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.0.id())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// SIGTERM; fails unless the process is gone within 2 s.
    async fn stop_within_two_seconds(mut self, when: &str) {
        let t = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.0.id().to_string()])
            .status();
        loop {
            if let Some(s) = self.child.0.try_wait().unwrap() {
                assert!(s.success(), "{when}: {s:?}\n{}", self.log_text());
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "maglevd still running 2 s after SIGTERM {when}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn scrape(addr: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

fn weights(sim: &Simulator) -> Vec<u8> {
    let lb = sim.lb();
    let w = lb
        .live_vips()
        .flat_map(|v| v.ases.iter().filter(|a| a.used).map(|a| a.weight))
        .collect();
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_api_peer_never_takes_maglevd_down() {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api.sock");
    let front = dir.path().join("front.sock");
    let sim = Simulator::start(SimOptions {
        api_socket: api.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let proxy = Proxy::start(&front, api.clone());
    let cfg = config(dir.path(), "127.0.10.4", "127.0.10.84");
    let mut d = start(dir.path(), &cfg, &front, "");
    eventually("programmed", Duration::from_secs(10), || {
        weights(&sim) == [100]
    })
    .await;
    let mut c = d.client().await;
    // (peer, how long it misbehaves, what maglevd must log about it)
    let phases = [
        (Peer::KeepaliveFlood, 2_000, Some("limit=MAX_QUEUED_FRAMES")),
        (
            Peer::DumpBomb,
            2_000,
            Some("limit=MAX_DUMP_ENTRIES/MAX_DUMP_BYTES"),
        ),
        (Peer::OversizedFrame, 1_000, Some("limit=MAX_PAYLOAD")),
        // Longer than the 5 s request timeout: maglevd gives up on the
        // peer itself and tries again.
        (Peer::Silent, 6_000, None),
        (Peer::HangUp, 1_000, None),
        (Peer::NeverAccepts, 1_000, None),
    ];
    for (peer, hold_ms, logged) in phases {
        // VPP restarts behind the misbehaving peer: what maglevd
        // programmed is gone until it talks to a good peer again.
        proxy.set(peer);
        sim.restart();
        let end = Instant::now() + Duration::from_millis(hold_ms);
        while Instant::now() < end {
            d.responsive(&mut c, &format!("while the peer does {peer:?}"))
                .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if let Some(mark) = logged {
            eventually(
                &format!("a log line naming {mark}"),
                Duration::from_secs(10),
                || d.log_text().contains(mark),
            )
            .await;
        }
        let rss = d.status_kib("VmRSS:");
        proxy.set(Peer::Good);
        let took = eventually(
            &format!("VPP programmed again after {peer:?}"),
            Duration::from_secs(10),
            || weights(&sim) == [100],
        )
        .await;
        eprintln!("{peer:?}: RSS {rss} KiB; programmed again {took:?} after the peer behaved");
    }
    let peak = d.status_kib("VmHWM:");
    eprintln!("peak RSS over the run: {peak} KiB");
    assert!(
        peak < RSS_BOUND_KIB,
        "peak RSS {peak} KiB over the {RSS_BOUND_KIB} KiB bound"
    );
    d.responsive(&mut c, "after the run").await;
    // Stopping is not held hostage by a peer that never answers.
    proxy.set(Peer::NeverAccepts);
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.stop_within_two_seconds("with the handshake pending")
        .await;
}

/// Stats are optional to programming: a stats socket that never hands
/// over the segment, or hands over a malformed or shrinking one, leaves
/// VPP programming, gRPC, `/metrics` and SIGTERM as they were.
async fn with_stats_peer(stats: &Path, what: &str, backend: &str, vip: &str) {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api.sock");
    let sim = Simulator::start(SimOptions {
        api_socket: api.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let cfg = config(dir.path(), backend, vip);
    let mut d = start(dir.path(), &cfg, &api, stats.to_str().unwrap());
    eventually(
        &format!("programmed with {what}"),
        Duration::from_secs(10),
        || weights(&sim) == [100],
    )
    .await;
    let mut c = d.client().await;
    for _ in 0..5 {
        d.responsive(&mut c, &format!("with {what}")).await;
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            c.get_vpplb_counters(pb::GetVpplbCountersRequest {}),
        )
        .await;
        assert!(r.is_ok(), "counters did not answer within 2 s with {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Drift is still repaired: programming goes on.
    sim.restart();
    eventually(
        &format!("programmed again with {what}"),
        Duration::from_secs(10),
        || weights(&sim) == [100],
    )
    .await;
    let rss = d.status_kib("VmHWM:");
    eprintln!("{what}: peak RSS {rss} KiB");
    assert!(rss < RSS_BOUND_KIB, "{what}: peak RSS {rss} KiB");
    d.stop_within_two_seconds(&format!("with {what}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stats_socket_that_never_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stats.sock");
    let _peer = NeverAccepts::bind(&path).unwrap();
    with_stats_peer(
        &path,
        "a stats socket that never accepts",
        "127.0.10.5",
        "127.0.10.85",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_stats_segment() {
    // 160 KB that looks like a segment header followed by garbage
    // directory offsets: it used to pin the daemon's thread at 100 %.
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join("segment");
    let mut bytes: Vec<u8> = (0..160 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    bytes[..8].copy_from_slice(&2u64.to_ne_bytes()); // version
    bytes[24..32].copy_from_slice(&0u64.to_ne_bytes()); // not in progress
    std::fs::write(&seg, &bytes).unwrap();
    let path = dir.path().join("stats.sock");
    let _peer = SegmentPeer::serve(&path, std::fs::File::open(&seg).unwrap()).unwrap();
    with_stats_peer(
        &path,
        "a malformed stats segment",
        "127.0.10.6",
        "127.0.10.86",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stats_segment_that_shrinks_while_in_use() {
    // A well-formed, empty segment (version 2, epoch 1, a directory of no
    // entries at 4096) of 32 MiB, cut to one page once maglevd has it:
    // that used to be SIGBUS.
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join("segment");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&seg)
        .unwrap();
    file.set_len(32 << 20).unwrap();
    const BASE: u64 = 0x7f00_0000_0000;
    use std::os::unix::fs::FileExt;
    for (at, v) in [(0u64, 2u64), (8, BASE), (16, 1), (24, 0), (32, BASE + 4096)] {
        file.write_all_at(&v.to_ne_bytes(), at).unwrap();
    }
    file.write_all_at(&0u32.to_ne_bytes(), 4096 - 8).unwrap();
    let path = dir.path().join("stats.sock");
    let _peer = SegmentPeer::serve(&path, file.try_clone().unwrap()).unwrap();
    let shrink = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        file.set_len(4096).unwrap();
    });
    with_stats_peer(
        &path,
        "a stats segment that shrinks",
        "127.0.10.7",
        "127.0.10.87",
    )
    .await;
    shrink.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stats_peer_passing_several_descriptors_leaks_none() {
    // Each reconnect to VPP opens the stats socket again; a peer that
    // attaches four descriptors used to cost two leaked ones per attempt.
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join("segment");
    std::fs::write(&seg, vec![0u8; 8192]).unwrap();
    let stats = dir.path().join("stats.sock");
    let _peer = SegmentPeer::serve_copies(&stats, std::fs::File::open(&seg).unwrap(), 4).unwrap();
    let api = dir.path().join("api.sock");
    let sim = Simulator::start(SimOptions {
        api_socket: api.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let cfg = config(dir.path(), "127.0.10.8", "127.0.10.88");
    let d = start(dir.path(), &cfg, &api, stats.to_str().unwrap());
    eventually("programmed", Duration::from_secs(10), || {
        weights(&sim) == [100]
    })
    .await;
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", d.child.0.id()))
            .map(|r| r.count())
            .unwrap_or(0)
    };
    let connects = || {
        sim.calls()
            .iter()
            .filter(|c| c.msg == "sockclnt_create")
            .count()
    };
    let before = fds();
    for round in 1..=10 {
        let n = connects();
        sim.drop_connections();
        eventually(
            &format!("reconnect {round}"),
            Duration::from_secs(10),
            || connects() > n,
        )
        .await;
        // The stats socket is opened after the API handshake.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = fds();
    eprintln!("descriptors: {before} before, {after} after 10 reconnects");
    if after > before + 2 {
        for e in std::fs::read_dir(format!("/proc/{}/fd", d.child.0.id())).unwrap() {
            let e = e.unwrap();
            eprintln!(
                "  {:?} -> {:?}",
                e.file_name(),
                std::fs::read_link(e.path())
            );
        }
    }
    assert!(
        after <= before + 2,
        "descriptors grew from {before} to {after} over 10 reconnects"
    );
    d.stop_within_two_seconds("after the reconnects").await;
}
