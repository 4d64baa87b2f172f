//! Who may do what over each kind of listener: plain TCP is read-only,
//! a unix socket trusts its owner and group, TLS clients are admin by
//! certificate name; maglevc against each. Certificates are made by the
//! test; other users are made with `setpriv` (root only).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{rig, rig_with, Rig, Setup};
use maglev_service::access::METHODS;
use maglev_testkit::certs::Ca;

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Calls every RPC of the service with an empty request, the way any gRPC
/// client could, and returns the status code of each (`None`: no answer
/// within a second, as a stream that is open and quiet).
async fn call_every_rpc(
    channel: tonic::transport::Channel,
) -> Vec<(&'static str, Option<tonic::Code>)> {
    let mut out = Vec::new();
    for (method, _) in METHODS {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let path = http::uri::PathAndQuery::from_str(&format!("/maglev.Maglev/{method}")).unwrap();
        let codec = tonic_prost::ProstCodec::<(), ()>::default();
        let call = grpc.unary(tonic::Request::new(()), path, codec);
        let code = match tokio::time::timeout(Duration::from_secs(1), call).await {
            Ok(Ok(_)) => Some(tonic::Code::Ok),
            Ok(Err(s)) => Some(s.code()),
            Err(_) => None,
        };
        out.push((*method, code));
    }
    out
}

