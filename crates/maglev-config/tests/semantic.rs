//! One test per semantic rule: each edits a valid base config at one place
//! and asserts the exact error path and class.

mod common;

use common::*;

#[test]
fn base_is_valid() {
    let loaded = load_ok(&[]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn ipv4_src_address_required() {
    assert_one(
        &[remove("vpp.lb.ipv4-src-address")],
        "vpp.lb.ipv4-src-address",
        "required",
    );
}

#[test]
fn ipv6_src_address_required() {
    assert_one(
        &[remove("vpp.lb.ipv6-src-address")],
        "vpp.lb.ipv6-src-address",
        "required",
    );
}

#[test]
fn vpp_section_required() {
    let errors = semantic(&[remove("vpp")]);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["vpp.lb.ipv4-src-address", "vpp.lb.ipv6-src-address"]
    );
}

#[test]
fn src_addresses_of_the_right_family() {
    assert_one(
        &[set("vpp.lb.ipv4-src-address", "2001:db8::2")],
        "vpp.lb.ipv4-src-address",
        "not an IPv4 address",
    );
    assert_one(
        &[set("vpp.lb.ipv6-src-address", "192.0.2.1")],
        "vpp.lb.ipv6-src-address",
        "not an IPv6 address",
    );
}

#[test]
fn src_address_must_be_unicast() {
    assert_one(
        &[set("vpp.lb.ipv4-src-address", "0.0.0.0")],
        "vpp.lb.ipv4-src-address",
        "not a unicast address",
    );
}

#[test]
fn sync_interval_positive() {
    assert_one(
        &[set("vpp.lb.sync-interval", "0s")],
        "vpp.lb.sync-interval",
        "at least 1ms",
    );
}

#[test]
fn huge_durations_are_refused_at_load_not_at_run_time() {
    // These used to pass --check and then panic the daemon (Instant +
    // Duration overflow).
    assert_one(
        &[set("vpp.lb.sync-interval", "9223372036854775807s")],
        "vpp.lb.sync-interval",
        "out of range 1ms..24h",
    );
    for key in ["startup-min-delay", "startup-max-delay"] {
        let path = format!("vpp.lb.{key}");
        let mut edits = vec![set(&path, "100000000h")];
        if key == "startup-min-delay" {
            edits.push(set("vpp.lb.startup-max-delay", "1h"));
        }
        let errs = semantic(&edits);
        assert!(
            errs.iter()
                .any(|e| e.path == path && e.message.contains("out of range 0s..1h")),
            "{errs:#?}"
        );
    }
}

#[test]
fn sticky_buckets_power_of_two() {
    for bad in ["1000", "0", "-4"] {
        assert_one(
            &[set("vpp.lb.sticky-buckets-per-core", bad)],
            "vpp.lb.sticky-buckets-per-core",
            "power of two",
        );
    }
    let ok = load_ok(&[set("vpp.lb.sticky-buckets-per-core", "65536")]);
    assert_eq!(ok.config.lb.sticky_buckets_per_core, Some(65536));
}

#[test]
fn flow_timeout_whole_seconds_in_range() {
    assert_one(
        &[set("vpp.lb.flow-timeout", "1500ms")],
        "vpp.lb.flow-timeout",
        "whole number of seconds",
    );
    assert_one(
        &[set("vpp.lb.flow-timeout", "121s")],
        "vpp.lb.flow-timeout",
        "out of range 1s..120s",
    );
    assert_one(
        &[set("vpp.lb.flow-timeout", "0s")],
        "vpp.lb.flow-timeout",
        "out of range",
    );
    let ok = load_ok(&[set("vpp.lb.flow-timeout", "2m")]);
    assert_eq!(
        ok.config.lb.flow_timeout,
        Some(std::time::Duration::from_secs(120))
    );
}

#[test]
fn startup_max_not_below_min() {
    assert_one(
        &[
            set("vpp.lb.startup-min-delay", "10s"),
            set("vpp.lb.startup-max-delay", "5s"),
        ],
        "vpp.lb.startup-max-delay",
        "must not be less than",
    );
    // Only min given, above the default max: the error points at min.
    assert_one(
        &[set("vpp.lb.startup-min-delay", "40s")],
        "vpp.lb.startup-min-delay",
        "(30s)",
    );
    let ok = load_ok(&[
        set("vpp.lb.startup-min-delay", "0"),
        set("vpp.lb.startup-max-delay", "0"),
    ]);
    assert!(ok.config.lb.warmup_disabled());
}

#[test]
fn transition_history_at_least_one() {
    assert_one(
        &[set("healthchecker.transition-history", "0")],
        "healthchecker.transition-history",
        "out of range 1..",
    );
}

#[test]
fn healthcheck_reference_exists() {
    assert_one(
        &[set("backends.web1.healthcheck", "nope")],
        "backends.web1.healthcheck",
        "no such health check \"nope\"",
    );
}

#[test]
fn backend_address_required_and_unicast() {
    assert_one(
        &[remove("backends.web1.address")],
        "backends.web1.address",
        "required",
    );
    assert_one(
        &[set("backends.web1.address", "224.0.0.1")],
        "backends.web1.address",
        "unicast",
    );
}

#[test]
fn tcp_check_needs_port() {
    assert_one(
        &[set("healthchecks.web.type", "tcp")],
        "healthchecks.web.port",
        "required",
    );
}

#[test]
fn check_port_in_range() {
    assert_one(
        &[set("healthchecks.web.port", "0")],
        "healthchecks.web.port",
        "out of range 1..65535",
    );
    assert_one(
        &[set("healthchecks.web.port", "65536")],
        "healthchecks.web.port",
        "out of range",
    );
}

#[test]
fn rise_and_fall_at_least_one() {
    assert_one(
        &[set("healthchecks.web.rise", "0")],
        "healthchecks.web.rise",
        "out of range 1..",
    );
    assert_one(
        &[set("healthchecks.web.fall", "-1")],
        "healthchecks.web.fall",
        "out of range 1..",
    );
}

#[test]
fn intervals_and_timeout_positive() {
    for key in ["interval", "fast-interval", "down-interval", "timeout"] {
        let path = format!("healthchecks.web.{key}");
        assert_one(&[set(&path, "0s")], &path, "at least 1ms");
        assert_one(&[set(&path, "25h")], &path, "out of range 1ms..24h");
    }
}

#[test]
fn http_params_checked() {
    assert_one(
        &[set("healthchecks.web.params", "{path: healthz}")],
        "healthchecks.web.params.path",
        "must start with '/'",
    );
    // The probe sends path and Host as they are: only visible ASCII.
    assert_one(
        &[set("healthchecks.web.params", "{path: /héllo}")],
        "healthchecks.web.params.path",
        "be visible ASCII",
    );
    assert_one(
        &[set("healthchecks.web.params", "{path: /a b}")],
        "healthchecks.web.params.path",
        "no spaces",
    );
    assert_one(
        &[set("healthchecks.web.params", "{host: bücher.example}")],
        "healthchecks.web.params.host",
        "visible ASCII only",
    );
    assert_one(
        &[set("healthchecks.web.params", "{method: POST}")],
        "healthchecks.web.params.method",
        "not GET or HEAD",
    );
    assert_one(
        &[set(
            "healthchecks.web.params",
            "{response-codes: '200-abc'}",
        )],
        "healthchecks.web.params.response-codes",
        "not an HTTP status code",
    );
    assert_one(
        &[set(
            "healthchecks.web.params",
            "{response-codes: '299-200'}",
        )],
        "healthchecks.web.params.response-codes",
        "backwards",
    );
    assert_one(
        &[set("healthchecks.web.params", "{response-regex: 'ok('}")],
        "healthchecks.web.params.response-regex",
        "invalid regex",
    );
}

/// The TLS server name is what TLS can send: a DNS name or an IP
/// address; a Host header's port is not part of it.
#[test]
fn https_server_names_checked() {
    let https = set("healthchecks.web.type", "https");
    let l = load_ok(&[
        https,
        set("healthchecks.web.params", "{host: 'api.example.net:8443'}"),
    ]);
    let maglev_config::CheckSpec::Http(h) = &l.config.healthchecks["web"].spec else {
        panic!("not http");
    };
    assert_eq!(h.host.as_deref(), Some("api.example.net:8443"));
    assert_eq!(
        h.tls.as_ref().and_then(|t| t.server_name.as_deref()),
        Some("api.example.net")
    );
    for ok in ["10.0.0.1", "[2001:db8::1]:8443", "a-b.example"] {
        load_ok(&[
            https,
            set("healthchecks.web.params", &format!("{{host: '{ok}'}}")),
        ]);
    }
    assert_one(
        &[
            https,
            set("healthchecks.web.params", "{server-name: 'a..b'}"),
        ],
        "healthchecks.web.params.server-name",
        "not a TLS server name",
    );
    assert_one(
        &[https, set("healthchecks.web.params", "{host: 'a..b:8443'}")],
        "healthchecks.web.params.host",
        "not a TLS server name",
    );
    // A host that is no Host header is one error, not two.
    assert_one(
        &[
            https,
            set("healthchecks.web.params", "{host: bücher.example}"),
        ],
        "healthchecks.web.params.host",
        "visible ASCII only",
    );
    assert_one(
        &[
            set("healthchecks.web.type", "grpc"),
            set("healthchecks.web.port", "50051"),
            set(
                "healthchecks.web.grpc",
                "{authority: 'a..b:443', tls: true}",
            ),
        ],
        "healthchecks.web.grpc.authority",
        "not a TLS server name",
    );
}

#[test]
fn tls_params_only_for_https() {
    assert_one(
        &[set("healthchecks.web.params", "{insecure: true}")],
        "healthchecks.web.params.insecure",
        "only valid for type https",
    );
    assert_one(
        &[set("healthchecks.web.params", "{server-name: x.example}")],
        "healthchecks.web.params.server-name",
        "only valid for type https",
    );
}

#[test]
fn grpc_checks() {
    // A valid one, with every key.
    let l = load_ok(&[
        set("healthchecks.web.type", "grpc"),
        set("healthchecks.web.port", "50051"),
        set(
            "healthchecks.web.grpc",
            "{service: shop.Cart, authority: 'api.example.net:443', tls: true, insecure: false}",
        ),
    ]);
    let maglev_config::CheckSpec::Grpc(g) = &l.config.healthchecks["web"].spec else {
        panic!("not grpc");
    };
    assert_eq!((g.port, g.service.as_str()), (50051, "shop.Cart"));
    assert_eq!(
        g.tls.as_ref().and_then(|t| t.server_name.as_deref()),
        Some("api.example.net"),
        "the authority's host is the TLS server name"
    );
    assert_one(
        &[set("healthchecks.web.type", "grpc")],
        "healthchecks.web.port",
        "required for a grpc health check",
    );
    assert_one(
        &[
            set("healthchecks.web.type", "grpc"),
            set("healthchecks.web.port", "50051"),
            set("healthchecks.web.grpc", "{insecure: true}"),
        ],
        "healthchecks.web.grpc.insecure",
        "needs `tls: true`",
    );
    assert_one(
        &[
            set("healthchecks.web.type", "grpc"),
            set("healthchecks.web.port", "50051"),
            set("healthchecks.web.grpc", "{service: 'a b'}"),
        ],
        "healthchecks.web.grpc.service",
        "not a gRPC service name",
    );
    assert_one(
        &[
            set("healthchecks.web.type", "grpc"),
            set("healthchecks.web.port", "50051"),
            set("healthchecks.web.grpc", "{authority: 'x/y'}"),
        ],
        "healthchecks.web.grpc.authority",
        "not a host[:port]",
    );
    // What the call's URI cannot carry fails the load, not every probe.
    for (bad, tls) in [
        ("bücher.example:50051", false),
        ("bücher.example:50051", true),
        ("a b", false),
        ("h:1?x", false),
        ("h#x", true),
        ("user@h:1", false),
    ] {
        assert_one(
            &[
                set("healthchecks.web.type", "grpc"),
                set("healthchecks.web.port", "50051"),
                set(
                    "healthchecks.web.grpc",
                    &format!("{{authority: '{bad}', tls: {tls}}}"),
                ),
            ],
            "healthchecks.web.grpc.authority",
            "not a host[:port]",
        );
    }
    // `grpc:` on another type is a warning, not an error.
    let l = load_ok(&[set("healthchecks.web.grpc", "{service: x}")]);
    assert!(
        l.warnings.iter().any(|w| w.path == "healthchecks.web.grpc"),
        "{:?}",
        l.warnings
    );
}

#[test]
fn agent_checks() {
    let l = load_ok(&[set(
        "healthchecks.web.agent",
        "{port: 9777, interval: 10s, send: \"status\\n\"}",
    )]);
    let a = l.config.healthchecks["web"].agent.clone().unwrap();
    assert_eq!((a.port, a.send.as_str()), (9777, "status\n"));
    assert_eq!(a.interval, std::time::Duration::from_secs(10));
    // The interval defaults to the check's.
    let l = load_ok(&[set("healthchecks.web.agent", "{port: 9777}")]);
    assert_eq!(
        l.config.healthchecks["web"]
            .agent
            .as_ref()
            .unwrap()
            .interval,
        std::time::Duration::from_secs(2)
    );
    assert_one(
        &[set("healthchecks.web.agent", "{interval: 5s}")],
        "healthchecks.web.agent.port",
        "required",
    );
    assert_one(
        &[set("healthchecks.web.agent", "{port: 0}")],
        "healthchecks.web.agent.port",
        "out of range",
    );
}

#[test]
fn flap_damping() {
    let l = load_ok(&[set(
        "healthchecks.web.flap",
        "{max-transitions: 4, window: 2m, hold-down: 5m}",
    )]);
    let f = l.config.healthchecks["web"].flap.unwrap();
    assert_eq!(f.max_transitions, 4);
    assert_eq!(f.hold_down, std::time::Duration::from_secs(300));
    assert_one(
        &[set("healthchecks.web.flap", "{window: 2m, hold-down: 5m}")],
        "healthchecks.web.flap.max-transitions",
        "required",
    );
    assert_one(
        &[set(
            "healthchecks.web.flap",
            "{max-transitions: 0, window: 2m, hold-down: 5m}",
        )],
        "healthchecks.web.flap.max-transitions",
        "out of range 1..1000",
    );
    assert_one(
        &[set(
            "healthchecks.web.flap",
            "{max-transitions: 3, window: 1s, hold-down: 5m}",
        )],
        "healthchecks.web.flap.window",
        "shorter than the probe interval 2s",
    );
    assert_one(
        &[set(
            "healthchecks.web.flap",
            "{max-transitions: 3, window: 1m}",
        )],
        "healthchecks.web.flap.hold-down",
        "required",
    );
}

#[test]
fn names_are_words() {
    assert_one(
        &[set("backends.web 1", "{address: 192.0.2.99}")],
        "backends.web 1",
        "invalid backend name",
    );
}

#[test]
fn frontend_address_required() {
    assert_one(
        &[remove("frontends.www.address")],
        "frontends.www.address",
        "required",
    );
}

#[test]
fn frontend_port_in_range() {
    assert_one(
        &[set("frontends.www.port", "70000")],
        "frontends.www.port",
        "out of range 0..65535",
    );
}

#[test]
fn protocol_any_requires_port_zero() {
    assert_one(
        &[set("frontends.www.protocol", "any")],
        "frontends.www.protocol",
        "requires port 0",
    );
}

#[test]
fn table_length_power_of_two() {
    for bad in ["1000", "0", "33554432"] {
        assert_one(
            &[set("frontends.www.new-flows-table-length", bad)],
            "frontends.www.new-flows-table-length",
            "not a power of two",
        );
    }
}

#[test]
fn pools_required() {
    assert_one(
        &[remove("frontends.www.pools")],
        "frontends.www.pools",
        "at least one pool",
    );
    assert_one(
        &[set("frontends.www.pools", "[]")],
        "frontends.www.pools",
        "at least one pool",
    );
}

#[test]
fn pool_name_required() {
    assert_one(
        &[remove("frontends.www.pools[1].name")],
        "frontends.www.pools[1].name",
        "required",
    );
    assert_one(
        &[set("frontends.www.pools[1].name", "''")],
        "frontends.www.pools[1].name",
        "required",
    );
}

#[test]
fn pool_names_unique() {
    assert_one(
        &[set("frontends.www.pools[1].name", "primary")],
        "frontends.www.pools[1].name",
        "duplicate pool name \"primary\"",
    );
}

#[test]
fn pool_needs_backends() {
    assert_one(
        &[set("frontends.www.pools[1].backends", "{}")],
        "frontends.www.pools[1].backends",
        "at least one backend",
    );
}

#[test]
fn pool_backend_exists() {
    assert_one(
        &[set("frontends.www.pools[1].backends.web9", "{}")],
        "frontends.www.pools[1].backends.web9",
        "no such backend",
    );
}

#[test]
fn weight_in_range() {
    assert_one(
        &[set("frontends.www.pools[0].backends.web1", "{weight: 101}")],
        "frontends.www.pools[0].backends.web1.weight",
        "out of range 0..100",
    );
    assert_one(
        &[set("frontends.www.pools[0].backends.web1", "-1")],
        "frontends.www.pools[0].backends.web1.weight",
        "out of range",
    );
}

#[test]
fn backend_once_per_frontend() {
    assert_one(
        &[set("frontends.www.pools[1].backends.web1", "{}")],
        "frontends.www.pools[1].backends.web1",
        "already used by pool \"primary\"",
    );
}

#[test]
fn one_address_once_per_frontend() {
    assert_one(
        &[set("backends.web2.address", "192.0.2.11")],
        "frontends.www.pools[1].backends.web2",
        "same address 192.0.2.11",
    );
}

#[test]
fn one_family_per_frontend() {
    assert_one(
        &[set("frontends.www.pools[1].backends.web6", "{}")],
        "frontends.www.pools[1].backends.web6",
        "IPv6 backend in a frontend whose backends are IPv4",
    );
}

#[test]
fn vip_key_unique() {
    assert_one(
        &[
            set("frontends.www6.address", "203.0.113.80"),
            set("frontends.www6.port", "443"),
            set("frontends.www6.pools[0].backends", "{web2: {}}"),
            remove("frontends.www.pools[1]"),
        ],
        "frontends.www6.address",
        "same VIP (203.0.113.80 tcp port 443) as frontend \"www\"",
    );
}

#[test]
fn all_port_and_per_port_vips_do_not_mix() {
    assert_one(
        &[
            set("frontends.www6.address", "203.0.113.80"),
            set("frontends.www6.port", "0"),
            set("frontends.www6.pools[0].backends", "{web2: {}}"),
            remove("frontends.www.pools[1]"),
        ],
        "frontends.www6.address",
        "all-port VIP and a per-port VIP",
    );
}

#[test]
fn per_port_vips_on_one_address_share_encap() {
    assert_one(
        &[set("frontends.www6.address", "203.0.113.80")],
        "frontends.www6.address",
        "must share an encap",
    );
}

#[test]
fn every_problem_reported_in_file_order() {
    let errors = semantic(&[
        remove("vpp.lb.ipv4-src-address"),
        set("backends.web1.healthcheck", "nope"),
        set("frontends.www.port", "70000"),
        set("frontends.www.pools[1].backends.web9", "{}"),
    ]);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "vpp.lb.ipv4-src-address",
            "backends.web1.healthcheck",
            "frontends.www.port",
            "frontends.www.pools[1].backends.web9",
        ]
    );
    let lines: Vec<usize> = errors.iter().map(|e| e.location.unwrap().line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}

