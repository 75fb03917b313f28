//! GRPO arithmetic against hand-computed values, and a finite-difference
//! check of the loss gradient on a tiny model.

use candle_core::{Device, Tensor};
use rhythm_core::{group_advantages, shaped_advantages};
use rhythm_model::{LoadOptions, Pretrained};
use rhythm_rl::config::LossAgg;
use rhythm_rl::grpo::{grpo_loss, token_weights, LossConfig};

fn t2(v: &[f32], b: usize, t: usize) -> Tensor {
    Tensor::from_vec(v.to_vec(), (b, t), &Device::Cpu).unwrap()
}

#[test]
fn advantages_and_shaping_by_hand() {
    // r = [1, 0, 0, 0]: mean 0.25, var = (0.75^2 + 3 * 0.25^2) / 4 = 0.1875,
    // std = 0.4330127; A = [0.75, -0.25, -0.25, -0.25] / (0.4330127 + 1e-6).
    let a = group_advantages(&[1.0, 0.0, 0.0, 0.0]);
    let s = 0.1875f64.sqrt() + 1e-6;
    assert!((a[0] - 0.75 / s).abs() < 1e-12);
    assert!((a[1] + 0.25 / s).abs() < 1e-12);
    // Shaping: gamma = [1.5, 1, 1.25]; A >= 0 is scaled, A < 0 is not.
    assert_eq!(
        shaped_advantages(2.0, &[1.5, 1.0, 1.25]),
        vec![3.0, 2.0, 2.5]
    );
    assert_eq!(shaped_advantages(-1.0, &[1.5, 1.0]), vec![-1.0, -1.0]);
}

#[test]
fn token_weights_by_hand() {
    // Lengths 2, 0, 4: the empty sequence weighs nothing and is not counted.
    // seq-mean: S = 2 -> 1/(2*2) = 0.25, 1/(4*2) = 0.125.
    assert_eq!(
        token_weights(&[2, 0, 4], LossAgg::SeqMeanTokenMean),
        vec![0.25, 0.0, 0.125]
    );
    // token-mean: 6 tokens -> 1/6.
    let w = token_weights(&[2, 0, 4], LossAgg::TokenMean);
    assert_eq!(w, vec![1.0 / 6.0, 0.0, 1.0 / 6.0]);
}

/// Two sequences, padded to 2 tokens.
/// A: A = 1, gamma = [1.5, 1] -> Atilde = [1.5, 1];
///    logp_new - logp_old = [0.1, 0.3] -> ratio = [1.105171, 1.349859].
///    token 1: clip(1.105171) = 1.105171, min(1.657756, 1.657756) = 1.657756.
///    token 2: clip(1.349859) = 1.2, min(1.349859, 1.2) = 1.2 (clipped).
/// B: A = -1 (not shaped), one token, logp_new - logp_old = -0.5
///    -> ratio 0.606531, clip 0.8; min(-0.606531, -0.8) = -0.8 (clipped).
/// seq-mean-token-mean: ((1.657756 + 1.2) / 2 + (-0.8)) / 2 = 0.314439,
///    loss = -0.314439.
/// token-mean: (1.657756 + 1.2 - 0.8) / 3 = 0.685919, loss = -0.685919.
#[test]
fn loss_by_hand() {
    let new = t2(&[0.1, 0.3, -0.5, 0.0], 2, 2);
    let old = t2(&[0.0, 0.0, 0.0, 0.0], 2, 2);
    let adv = t2(&[1.5, 1.0, -1.0, 0.0], 2, 2);
    let cfg = LossConfig::default();
    for (agg, expect) in [
        (LossAgg::SeqMeanTokenMean, -0.314_439),
        (LossAgg::TokenMean, -0.685_919),
    ] {
        let w = token_weights(&[2, 1], agg);
        let wt = t2(&[w[0] as f32, w[0] as f32, w[1] as f32, 0.0], 2, 2);
        let (loss, st) = grpo_loss(&new, &old, &adv, &wt, None, &cfg).unwrap();
        let v = loss.to_scalar::<f32>().unwrap() as f64;
        assert!((v - expect).abs() < 1e-5, "{agg:?}: {v} vs {expect}");
        assert_eq!(st.tokens, 3);
        assert_eq!(st.clipped, 2);
    }
}

