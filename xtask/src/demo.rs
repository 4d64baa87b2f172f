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
    let daemon = Kill(
        Command::new(bin.join("maglevd"))
            .arg("--config")
            .arg(&config)
            .args(["--grpc-addr", GRPC])
            .arg("--vpp-api-addr")
            .arg(&api)
            .arg("--vpp-stats-addr")
            .arg(&stats)
            .spawn()
            .map_err(|e| format!("cannot start maglevd: {e}"))?,
    );
    let pid = daemon.0.id();
    eprintln!(
        "
==> maglev demo running (Ctrl-C stops everything)

  backends   web1 {b0}:{PORT}, web2 {b1}:{PORT} (flaps every {flap} s), web3 {b2}:{PORT}
  VPP        the simulator at {api}; it serves the VIP www at {VIP}
             like VPP's data plane would (Maglev table and flow hash)
  maglevd    gRPC on {GRPC} (pid {pid}), config {config}

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
",
        b0 = BACKENDS[0],
        b1 = BACKENDS[1],
        b2 = BACKENDS[2],
        flap = FLAP.as_secs(),
        api = api.display(),
        calls = calls.display(),
        config = config.display(),
        bin = bin.display(),
    );
    let mut daemon = daemon;
    let status = daemon.0.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("maglevd exited: {status}"))
    }
}
