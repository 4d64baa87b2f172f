//! Probes against local HTTP(S) servers that set the tally header:
//! counters and percentiles, keep-alive, a server switched off (net-err,
//! then grey after 5 s), a slow one (timeout), HTTP errors, TLS.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maglev_monitor::stats::{Class, Outcome, VipStats, ACTIVE_FOR};
use maglev_monitor::targets::{Kind, Target};
use maglev_monitor::{probe::Prober, Header, Monitor, ProbeOptions};
use maglev_testkit::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A minimal HTTP/1.1 server: answers every request with `status` and the
/// next tally value, after `delay`; counts connections.
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<S>(
    mut io: S,
    status: u16,
    tally: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    delay: Duration,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let raw = String::from_utf8_lossy(&buf).into_owned();
        let req = raw.to_ascii_lowercase();
        let close = req.contains("connection: close");
        buf.clear();
        tokio::time::sleep(delay).await;
        let mut v = tally[next.fetch_add(1, Ordering::Relaxed) % tally.len()].clone();
        if v != "<request>" {
            assert!(
                req.starts_with("get /.well-known/ipng/healthz http/1.1"),
                "{req}"
            );
        } else {
            // Echo what the probe sent: request line and Host header.
            let line = raw.lines().next().unwrap_or_default().to_string();
            let host = raw
                .lines()
                .find_map(|l| {
                    l.strip_prefix("host: ")
                        .or_else(|| l.strip_prefix("Host: "))
                })
                .unwrap_or("-");
            v = format!("{line} | {host}");
        }
        let resp =
            format!("HTTP/1.1 {status} X\r\nX-IPng-Frontend: {v}\r\nContent-Length: 2\r\n\r\nok");
        if io.write_all(resp.as_bytes()).await.is_err() || close {
            let _ = io.shutdown().await;
            return;
        }
    }
}

async fn server(status: u16, tally: &[&str], delay: Duration) -> Server {
    server_tls(status, tally, delay, None).await
}

async fn server_tls(
    status: u16,
    tally: &[&str],
    delay: Duration,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let tally: Arc<Vec<String>> = Arc::new(tally.iter().map(|s| s.to_string()).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&connections);
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            c.fetch_add(1, Ordering::Relaxed);
            let (tally, next, tls) = (Arc::clone(&tally), Arc::clone(&next), tls.clone());
            conns.spawn(async move {
                match tls {
                    None => serve(s, status, tally, next, delay).await,
                    Some(acc) => {
                        if let Ok(s) = acc.accept(s).await {
                            serve(s, status, tally, next, delay).await
                        }
                    }
                }
            });
        }
    });
    Server {
        addr,
        connections,
        task,
    }
}

fn target(addr: SocketAddr, kind: Kind) -> Target {
    Target {
        name: format!("vip{}", addr.port()),
        address: addr.ip(),
        port: addr.port(),
        kind,
    }
}

fn opts(keepalive: bool) -> Arc<ProbeOptions> {
    Arc::new(ProbeOptions {
        keepalive,
        timeout: Duration::from_secs(2),
        ..ProbeOptions::default()
    })
}

#[tokio::test]
async fn counters_tally_and_percentiles_from_real_probes() {
    let s = server(204, &["s1", "s2", "s3"], Duration::ZERO).await;
    let mut p = Prober::new(target(s.addr, Kind::Http), opts(false));
    let mut stats = VipStats::default();
    for _ in 0..30 {
        let probe = p.probe().await;
        assert_eq!(
            probe.outcome,
            Outcome::Answer {
                status: Some(204),
                tally: Some(["s1", "s2", "s3"][(stats.n % 3) as usize].to_string())
            }
        );
        assert_eq!(stats.record(&probe), None);
    }
    assert_eq!((stats.n, stats.fail), (30, 0));
    assert_eq!(stats.ok_percent(), Some(100.0));
    let t = stats.tally(Instant::now());
    let counts: Vec<(&str, u64, bool)> = t
        .iter()
        .map(|e| (e.value.as_str(), e.count, e.active))
        .collect();
    assert_eq!(
        counts,
        [("s1", 10, true), ("s2", 10, true), ("s3", 10, true)]
    );
    let pc = stats.percentiles().unwrap();
    assert!(pc.p50 <= pc.p95 && pc.p95 <= pc.p99 && pc.p99 <= pc.max);
    assert!(pc.max < Duration::from_secs(1));
    // Without keep-alive, one connection per probe.
    assert_eq!(s.connections.load(Ordering::Relaxed), 30);
}

#[tokio::test]
async fn request_line_and_host_follow_the_options() {
    let s = server(200, &["<request>"], Duration::ZERO).await;
    let tally = |o: Outcome| match o {
        Outcome::Answer { tally: Some(t), .. } => t,
        o => panic!("{o:?}"),
    };
    // Defaults: the well-known path, and the VIP as Host (with its port,
    // as it is not 80).
    let mut p = Prober::new(target(s.addr, Kind::Http), opts(false));
    assert_eq!(
        tally(p.probe().await.outcome),
        format!("GET /.well-known/ipng/healthz HTTP/1.1 | {}", s.addr)
    );
    let o = Arc::new(ProbeOptions {
        uri: "/status?x=1".into(),
        host: Some("www.example.net".into()),
        ..ProbeOptions::default()
    });
    let mut p = Prober::new(target(s.addr, Kind::Http), o);
    assert_eq!(
        tally(p.probe().await.outcome),
        "GET /status?x=1 HTTP/1.1 | www.example.net"
    );
}

