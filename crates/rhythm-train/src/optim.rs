//! AdamW with checkpointable state, global-norm gradient clipping and the
//! collection of a model's trainable weights.
//!
//! AdamW (Loshchilov & Hutter), as PyTorch's `torch.optim.AdamW`:
//!
//! ```text
//! m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
//! theta = theta (1 - lr wd [decays]) - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//! ```
//!
//! **Weight decay rule.** Decoupled weight decay applies to the weights of
//! rank >= 2 (projection matrices and embeddings) and never to rank-1
//! weights (RMSNorm gains, biases), as in nanoGPT and the Hugging Face
//! `Trainer` (which excludes biases and norm weights). Decaying a norm gain
//! pulls it toward 0, which shrinks the whole residual branch it scales
//! rather than regularising a mapping; it is never what a run wants. One
//! rule for every training loop of the project ([`AdamW::decays`]).
//!
//! Written by hand (rather than `candle_nn::AdamW`) so that its moments and
//! step count can be saved and restored exactly ([`AdamW::save`],
//! [`AdamW::load`]): a resumed run takes bit-identical steps.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;

use crate::settings::OptimSettings;
use crate::{bad, Result};

/// The trainable weights of a [`VarMap`], sorted by name (the fixed order
/// of optimizer state and gradients).
pub fn trainable_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// AdamW over a fixed list of named variables (see the module docs).
#[derive(Debug)]
pub struct AdamW {
    /// The parameters, in a fixed order (by name).
    pub vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    decay: Vec<bool>,
    /// Updates taken so far (`t`).
    pub t: u64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

impl AdamW {
    /// Zero moments for `vars`, with the betas, epsilon and weight decay
    /// of `s`.
    pub fn new(vars: Vec<(String, Var)>, s: &OptimSettings) -> Result<Self> {
        let m = vars
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let decay = vars.iter().map(|(_, v)| Self::decays(v)).collect();
        Ok(AdamW {
            v: m.clone(),
            m,
            decay,
            vars,
            t: 0,
            beta1: s.beta1,
            beta2: s.beta2,
            eps: s.adam_eps,
            weight_decay: s.weight_decay,
        })
    }

    /// Whether weight decay applies to `var`: rank >= 2 (matrices and
    /// embeddings), not rank 1 (norm gains, biases).
    pub fn decays(var: &Var) -> bool {
        var.rank() >= 2
    }

    /// Total number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// First and second moments, aligned with [`AdamW::vars`].
    pub fn moments(&self) -> (&[Tensor], &[Tensor]) {
        (&self.m, &self.v)
    }

    /// One update with gradients `grads` (aligned with `vars`; `None` =
    /// no gradient, the parameter and its moments are left alone) at
    /// learning rate `lr`.
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = &grads[i] else { continue };
            let m = ((&self.m[i] * b1)? + (g * (1.0 - b1))?)?;
            let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let upd = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + self.eps)?)?;
            let theta = var.as_tensor().detach();
            let theta = if self.decay[i] && self.weight_decay > 0.0 {
                (theta * (1.0 - lr * self.weight_decay))?
            } else {
                theta
            };
            var.set(&(theta - (upd * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The gradients of [`AdamW::vars`] in a candle autograd store.
    pub fn grads_of(&self, store: &GradStore) -> Vec<Option<Tensor>> {
        self.vars
            .iter()
            .map(|(_, v)| store.get(v.as_tensor()).cloned())
            .collect()
    }

    /// Named gradients (as `rhythm_model::Gradients::to_tensors` gives
    /// them) aligned with [`AdamW::vars`].
    pub fn grads_by_name(&self, named: Vec<(String, Tensor)>) -> Vec<Option<Tensor>> {
        let mut by: HashMap<String, Tensor> = named.into_iter().collect();
        self.vars.iter().map(|(n, _)| by.remove(n)).collect()
    }

    /// The moments as named tensors `m.{name}`, `v.{name}`.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.vars.len());
        for (i, (n, _)) in self.vars.iter().enumerate() {
            out.push((format!("m.{n}"), self.m[i].clone()));
            out.push((format!("v.{n}"), self.v[i].clone()));
        }
        out
    }

    /// Writes the moments to `path` (safetensors, fsync'd; the step count
    /// in the metadata as `adam_t`, for people: [`AdamW::load`] takes it
    /// from the caller's state file).
    pub fn save(&self, path: &Path) -> Result<()> {
        let meta = BTreeMap::from([("adam_t".to_string(), self.t.to_string())]);
        rhythm_model::write_safetensors(path, &self.state_tensors(), &meta)?;
        Ok(())
    }

    /// Restores the moments from `path` (written by [`AdamW::save`]; every
    /// `m.{name}` / `v.{name}` present with the variable's shape, in f32)
    /// and sets the step count to `t`.
    pub fn load(&mut self, path: &Path, t: u64, device: &Device) -> Result<()> {
        rhythm_model::weights::check_safetensors_file(path)?;
        let map = candle_core::safetensors::load(path, device)?;
        for (i, (n, var)) in self.vars.iter().enumerate() {
            for (kind, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let t: &Tensor = map
                    .get(&format!("{kind}.{n}"))
                    .ok_or_else(|| bad(path, format!("missing {kind}.{n}")))?;
                if t.dims() != var.as_tensor().dims() {
                    return Err(bad(
                        path,
                        format!(
                            "{kind}.{n} has shape {:?}, expected {:?}",
                            t.dims(),
                            var.as_tensor().dims()
                        ),
                    ));
                }
                if t.dtype() != DType::F32 {
                    return Err(bad(
                        path,
                        format!("{kind}.{n} has dtype {:?}, expected F32", t.dtype()),
                    ));
                }
                *slot = t.clone();
            }
        }
        self.t = t;
        Ok(())
    }
}

/// The global L2 norm of `grads`.
pub fn global_norm(grads: &[Option<Tensor>]) -> Result<f64> {
    let mut s = 0f64;
    for g in grads.iter().flatten() {
        s += g
            .sqr()?
            .sum_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
    }
    Ok(s.sqrt())
}

/// Scales `grads` in place so their global norm is at most `max_norm`
/// (0: no clipping). Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<f64> {
    let norm = global_norm(grads)?;
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for g in grads.iter_mut().flatten() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}