#[test]
fn warnings_do_not_fail() {
    let ok = load_ok(&[
        set("backends.spare", "{address: 192.0.2.99}"),
        set("healthchecks.unused", "{type: icmp, port: 7}"),
        set("frontends.www.protocol", "udp"),
        set("frontends.www.port", "0"),
    ]);
    let paths: Vec<&str> = ok.warnings.iter().map(|w| w.path.as_str()).collect();
    assert!(paths.contains(&"backends.spare"), "{paths:?}");
    assert!(paths.contains(&"healthchecks.unused"), "{paths:?}");
    assert!(paths.contains(&"healthchecks.unused.port"), "{paths:?}");
    assert!(paths.contains(&"frontends.www.protocol"), "{paths:?}");
    assert_eq!(
        ok.config.frontends["www"].protocol,
        maglev_config::Protocol::Any
    );
}

#[test]
fn thousands_of_one_mistake_are_reported_bounded_and_fast() {
    // 2,800 frontends on one address and port: 12 s, 1.39 GB and 3.9 M
    // error lines before; now one error per frontend, the first 100 shown.
    let mut text = String::from(
        "maglev:\n  vpp: { lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' } }\n  backends:\n    b: { address: 10.0.0.1 }\n  frontends:\n",
    );
    for i in 0..2800 {
        text.push_str(&format!(
            "    f{i}: {{ address: 192.0.2.1, port: 80, pools: [ {{ name: p, backends: {{ b: {{}} }} }} ] }}\n"
        ));
    }
    let t = std::time::Instant::now();
    let err = maglev_config::load_str(&text, "many.yaml").unwrap_err();
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
    let maglev_config::LoadError::Semantic(e) = err else {
        panic!("{err}");
    };
    assert_eq!(e.errors.len(), 101, "100 shown and a count");
    assert_eq!(e.errors[100].message, "2699 more errors not shown");
}
