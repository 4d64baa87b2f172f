//! `cargo xtask bench config`: how loading scales with the input, on the
//! shapes that were once quadratic (a 64k-member pool took 28 s, 2,800
//! frontends on one address 12 s and 3.9 M error lines, 120 KB of nested
//! flow sequences 15 s). Each case runs at two sizes, the second twice the
//! first; a ratio near 2 is linear, near 4 quadratic. Best of 3 runs.

use std::time::{Duration, Instant};

const HEAD: &str = "maglev:\n  vpp:\n    lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' }\n";

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

/// One frontend whose single pool has `n` members.
fn big_pool(n: usize) -> String {
    let mut y = format!("{HEAD}  backends:\n");
    for i in 0..n {
        y.push_str(&format!("    b{i}: {{ address: {} }}\n", ip(i)));
    }
    y.push_str("  frontends:\n    www:\n      address: 192.0.2.1\n      port: 80\n      new-flows-table-length: 16777216\n      pools:\n        - name: p\n          backends:\n");
    for i in 0..n {
        y.push_str(&format!("            b{i}: {{}}\n"));
    }
    y
}

/// `n` frontends on one address and port: every one conflicts.
fn conflicts(n: usize) -> String {
    let mut y = format!("{HEAD}  backends:\n    b: {{ address: 10.0.0.1 }}\n  frontends:\n");
    for i in 0..n {
        y.push_str(&format!(
            "    f{i}: {{ address: 192.0.2.1, port: 80, pools: [ {{ name: p, backends: {{ b: {{}} }} }} ] }}\n"
        ));
    }
    y
}

/// `n` frontends of 64 backends each (the reconciler bench's shape).
fn many_frontends(n: usize) -> String {
    let mut y = format!("{HEAD}  backends:\n");
    for i in 0..n * 64 {
        y.push_str(&format!("    b{i}: {{ address: {} }}\n", ip(i)));
    }
    y.push_str("  frontends:\n");
    for f in 0..n {
        let members: Vec<String> = (0..64).map(|a| format!("b{}: {{}}", f * 64 + a)).collect();
        y.push_str(&format!(
            "    f{f}: {{ address: {}, port: 80, new-flows-table-length: 8192, pools: [ {{ name: p, backends: {{ {} }} }} ] }}\n",
            ip(f + (1 << 20)),
            members.join(", ")
        ));
    }
    y
}

/// A flow sequence nested `n` deep: refused at depth 32.
fn deep_flow(n: usize) -> String {
    format!("maglev: {}{}\n", "[".repeat(n), "]".repeat(n))
}

fn best_of_3(text: &str) -> (Duration, String) {
    let mut best = Duration::MAX;
    let mut outcome = String::new();
    for _ in 0..3 {
        let t = Instant::now();
        let r = maglev_config::load_str(text, "bench.yaml");
        best = best.min(t.elapsed());
        outcome = match r {
            Ok(l) => format!("ok, {} warnings", l.warnings.len()),
            Err(e) => format!("refused, {} lines", e.to_string().lines().count()),
        };
    }
    (best, outcome)
}

fn main() {
    type Case = (&'static str, fn(usize) -> String, usize);
    let cases: [Case; 4] = [
        ("pool of N members", big_pool, 32_768),
        ("N frontends on one address", conflicts, 1_400),
        ("N frontends x 64 backends", many_frontends, 500),
        ("flow sequences N deep", deep_flow, 30_000),
    ];
    println!("| case | N | input | time | outcome | 2N time | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for (name, make, n) in cases {
        let small = make(n);
        let big = make(2 * n);
        let (t1, o1) = best_of_3(&small);
        let (t2, _) = best_of_3(&big);
        println!(
            "| {name} | {n} | {} KB | {:.1} ms | {o1} | {:.1} ms | {:.2} |",
            small.len() / 1024,
            t1.as_secs_f64() * 1e3,
            t2.as_secs_f64() * 1e3,
            t2.as_secs_f64() / t1.as_secs_f64()
        );
    }
}