/// k3 with logp_ref - logp_new = d: exp(d) - d - 1.
/// d = 0.5: 1.648721 - 0.5 - 1 = 0.148721; weight 1, beta 0.1 -> +0.0148721.
#[test]
fn kl_term_by_hand() {
    let new = t2(&[0.0], 1, 1);
    let old = t2(&[0.0], 1, 1);
    let adv = t2(&[0.0], 1, 1);
    let w = t2(&[1.0], 1, 1);
    let r = t2(&[0.5], 1, 1);
    let cfg = LossConfig {
        kl_coef: 0.1,
        ..Default::default()
    };
    let (loss, st) = grpo_loss(&new, &old, &adv, &w, Some(&r), &cfg).unwrap();
    assert!((st.kl - 0.148_721).abs() < 1e-5);
    assert!((loss.to_scalar::<f32>().unwrap() as f64 - 0.014_872_1).abs() < 1e-6);
}

/// Finite differences of the GRPO loss (through the differentiable
/// forward of the tiny Qwen3 fixture) against autograd, for the
/// largest-gradient entry of one tensor of each kind.
#[test]
fn gradient_matches_finite_differences() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/models/tiny-qwen3"
    );
    let p = Pretrained::load_with(
        dir,
        &LoadOptions {
            trainable: true,
            ..Default::default()
        },
    )
    .unwrap();
    let model = &p.model;
    let vars = p.varmap.as_ref().unwrap().data().lock().unwrap().clone();
    let ids = Tensor::from_vec(
        vec![8u32, 9, 10, 24, 31, 32, 17, 11, 12, 30, 33, 34],
        (2, 6),
        &Device::Cpu,
    )
    .unwrap();
    // Responses: positions 3..6 of row 0, 2..6 of row 1 -> logp columns 2..5, 1..5.
    let resp = [[0f32, 0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0, 1.0]];
    let w: Vec<f32> = resp
        .iter()
        .zip([3.0f32, 4.0])
        .flat_map(|(r, n)| r.iter().map(move |x| x / (n * 2.0)).collect::<Vec<_>>())
        .collect();
    let weight = t2(&w, 2, 5);
    // Shaped advantages of both signs; logp_old = logp_now + small offsets
    // (ratios within the clip range, far from its edges).
    let adv = t2(
        &[0.0, 0.0, 1.5, 1.0, 1.5, 0.0, -0.7, -0.7, -0.7, -0.7],
        2,
        5,
    );
    let now = model.token_logprobs(&ids, None).unwrap().detach();
    let offs = t2(
        &[0.0, 0.0, 0.05, -0.03, 0.02, 0.0, -0.04, 0.01, 0.03, -0.02],
        2,
        5,
    );
    let old = (now + offs).unwrap();
    let cfg = LossConfig::default();
    let loss_of = || -> (Tensor, f64) {
        let lp = model.token_logprobs(&ids, None).unwrap();
        let (l, _) = grpo_loss(&lp, &old, &adv, &weight, None, &cfg).unwrap();
        let v = l.to_scalar::<f32>().unwrap() as f64;
        (l, v)
    };
    let (l, _) = loss_of();
    let grads = l.backward().unwrap();
    let names = [
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.1.self_attn.k_norm.weight",
        "model.layers.2.mlp.down_proj.weight",
        "model.layers.1.input_layernorm.weight",
        "model.norm.weight",
    ];
    for name in names {
        let var = &vars[name];
        let g = grads
            .get(var.as_tensor())
            .expect("gradient reaches the weight");
        let gv = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (k, &gk) = gv
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap();
        let orig = var.as_tensor().detach().copy().unwrap();
        let flat = orig.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let h = 1e-3f32;
        let eval_at = |delta: f32| {
            let mut v = flat.clone();
            v[k] += delta;
            var.set(&Tensor::from_vec(v, orig.shape(), &Device::Cpu).unwrap())
                .unwrap();
            loss_of().1
        };
        let fd = (eval_at(h) - eval_at(-h)) / (2.0 * h as f64);
        var.set(&orig).unwrap();
        let err = (fd - gk as f64).abs();
        assert!(
            err <= 2e-3 + 0.03 * fd.abs(),
            "{name}[{k}]: autograd {gk} vs finite difference {fd}"
        );
        assert!(gk.abs() > 1e-4, "{name}: gradient too small to test ({gk})");
    }
}
