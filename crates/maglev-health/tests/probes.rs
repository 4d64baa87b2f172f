//! Each probe kind against real servers on loopback.

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use maglev_health::{Code, Probe, Prober, SetupError};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The probe of the health check `hc` written as YAML (indented 4).
fn probe(hc: &str) -> Arc<dyn Probe> {
    let c = config(hc, "    b: { address: 127.0.0.1, healthcheck: hc }", &["b"]);
    Prober::new(None, Prober::default_user_agent())
        .unwrap()
        .probe_for(&c.healthchecks["hc"])
}

#[tokio::test]
async fn http_pass_sends_path_host_and_user_agent() {
    let s = http_server("127.0.0.1").await;
    let p = probe(&format!(
        "    hc: {{ type: http, port: {}, params: {{ path: /healthz, host: www.example.net }} }}",
        s.addr.port()
    ));
    let r = p.check(ip("127.0.0.1")).await;
    assert_eq!(r.code, Code::L7Ok, "{r:?}");
    assert!(r.pass);
    assert_eq!(r.detail, "HTTP 200");
    let seen = s.b.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "www.example.net");
    assert_eq!(seen[0].1, format!("maglevd/{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(seen[0].2, "/healthz");
}

#[tokio::test]
async fn http_default_host_is_the_backend_address() {
    let s = http_server("127.0.0.1").await;
    let p = probe(&format!(
        "    hc: {{ type: http, port: {} }}",
        s.addr.port()
    ));
    assert!(p.check(ip("127.0.0.1")).await.pass);
    let host = s.b.seen.lock().unwrap()[0].0.clone();
    assert_eq!(host, format!("127.0.0.1:{}", s.addr.port()));
}

#[tokio::test]
async fn http_status_outside_the_set_is_l7sts() {
    let s = http_server("127.0.0.1").await;
    s.set_status(500);
    let p = probe(&format!(
        "    hc: {{ type: http, port: {} }}",
        s.addr.port()
    ));
    let r = p.check(ip("127.0.0.1")).await;
    assert_eq!(
        (r.code, r.pass, &*r.detail),
        (Code::L7Sts, false, "HTTP 500")
    );
    // A configured list: 301 in, 302 out.
    let p = probe(&format!(
        "    hc: {{ type: http, port: {}, params: {{ response-codes: '200,301' }} }}",
        s.addr.port()
    ));
    s.set_status(301);
    assert!(p.check(ip("127.0.0.1")).await.pass);
    s.set_status(302);
    assert_eq!(p.check(ip("127.0.0.1")).await.code, Code::L7Sts);
}

#[tokio::test]
async fn http_body_regex() {
    let s = http_server("127.0.0.1").await;
    let p = probe(&format!(
        "    hc: {{ type: http, port: {}, params: {{ response-regex: 'status: (ok|fine)' }} }}",
        s.addr.port()
    ));
    *s.b.body.lock().unwrap() = "status: fine\n".into();
    assert_eq!(p.check(ip("127.0.0.1")).await.code, Code::L7Ok);
    *s.b.body.lock().unwrap() = "status: degraded\n".into();
    let r = p.check(ip("127.0.0.1")).await;
    assert_eq!(r.code, Code::L7Rsp, "{r:?}");
    assert!(r.detail.contains("does not match"), "{}", r.detail);
    // Only the first 64 KiB is looked at.
    *s.b.body.lock().unwrap() = "x".repeat(70 * 1024) + "status: ok";
    assert_eq!(p.check(ip("127.0.0.1")).await.code, Code::L7Rsp);
}

#[tokio::test]
async fn https_verification_insecure_and_sni() {
    let s = https_server("127.0.0.1", &["www.example.net"]).await;
    let port = s.addr.port();
    let verified = probe(&format!(
        "    hc: {{ type: https, port: {port}, params: {{ host: www.example.net }} }}"
    ));
    let r = verified.check(ip("127.0.0.1")).await;
    assert_eq!(
        r.code,
        Code::L6Rsp,
        "a self-signed certificate fails verification: {r:?}"
    );
    assert!(!r.pass);

    let insecure = probe(&format!(
        "    hc: {{ type: https, port: {port}, params: {{ host: www.example.net, insecure: true }} }}"
    ));
    let r = insecure.check(ip("127.0.0.1")).await;
    assert_eq!(r.code, Code::L7Ok, "{r:?}");
    let sni = s.b.sni.lock().unwrap().clone();
    assert_eq!(
        sni.last().unwrap().as_deref(),
        Some("www.example.net"),
        "SNI from host"
    );
    assert_eq!(
        s.b.seen.lock().unwrap().last().unwrap().0,
        "www.example.net"
    );

    // A Host header with a port: the port stays in Host, the SNI is the
    // name alone (with the port in it, no probe could start TLS).
    let with_port = probe(&format!(
        "    hc: {{ type: https, port: {port}, params: {{ host: 'www.example.net:{port}', insecure: true }} }}"
    ));
    let r = with_port.check(ip("127.0.0.1")).await;
    assert_eq!(r.code, Code::L7Ok, "{r:?}");
    assert_eq!(
        s.b.sni.lock().unwrap().last().unwrap().as_deref(),
        Some("www.example.net")
    );
    assert_eq!(
        s.b.seen.lock().unwrap().last().unwrap().0,
        format!("www.example.net:{port}")
    );

    let other = probe(&format!(
        "    hc: {{ type: https, port: {port}, params: {{ server-name: api.example.net, insecure: true }} }}"
    ));
    assert!(other.check(ip("127.0.0.1")).await.pass);
    assert_eq!(
        s.b.sni.lock().unwrap().last().unwrap().as_deref(),
        Some("api.example.net")
    );

    let bare = probe(&format!(
        "    hc: {{ type: https, port: {port}, params: {{ insecure: true }} }}"
    ));
    assert!(bare.check(ip("127.0.0.1")).await.pass);
    assert_eq!(
        *s.b.sni.lock().unwrap().last().unwrap(),
        None,
        "no SNI for an IP address"
    );
}

#[tokio::test]
async fn tcp_connect() {
    let s = http_server("127.0.0.2").await;
    let open = probe(&format!("    hc: {{ type: tcp, port: {} }}", s.addr.port()));
    let r = open.check(ip("127.0.0.2")).await;
    assert_eq!((r.code, r.pass), (Code::L4Ok, true));
    let closed = probe(&format!(
        "    hc: {{ type: tcp, port: {} }}",
        closed_port("127.0.0.2")
    ));
    let r = closed.check(ip("127.0.0.2")).await;
    assert_eq!((r.code, r.pass), (Code::L4Con, false), "{r:?}");
    assert!(r.detail.contains("refused"), "{}", r.detail);
}

/// The HTTP request goes with the handshake when it can (a write right
/// after `connect`): a refused connect still reads as refused, not as a
/// failed request.
#[tokio::test]
async fn http_to_a_closed_port_is_l4con() {
    let closed = probe(&format!(
        "    hc: {{ type: http, port: {} }}",
        closed_port("127.0.0.2")
    ));
    for _ in 0..2 {
        let r = closed.check(ip("127.0.0.2")).await;
        assert_eq!((r.code, r.pass), (Code::L4Con, false), "{r:?}");
        assert!(r.detail.contains("refused"), "{}", r.detail);
    }
}

/// A probe's connection ends with a reset, as HAProxy's checks do: no
/// FIN exchange and no TIME_WAIT socket left per probe. The server sees
/// the reset where a graceful close would read as end of file.
#[tokio::test]
async fn probes_close_their_connections_with_a_reset() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut ends = Vec::new();
        for answer in [true, false] {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            if answer {
                let mut n = 0;
                while !buf[..n].ends_with(b"\r\n\r\n") {
                    n += s.read(&mut buf[n..]).await.unwrap();
                }
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .unwrap();
            }
            ends.push(s.read(&mut buf).await.map_err(|e| e.kind()));
        }
        ends
    });
    let http = probe(&format!("    hc: {{ type: http, port: {port} }}"));
    assert!(http.check(ip("127.0.0.1")).await.pass);
    let tcp = probe(&format!("    hc: {{ type: tcp, port: {port} }}"));
    assert!(tcp.check(ip("127.0.0.1")).await.pass);
    let reset = Err(std::io::ErrorKind::ConnectionReset);
    assert_eq!(server.await.unwrap(), [reset, reset], "http, then tcp");
}

