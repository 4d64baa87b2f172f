//! The corpus of valid configs, and what they load into (defaults applied,
//! references resolved).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use maglev_config::{load_file, CheckSpec, Config, Family, HttpMethod, Loaded, Protocol};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/valid")
        .join(name)
}

fn load(path: &Path) -> Loaded {
    load_file(path).unwrap_or_else(|e| panic!("{} should be valid:\n{e}", path.display()))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn every_corpus_file_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/valid");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let loaded = load(&path);
        assert!(
            loaded.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            loaded.warnings
        );
        n += 1;
    }
    assert!(n >= 6, "corpus shrank to {n} files");
}

#[test]
fn example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/maglev.yaml");
    let loaded = load(&path);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = &loaded.config;
    assert_eq!(c.frontends.len(), 3);
    assert_eq!(c.healthchecks["web-https"].type_name(), "https");
    assert!(c.backends["dns-2"].healthcheck.is_none());
    assert_eq!(c.frontends["dns-v6"].protocol, Protocol::Any);
}

#[test]
fn minimal_gets_defaults() {
    let c: Config = load(&data("minimal.yaml")).config;
    assert_eq!(c.healthchecker.transition_history, 5);
    assert_eq!(c.healthchecker.netns, None);
    assert_eq!(c.lb.sync_interval, Duration::from_secs(30));
    assert_eq!(c.lb.startup_min_delay, Duration::from_secs(5));
    assert_eq!(c.lb.startup_max_delay, Duration::from_secs(30));
    assert_eq!(c.lb.sticky_buckets_per_core, None);
    assert_eq!(c.lb.flow_timeout, None);

    let hc = &c.healthchecks["web"];
    assert_eq!((hc.rise, hc.fall), (2, 3));
    assert_eq!(hc.interval, Duration::from_secs(2));
    assert_eq!(hc.fast_interval, hc.interval);
    assert_eq!(hc.down_interval, hc.interval);
    assert_eq!(hc.timeout, Duration::from_secs(1));
    let CheckSpec::Http(http) = &hc.spec else {
        panic!("http expected")
    };
    assert_eq!(http.port, 80);
    assert_eq!(http.path, "/");
    assert_eq!(http.method, HttpMethod::Get);
    assert!(http.response_codes.contains(200) && http.response_codes.contains(399));
    assert!(!http.response_codes.contains(404));
    assert!(http.tls.is_none() && http.host.is_none() && http.response_regex.is_none());

    let b = &c.backends["web1"];
    assert!(b.enabled);
    assert_eq!(b.healthcheck.as_deref(), Some(&**hc));

    let f = &c.frontends["www"];
    assert_eq!(f.protocol, Protocol::Tcp, "a port without protocol is tcp");
    assert_eq!(f.new_flows_table_length, 1024);
    assert!(f.flush_on_down && !f.src_ip_sticky);
    assert_eq!(f.description, "");
    assert_eq!(f.backend_family, Family::V4);
    assert_eq!(f.pools[0].backends[0].weight, 100);
}

#[test]
fn ipv6_only() {
    let c = load(&data("ipv6-only.yaml")).config;
    assert_eq!(c.frontends["www6"].backend_family, Family::V6);
    assert_eq!(c.frontends["dns6"].protocol, Protocol::Udp);
    let CheckSpec::Http(http) = &c.healthchecks["https6"].spec else {
        panic!()
    };
    assert_eq!(http.port, 443);
    let tls = http.tls.as_ref().unwrap();
    assert_eq!(
        tls.server_name.as_deref(),
        Some("www.example.net"),
        "SNI defaults to host"
    );
    assert!(!tls.insecure);
}

#[test]
fn all_port_vips() {
    let c = load(&data("all-port.yaml")).config;
    for name in ["everything", "implicit"] {
        let f = &c.frontends[name];
        assert_eq!((f.protocol, f.port), (Protocol::Any, 0), "{name}");
        assert_eq!(f.protocol.number(), 255);
    }
}

#[test]
fn static_backends() {
    let c = load(&data("static.yaml")).config;
    assert!(c.backends["s1"].healthcheck.is_none());
    assert!(!c.backends["s2"].enabled);
    let pool = &c.frontends["static"].pools[0];
    let weights: Vec<(&str, u8)> = pool
        .backends
        .iter()
        .map(|m| (m.backend.as_str(), m.weight))
        .collect();
    assert_eq!(weights, [("s1", 60), ("s2", 0)]);
}

#[test]
fn go_style() {
    let c = load(&data("go-style.yaml")).config;
    assert_eq!(c.healthchecker.netns.as_deref(), Some("dataplane"));
    assert_eq!(c.lb.startup_min_delay, Duration::ZERO);
    assert_eq!(c.lb.startup_max_delay, Duration::from_secs(90));
    assert!(!c.backends["web-b1"].enabled, "enabled: no");
    assert!(c.frontends["www-v4"].flush_on_down, "flush-on-down: yes");
    assert_eq!(c.frontends["www-v4"].pools[1].name, "fallback");
    assert_eq!(c.backends["dns-1"].address, ip("2001:db8:10::53"));
    assert_eq!(c.healthchecks["web-http"].timeout, Duration::from_secs(3));
    assert_eq!(c.frontends_using("web-a2"), ["www-v4"]);
}

#[test]
fn merge_keys() {
    let c = load(&data("merge-keys.yaml")).config;
    let fast = &c.healthchecks["fast"];
    assert_eq!(fast.interval, Duration::from_secs(1));
    assert_eq!((fast.rise, fast.fall), (4, 4));
    assert_eq!(c.backends["b"].address, ip("192.0.2.2"));
    assert_eq!(c.backends["b"].healthcheck.as_ref().unwrap().name, "fast");
}

#[test]
fn reload_comparison_sees_equal_configs() {
    // The reload logic compares health checks by value; the same file
    // loaded twice must compare equal, regex included.
    let a = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/maglev.yaml")).config;
    let b = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/maglev.yaml")).config;
    assert_eq!(a, b);
}
