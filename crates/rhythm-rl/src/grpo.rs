//! GRPO (SPEC section 9) on candle autograd: the clipped surrogate with
//! per-token shaped advantages, an optional k3 KL term, and the token
//! weights of its aggregation. The optimizer (AdamW), gradient clipping and
//! the learning-rate schedule are the training toolkit's
//! ([`rhythm_train`]), shared with supervised pretraining.
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

use candle_core::{DType, Result, Tensor};

use crate::config::LossAgg;

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
