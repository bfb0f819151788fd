//! A small mutational fuzzer for the parsers that face the network, run by `cargo test` with a
//! bounded budget (no nightly toolchain or libFuzzer needed).
//!
//! A target is a function of bytes that must not panic (and may assert its own invariants). The
//! fuzzer replays every file of the target's corpus (`fuzz/corpus/<target>/` at the workspace
//! root: seeds and every crash found so far, so a crash found once is a regression test
//! forever), then runs mutations of them: bit flips, byte changes, deletions, duplications,
//! insertions of interesting values, splices of two inputs, truncations.
//!
//! Budget and seed: `FUZZ_ITERATIONS` (default 5,000 per target) and `FUZZ_SEED` (default fixed,
//! so `cargo test` is deterministic; `scripts/fuzz.sh` runs longer with fresh seeds). A crash
//! writes its input to `target/fuzz-crashes/<target>-<hash>` and fails with that path: copy the
//! file into the corpus and fix the bug.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The workspace root (this crate lives one level below it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzzkit is inside the workspace")
        .to_path_buf()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: small, fast and reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Values that tend to find edge cases in length fields and counters.
const INTERESTING: [&[u8]; 10] = [
    &[0x00],
    &[0xff],
    &[0x7f],
    &[0x80],
    &[0xff, 0xff],
    &[0x00, 0x00],
    &[0x7f, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0xff],
    b"\"",
    b"\\u0000",
];

/// One mutation of `input`, sometimes spliced with `other`.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
    let mut out = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next_u64() as u8;
            }
            2 if !out.is_empty() => {
                let start = rng.below(out.len());
                let len = 1 + rng.below((out.len() - start).min(16));
                out.drain(start..start + len);
            }
            3 if !out.is_empty() => {
                let start = rng.below(out.len());
                let len = 1 + rng.below((out.len() - start).min(32));
                let chunk: Vec<u8> = out[start..start + len].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, chunk);
            }
            4 => {
                let value = INTERESTING[rng.below(INTERESTING.len())];
                let at = rng.below(out.len() + 1);
                if rng.below(2) == 0 || out.len() < at + value.len() {
                    out.splice(at..at, value.iter().copied());
                } else {
                    out[at..at + value.len()].copy_from_slice(value);
                }
            }
            5 if !other.is_empty() => {
                let cut = rng.below(out.len() + 1);
                let from = rng.below(other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            6 if !out.is_empty() => {
                let len = rng.below(out.len());
                out.truncate(len);
            }
            _ => {
                let at = rng.below(out.len() + 1);
                out.insert(at, rng.next_u64() as u8);
            }
        }
    }
    out.truncate(max_len);
    out
}

/// The seed and the corpus of `target`.
pub struct Fuzz {
    name: &'static str,
    corpus: Vec<Vec<u8>>,
    iterations: u64,
    seed: u64,
    max_len: usize,
}

impl Fuzz {
    /// `target`'s corpus from `fuzz/corpus/<target>/`, plus `seeds` given in code.
    pub fn new(name: &'static str, seeds: &[&[u8]]) -> Fuzz {
        let mut corpus: Vec<Vec<u8>> = seeds.iter().map(|s| s.to_vec()).collect();
        let dir = root().join("fuzz/corpus").join(name);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut files: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for file in files {
                if let Ok(bytes) = std::fs::read(&file) {
                    corpus.push(bytes);
                }
            }
        }
        assert!(!corpus.is_empty(), "fuzz target {name} has no corpus");
        Fuzz {
            name,
            corpus,
            iterations: env_u64("FUZZ_ITERATIONS", 5_000),
            seed: env_u64("FUZZ_SEED", 0x5eed_f00d),
            max_len: 64 * 1024,
        }
    }

    /// Fewer iterations than the default for a slow target (each a network round trip, say).
    pub fn iterations(mut self, default_divisor: u64) -> Self {
        self.iterations = (self.iterations / default_divisor.max(1)).max(1);
        self
    }

    /// Inputs longer than this are cut.
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// Replay the corpus, then run the mutations. Returns how many inputs ran.
    pub fn run(self, mut target: impl FnMut(&[u8])) -> u64 {
        for input in &self.corpus {
            self.check(&mut target, input);
        }
        let mut rng = Rng::new(self.seed ^ fnv(self.name.as_bytes()));
        for _ in 0..self.iterations {
            let a = &self.corpus[rng.below(self.corpus.len())];
            let b = &self.corpus[rng.below(self.corpus.len())];
            let input = mutate(&mut rng, a, b, self.max_len);
            self.check(&mut target, &input);
        }
        self.corpus.len() as u64 + self.iterations
    }

    fn check(&self, target: &mut impl FnMut(&[u8]), input: &[u8]) {
        if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
            let dir = root().join("target/fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{}-{:016x}", self.name, fnv(input)));
            let _ = std::fs::write(&path, input);
            panic!(
                "fuzz target {} panicked on an input saved to {} (seed {:#x}); add it to \
                 fuzz/corpus/{}/ as a regression test and fix the bug",
                self.name,
                path.display(),
                self.seed,
                self.name
            );
        }
    }
}

/// FNV-1a of bytes.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_reproducible_and_bounded() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let input = b"{\"type\":\"ping\",\"nonce\":1}";
        for _ in 0..1000 {
            let x = mutate(&mut a, input, b"other", 40);
            let y = mutate(&mut b, input, b"other", 40);
            assert_eq!(x, y);
            assert!(x.len() <= 40);
        }
    }

    #[test]
    fn a_panicking_target_is_reported_with_its_saved_input() {
        let fuzz = Fuzz::new("fuzzkit-selftest", &[b"abc"]);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            fuzz.run(|input| assert!(!input.contains(&b'!'), "found it"))
        }));
        let message = *outcome
            .expect_err("the fuzzer finds the byte")
            .downcast::<String>()
            .unwrap();
        assert!(
            message.contains("target/fuzz-crashes/fuzzkit-selftest-"),
            "{message}"
        );
    }
}
