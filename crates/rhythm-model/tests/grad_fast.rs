//! The hand-written training pass (`Model::train_forward` /
//! `Model::train_backward`) against candle autograd through the
//! differentiable forward, on random tiny models of every family (q/k norm,
//! GQA, q/k/v/o and MLP biases, llama3 RoPE, tied and untied heads).

mod common;

use candle_core::{Device, Tensor};
use rhythm_model::{Gradients, Model};

const FAMILIES: [&str; 3] = ["qwen3", "qwen2", "llama"];

/// Coefficient of position `t` of sequence `s` in the test loss.
fn coef(s: usize, t: usize) -> f32 {
    0.3 + ((s * 31 + t) as f32 * 0.37).sin()
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

#[test]
fn fast_gradients_match_candle_autograd() {
    let dev = Device::Cpu;
    for family in FAMILIES {
        let (m, vm) = Model::random(&common::tiny(family), 11, 5.0, &dev).unwrap();
        // 90 tokens: more than one causal block of the packed attention.
        let seqs: Vec<Vec<u32>> = [(13usize, 1u64), (7, 2), (21, 3), (90, 4)]
            .iter()
            .map(|&(n, s)| common::ids(n, 40, s))
            .collect();
        // Fast path.
        let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
        let tape = m.train_forward(&refs).unwrap();
        let fast_lp = tape.logprobs.clone();
        let dl: Vec<Vec<f32>> = fast_lp
            .iter()
            .enumerate()
            .map(|(s, r)| (0..r.len()).map(|t| coef(s, t)).collect())
            .collect();
        let mut grads = Gradients::zeros(&m);
        m.train_backward(tape, &dl, &mut grads).unwrap();
        // The forward alone gives the same values.
        assert_eq!(m.fast_logprobs(&refs).unwrap(), fast_lp);
        // candle autograd on the right-padded batch.
        let t = seqs.iter().map(Vec::len).max().unwrap();
        let mut ids = vec![0u32; seqs.len() * t];
        let mut mask = vec![0u32; seqs.len() * t];
        let mut w = vec![0f32; seqs.len() * (t - 1)];
        for (s, seq) in seqs.iter().enumerate() {
            for (j, &id) in seq.iter().enumerate() {
                ids[s * t + j] = id;
                mask[s * t + j] = 1;
            }
            for j in 0..seq.len() - 1 {
                w[s * (t - 1) + j] = coef(s, j);
            }
        }
        let ids = Tensor::from_vec(ids, (seqs.len(), t), &dev).unwrap();
        let mask = Tensor::from_vec(mask, (seqs.len(), t), &dev).unwrap();
        let lp = m.token_logprobs(&ids, Some(&mask)).unwrap();
        let lpv = lp.to_vec2::<f32>().unwrap();
        for (s, row) in fast_lp.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let c = lpv[s][j];
                assert!(
                    (v - c).abs() <= 1e-4 * (1.0 + c.abs()),
                    "{family}: logprob seq {s} pos {j}: fast {v} vs candle {c}"
                );
            }
        }
        let w = Tensor::from_vec(w, (seqs.len(), t - 1), &dev).unwrap();
        let loss = (lp * w).unwrap().sum_all().unwrap();
        let cg = loss.backward().unwrap();
        let vars = vm.data().lock().unwrap().clone();
        assert_eq!(vars.len(), m.named_weights().len());
        for (name, var) in &vars {
            let c = cg
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{family}: no candle gradient for {name}"))
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let f = grads
                .get(name)
                .unwrap_or_else(|| panic!("{family}: no fast gradient for {name}"));
            let e = rel_err(f, &c);
            assert!(e <= 1e-4, "{family}: {name}: relative error {e:e}");
        }
    }
}

#[test]
fn fast_pass_rejects_bad_input() {
    let dev = Device::Cpu;
    let (m, _) = Model::random(&common::tiny("qwen3"), 1, 1.0, &dev).unwrap();
    let e = m.train_forward(&[&[1u32][..]]).unwrap_err().to_string();
    assert!(e.contains("at least 2 tokens"), "{e}");
    let e = m.train_forward(&[&[1u32, 99][..]]).unwrap_err().to_string();
    assert!(e.contains("99"), "{e}");
    let tape = m.train_forward(&[&[1u32, 2, 3][..]]).unwrap();
    let mut g = Gradients::zeros(&m);
    let e = m
        .train_backward(tape, &[vec![1.0]], &mut g)
        .unwrap_err()
        .to_string();
    assert!(e.contains("dlogp"), "{e}");
}
