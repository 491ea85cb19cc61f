//! A few seconds of every target inside `cargo test`: each seed as it is, then mutations of the seeds made
//! from a fixed seed, so the run is the same every time. This proves the targets and their oracles work and
//! the seeds are clean; finding bugs is the job of `cargo xtask fuzz`.

use berth_fuzz::{TARGETS, Target};
use berth_testkit::rng::Rng;

/// Mutated inputs per target: the layer target's take milliseconds each (a temporary tree is made and removed),
/// the parsers' microseconds.
fn mutations(target: &Target) -> usize {
    if target.name == "layer" { 100 } else { 3000 }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut input = seeds[rng.range(0, seeds.len() as u64) as usize].clone();
    // Keep the mode byte of the targets that have one: the mutations are for the payload.
    for _ in 0..rng.range(1, 5) {
        let len = input.len() as u64;
        let at = rng.range(1, len.max(2)) as usize;
        match rng.range(0, 6) {
            0 if at < input.len() => input[at] ^= 1 << rng.range(0, 8),
            1 if at < input.len() => input[at] = [0, 0xff, b'0', b'7', b'/', b'.', b'"'][rng.range(0, 7) as usize],
            2 => input.truncate(at),
            3 if at <= input.len() => input.insert(at, rng.next_u64() as u8),
            4 => {
                let other = &seeds[rng.range(0, seeds.len() as u64) as usize];
                let from = rng.range(0, other.len() as u64 + 1) as usize;
                let n = rng.range(0, 64).min((other.len() - from) as u64) as usize;
                let at = at.min(input.len());
                input.splice(at..at, other[from..from + n].iter().copied());
            }
            _ if at < input.len() => {
                // An octal digit somewhere in a header field, the way a size or mode gets corrupted.
                input[at] = b'0' + rng.range(0, 8) as u8;
            }
            _ => {}
        }
    }
    input
}

fn smoke(target: &Target, seed: u64) {
    let seeds = (target.seeds)();
    assert!(!seeds.is_empty(), "{}: no seeds", target.name);
    for s in &seeds {
        (target.run)(s);
    }
    let mut rng = Rng::new(seed);
    for i in 0..mutations(target) {
        let input = mutate(&mut rng, &seeds);
        let outcome = std::panic::catch_unwind(|| (target.run)(&input));
        if let Err(panic) = outcome {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!(
                "{}: mutation {i} (seed {seed}) failed: {msg}\ninput: {input:?}",
                target.name
            );
        }
    }
}

fn named(name: &str) -> &'static Target {
    TARGETS.iter().find(|t| t.name == name).expect("a target of that name")
}

#[test]
fn smoke_layer() {
    smoke(named("layer"), 1);
}

#[test]
fn smoke_digest() {
    smoke(named("digest"), 2);
}

#[test]
fn smoke_reference() {
    smoke(named("reference"), 3);
}

#[test]
fn smoke_document() {
    smoke(named("document"), 4);
}

#[test]
fn smoke_auth() {
    smoke(named("auth"), 5);
}

#[test]
fn every_target_has_a_libfuzzer_binary_and_a_smoke_test() {
    let manifest = include_str!("../../Cargo.toml");
    let this = include_str!("smoke.rs");
    for t in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{}\"\npath = \"fuzz_targets/{}.rs\"", t.name, t.name)),
            "{}: no [[bin]] in Cargo.toml",
            t.name
        );
        assert!(
            this.contains(&format!("fn smoke_{}()", t.name)),
            "{}: no smoke test",
            t.name
        );
    }
}
