//! Rotary position embedding tables, computed the way transformers does
//! (single precision throughout), with optional `llama3` frequency scaling.

use candle_core::{Device, Result, Tensor};

use crate::config::{Config, RopeScaling};

/// Inverse frequencies of one model's rotary embedding.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
}

impl Rope {
    /// Builds the inverse frequencies for `cfg` (`head_dim / 2` of them).
    pub fn new(cfg: &Config) -> Self {
        let dim = cfg.head_dim();
        let base = cfg.rope_theta() as f32;
        let mut inv_freq: Vec<f32> = (0..dim / 2)
            .map(|i| 1.0f32 / base.powf((2 * i) as f32 / dim as f32))
            .collect();
        if let RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings: old_len,
        } = cfg.rope_scaling()
        {
            let (factor, low, high, old_len) = (
                factor as f32,
                low_freq_factor as f32,
                high_freq_factor as f32,
                old_len as f32,
            );
            let low_freq_wavelen = old_len / low;
            let high_freq_wavelen = old_len / high;
            for f in &mut inv_freq {
                let wavelen = 2.0 * std::f32::consts::PI / *f;
                if wavelen < high_freq_wavelen {
                    // high frequencies are kept
                } else if wavelen > low_freq_wavelen {
                    *f /= factor;
                } else {
                    let smooth = (old_len / wavelen - low) / (high - low);
                    *f = (1.0 - smooth) * *f / factor + smooth * *f;
                }
            }
        }
        Rope { inv_freq }
    }

    /// `(cos, sin)`, each `[positions.len(), head_dim / 2]`.
    pub fn tables(&self, positions: &[u32], device: &Device) -> Result<(Tensor, Tensor)> {
        let h = self.inv_freq.len();
        let mut cos = Vec::with_capacity(positions.len() * h);
        let mut sin = Vec::with_capacity(positions.len() * h);
        for &p in positions {
            for &f in &self.inv_freq {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        let n = positions.len();
        Ok((
            Tensor::from_vec(cos, (n, h), device)?,
            Tensor::from_vec(sin, (n, h), device)?,
        ))
    }

    /// Tables for the contiguous positions `start..start + len`.
    pub fn range(&self, start: usize, len: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let pos: Vec<u32> = (start..start + len).map(|p| p as u32).collect();
        self.tables(&pos, device)
    }

    /// `(cos, sin)` as flat vectors `[len, head_dim / 2]` for positions
    /// `0..len` (the same values as [`Rope::tables`]).
    pub fn table_vecs(&self, len: usize) -> (Vec<f32>, Vec<f32>) {
        let h = self.inv_freq.len();
        let mut cos = Vec::with_capacity(len * h);
        let mut sin = Vec::with_capacity(len * h);
        for p in 0..len {
            for &f in &self.inv_freq {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        (cos, sin)
    }
}