#[tokio::test]
async fn a_silent_server_times_out_in_time() {
    let s = http_server("127.0.0.1").await;
    s.b.silent.store(true, std::sync::atomic::Ordering::SeqCst);
    let p = probe(&format!(
        "    hc: {{ type: http, port: {}, timeout: 300ms }}",
        s.addr.port()
    ));
    let t = Instant::now();
    let r = p.check(ip("127.0.0.1")).await;
    let took = t.elapsed();
    assert_eq!(r.code, Code::L7Tout, "{r:?}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(400),
        "took {took:?}"
    );
}

#[tokio::test]
async fn icmp_echo_ipv4_and_ipv6() {
    let p = probe("    hc: { type: icmp, timeout: 1s }");
    for target in ["127.0.0.1", "::1", "127.0.0.3"] {
        let r = p.check(ip(target)).await;
        assert_eq!(r.code, Code::L3Ok, "{target}: {r:?}");
        assert!(r.pass);
    }
    // Many at once on the one shared socket.
    let all = futures_all(&p, 50).await;
    assert!(all.iter().all(|r| r.pass), "{all:?}");
}

async fn futures_all(p: &Arc<dyn Probe>, n: usize) -> Vec<maglev_health::ProbeResult> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let p = Arc::clone(p);
        let target = if i % 2 == 0 {
            ip("127.0.0.1")
        } else {
            ip("::1")
        };
        tasks.push(tokio::spawn(async move { p.check(target).await }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_missing_netns_is_a_clear_error() {
    let err = Prober::new(Some("maglev-no-such-netns"), "ua").unwrap_err();
    assert!(matches!(err, SetupError::Netns { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("maglev-no-such-netns") && msg.contains("No such file"),
        "{msg}"
    );
}
