//! `cargo xtask demo`: maglevd with three local HTTP backends and the VPP
//! simulator, all on loopback, until Ctrl-C.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Backend addresses of `examples/demo.yaml`, and their port.
const BACKENDS: [&str; 3] = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];
const PORT: u16 = 18080;
const GRPC: &str = "127.0.0.1:9090";
/// The same API over TLS, with client certificates.
const GRPC_TLS: &str = "127.0.0.1:9443";
/// The dashboard (maglevd-frontend).
const WEB: &str = "127.0.0.1:8080";
/// The VIP of `examples/demo.yaml`, served by the simulator's data plane.
const VIP: &str = "127.0.0.80:18080";
/// web2 switches between healthy and failing this often.
const FLAP: Duration = Duration::from_secs(20);

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tiny HTTP server answering any path; `healthy` decides 200 or 503.
/// `X-IPng-Frontend` names it, for maglevt's tally.
fn serve(ip: &str, name: &str, healthy: Arc<AtomicBool>) -> Result<(), String> {
    let listener =
        TcpListener::bind((ip, PORT)).map_err(|e| format!("cannot listen on {ip}:{PORT}: {e}"))?;
    let name = name.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 2048];
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.read(&mut buf);
            let (status, body) = if healthy.load(Ordering::SeqCst) {
                ("200 OK", format!("ok from {name}\n"))
            } else {
                ("503 Service Unavailable", "flapping\n".to_string())
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nX-IPng-Frontend: {name}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(())
}