#[tokio::test]
async fn keepalive_reuses_one_connection() {
    let s = server(200, &["s1"], Duration::ZERO).await;
    let mut p = Prober::new(target(s.addr, Kind::Http), opts(true));
    for _ in 0..20 {
        assert!(matches!(
            p.probe().await.outcome,
            Outcome::Answer {
                status: Some(200),
                ..
            }
        ));
    }
    assert_eq!(s.connections.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn http_errors_and_tcp_connects() {
    let s = server(503, &["s1"], Duration::ZERO).await;
    let mut stats = VipStats::default();
    let mut p = Prober::new(target(s.addr, Kind::Http), opts(false));
    let a = stats.record(&p.probe().await).unwrap();
    assert_eq!((a.class, a.detail.as_str()), (Class::HttpErr, "HTTP 503"));
    let mut p = Prober::new(target(s.addr, Kind::Tcp), opts(false));
    assert_eq!(
        p.probe().await.outcome,
        Outcome::Answer {
            status: None,
            tally: None
        }
    );
}

#[tokio::test]
async fn a_slow_server_is_a_timeout() {
    let s = server(200, &["s1"], Duration::from_millis(500)).await;
    let o = Arc::new(ProbeOptions {
        timeout: Duration::from_millis(100),
        ..ProbeOptions::default()
    });
    let mut p = Prober::new(target(s.addr, Kind::Http), o);
    let probe = p.probe().await;
    assert_eq!(probe.outcome, Outcome::Timeout);
    assert!(
        probe.latency >= Duration::from_millis(100) && probe.latency < Duration::from_millis(400)
    );
    let mut stats = VipStats::default();
    assert_eq!(stats.record(&probe).unwrap().class, Class::Timeout);
    assert_eq!(stats.last.as_deref(), Some("timeout"));
}

async fn wait_for(m: &Monitor, what: &str, pred: impl Fn(&maglev_monitor::Model) -> bool) {
    eventually(what, Duration::from_secs(10), || pred(&m.model())).await;
}

#[tokio::test]
async fn a_server_switched_off_is_net_err_and_turns_grey_after_5s() {
    let on = server(204, &["s1"], Duration::ZERO).await;
    let addr = on.addr;
    let m = Monitor::start(
        vec![target(addr, Kind::Http)],
        Duration::from_millis(10),
        (*opts(false)).clone(),
    );
    wait_for(&m, "ten probes", |md| md.stats[0].n >= 10).await;
    drop(on); // the listener closes: connections are refused from now on
    let switched_off = Instant::now();
    // A probe in flight at the switch-off may end as a reset instead;
    // after that every connection is refused.
    wait_for(&m, "three refusals", |md| {
        md.errors
            .back()
            .is_some_and(|e| e.detail == "connection refused" && e.count >= 3)
    })
    .await;
    let model = m.model().clone();
    let view = model.view(Instant::now(), Header::default());
    assert_eq!(view.errors[0].class, Class::NetErr);
    assert_eq!(view.errors[0].detail, "connection refused");
    assert!(view.errors[0].count >= 3, "repeats are merged");
    assert_eq!(view.rows[0].last, "net-err");
    // s1 answered until the switch-off: active now, grey 5 s after.
    assert!(view.tallies[0].entries[0].2);
    let later = model.view(switched_off + ACTIVE_FOR, Header::default());
    let (value, count, active) = &later.tallies[0].entries[0];
    assert_eq!((value.as_str(), active), ("s1", &false));
    assert!(*count >= 10);
}

#[tokio::test]
async fn https_verifies_unless_insecure() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let s = server_tls(200, &["tls1"], Duration::ZERO, Some(acceptor)).await;
    let insecure = Arc::new(ProbeOptions {
        insecure: true,
        host: Some("localhost".into()),
        ..ProbeOptions::default()
    });
    let mut p = Prober::new(target(s.addr, Kind::Https), insecure);
    assert_eq!(
        p.probe().await.outcome,
        Outcome::Answer {
            status: Some(200),
            tally: Some("tls1".into())
        }
    );
    let mut p = Prober::new(target(s.addr, Kind::Https), opts(false));
    match p.probe().await.outcome {
        Outcome::NetErr(e) => assert!(e.starts_with("TLS: "), "{e}"),
        o => panic!("{o:?}"),
    }
}

#[tokio::test]
async fn unreachable_port_is_net_err() {
    let free = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut p = Prober::new(target(free, Kind::Http), opts(false));
    assert_eq!(
        p.probe().await.outcome,
        Outcome::NetErr("connection refused".into())
    );
}
