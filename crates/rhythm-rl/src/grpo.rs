//! GRPO (SPEC section 9) on candle autograd: the clipped surrogate with
//! per-token shaped advantages, an optional k3 KL term, a hand-written
//! AdamW whose moments can be checkpointed, global-norm gradient clipping
//! and the learning-rate schedule.
//!
//! # Loss
//!
//! For response token `t` of sequence `i`, with `ratio = exp(logp_new -
//! logp_old)` and the shaped advantage `Atilde[i,t]` (a constant: `gamma` is
//! data, never a gradient path):
//!
//! ```text
//! s[i,t] = min(ratio * Atilde, clip(ratio, 1 - eps_low, 1 + eps_high) * Atilde)
//! loss   = - sum_{i,t} w[i,t] * s[i,t]  +  beta * sum_{i,t} w[i,t] * k3[i,t]
//! k3     = exp(logp_ref - logp_new) - (logp_ref - logp_new) - 1
//! ```
//!
//! The token weights `w` carry the aggregation ([`token_weights`]): with
//! SPEC's per-sequence token mean, `w[i,t] = 1 / (n_i * S)` over the `S`
//! sequences of an optimizer step; with DAPO's token mean `w = 1 / sum n_i`.
//! Because the weights are fixed per optimizer step, a mini-batch may be
//! cut into micro-batches whose gradients simply add up.
//!
//! The `min` is written with a detached mask (1 where the unclipped branch
//! is the smaller one) so that its gradient is exact at ties: the value is
//! `min(...)` and the gradient `mask * Atilde * d ratio`.

use candle_core::{DType, Result, Tensor, Var};

use crate::config::{LossAgg, Schedule};

/// Settings of the surrogate loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossConfig {
    /// Lower clip range.
    pub eps_low: f64,
    /// Upper clip range.
    pub eps_high: f64,
    /// Weight of the k3 KL term (0: off).
    pub kl_coef: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            eps_low: 0.2,
            eps_high: 0.2,
            kl_coef: 0.0,
        }
    }
}

/// Statistics of one loss evaluation (weighted like the loss).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossStats {
    /// Response tokens covered.
    pub tokens: usize,
    /// Tokens whose gradient the clip removed.
    pub clipped: usize,
    /// `sum w * k3` (0 without a reference).
    pub kl: f64,
}

/// Token weights of one optimizer step: `lens[i]` is the response length
/// of its `i`-th sequence. Returns one weight per sequence (every token of
/// sequence `i` gets `out[i]`).
///
/// ```
/// use rhythm_rl::config::LossAgg;
/// use rhythm_rl::grpo::token_weights;
/// // Two sequences of 2 and 4 tokens.
/// // seq-mean-token-mean: 1/(2*2) and 1/(4*2).
/// assert_eq!(token_weights(&[2, 4], LossAgg::SeqMeanTokenMean), vec![0.25, 0.125]);
/// // token-mean: 1/6 each.
/// assert_eq!(token_weights(&[2, 4], LossAgg::TokenMean), vec![1.0 / 6.0, 1.0 / 6.0]);
/// ```
pub fn token_weights(lens: &[usize], agg: LossAgg) -> Vec<f64> {
    let s = lens.iter().filter(|&&n| n > 0).count();
    let total: usize = lens.iter().sum();
    lens.iter()
        .map(|&n| {
            if n == 0 {
                0.0
            } else {
                match agg {
                    LossAgg::SeqMeanTokenMean => 1.0 / (n as f64 * s as f64),
                    LossAgg::TokenMean => 1.0 / total as f64,
                }
            }
        })
        .collect()
}

