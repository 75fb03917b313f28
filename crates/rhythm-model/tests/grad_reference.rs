//! The hand-written training pass against PyTorch autograd (float64) on the
//! same weights and batch: `fixtures/grads/*.safetensors`, written by
//! `tools/make_grad_reference.py` for the bundled model and the Qwen3, Qwen2
//! and Llama fixtures. Every parameter's gradient (all of it, or a fixed
//! random sample of 512 entries plus the whole norm for large tensors) must
//! agree to a relative error of 1e-4.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use rhythm_model::{Gradients, LoadOptions, Pretrained};

const TOL: f64 = 1e-4;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(1e-300)).sqrt()
}

fn check(name: &str, model_dir: &str) {
    let refs: HashMap<String, Tensor> = candle_core::safetensors::load(
        root().join(format!("fixtures/grads/{name}.safetensors")),
        &Device::Cpu,
    )
    .unwrap();
    let p = Pretrained::load_with(root().join(model_dir), &LoadOptions::default()).unwrap();
    let m = &p.model;
    let mut seqs = Vec::new();
    let mut coefs = Vec::new();
    let mut logps = Vec::new();
    for s in 0.. {
        let Some(ids) = refs.get(&format!("ids.{s}")) else {
            break;
        };
        seqs.push(
            f64s(ids)
                .into_iter()
                .map(|v| v as u32)
                .collect::<Vec<u32>>(),
        );
        coefs.push(
            f64s(&refs[&format!("coef.{s}")])
                .into_iter()
                .map(|v| v as f32)
                .collect::<Vec<f32>>(),
        );
        logps.push(f64s(&refs[&format!("logp.{s}")]));
    }
    assert_eq!(seqs.len(), 3, "{name}: expected 3 sequences");
    let slices: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let tape = m.train_forward(&slices).unwrap();
    let mut loss = 0f64;
    for (s, (lp, want)) in tape.logprobs.iter().zip(&logps).enumerate() {
        assert_eq!(lp.len(), want.len());
        for (t, (&a, &b)) in lp.iter().zip(want).enumerate() {
            assert!(
                (a as f64 - b).abs() <= TOL * (1.0 + b.abs()),
                "{name}: logp of sequence {s} position {t}: {a} vs torch {b}"
            );
            loss += coefs[s][t] as f64 * a as f64;
        }
    }
    let want_loss = f64s(&refs["loss"])[0];
    assert!(
        (loss - want_loss).abs() <= TOL * want_loss.abs().max(1.0),
        "{name}: loss {loss} vs torch {want_loss}"
    );
    let mut g = Gradients::zeros(m);
    m.train_backward(tape, &coefs, &mut g).unwrap();
    let mut checked = 0;
    for (pname, _) in m.named_weights() {
        let got: Vec<f64> = g.get(pname).unwrap().iter().map(|&v| v as f64).collect();
        let want = f64s(
            refs.get(&format!("grad.{pname}"))
                .unwrap_or_else(|| panic!("{name}: no reference gradient for {pname}")),
        );
        let got = match refs.get(&format!("pick.{pname}")) {
            None => got,
            Some(pick) => {
                let norm = got.iter().map(|v| v * v).sum::<f64>().sqrt();
                let want_norm = f64s(&refs[&format!("norm.{pname}")])[0];
                assert!(
                    (norm - want_norm).abs() <= TOL * want_norm,
                    "{name}: {pname}: gradient norm {norm} vs torch {want_norm}"
                );
                f64s(pick).iter().map(|&i| got[i as usize]).collect()
            }
        };
        let e = rel(&got, &want);
        assert!(
            e <= TOL,
            "{name}: {pname}: relative error {e:e} against torch"
        );
        checked += 1;
    }
    // Every reference gradient was checked (none of the model's is missing).
    let n_ref = refs.keys().filter(|k| k.starts_with("grad.")).count();
    assert_eq!(
        checked, n_ref,
        "{name}: parameters checked vs in the reference"
    );
}

#[test]
fn bundled_model_gradients_match_torch() {
    check("countdown-tiny", "models/countdown-tiny");
}

#[test]
fn qwen3_fixture_gradients_match_torch() {
    check("tiny-qwen3", "fixtures/models/tiny-qwen3");
}

#[test]
fn qwen2_fixture_gradients_match_torch() {
    check("tiny-qwen2", "fixtures/models/tiny-qwen2");
}

#[test]
fn llama_fixture_gradients_match_torch() {
    check("tiny-llama", "fixtures/models/tiny-llama");
}
