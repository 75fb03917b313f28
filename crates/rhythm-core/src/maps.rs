//! Full attention maps: validation, and the reference definitions of SPEC
//! sections 3, 4 and 6 computed directly on an `N x N` map.
//!
//! These functions are the literal formulas. The streamed path
//! ([`crate::HeadSummary`]) must agree with them to float rounding; the tests
//! hold the two against each other.

use crate::error::CoreError;
use crate::summary::{HeadSummary, SummaryConfig};

/// Tolerance on a row's sum (SPEC: rows sum to 1).
pub const ROW_SUM_TOL: f64 = 1e-3;
/// Largest magnitude tolerated above the diagonal of a causal map.
pub const CAUSAL_TOL: f32 = 1e-6;

/// Row-sum tolerance for a map of `seq_len` columns stored as `dtype`
/// (safetensors names: `F64`, `F32`, `F16`, `BF16`; anything else is
/// treated as `F32`). Rounding a valid row (non-negative, summing to 1) to
/// the dtype moves each entry by at most `u * |a|` (`u` the unit roundoff:
/// 2^-8 for bf16's 8-bit significand, 2^-11 for f16's 11 bits) or, for f16 entries below the normal
/// range, by half the subnormal spacing 2^-25; so the rounded row sums to
/// 1 within `u + N * 2^-25`, added to [`ROW_SUM_TOL`] (which covers how
/// the f32 map was computed).
pub fn row_sum_tolerance(dtype: &str, seq_len: usize) -> f64 {
    let (u, sub) = match dtype {
        "BF16" => (2f64.powi(-8), 0.0),
        "F16" => (2f64.powi(-11), 2f64.powi(-25)),
        _ => (0.0, 0.0),
    };
    ROW_SUM_TOL + u + seq_len as f64 * sub
}

/// One head's causal attention map, row-major `N x N`.
#[derive(Clone, Copy, Debug)]
pub struct HeadMap<'a> {
    /// Layer index.
    pub layer: usize,
    /// Head index within the layer.
    pub head: usize,
    /// `N`.
    pub seq_len: usize,
    /// `N * N` entries, row `t` at `t*N .. (t+1)*N`.
    pub data: &'a [f32],
}

impl<'a> HeadMap<'a> {
    /// Row `t` (all `N` entries).
    pub fn row(&self, t: usize) -> &'a [f32] {
        &self.data[t * self.seq_len..(t + 1) * self.seq_len]
    }

    /// Checks SPEC's definition: finite, non-negative, zero above the
    /// diagonal, each row summing to 1 within [`ROW_SUM_TOL`].
    pub fn validate(&self) -> Result<(), CoreError> {
        self.validate_with_tol(ROW_SUM_TOL)
    }

    /// [`Self::validate`] with row sums allowed to miss 1 by `row_sum_tol`
    /// (see [`row_sum_tolerance`] for maps stored in a 16-bit dtype).
    pub fn validate_with_tol(&self, row_sum_tol: f64) -> Result<(), CoreError> {
        let n = self.seq_len;
        let bad = |row: usize, problem: String| CoreError::BadMap {
            layer: self.layer,
            head: self.head,
            row,
            problem,
        };
        if n.checked_mul(n) != Some(self.data.len()) {
            return Err(bad(
                0,
                format!("has {} entries, expected {n} x {n}", self.data.len()),
            ));
        }
        for t in 0..n {
            let row = self.row(t);
            let mut sum = 0.0f64;
            for (s, &a) in row.iter().enumerate() {
                if !a.is_finite() {
                    return Err(bad(
                        t,
                        format!("column {s} is {a}, expected a finite number"),
                    ));
                }
                if a < 0.0 {
                    return Err(bad(t, format!("column {s} is {a}, expected >= 0")));
                }
                if s > t && a.abs() > CAUSAL_TOL {
                    return Err(bad(
                        t,
                        format!("column {s} is {a} but a causal map is 0 above the diagonal"),
                    ));
                }
                sum += a as f64;
            }
            if (sum - 1.0).abs() > row_sum_tol {
                return Err(bad(
                    t,
                    format!("sums to {sum:.6}, expected 1 (within {row_sum_tol:.2e})"),
                ));
            }
        }
        Ok(())
    }

    /// Streams this map's rows into a [`HeadSummary`].
    pub fn summarize(&self, cfg: &SummaryConfig) -> HeadSummary {
        let mut s = HeadSummary::new(self.layer, self.head, cfg);
        for t in cfg.response_start..cfg.seq_len {
            s.push_row(t, self.row(t));
        }
        s
    }
}

/// Element-wise mean of several `N x N` maps (the group aggregate `Abar`).
pub fn mean_map(maps: &[&[f32]], seq_len: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; seq_len * seq_len];
    for m in maps {
        for (o, &a) in out.iter_mut().zip(m.iter()) {
            *o += a as f64;
        }
    }
    let k = maps.len().max(1) as f64;
    out.iter_mut().for_each(|o| *o /= k);
    out
}

/// Span `d = (1/n) sum_{t in R} sum_{s<=t} A[t,s] (t - s)` of one map.
pub fn span_of_map(map: &[f64], seq_len: usize, p: usize) -> f64 {
    let mut num = 0.0;
    for t in p..seq_len {
        for s in 0..=t {
            num += map[t * seq_len + s] * (t - s) as f64;
        }
    }
    num / (seq_len - p) as f64
}

/// `WAAD[t] = sum_{s<=t} A[t,s] min(t - s, W)` for `t in R`.
pub fn waad_of_map(map: &[f64], seq_len: usize, p: usize, window: usize) -> Vec<f64> {
    (p..seq_len)
        .map(|t| {
            (0..=t)
                .map(|s| map[t * seq_len + s] * ((t - s).min(window)) as f64)
                .sum()
        })
        .collect()
}

/// `FAI[s] = mean_{t in T(s)} A[t,s]`, `T(s) = {t in R : s + lo <= t <= min(N-1, s + hi)}`,
/// 0 when `T(s)` is empty.
pub fn fai_of_map(map: &[f64], seq_len: usize, p: usize, horizon: (usize, usize)) -> Vec<f64> {
    (p..seq_len)
        .map(|s| {
            let ts: Vec<usize> = (p..seq_len)
                .filter(|&t| {
                    s.saturating_add(horizon.0) <= t
                        && t <= (seq_len - 1).min(s.saturating_add(horizon.1))
                })
                .collect();
            if ts.is_empty() {
                0.0
            } else {
                ts.iter().map(|&t| map[t * seq_len + s]).sum::<f64>() / ts.len() as f64
            }
        })
        .collect()
}

/// Vertical scores `v[s] = mean_{t in R, t >= s + prox} A[t,s]` for the
/// positions `s in R` that have such rows.
pub fn vertical_of_map(map: &[f64], seq_len: usize, p: usize, prox: usize) -> Vec<f64> {
    (p..seq_len)
        .filter_map(|s| {
            let ts: Vec<usize> = (p..seq_len)
                .filter(|&t| t >= s.saturating_add(prox))
                .collect();
            if ts.is_empty() {
                None
            } else {
                Some(ts.iter().map(|&t| map[t * seq_len + s]).sum::<f64>() / ts.len() as f64)
            }
        })
        .collect()
}
