//! The `grpc` probe against real gRPC servers on loopback: tonic's
//! `grpc.health.v1` implementation, plaintext and TLS.

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use maglev_access::listen::{incoming, Admission, Listener, UnixOptions};
use maglev_access::{AdminRules, Endpoint, Scheme};
use maglev_health::{Code, Probe, Prober};
use tonic_health::ServingStatus;

const LO: &str = "127.0.0.1";

fn ip() -> IpAddr {
    LO.parse().unwrap()
}

fn probe(hc: &str) -> Arc<dyn Probe> {
    let c = config(hc, "    b: { address: 127.0.0.1, healthcheck: hc }", &["b"]);
    Prober::new(None, Prober::default_user_agent())
        .unwrap()
        .probe_for(&c.healthchecks["hc"])
}

/// A gRPC server with the standard health service; `tls`: serve TLS with
/// a self-signed certificate for 127.0.0.1.
async fn health_server(tls: bool) -> (u16, tonic_health::server::HealthReporter) {
    let (reporter, service) = tonic_health::server::health_reporter();
    let admission = Admission {
        tls: tls.then(|| {
            let dir = tempfile::tempdir().unwrap().keep();
            let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
            std::fs::write(dir.join("c.pem"), cert.cert.pem()).unwrap();
            std::fs::write(dir.join("k.pem"), cert.signing_key.serialize_pem()).unwrap();
            Arc::new(
                maglev_access::tls::ServerTls::load(maglev_access::tls::ServerFiles {
                    cert: dir.join("c.pem"),
                    key: dir.join("k.pem"),
                    client_ca: None,
                })
                .unwrap(),
            )
        }),
        rules: Arc::new(AdminRules::default()),
        max_connections: 16,
    };
    let scheme = if tls { Scheme::Tls } else { Scheme::Plain };
    let listener = Listener::bind(
        &Endpoint::Tcp(format!("{LO}:0"), scheme),
        UnixOptions::default(),
        tls,
    )
    .await
    .unwrap();
    let port = listener.port().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming(vec![listener], admission)),
    );
    (port, reporter)
}

#[tokio::test]
async fn serving_status_decides() {
    let (port, reporter) = health_server(false).await;
    reporter
        .set_service_status("shop.Cart", ServingStatus::Serving)
        .await;
    let p = probe(&format!(
        "    hc: {{ type: grpc, port: {port}, grpc: {{ service: shop.Cart }} }}"
    ));
    let r = p.check(ip()).await;
    assert_eq!((r.code, &*r.detail), (Code::L7Ok, "SERVING"), "{r:?}");
    assert!(r.pass);
    reporter
        .set_service_status("shop.Cart", ServingStatus::NotServing)
        .await;
    let r = p.check(ip()).await;
    assert_eq!((r.code, &*r.detail), (Code::L7Sts, "NOT_SERVING"), "{r:?}");
    assert!(!r.pass);
    // The server as a whole (service ""), which tonic reports serving.
    let whole = probe(&format!("    hc: {{ type: grpc, port: {port} }}"));
    assert_eq!(whole.check(ip()).await.code, Code::L7Ok);
    // A service the server does not know: the call's own status.
    let other = probe(&format!(
        "    hc: {{ type: grpc, port: {port}, grpc: {{ service: nope.Svc, authority: 'api.example.net:443' }} }}"
    ));
    let r = other.check(ip()).await;
    assert_eq!(r.code, Code::L7Sts, "{r:?}");
    assert!(r.detail.starts_with("gRPC NOT_FOUND"), "{r:?}");
}

#[tokio::test]
async fn tls_with_and_without_verification() {
    let (port, _reporter) = health_server(true).await;
    let p = probe(&format!(
        "    hc: {{ type: grpc, port: {port}, grpc: {{ tls: true, insecure: true }} }}"
    ));
    let r = p.check(ip()).await;
    assert_eq!((r.code, &*r.detail), (Code::L7Ok, "SERVING"), "{r:?}");
    // The certificate is self-signed: verified, the handshake fails.
    let p = probe(&format!(
        "    hc: {{ type: grpc, port: {port}, grpc: {{ tls: true }} }}"
    ));
    let r = p.check(ip()).await;
    assert_eq!(r.code, Code::L6Rsp, "{r:?}");
    // Plaintext HTTP/2 to a TLS port is no gRPC answer.
    let p = probe(&format!("    hc: {{ type: grpc, port: {port} }}"));
    assert!(!p.check(ip()).await.pass);
}

#[tokio::test]
async fn not_grpc_refused_and_silent() {
    // An HTTP/1 server: the HTTP/2 exchange fails.
    let s = http_server(LO).await;
    let r = probe(&format!(
        "    hc: {{ type: grpc, port: {}, timeout: 1s }}",
        s.addr.port()
    ))
    .check(ip())
    .await;
    assert!(matches!(r.code, Code::L7Rsp | Code::L7Tout), "{r:?}");
    // Nothing listens: refused.
    let closed = std::net::TcpListener::bind((LO, 0)).unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let r = probe(&format!("    hc: {{ type: grpc, port: {port} }}"))
        .check(ip())
        .await;
    assert_eq!(r.code, Code::L4Con, "{r:?}");
    // A server that accepts and never answers: the reply times out, on time.
    let silent = tokio::net::TcpListener::bind((LO, 0)).await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let p = probe(&format!(
        "    hc: {{ type: grpc, port: {port}, timeout: 300ms }}"
    ));
    let t = Instant::now();
    let r = p.check(ip()).await;
    assert_eq!(r.code, Code::L7Tout, "{r:?}");
    assert!(
        t.elapsed() < Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
}
