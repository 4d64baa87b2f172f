//! Real servers on loopback for the probe and checker tests.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What an HTTP test server does and saw.
#[derive(Clone, Default)]
pub struct Behaviour {
    pub status: Arc<AtomicU16>,
    pub body: Arc<Mutex<String>>,
    pub hits: Arc<AtomicUsize>,
    /// (Host, User-Agent, path) of every request.
    pub seen: Arc<Mutex<Vec<(String, String, String)>>>,
    /// SNI of every TLS handshake (`None` when the client sent none).
    pub sni: Arc<Mutex<Vec<Option<String>>>>,
    /// Accept connections but never answer.
    pub silent: Arc<AtomicBool>,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub b: Behaviour,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub fn set_status(&self, s: u16) {
        self.b.status.store(s, Ordering::SeqCst);
    }
    pub fn hits(&self) -> usize {
        self.b.hits.load(Ordering::SeqCst)
    }
}

async fn serve_conn<S>(io: S, b: Behaviour)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if b.silent.load(Ordering::SeqCst) {
        // Hold the connection open, say nothing.
        let _keep = io;
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        return;
    }
    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
        let b = b.clone();
        async move {
            b.hits.fetch_add(1, Ordering::SeqCst);
            let header = |name| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            b.seen.lock().unwrap().push((
                header(hyper::header::HOST),
                header(hyper::header::USER_AGENT),
                req.uri().path().to_string(),
            ));
            let status = b.status.load(Ordering::SeqCst);
            let body = b.body.lock().unwrap().clone();
            Ok::<_, std::convert::Infallible>(
                Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::from(body)))
                    .unwrap(),
            )
        }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// A plain HTTP server on `ip`, port 0.
pub async fn http_server(ip: &str) -> TestServer {
    http_server_on(ip, 0).await
}

/// HTTP servers on several loopback addresses, all on one port (so one
/// health check covers them).
pub async fn http_servers(ips: &[&str]) -> Vec<TestServer> {
    let first = http_server(ips[0]).await;
    let port = first.addr.port();
    let mut all = vec![first];
    for ip in &ips[1..] {
        all.push(http_server_on(ip, port).await);
    }
    all
}

async fn http_server_on(ip: &str, port: u16) -> TestServer {
    let listener = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), port))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let b = Behaviour::default();
    b.status.store(200, Ordering::SeqCst);
    *b.body.lock().unwrap() = "ok".to_string();
    let bb = b.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(serve_conn(stream, bb.clone()));
        }
    });
    TestServer { addr, b, task }
}

/// An HTTPS server on `ip` with a self-signed certificate for `names`
/// (made now, for this test); records the SNI of each handshake.
pub async fn https_server(ip: &str, names: &[&str]) -> TestServer {
    let listener = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let b = Behaviour::default();
    b.status.store(200, Ordering::SeqCst);
    let bb = b.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let bb = bb.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let sni = tls.get_ref().1.server_name().map(str::to_string);
                    bb.sni.lock().unwrap().push(sni);
                    serve_conn(tls, bb).await;
                }
            });
        }
    });
    TestServer { addr, b, task }
}

/// A port on `ip` where nothing listens (bound, then closed).
pub fn closed_port(ip: &str) -> u16 {
    let l = std::net::TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0)).unwrap();
    l.local_addr().unwrap().port()
}

/// A config with one frontend using every backend; `checks` and
/// `backends` are YAML mapping bodies (indented 4 spaces).
pub fn config(checks: &str, backends: &str, names: &[&str]) -> maglev_config::Config {
    let members: String = names.iter().map(|n| format!("{n}: {{}}, ")).collect();
    let text = format!(
        "maglev:\n  vpp:\n    lb:\n      ipv4-src-address: 198.51.100.1\n      ipv6-src-address: 2001:db8::1\n\
         \x20 healthchecks:\n{checks}\n  backends:\n{backends}\n  frontends:\n    www:\n      address: 203.0.113.80\n      port: 80\n\
         \x20     new-flows-table-length: 65536\n      pools:\n        - name: p\n          backends: {{ {members} }}\n"
    );
    maglev_config::load_str(&text, "test.yaml")
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .config
}
