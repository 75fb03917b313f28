//! The stable fuzz harness: replays every committed corpus file of every
//! target, then runs a bounded mutation fuzz (bit flips, byte edits,
//! interesting integers and tokens, splices between corpus files) from a
//! fixed seed. A panic is reported with the input, which is also written
//! to `$CARGO_TARGET_TMPDIR/crash-<target>-<n>` for replay.
//!
//! `RHYTHM_FUZZ_ITERS` sets the mutated inputs per target (default 2000);
//! `RHYTHM_FUZZ_SEED` the seed; `RHYTHM_FUZZ_TARGET` one target only.
//! Long runs and the coverage-guided libFuzzer runs: docs/reliability.md.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\n",
    b":",
    b",",
    b"0",
    b"-1",
    b"1e999",
    b"NaN",
    b"null",
    b"18446744073709551615",
    b"18446744073709551616",
    b"4294967296",
    b"\\u0000",
    b"\xff",
    b"<answer>",
    b"</answer>",
    b"\\boxed{",
    b"(",
    b")",
    b"/",
    b"*",
    b"=",
    b" ",
    b"true",
    b"\"F32\"",
    b"\"BF16\"",
    b"\"shape\"",
    b"\"data_offsets\"",
    b"\"dtype\"",
    b"__metadata__",
    b"num_hidden_layers",
    b"vocab_size",
    b"steps = ",
    b"[section]",
    b"\"nums\"",
    b"\"target\"",
    b"\"prompt\"",
    b"\"answer\"",
    b"\"step\"",
    b"\"accuracy\"",
    b"\"eval_accuracy\"",
    b"\"adam_t\"",
    b"\"files\"",
    b"\"weight_map\"",
    b"../",
    b"attn.",
    b"\"response_start\"",
];

fn mutate(rng: &mut ChaCha8Rng, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
    let rounds = rng.random_range(1..=4);
    for _ in 0..rounds {
        let len = data.len();
        match rng.random_range(0..8) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] = rng.random();
            }
            2 => {
                let i = rng.random_range(0..=len);
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                data.splice(i..i, t.iter().copied());
            }
            3 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = (a + rng.random_range(1..=16)).min(len);
                data.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = (a + rng.random_range(1..=32)).min(len);
                let chunk: Vec<u8> = data[a..b].to_vec();
                let i = rng.random_range(0..=data.len());
                data.splice(i..i, chunk);
            }
            5 if len >= 8 => {
                let i = rng.random_range(0..=len - 8);
                let v: u64 = match rng.random_range(0..5) {
                    0 => 0,
                    1 => u64::MAX,
                    2 => 1 << rng.random_range(0..64),
                    3 => (1u64 << rng.random_range(0..64)).wrapping_sub(1),
                    _ => rng.random(),
                };
                data[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            6 if !pool.is_empty() => {
                let other = &pool[rng.random_range(0..pool.len())];
                if !other.is_empty() {
                    let a = rng.random_range(0..other.len());
                    let b = rng.random_range(a..=other.len());
                    let i = rng.random_range(0..=data.len());
                    data.splice(i..i, other[a..b].iter().copied());
                }
            }
            _ => {
                let i = rng.random_range(0..=len);
                data.truncate(i);
            }
        }
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn check(target: &str, input: &[u8], what: &str) {
    let r = catch_unwind(AssertUnwindSafe(|| rhythm_fuzz::run(target, input)));
    match r {
        Ok(known) => assert!(known, "no target {target}"),
        Err(e) => {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            let path = dir.join(format!("crash-{target}-{}", input.len()));
            let _ = std::fs::write(&path, input);
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "{target}: {what} panicked ({msg}); input saved to {} ({:?})",
                path.display(),
                String::from_utf8_lossy(&input[..input.len().min(400)])
            );
        }
    }
}

#[test]
fn corpora_replay_and_bounded_mutation_run() {
    let iters = env_usize("RHYTHM_FUZZ_ITERS", 2000);
    let seed = env_usize("RHYTHM_FUZZ_SEED", 1) as u64;
    let only = std::env::var("RHYTHM_FUZZ_TARGET").ok();
    // Quiet the default hook: panics are caught and reported once.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let started = std::time::Instant::now();
    let mut total = 0usize;
    for &target in rhythm_fuzz::TARGETS {
        if only.as_deref().is_some_and(|o| o != target) {
            continue;
        }
        let pool = corpus(target);
        assert!(!pool.is_empty(), "{target}: empty corpus");
        for (i, c) in pool.iter().enumerate() {
            check(target, c, &format!("corpus file {i}"));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ target.len() as u64);
        for k in 0..iters {
            let mut d = pool[rng.random_range(0..pool.len())].clone();
            mutate(&mut rng, &mut d, &pool);
            check(target, &d, &format!("mutation {k}"));
        }
        total += pool.len() + iters;
    }
    std::panic::set_hook(hook);
    rhythm_fuzz::remove_scratch();
    eprintln!(
        "fuzz: {total} inputs in {:.1}s, no panics",
        started.elapsed().as_secs_f64()
    );
}

/// Found by libFuzzer (`safetensors`): a tensor name holding a line break
/// made `check_header`'s message two lines. Control characters from the
/// file are now escaped.
#[test]
fn regression_shard_name_with_line_break() {
    // libFuzzer (model_files, after 8.8M executions): a shard name holding a
    // line break (and others holding `/`) in model.safetensors.index.json
    // made "file not found" a two-line message; shard names must now be file
    // names of the model directory, escaped in the message.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus/model_files/regress_newline_in_shard_name");
    let bytes = std::fs::read(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.safetensors.index.json"), &bytes).unwrap();
    let err = rhythm_model::weights::weight_files(dir.path())
        .unwrap_err()
        .to_string();
    assert!(!err.contains('\n'), "{err:?}");
    assert!(
        err.contains("is not a file name of the model directory"),
        "{err:?}"
    );
    for bad in ["../model.safetensors", "a\\b", "..", "", "x\u{1b}y"] {
        let index = serde_json::json!({"weight_map": {"w": bad}}).to_string();
        std::fs::write(dir.path().join("model.safetensors.index.json"), index).unwrap();
        let err = rhythm_model::weights::weight_files(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("weight_map.w") && !err.contains('\n'),
            "{bad:?}: {err}"
        );
    }
    rhythm_fuzz::model_files(&bytes);
}

#[test]
fn regression_safetensors_name_with_line_break() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus/safetensors/regress_newline_in_name");
    let bytes = std::fs::read(&path).unwrap();
    let err = rhythm_model::weights::check_safetensors_bytes(&bytes).unwrap_err();
    assert!(!err.contains('\n'), "{err:?}");
    assert!(err.contains("tensor `\\ntropy`"), "{err:?}");
    rhythm_fuzz::safetensors(&bytes);
}
