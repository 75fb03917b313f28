//! The three numerical building blocks that exist in two flavours.
//!
//! `Kernels::Differentiable` composes only basic candle ops that have a
//! backward pass, so gradients reach every weight. `Kernels::Fused` uses
//! candle-nn's fused CPU kernels, which are faster but silently cut the
//! gradient (they are `apply_op*_no_bwd`); they are only used on inference
//! paths (generation, the probe).

use candle_core::{DType, Device, Result, Tensor, D};

/// Which implementation of RMSNorm, softmax and RoPE to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// Basic ops only; safe for autograd.
    Differentiable,
    /// candle-nn fused kernels; inference only.
    Fused,
}

/// `x * rsqrt(mean(x^2) + eps) * w` over the last dimension.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64, k: Kernels) -> Result<Tensor> {
    match k {
        Kernels::Fused => candle_nn::ops::rms_norm(&x.contiguous()?, w, eps as f32),
        Kernels::Differentiable => {
            let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
            let inv = (ms + eps)?.sqrt()?.recip()?;
            x.broadcast_mul(&inv)?.broadcast_mul(w)
        }
    }
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor, k: Kernels) -> Result<Tensor> {
    match k {
        Kernels::Fused => candle_nn::ops::softmax_last_dim(&x.contiguous()?),
        Kernels::Differentiable => {
            // The shift does not change the value, so it may be detached.
            let m = x.max_keepdim(D::Minus1)?.detach();
            let e = x.broadcast_sub(&m)?.exp()?;
            e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
        }
    }
}

/// Log-softmax over the last dimension, built from basic ops (differentiable).
pub fn log_softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&m)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// Half-split ("rotate_half") rotary embedding of `x: [B, heads, T, d]`.
///
/// `cos`/`sin` are `[T, d/2]` (shared by the batch) or `[B, T, d/2]`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, k: Kernels) -> Result<Tensor> {
    match k {
        Kernels::Fused => candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin),
        Kernels::Differentiable => {
            let d = x.dim(D::Minus1)?;
            let half = d / 2;
            let (cos, sin) = if cos.rank() == 3 {
                (cos.unsqueeze(1)?, sin.unsqueeze(1)?)
            } else {
                (cos.clone(), sin.clone())
            };
            let x1 = x.narrow(D::Minus1, 0, half)?;
            let x2 = x.narrow(D::Minus1, half, half)?;
            let o1 = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
            let o2 = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
            Tensor::cat(&[o1, o2], D::Minus1)
        }
    }
}

/// Additive causal mask `[t, offset + t]`: query row `i` sees keys `0..=offset + i`.
pub fn causal_mask(t: usize, offset: usize, device: &Device) -> Result<Tensor> {
    let s = offset + t;
    let mut m = vec![0f32; t * s];
    for i in 0..t {
        for v in &mut m[i * s + offset + i + 1..(i + 1) * s] {
            *v = f32::NEG_INFINITY;
        }
    }
    Tensor::from_vec(m, (t, s), device)
}

/// A large negative number used where a whole row may be masked (padding):
/// unlike `-inf` it never produces NaN, and `exp` of it is exactly 0.
pub const MASKED: f32 = -1.0e30;

/// Casts a 0/1 attention mask of any dtype to `f32`.
pub fn mask_to_f32(mask: &Tensor) -> Result<Tensor> {
    mask.to_dtype(DType::F32)
}
