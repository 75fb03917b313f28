//! The sampler's cost per token on a Qwen3-sized vocabulary (151,936
//! logits), through the sorted path (top-k = the whole vocabulary: every
//! candidate sorted by logit, as with top-k/top-p) and the unsorted one (no
//! top-k, no top-p: the draw walks the ids in order). Prints the median of 7
//! rounds of 20 draws each.
//!
//!     cargo run --release -p rhythm-model --example pick_speed

use std::time::Instant;

use rand::SeedableRng;
use rhythm_model::generate::pick;
use rhythm_model::SamplingParams;

fn main() {
    let vocab = 151_936usize;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let logits: Vec<f32> = (0..vocab)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f32 / 1000.0
        })
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for (name, top_k) in [
        ("sorted (top-k = vocabulary)", vocab),
        ("unsorted (no top-k/top-p)", 0),
    ] {
        let p = SamplingParams {
            temperature: 1.0,
            top_k,
            ..Default::default()
        };
        let mut ms = Vec::new();
        for _ in 0..7 {
            let t = Instant::now();
            for _ in 0..20 {
                std::hint::black_box(pick(&logits, &p, &mut rng));
            }
            ms.push(t.elapsed().as_secs_f64() / 20.0 * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        println!("{name}: median {:.3} ms a token", ms[3]);
    }
}