pub fn run(root: &Path, cargo: &dyn Fn(&[&str]) -> Result<(), String>) -> Result<(), String> {
    // Every binary once, so the commands printed below run at once.
    cargo(&[
        "build",
        "--quiet",
        "-p",
        "maglevd",
        "-p",
        "maglev-vppsim",
        "-p",
        "maglevc",
        "-p",
        "maglevt",
        "-p",
        "maglevd-frontend",
    ])?;
    let dir = root.join("target/demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // A copy to edit and reload, not the tracked example.
    let config = dir.join("maglev.yaml");
    std::fs::copy(root.join("examples/demo.yaml"), &config).map_err(|e| e.to_string())?;
    let api = dir.join("api.sock");
    let stats = dir.join("stats.sock");
    let calls = dir.join("vpp-calls.log");

    let flapping = Arc::new(AtomicBool::new(true));
    for (i, ip) in BACKENDS.iter().enumerate() {
        let healthy = if i == 1 {
            Arc::clone(&flapping)
        } else {
            Arc::new(AtomicBool::new(true))
        };
        serve(ip, &format!("web{}", i + 1), healthy)?;
    }
    let f = Arc::clone(&flapping);
    std::thread::spawn(move || loop {
        std::thread::sleep(FLAP);
        f.fetch_xor(true, Ordering::SeqCst);
    });

    let bin = root.join("target/debug");
    let _sim = Kill(
        Command::new(bin.join("maglev-vppsim"))
            .arg("--api-socket")
            .arg(&api)
            .arg("--stats-socket")
            .arg(&stats)
            .arg("--call-log")
            .arg(&calls)
            .arg("--dataplane")
            .spawn()
            .map_err(|e| format!("cannot start maglev-vppsim: {e}"))?,
    );
    for _ in 0..100 {
        if api.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let tls = dir.join("tls");
    let pki = make_pki(&tls)?;
    let socket = dir.join("maglevd.sock");
    let daemon = Kill(
        Command::new(bin.join("maglevd"))
            .arg("--config")
            .arg(&config)
            .arg("--grpc-addr")
            .arg(format!(
                "unix:{},http://{GRPC},https://{GRPC_TLS}",
                socket.display()
            ))
            // The demo's plain TCP port may change things: convenient on
            // loopback, never on a real host (see docs/security.md).
            .arg("--insecure-admin-tcp")
            .arg("--tls-cert")
            .arg(&pki.server_cert)
            .arg("--tls-key")
            .arg(&pki.server_key)
            .arg("--tls-client-ca")
            .arg(&pki.ca)
            .args(["--admin-client", "demo-admin"])
            .arg("--vpp-api-addr")
            .arg(&api)
            .arg("--vpp-stats-addr")
            .arg(&stats)
            .spawn()
            .map_err(|e| format!("cannot start maglevd: {e}"))?,
    );
    let pid = daemon.0.id();
    // A throwaway admin password for this run of the dashboard.
    let password = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64 ^ u64::from(pid))
    );
    let _web = Kill(
        Command::new(bin.join("maglevd-frontend"))
            .arg("--server")
            .arg(format!("demo=unix:{}", socket.display()))
            .args(["--listen", WEB])
            .env("MAGLEV_FRONTEND_USER", "admin")
            .env("MAGLEV_FRONTEND_PASSWORD", &password)
            .env_remove("MAGLEV_FRONTEND_PASSWORD_HASH")
            .spawn()
            .map_err(|e| format!("cannot start maglevd-frontend: {e}"))?,
    );
    eprintln!(
        "
==> maglev demo running (Ctrl-C stops everything)

  backends   web1 {b0}:{PORT}, web2 {b1}:{PORT} (flaps every {flap} s), web3 {b2}:{PORT}
  VPP        the simulator at {api}; it serves the VIP www at {VIP}
             like VPP's data plane would (Maglev table and flow hash)
  maglevd    gRPC on {GRPC} (pid {pid}), config {config}
             plain TCP here is admin because of --insecure-admin-tcp (a
             demo convenience: without it plain TCP may only read); also
             unix:{socket} (admin for this user) and TLS on
             {GRPC_TLS} (admin with the client certificate {tls}/admin.pem,
             read-only with {tls}/reader.pem)
  dashboard  http://{WEB}/view/ (read-only), http://{WEB}/admin/
             (user admin, password {password}: actions and the event log)

Try, in another terminal (ready to paste; nothing to build):
  tail -f {calls}                             # every VPP call maglevd makes
  {bin}/maglevc --server {GRPC} show frontend www
  {bin}/maglevc --server {GRPC} watch events
  {bin}/maglevc --server {GRPC} set backend web1 disable   # drained and flushed
  {bin}/maglevc --server {GRPC} sync vpp lb state --dry-run
  {bin}/maglevc --server {GRPC}               # the shell: Tab and ? help
  {bin}/maglevt --config {config}             # the VIP from outside
  curl -si http://{VIP}/ | grep X-IPng        # one flow, one backend
  $EDITOR {config} && kill -HUP {pid}         # reload: a broken file is refused
  grpcurl -plaintext {GRPC} list              # reflection v1 and v1alpha (grpcurl, grpcui)
  {bin}/maglevc --server unix:{socket} show backends
  {bin}/maglevc --server {GRPC_TLS} --tls-ca {tls}/ca.pem \
      --tls-cert {tls}/admin.pem --tls-key {tls}/admin.key set backend web1 enable
  {bin}/maglevc --server {GRPC_TLS} --tls-ca {tls}/ca.pem \
      --tls-cert {tls}/reader.pem --tls-key {tls}/reader.key set backend web1 disable  # refused
",
        b0 = BACKENDS[0],
        b1 = BACKENDS[1],
        b2 = BACKENDS[2],
        flap = FLAP.as_secs(),
        api = api.display(),
        calls = calls.display(),
        config = config.display(),
        bin = bin.display(),
        socket = socket.display(),
        tls = tls.display(),
    );
    let mut daemon = daemon;
    let status = daemon.0.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("maglevd exited: {status}"))
    }
}

/// The demo's throwaway PKI: a CA, maglevd's certificate for 127.0.0.1
/// and localhost, and two client certificates (`demo-admin` is admin by
/// `--admin-client`, `demo-reader` is not).
struct Pki {
    ca: std::path::PathBuf,
    server_cert: std::path::PathBuf,
    server_key: std::path::PathBuf,
}

fn make_pki(dir: &Path) -> Result<Pki, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let e = |e: rcgen::Error| format!("demo certificates: {e}");
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "maglev demo CA (throwaway)");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().map_err(e)?).map_err(e)?;
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))
    };
    write("ca.pem", ca.pem())?;
    for (file, cn, sans) in [
        (
            "server",
            "maglevd demo",
            vec!["localhost".to_string(), "127.0.0.1".to_string()],
        ),
        ("admin", "demo-admin", vec![]),
        ("reader", "demo-reader", vec![]),
    ] {
        let mut p = CertificateParams::new(sans).map_err(e)?;
        p.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().map_err(e)?;
        let cert = p.signed_by(&key, &ca).map_err(e)?;
        write(&format!("{file}.pem"), cert.pem())?;
        write(&format!("{file}.key"), key.serialize_pem())?;
    }
    Ok(Pki {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    })
}
