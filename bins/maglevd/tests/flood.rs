//! An outage anyone who can reach the ports could cause: a flood of idle
//! connections to `/metrics` and to the gRPC port used to take every file
//! descriptor, every probe then failed, every backend went down and
//! maglevd wrote weight 0 for all of them into VPP. Now the listeners take
//! a bounded number of connections (the rest wait in the kernel's
//! backlog) and a probe that fails for a local reason moves nothing.

use std::process::{Command, Stdio};
use std::time::Duration;

use maglev_testkit::{eventually, free_port, Kill};
use maglev_vppsim::{SimOptions, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BACKENDS: usize = 20;

fn weights(sim: &Simulator) -> Vec<u8> {
    let lb = sim.lb();
    let w = lb
        .live_vips()
        .flat_map(|v| v.ases.iter().filter(|a| a.used).map(|a| a.weight))
        .collect();
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_floods_take_no_backend_down() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Backends answering HTTP on 127.0.9.x.
    let mut yaml = format!(
        "maglev:
  vpp:
    lb:
      ipv4-src-address: 198.51.100.1
      ipv6-src-address: '2001:db8::1'
      sync-interval: 1s
      startup-min-delay: 0
      startup-max-delay: 0
  healthchecks:
    web: {{ type: http, port: {port}, interval: 100ms, fast-interval: 100ms, down-interval: 100ms, timeout: 500ms, rise: 1, fall: 2 }}
  backends:
"
    );
    for i in 0..BACKENDS {
        let ip = format!("127.0.9.{}", 10 + i);
        yaml.push_str(&format!(
            "    b{i}: {{ address: {ip}, healthcheck: web }}\n"
        ));
        let l = tokio::net::TcpListener::bind((ip.as_str(), port))
            .await
            .unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                });
            }
        });
    }
    yaml.push_str("  frontends:\n    www:\n      address: 127.0.9.1\n      port: 80\n      pools:\n        - name: p\n          backends: {");
    let members: Vec<String> = (0..BACKENDS).map(|i| format!("b{i}: {{}}")).collect();
    yaml.push_str(&members.join(", "));
    yaml.push_str("}\n");
    let cfg = dir.path().join("maglev.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let api = dir.path().join("api.sock");
    let sim = Simulator::start(SimOptions {
        api_socket: api.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let grpc = free_port();
    let metrics = free_port();
    // A hard limit of 1,024 descriptors, which maglevd cannot raise: the
    // flood below is larger than that.
    let maglevd = Kill(
        Command::new("bash")
            .arg("-c")
            .arg(format!(
                "ulimit -n 1024 && exec {} --config {} --grpc-addr 127.0.0.1:{grpc} --insecure-admin-tcp --metrics-addr 127.0.0.1:{metrics} --vpp-stats-addr '' --vpp-api-addr {}",
                env!("CARGO_BIN_EXE_maglevd"),
                cfg.display(),
                api.display()
            ))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually("every backend up in VPP", Duration::from_secs(15), || {
        let w = weights(&sim);
        w.len() == BACKENDS && w.iter().all(|w| *w == 100)
    })
    .await;

    // 1,100 idle connections to each listener, held open.
    let mut flood = Vec::new();
    for p in [metrics, grpc] {
        for _ in 0..1100 {
            let connect = tokio::net::TcpStream::connect(("127.0.0.1", p));
            match tokio::time::timeout(Duration::from_millis(300), connect).await {
                Ok(Ok(s)) => flood.push(s),
                // The backlog is full: connecting blocks or fails; enough.
                _ => break,
            }
        }
    }
    // Whatever the client managed to open, maglevd holds no more than its
    // caps (64 + 256) plus its own: well under the 1,024 it has.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", maglevd.0.id()))
        .unwrap()
        .count();
    assert!(fds < 500, "maglevd holds {fds} descriptors under the flood");
    // Ten probe rounds and more with the flood in place: nothing moves.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let w = weights(&sim);
        assert!(
            w.len() == BACKENDS && w.iter().all(|w| *w == 100),
            "a backend went down under the flood: {w:?}"
        );
    }
    drop(flood);
    // And the API answers again once the flood is gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ok = tokio::time::timeout(Duration::from_secs(2), async {
            let mut c = maglev_proto::maglev_client::MaglevClient::connect(format!(
                "http://127.0.0.1:{grpc}"
            ))
            .await
            .ok()?;
            c.list_backends(maglev_proto::ListBackendsRequest::default())
                .await
                .ok()
        })
        .await
        .ok()
        .flatten();
        if let Some(r) = ok {
            let r = r.into_inner();
            assert!(r.backends.iter().all(|b| b.state == "up"), "{r:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the API never answered again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