async fn channel(addr: &str) -> tonic::transport::Channel {
    maglev_access::dial::dial(addr, &Default::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutating_rpc_is_refused_over_plain_tcp_and_allowed_on_the_socket() {
    let r = tokio::task::spawn_blocking(rig).await.unwrap();
    let over_tcp = call_every_rpc(channel(&r.tcp).await).await;
    let over_unix = call_every_rpc(channel(&r.server).await).await;
    let mut admin = 0;
    for ((method, role), ((_, tcp), (_, unix))) in
        METHODS.iter().zip(over_tcp.iter().zip(over_unix.iter()))
    {
        match role {
            maglev_access::Role::Admin => {
                admin += 1;
                assert_eq!(
                    *tcp,
                    Some(tonic::Code::PermissionDenied),
                    "{method} over plain TCP"
                );
            }
            maglev_access::Role::Read => {
                assert_ne!(
                    *tcp,
                    Some(tonic::Code::PermissionDenied),
                    "{method} over TCP"
                )
            }
        }
        assert_ne!(
            *unix,
            Some(tonic::Code::PermissionDenied),
            "{method} over the unix socket (this user owns it)"
        );
    }
    assert!(admin >= 8, "{over_tcp:?}");
    // Each refusal is one log line naming the method and the peer.
    let log = r.log();
    let denied: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("event=grpc-denied"))
        .collect();
    assert_eq!(denied.len(), admin, "{log}");
    assert!(
        denied
            .iter()
            .any(|l| l.contains("method=PauseBackend") && l.contains("peer=\"tcp 127.0.0.1:")),
        "{log}"
    );
}

#[test]
fn maglevc_over_tcp_reads_and_may_not_change() {
    let r = rig();
    let tcp = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_maglevc"));
        c.args(["--server", &r.tcp, "--color", "false"]).args(args);
        c.output().unwrap()
    };
    let o = tcp(&["show", "frontends"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = tcp(&["set", "backend", "s1", "pause"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("PauseBackend needs the admin role; this connection (tcp 127.0.0.1:"),
        "{}",
        text(&o)
    );
    // The same over the socket.
    let o = r.run(&["set", "backend", "s1", "pause"]);
    assert!(o.status.success(), "{}", text(&o));
}

/// A raw TLS connection: the certificate the server presents.
async fn presented_certificate(port: u16, ca: &std::path::Path) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for c in maglev_access::tls::read_certs(ca).unwrap() {
        roots.add(c).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    // Without a client certificate the server refuses after the
    // handshake; its certificate is known by then.
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn mtls_roles_refusals_and_certificate_rotation() {
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::new(pki.path(), "maglev");
    let server = ca.issue("server", "maglevd", &["localhost", "127.0.0.1"]);
    let admin = ca.issue("admin", "ops-admin", &["ops-admin.example.com"]);
    let reader = ca.issue("reader", "dashboard", &[]);
    let rogue_ca = Ca::new(pki.path(), "rogue");
    let rogue = rogue_ca.issue("rogue", "ops-admin", &[]);
    let p = |f: &std::path::Path| f.display().to_string();
    let r = rig_with(Setup {
        // A bare address is TLS once a certificate is set.
        grpc_addr: "127.0.0.1:{port}".to_string(),
        extra: vec![
            "--tls-cert".into(),
            p(&server.cert),
            "--tls-key".into(),
            p(&server.key),
            "--tls-client-ca".into(),
            p(&ca.cert()),
            "--admin-client".into(),
            "ops-*".into(),
        ],
        server: "localhost:{port}".to_string(),
        client: vec![
            "--tls-ca".into(),
            p(&ca.cert()),
            "--tls-cert".into(),
            p(&admin.cert),
            "--tls-key".into(),
            p(&admin.key),
        ],
    });
    let as_client = |flags: &[String], args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_maglevc"));
        c.args(["--server", &r.server, "--color", "false"])
            .args(flags)
            .args(args);
        c.output().unwrap()
    };
    let with = |leaf: &maglev_testkit::certs::Leaf, trust: &std::path::Path| {
        vec![
            "--tls-ca".to_string(),
            p(trust),
            "--tls-cert".to_string(),
            p(&leaf.cert),
            "--tls-key".to_string(),
            p(&leaf.key),
        ]
    };
    // Admin by certificate name.
    let o = r.run(&["set", "backend", "s1", "pause"]);
    assert!(o.status.success(), "{}", text(&o));
    // A valid certificate whose name matches no pattern: read-only.
    let o = as_client(&with(&reader, &ca.cert()), &["show", "frontends"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = as_client(
        &with(&reader, &ca.cert()),
        &["set", "backend", "s1", "resume"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("needs the admin role; this connection (tls dashboard 127.0.0.1:"),
        "{}",
        text(&o)
    );
    // No client certificate, one from another CA, a server the client
    // cannot verify, plain TCP to a TLS port: no connection at all.
    let no_cert = vec!["--tls-ca".to_string(), p(&ca.cert())];
    let wrong_trust = with(&admin, &rogue_ca.cert());
    for (what, flags) in [
        ("no client certificate", no_cert),
        (
            "a client certificate from another CA",
            with(&rogue, &ca.cert()),
        ),
        ("a client that trusts another CA", wrong_trust),
        ("plain TCP", vec![]),
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_maglevc"));
        let server = if what == "plain TCP" {
            r.tcp.clone()
        } else {
            r.server.clone()
        };
        c.args(["--server", &server, "--color", "false"])
            .args(&flags)
            .args(["show", "frontends"]);
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{what}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        let why = if what == "plain TCP" {
            // The TCP connection is made; the server hangs up on the
            // HTTP/2 preface, which is not a TLS hello.
            "transport error: "
        } else {
            "cannot reach maglevd at "
        };
        assert!(err.contains(why), "{what}: {}", text(&o));
        eprintln!("{what}: {}", err.trim());
    }
    // Rotation: new files, SIGHUP, the listener stays and new connections
    // get the new certificate; a connection made before keeps working.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port: u16 = r.tcp.rsplit_once(':').unwrap().1.parse().unwrap();
    assert_eq!(
        rt.block_on(presented_certificate(port, &ca.cert())),
        server.der
    );
    let tls = maglev_access::tls::ClientTls {
        ca: Some(ca.cert()),
        cert: Some(admin.cert.clone()),
        key: Some(admin.key.clone()),
        server_name: None,
    };
    let mut before = rt.block_on(async {
        maglev_proto::maglev_client::MaglevClient::new(
            maglev_access::dial::dial(&r.server, &tls).await.unwrap(),
        )
    });
    let renewed = ca.issue("server", "maglevd", &["localhost", "127.0.0.1"]);
    assert_ne!(renewed.der, server.der);
    r.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.block_on(presented_certificate(port, &ca.cert())) != renewed.der {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never presented:\n{}",
            r.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(r.log().contains("event=tls-reloaded"), "{}", r.log());
    rt.block_on(before.list_frontends(maglev_proto::ListFrontendsRequest {}))
        .expect("a connection made before the rotation still answers");
    let o = r.run(&["show", "frontends"]);
    assert!(o.status.success(), "{}", text(&o));
}

/// Runs maglevc as another user (uid, gid, supplementary groups).
fn maglevc_as(r: &Rig, uid: u32, groups: &[u32], args: &[&str]) -> Output {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"));
    if groups.is_empty() {
        c.arg("--clear-groups");
    } else {
        let g: Vec<String> = groups.iter().map(u32::to_string).collect();
        c.arg(format!("--groups={}", g.join(",")));
    }
    c.arg(env!("CARGO_BIN_EXE_maglevc"))
        .args(["--server", &r.server, "--color", "false"])
        .args(args)
        .env("HOME", "/nonexistent");
    c.output().unwrap()
}

fn can_switch_users() -> bool {
    let root = nix_is_root();
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !(root && setpriv) {
        eprintln!("*** SKIPPED: switching users needs root and setpriv ***");
    }
    root && setpriv
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

// Numeric ids nobody uses: setpriv needs no passwd entry, so the test
// leaves the machine's users and groups as they were.
const OUTSIDER: u32 = 47_001;
const MEMBER: u32 = 47_002;
const OPERATORS: u32 = 47_010;

#[test]
fn unix_socket_mode_and_group_decide_who_connects_and_who_is_admin() {
    if !can_switch_users() {
        return;
    }
    let setup = |mode: &str| Setup {
        grpc_addr: "unix:{dir}/maglevd.sock,127.0.0.1:{port}".to_string(),
        extra: vec![
            "--grpc-socket-group".into(),
            OPERATORS.to_string(),
            "--grpc-socket-mode".into(),
            mode.into(),
        ],
        ..Setup::default()
    };
    let r = rig_with(setup("0660"));
    std::fs::set_permissions(r.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = std::fs::metadata(r.dir().join("maglevd.sock")).unwrap();
    assert_eq!(sock.permissions().mode() & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&sock), OPERATORS);
    // Outside the group: the kernel refuses the connection.
    let o = maglevc_as(&r, OUTSIDER, &[], &["show", "frontends"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("ermission denied"),
        "{}",
        text(&o)
    );
    // In the group (supplementary): admin.
    let o = maglevc_as(&r, MEMBER, &[OPERATORS], &["set", "backend", "s1", "pause"]);
    assert!(o.status.success(), "{}", text(&o));
    // A socket everyone may open: others read, and only read.
    let r = rig_with(setup("0666"));
    std::fs::set_permissions(r.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = maglevc_as(&r, OUTSIDER, &[], &["show", "frontends"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = maglevc_as(&r, OUTSIDER, &[], &["set", "backend", "s1", "pause"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains(&format!("this connection (unix uid={OUTSIDER} pid=")),
        "{}",
        text(&o)
    );
}

#[test]
fn metrics_over_tls_count_refusals() {
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::new(pki.path(), "maglev");
    let server = ca.issue("server", "maglevd", &["localhost", "127.0.0.1"]);
    let metrics_port = common::free_port();
    let p = |f: &std::path::Path| f.display().to_string();
    // gRPC: the socket (admin) and plain TCP (read); /metrics over TLS.
    let r = rig_with(Setup {
        grpc_addr: "unix:{dir}/maglevd.sock,http://127.0.0.1:{port}".to_string(),
        extra: vec![
            "--tls-cert".into(),
            p(&server.cert),
            "--tls-key".into(),
            p(&server.key),
            "--metrics-tls".into(),
            "--metrics-addr".into(),
            format!("127.0.0.1:{metrics_port}"),
        ],
        ..Setup::default()
    });
    let mut c = Command::new(env!("CARGO_BIN_EXE_maglevc"));
    c.args(["--server", &r.tcp, "set", "backend", "s1", "disable"]);
    assert_eq!(c.output().unwrap().status.code(), Some(1));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(
                maglev_access::tls::read_certs(&ca.cert())
                    .unwrap()
                    .remove(0),
            )
            .unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        // What curl offers.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", metrics_port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        let _ = tls.read_to_string(&mut body).await;
        body
    });
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("maglev_grpc_denied_total{method=\"DisableBackend\",needed=\"admin\"} 1"),
        "{body}"
    );
    // Plain HTTP to the TLS port gets nothing.
    let plain = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).and_then(|mut s| {
        use std::io::{Read, Write};
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        Ok(out)
    });
    assert!(
        !String::from_utf8_lossy(&plain.unwrap_or_default()).contains("maglev_build_info"),
        "metrics served in the clear on a TLS port"
    );
}