/// The GRPO loss of a micro-batch. All tensors are `[B, T]` `f32`:
/// `logp_new` (differentiable), `logp_old`, `adv` (shaped advantages),
/// `weight` (token weight, 0 outside responses) and optionally `logp_ref`.
/// Returns the scalar loss and its statistics.
pub fn grpo_loss(
    logp_new: &Tensor,
    logp_old: &Tensor,
    adv: &Tensor,
    weight: &Tensor,
    logp_ref: Option<&Tensor>,
    cfg: &LossConfig,
) -> Result<(Tensor, LossStats)> {
    let ratio = (logp_new - logp_old)?.exp()?;
    let clipped = ratio
        .detach()
        .clamp(1.0 - cfg.eps_low, 1.0 + cfg.eps_high)?;
    let unclipped_val = ratio.detach().mul(adv)?;
    let clipped_val = clipped.mul(adv)?;
    // mask = 1 where the unclipped branch is the minimum (ties included).
    let mask = unclipped_val.le(&clipped_val)?.to_dtype(DType::F32)?;
    let surrogate = ((ratio.mul(adv)? * &mask)? + (clipped_val * (1.0 - &mask)?)?)?;
    let mut loss = (surrogate.mul(weight)?.sum_all()? * -1.0)?;
    let active = weight.gt(0.0)?.to_dtype(DType::F32)?;
    let tokens = active.sum_all()?.to_scalar::<f32>()? as usize;
    let clipped_n = ((1.0 - &mask)? * &active)?.sum_all()?.to_scalar::<f32>()? as usize;
    let mut kl = 0.0;
    if let (Some(r), true) = (logp_ref, cfg.kl_coef > 0.0) {
        let d = (r - logp_new)?;
        let k3 = ((d.exp()? - &d)? - 1.0)?;
        let term = k3.mul(weight)?.sum_all()?;
        kl = term.to_scalar::<f32>()? as f64;
        loss = (loss + (term * cfg.kl_coef)?)?;
    }
    Ok((
        loss,
        LossStats {
            tokens,
            clipped: clipped_n,
            kl,
        },
    ))
}

/// The learning rate at optimizer-schedule step `step` (0-based rollout
/// step) of `total`: linear warmup over `warmup` steps from `lr/warmup`
/// to `lr`, then `schedule`.
pub fn lr_at(lr: f64, step: usize, warmup: usize, total: usize, schedule: Schedule) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    match schedule {
        Schedule::Constant => lr,
        Schedule::Linear => lr * (1.0 - progress),
        Schedule::Cosine => lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
    }
}

/// AdamW (Loshchilov & Hutter), as PyTorch's `torch.optim.AdamW`:
///
/// ```text
/// m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
/// theta = theta (1 - lr wd) - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
/// ```
///
/// Written by hand (rather than `candle_nn::AdamW`) so that its moments and
/// step count can be saved and restored exactly.
#[derive(Debug)]
pub struct AdamW {
    /// The parameters, in a fixed order (by name).
    pub vars: Vec<(String, Var)>,
    /// First moments, one per parameter.
    pub m: Vec<Tensor>,
    /// Second moments, one per parameter.
    pub v: Vec<Tensor>,
    /// Updates taken so far (`t`).
    pub t: u64,
    /// beta1.
    pub beta1: f64,
    /// beta2.
    pub beta2: f64,
    /// epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl AdamW {
    /// Zero moments for `vars`.
    pub fn new(
        vars: Vec<(String, Var)>,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    ) -> Result<Self> {
        let m = vars
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(AdamW {
            vars,
            m,
            v,
            t: 0,
            beta1,
            beta2,
            eps,
            weight_decay,
        })
    }

    /// One update with gradients `grads` (aligned with `vars`; `None` =
    /// no gradient, the parameter is left alone) at learning rate `lr`.
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = &grads[i] else { continue };
            let m = ((&self.m[i] * b1)? + (g * (1.0 - b1))?)?;
            let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let mhat = (&m / bc1)?;
            let vhat = (&v / bc2)?;
            let upd = (mhat / (vhat.sqrt()? + self.eps)?)?;
            let theta = var.as_tensor().detach();
            let theta = if self.weight_decay > 0.0 {
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
