//! Probes run inside `healthchecker.netns`: a namespace made by the test,
//! with a server listening only in there.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::Command;

use maglev_health::{Code, Prober};

struct Netns(String);

impl Netns {
    fn create() -> Option<Netns> {
        let name = format!("maglev-test-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("\n*** SKIPPED netns test: `ip netns add` not permitted here ***\n");
            return None;
        }
        let ns = Netns(name);
        let up = Command::new("ip")
            .args(["-n", &ns.0, "link", "set", "lo", "up"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(up, "cannot bring lo up in {}", ns.0);
        Some(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A listener created inside the namespace (sockets keep their namespace).
fn listener_in(ns: &str) -> std::net::TcpListener {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(path).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        std::net::TcpListener::bind("127.0.0.1:0").unwrap()
    })
    .join()
    .unwrap()
}

#[tokio::test]
async fn probes_use_the_namespace() {
    let Some(ns) = Netns::create() else { return };
    let listener = listener_in(&ns.0);
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move {
        loop {
            let _ = listener.accept().await;
        }
    });
    let yaml = format!(
        "maglev:\n  healthchecker: {{ netns: {} }}\n  vpp: {{ lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' }} }}\n\
         \x20 healthchecks: {{ t: {{ type: tcp, port: {port} }}, p: {{ type: icmp }} }}\n\
         \x20 backends: {{ b: {{ address: 127.0.0.1, healthcheck: t }}, c: {{ address: 127.0.0.2, healthcheck: p }} }}\n\
         \x20 frontends: {{ f: {{ address: 203.0.113.1, port: 80, pools: [ {{ name: p, backends: {{ b: {{}}, c: {{}} }} }} ] }} }}\n",
        ns.0
    );
    let cfg = maglev_config::load_str(&yaml, "t.yaml").unwrap().config;
    let target: IpAddr = "127.0.0.1".parse().unwrap();

    let inside = Prober::new(cfg.healthchecker.netns.as_deref(), "ua").unwrap();
    let r = inside.probe_for(&cfg.healthchecks["t"]).check(target).await;
    assert_eq!(r.code, Code::L4Ok, "the server is reachable inside: {r:?}");
    let r = inside
        .probe_for(&cfg.healthchecks["p"])
        .check("127.0.0.2".parse().unwrap())
        .await;
    assert_eq!(r.code, Code::L3Ok, "ICMP inside: {r:?}");

    let outside = Prober::new(None, "ua").unwrap();
    let r = outside
        .probe_for(&cfg.healthchecks["t"])
        .check(target)
        .await;
    assert_eq!(
        r.code,
        Code::L4Con,
        "nothing listens on the host side: {r:?}"
    );
}
