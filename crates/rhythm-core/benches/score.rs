//! Scoring one sequence of 8,192 response tokens from the summaries of
//! 5 layers x 32 heads (the target: well under 50 ms on one core),
//! and, for scale, streaming rows of one head into a summary.

use criterion::{criterion_group, criterion_main, Criterion};
use rhythm_core::{gamma, CreditInputs, HeadSummary, Params, Rhythm, Strategy};

/// Summaries filled with synthetic rows: each head attends with a
/// head-specific decay, so spans differ and groups are non-trivial.
fn synthetic_summaries(p: usize, n: usize, layers: usize, heads: usize) -> Vec<HeadSummary> {
    let params = Params::rl();
    let cfg = params.summary_config(p, p + n);
    let mut out = Vec::new();
    let mut row = vec![0.0f32; p + n];
    for l in 0..layers {
        for h in 0..heads {
            let mut s = HeadSummary::new(l, h, &cfg);
            let decay = 0.05 + 0.9 * ((l * heads + h) as f32 / (layers * heads) as f32);
            for t in p..p + n {
                // Only a band of 64 recent columns plus column 0 is non-zero,
                // which keeps building the fixture fast.
                row[..=t].iter_mut().for_each(|x| *x = 0.0);
                let lo = t.saturating_sub(63);
                let mut sum = 0.0;
                for (k, s_) in (lo..=t).rev().enumerate() {
                    let v = decay.powi(k as i32) + if (s_ * 31 + h) % 97 == 0 { 0.5 } else { 0.0 };
                    row[s_] = v;
                    sum += v;
                }
                row[0] += 0.2;
                sum += 0.2;
                row[..=t].iter_mut().for_each(|x| *x /= sum);
                s.push_row(t, &row);
            }
            out.push(s);
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let params = Params::rl();
    let sums = synthetic_summaries(64, 8192, 5, 32);
    c.bench_function(
        "score 8192 tokens, 5x32 head summaries (rhythm + coupled gamma)",
        |b| {
            b.iter(|| {
                let r = Rhythm::from_summaries(&sums, &params, None).unwrap();
                let inp = CreditInputs {
                    n: r.n,
                    rhythm: Some(&r),
                    entropy: None,
                };
                gamma(Strategy::Coupled, &inp, &params).unwrap()
            })
        },
    );
    let cfg = params.summary_config(0, 2048);
    let row: Vec<f32> = vec![1.0 / 2048.0; 2048];
    c.bench_function(
        "push_row: one head, 2048 rows of a 2048-token sequence",
        |b| {
            b.iter(|| {
                let mut s = HeadSummary::new(0, 0, &cfg);
                for t in 0..2048 {
                    s.push_row(t, &row);
                }
                s.span_numerator()
            })
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
