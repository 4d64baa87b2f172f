//! `cargo xtask fuzz [--seconds N] [TARGET…]`: mutation fuzzing on stable
//! Rust. For each target, every corpus file runs first (the regressions),
//! then mutants of them for the time given. A panic, or an input slower
//! than 2 s, fails the run; the input is saved under
//! `target/fuzz/crashes/TARGET-*` to become a corpus file and a test.
//! (A stack overflow aborts the process: the input being run is always in
//! `target/fuzz/current-TARGET`.)

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use maglev_fuzz::{Target, TARGETS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SLOW: Duration = Duration::from_secs(2);
const MAX_LEN: usize = 256 << 10;

fn corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|f| std::fs::read(f).ok()).collect()
}

/// Tokens worth splicing in: the syntax the parsers branch on.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b": ",
    b"- ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"&a ",
    b"*a",
    b"<<: ",
    b"'",
    b"\"",
    b"#",
    b"0",
    b"-1",
    b"4294967296",
    b"9223372036854775807s",
    b"1e999",
    b"::",
    b"255.255.255.255",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"\x7f\xff\xff\xff",
    b"buckets",
    b"flows",
    b"protocol:",
    b"port:",
    b"new_size:",
    b" removed",
    b"weight:",
];

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>], input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=8) {
        let len = out.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] = rng.random();
            }
            2 => {
                let i = rng.random_range(0..=len);
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                out.splice(i..i, t.iter().copied());
            }
            3 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..=len.min(a + 64));
                out.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..=len.min(a + 256));
                let chunk = out[a..b].to_vec();
                let at = rng.random_range(0..=out.len());
                for _ in 0..rng.random_range(1..=16) {
                    out.splice(at..at, chunk.iter().copied());
                }
            }
            5 if !seeds.is_empty() => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                if !other.is_empty() {
                    let a = rng.random_range(0..other.len());
                    let b = rng.random_range(a..=other.len());
                    let at = rng.random_range(0..=out.len());
                    out.splice(at..at, other[a..b].iter().copied());
                }
            }
            _ => {
                let i = rng.random_range(0..=len);
                let n: u32 = rng.random();
                out.splice(i..i, n.to_ne_bytes());
            }
        }
        out.truncate(MAX_LEN);
    }
    out
}

/// Runs one input; `Err` with why it failed.
fn run_one(target: &Target, input: &[u8], current: &Path) -> Result<(), String> {
    let _ = std::fs::write(current, input);
    let t = Instant::now();
    let r = std::panic::catch_unwind(|| (target.run)(input));
    let took = t.elapsed();
    match r {
        Err(_) => Err("panicked".to_string()),
        Ok(()) if took > SLOW => Err(format!("took {took:?}")),
        Ok(()) => Ok(()),
    }
}

fn main() -> std::process::ExitCode {
    let mut seconds = 10.0f64;
    let mut names = Vec::new();
    let mut seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds),
            "--seed" => seed = args.next().and_then(|s| s.parse().ok()).unwrap_or(seed),
            n => names.push(n.to_string()),
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("../target/fuzz");
    let _ = std::fs::create_dir_all(out.join("crashes"));
    // Quiet panics: a panic is reported once, with its input.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = false;
    for target in TARGETS
        .iter()
        .filter(|t| names.is_empty() || names.iter().any(|n| n == t.name))
    {
        let mut seeds = (target.seeds)();
        seeds.extend(corpus(&root.join("corpus").join(target.name)));
        let current = out.join(format!("current-{}", target.name));
        let mut rng = StdRng::seed_from_u64(seed ^ target.name.len() as u64);
        let fail = |input: &[u8], why: String| {
            let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
            });
            let path = out
                .join("crashes")
                .join(format!("{}-{hash:016x}", target.name));
            let _ = std::fs::write(&path, input);
            eprintln!(
                "fuzz {}: {why}; input saved as {}",
                target.name,
                path.display()
            );
        };
        let mut runs = 0u64;
        let mut target_failed = false;
        for s in &seeds {
            runs += 1;
            if let Err(why) = run_one(target, s, &current) {
                fail(s, format!("corpus file {why}"));
                target_failed = true;
            }
        }
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        while !target_failed && Instant::now() < deadline {
            let base: &[u8] = if seeds.is_empty() {
                &[]
            } else {
                &seeds[rng.random_range(0..seeds.len())]
            };
            let input = mutate(&mut rng, &seeds, base);
            runs += 1;
            if let Err(why) = run_one(target, &input, &current) {
                fail(&input, why);
                target_failed = true;
            }
        }
        eprintln!(
            "fuzz {}: {runs} inputs ({} seeds and corpus files), seed {seed}: {}",
            target.name,
            seeds.len(),
            if target_failed { "FAILED" } else { "ok" }
        );
        failed |= target_failed;
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
