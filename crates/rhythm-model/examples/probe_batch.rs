//! The GRPO trainer's probe pass, both ways, on one rollout-shaped batch:
//! `Model::probe_response` once per response (candle ops, blockwise) against
//! `Model::probe_responses` (one packed hand-written forward). Prints the
//! median seconds of each over the repeats and the ratio.
//!
//!     cargo run --release -p rhythm-model --example probe_batch -- \
//!         [MODEL_DIR] [RESPONSES] [LEN] [REPEATS]
//!
//! Defaults: models/countdown-tiny, 64 responses of 230 tokens after a
//! 12-token prompt (about a Countdown rollout batch), 5 repeats, the RL
//! defaults on the sampled layers.

use std::time::Instant;

use rhythm_core::Params;
use rhythm_model::{Pretrained, ProbeExtras};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .map(String::as_str)
        .unwrap_or("models/countdown-tiny");
    let count: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let len: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(230);
    let repeats: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let pre = Pretrained::load(dir)?;
    let m = &pre.model;
    let vocab = m.vocab_size() as u64;
    let prompt = 12usize;
    // Deterministic pseudo-random ids, lengths varying by +-20%.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seqs: Vec<Vec<u32>> = (0..count)
        .map(|_| {
            let n = prompt + len * 4 / 5 + (next() % (len as u64 * 2 / 5 + 1)) as usize;
            (0..n).map(|_| 1 + (next() % (vocab - 1)) as u32).collect()
        })
        .collect();
    let items: Vec<(&[u32], usize)> = seqs.iter().map(|s| (s.as_slice(), prompt)).collect();
    let params = Params::rl();
    let layers = rhythm_core::Layers::Sampled.resolve(m.num_layers())?;
    let tokens: usize = seqs.iter().map(|s| s.len() - prompt).sum();
    let (mut one, mut batch) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        let t = Instant::now();
        for &(ids, p) in &items {
            m.probe_response(ids, p, &layers, &params, ProbeExtras::default())?;
        }
        one.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        m.probe_responses(&items, &layers, &params)?;
        batch.push(t.elapsed().as_secs_f64());
    }
    let (a, b) = (median(one), median(batch));
    println!(
        "{count} responses, {tokens} response tokens, layers {layers:?}, {repeats} repeats (medians)"
    );
    println!(
        "probe_response x {count}: {a:.3} s ({:.0} tok/s)",
        tokens as f64 / a
    );
    println!(
        "probe_responses:      {b:.3} s ({:.0} tok/s)",
        tokens as f64 / b
    );
    println!("ratio: {:.2}x", a / b);
    Ok(())
}
